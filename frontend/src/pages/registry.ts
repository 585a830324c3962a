// Every page of the station's web page. A new page is one module under pages/ (exporting
// `mount`, see ./types.ts) plus one entry here: the navigation and the router read this list.

import type { PageDef } from "./types";

export const PAGES: readonly PageDef[] = [
  { id: "live", title: "Live", load: () => import("./live") },
  { id: "recordings", title: "Recordings", load: () => import("./recordings") },
  { id: "acoustics", title: "Acoustic camera", load: () => import("./acoustics") },
  { id: "control", title: "Control", load: () => import("./control") },
];

/** What "/" (no route) shows. */
export const DEFAULT_PAGE = "live";
