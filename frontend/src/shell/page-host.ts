// Hosts one page at a time in an element, chosen by the hash route (./router.ts): loads the
// page's module, mounts it, unmounts it when another page is chosen, passes route changes
// within a page to it, and says so when no page has the route's id. Both shells use it (the
// station's ../main.ts and the fleet's ../fleet/main.ts); what a page gets besides the shared
// part of its context (its id, `expose`, `navigate`) is the shell's.

import type { ProblemsView } from "../components/problems";
import type { MountedPage, Route } from "../pages/types";
import { h } from "../util";
import { hashFor, parseHash, startRouter } from "./router";

/** The part of a page's context every shell lends. */
export interface HostContext {
  /** the page's id in the registry */
  readonly id: string;
  /** Makes `counters` readable as `window.__rigwatch[id]` (for people and tests). */
  expose<T extends object>(counters: T): T;
  /** Goes to `#/<page>/<params...>` (params are encoded); replace: no history entry. */
  navigate(page: string, params?: string[], opts?: { replace?: boolean }): void;
}

/** A registry entry as the host needs it (a shell's page definitions may say more). */
export interface HostedPage<C> {
  id: string;
  title: string;
  load(): Promise<{ mount(root: HTMLElement, ctx: C, route: Route): MountedPage }>;
}

/** What the host keeps current in `window.__rigwatch`. */
export interface PageHostDebug {
  /** id of the page shown ("" while one loads, "not-found") */
  page: string;
  /** pages shown since load (a page shown again counts again) */
  mounts: number;
  /** each page's exposed counters, under its id */
  [part: string]: unknown;
}

export interface PageHostOptions<C, D extends HostedPage<C>> {
  /** where pages are shown */
  root: HTMLElement;
  pages: readonly D[];
  /** what "/" (no route) shows */
  defaultPage: string;
  /** where failures to load, mount or unmount a page are shown */
  problems: ProblemsView;
  debug: PageHostDebug;
  /** The context lent to page `def`: `base` plus what the shell shares. */
  context(def: D, base: HostContext): C;
  /** Called with the page about to be shown (null: none has the route's id). */
  onPage?(def: D | null): void;
  /** pages linked from the "no such page" message (default: all) */
  linked?: readonly D[];
}

export class PageHost<C, D extends HostedPage<C> = HostedPage<C>> {
  private shown: { def: D; page: MountedPage } | null = null;
  /** counts show() calls: a page whose module arrives after another route was chosen is dropped */
  private showing = 0;
  private stopped = false;
  private routerStarted = false;

  constructor(private readonly opts: PageHostOptions<C, D>) {}

  /** Shows the page of the address now and follows the hash from then on; after stop(),
   * shows the address's page again. */
  start(): void {
    this.stopped = false;
    if (this.routerStarted) {
      void this.show(parseHash(location.hash, this.opts.defaultPage));
      return;
    }
    this.routerStarted = true;
    startRouter(this.opts.defaultPage, (route) => void this.show(route));
  }

  /** Unmounts the shown page and shows none (a page still loading is dropped) until start();
   * the root is the caller's meanwhile. */
  stop(): void {
    this.stopped = true;
    this.showing++;
    this.leave();
  }

  /** Shows `route`'s page (mounting it, or updating it when it is the one shown). */
  async show(route: Route): Promise<void> {
    if (this.stopped) return;
    const { root, pages, problems, debug } = this.opts;
    const def = pages.find((p) => p.id === route.page);
    if (this.shown && def && this.shown.def.id === def.id) {
      this.shown.page.update?.(route);
      return;
    }
    const token = ++this.showing;
    this.leave();
    this.opts.onPage?.(def ?? null);
    if (!def) {
      debug.page = "not-found";
      root.replaceChildren(this.notFound(route.page));
      return;
    }
    debug.page = "";
    root.replaceChildren(h("div", { class: "page-loading muted" }, "loading…"));
    let mod: Awaited<ReturnType<HostedPage<C>["load"]>>;
    try {
      mod = await def.load();
    } catch (err) {
      if (token === this.showing) problems.report(err);
      return;
    }
    if (token !== this.showing) return; // another route was chosen meanwhile, or stop()
    const el = h("div", { class: `page page-${def.id}`, "data-testid": `page-${def.id}` });
    root.replaceChildren(el);
    try {
      this.shown = { def, page: mod.mount(el, this.opts.context(def, this.baseContext(def)), route) };
    } catch (err) {
      problems.report(err);
      return;
    }
    debug.page = def.id;
    debug.mounts++;
  }

  private leave(): void {
    if (!this.shown) return;
    try {
      this.shown.page.unmount();
    } catch (err) {
      this.opts.problems.report(err);
    }
    this.shown = null;
  }

  private baseContext(def: D): HostContext {
    const debug = this.opts.debug;
    return {
      id: def.id,
      expose<T extends object>(counters: T): T {
        debug[def.id] = counters;
        return counters;
      },
      navigate: (page, params = [], opts = {}) => {
        const hash = hashFor(page, params);
        if (opts.replace) history.replaceState(null, "", hash);
        if (location.hash === hash) {
          if (opts.replace) void this.show({ page, params });
          return;
        }
        location.hash = hash; // hashchange shows it
      },
    };
  }

  private notFound(page: string): HTMLElement {
    const linked = this.opts.linked ?? this.opts.pages;
    return h(
      "div",
      { class: "not-found", "data-testid": "page-not-found" },
      h("p", {}, `There is no page “${page}”.`),
      h("p", {}, ...linked.flatMap((p, i) => [i ? " · " : "", h("a", { href: hashFor(p.id) }, p.title)])),
    );
  }
}
