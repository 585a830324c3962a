import { renameSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Plugin, defineConfig } from "vite";

// Two pages of one project, built one after the other (`npm run build`):
// - the station's (index.html), served by the station (FastAPI) at "/" from web/static;
// - the fleet server's dashboard (fleet.html, `vite build --mode fleet`), served by the fleet
//   server at "/" from fleet/static, where it is written as index.html.
const stationOut = fileURLToPath(new URL("../src/rigwatch/web/static", import.meta.url));
const fleetOut = fileURLToPath(new URL("../src/rigwatch/fleet/static", import.meta.url));
const station = process.env.RIGWATCH_STATION ?? "http://127.0.0.1:5001";
const fleet = process.env.RIGWATCH_FLEET ?? "http://127.0.0.1:8100";

/** The fleet server serves "/" as index.html (StaticFiles html=True). */
function fleetIndex(): Plugin {
  return {
    name: "rigwatch-fleet-index",
    apply: "build",
    closeBundle() {
      renameSync(`${fleetOut}/fleet.html`, `${fleetOut}/index.html`);
    },
  };
}

export default defineConfig(({ mode }) => {
  const isFleet = mode === "fleet";
  const target = isFleet ? fleet : station;
  return {
    base: "/",
    plugins: isFleet ? [fleetIndex()] : [],
    build: {
      outDir: isFleet ? fleetOut : stationOut,
      emptyOutDir: true,
      target: "es2022",
      chunkSizeWarningLimit: 400,
      rolldownOptions: {
        input: fileURLToPath(new URL(isFleet ? "./fleet.html" : "./index.html", import.meta.url)),
      },
    },
    server: {
      proxy: {
        "/api": { target, changeOrigin: true },
        "/ws": { target: target.replace(/^http/, "ws"), ws: true, changeOrigin: true },
      },
    },
  };
});
