import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The station (FastAPI) serves the built page at "/" and its assets under "/assets/".
const outDir = fileURLToPath(new URL("../src/rigwatch/web/static", import.meta.url));
const station = process.env.RIGWATCH_STATION ?? "http://127.0.0.1:5001";

export default defineConfig({
  base: "/",
  build: {
    outDir,
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: {
      "/api": { target: station, changeOrigin: true },
      "/ws": { target: station.replace(/^http/, "ws"), ws: true, changeOrigin: true },
    },
  },
});
