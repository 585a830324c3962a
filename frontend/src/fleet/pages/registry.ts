// Every page of the fleet dashboard: one module under pages/ plus one entry here.

import type { FleetPageDef } from "./types";

export const PAGES: readonly FleetPageDef[] = [
  { id: "map", title: "Map", nav: true, load: () => import("./map") },
  { id: "alerts", title: "Alerts", nav: true, load: () => import("./alerts") },
  { id: "machine", title: "Machine", nav: false, load: () => import("./machine") },
];

export const DEFAULT_PAGE = "map";
