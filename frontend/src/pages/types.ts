// What a page is: a module with a mount function, listed once in ./registry.ts.

import type { ProblemsView } from "../components/problems";
import type { LiveClient } from "../live-client";
import type { StatusStore } from "../shell/status-store";

/** Where the hash router is: `#/recordings/a.parquet` is page "recordings", params ["a.parquet"]. */
export interface Route {
  page: string;
  params: string[];
}

/** What the shell lends a page while it is shown. */
export interface PageContext {
  /** the page's id in the registry */
  readonly id: string;
  /** the live WebSocket (one for the whole app; pages hold subscriptions on it) */
  readonly live: LiveClient;
  /** GET /api/status, refreshed every 2 s for everyone */
  readonly status: StatusStore;
  /** where failed requests are shown */
  readonly problems: ProblemsView;
  /** Makes `counters` readable as `window.__rigwatch[id]` (for people and tests). */
  expose<T extends object>(counters: T): T;
  /** Goes to `#/<page>/<params...>` (params are encoded); replace: no history entry. */
  navigate(page: string, params?: string[], opts?: { replace?: boolean }): void;
}

/** A shown page. */
export interface MountedPage {
  /** The route changed within this page (e.g. another recording chosen). */
  update?(route: Route): void;
  /** The page is left: stop timers and subscriptions, free charts. */
  unmount(): void;
}

/** A page module: `export function mount(...)`. */
export interface PageModule {
  mount(root: HTMLElement, ctx: PageContext, route: Route): MountedPage;
}

export interface PageDef {
  /** the first part of the route: `#/<id>` */
  id: string;
  /** its name in the navigation */
  title: string;
  /** loads the module (a separate chunk: a page's code is fetched when it is first shown) */
  load(): Promise<PageModule>;
}
