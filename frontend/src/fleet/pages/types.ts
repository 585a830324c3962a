// What a page of the fleet dashboard is: a module with a mount function, listed once in
// ./registry.ts (the station's pages have the same shape: ../../pages/types.ts).

import type { ProblemsView } from "../../components/problems";
import type { MountedPage, Route } from "../../pages/types";
import type { Session } from "../api";
import type { FleetLive } from "../live";
import type { FleetState } from "../state";

export type { MountedPage, Route };

/** What the shell lends a page while it is shown. */
export interface FleetPageContext {
  readonly id: string;
  /** the live stream (one for the whole dashboard) */
  readonly live: FleetLive;
  /** every machine's position and colour, kept current */
  readonly fleet: FleetState;
  readonly problems: ProblemsView;
  /** the logged-in user, if any (anonymous reading may be allowed) */
  session(): Session | null;
  /** Makes `counters` readable as `window.__rigwatch[id]` (for people and tests). */
  expose<T extends object>(counters: T): T;
  navigate(page: string, params?: string[], opts?: { replace?: boolean }): void;
}

export interface FleetPageModule {
  mount(root: HTMLElement, ctx: FleetPageContext, route: Route): MountedPage;
}

export interface FleetPageDef {
  id: string;
  title: string;
  /** listed in the navigation (the machine page is reached from the map and the lists) */
  nav: boolean;
  load(): Promise<FleetPageModule>;
}
