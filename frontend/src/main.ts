// The station's web page: a shell (header, navigation, problem display) around one page at a
// time, chosen by the hash route (pages/registry.ts). The shell owns what pages share: the
// live WebSocket, the status refresh and the problem display.

import "uplot/dist/uPlot.min.css";
import "./style.css";
import { ProblemsView, type ProblemsDebug } from "./components/problems";
import { type ConnState, LiveClient } from "./live-client";
import { DEFAULT_PAGE, PAGES } from "./pages/registry";
import type { MountedPage, PageContext, PageDef, PageModule, Route } from "./pages/types";
import { Header } from "./shell/header";
import { hashFor, startRouter } from "./shell/router";
import { StatusStore } from "./shell/status-store";
import { byId, h } from "./util";

/** `window.__rigwatch`: counters for people and tests (tests/e2e read them). Each page adds
 * its own under its id (`__rigwatch.live`, `__rigwatch.recordings`) when it is shown; they
 * stay readable after it is left. */
interface Debug {
  /** id of the page shown ("" while one loads, "not-found") */
  page: string;
  /** pages shown since load (a page shown again counts again) */
  mounts: number;
  connection: ConnState;
  statusPolls: number;
  problems: ProblemsDebug;
  [page: string]: unknown;
}

const problems = new ProblemsView(byId("problems"));
const live = new LiveClient(LiveClient.defaultUrl());
const status = new StatusStore(problems);
const header = new Header(PAGES, status, live, problems);
const main = byId("page");

const debug: Debug = { page: "", mounts: 0, connection: live.state, statusPolls: 0, problems: problems.debug };
(window as unknown as { __rigwatch: Debug }).__rigwatch = debug;
live.onState((state) => {
  debug.connection = state;
});
status.subscribe(() => {
  debug.statusPolls = status.polls;
});

let shown: { def: PageDef; page: MountedPage } | null = null;
let showing = 0;

function contextFor(def: PageDef): PageContext {
  return {
    id: def.id,
    live,
    status,
    problems,
    expose<T extends object>(counters: T): T {
      debug[def.id] = counters;
      return counters;
    },
    navigate(page, params = [], opts = {}) {
      const hash = hashFor(page, params);
      if (opts.replace) history.replaceState(null, "", hash);
      if (location.hash === hash) {
        if (opts.replace) void show({ page, params });
        return;
      }
      location.hash = hash; // hashchange shows it
    },
  };
}

function leave(): void {
  if (!shown) return;
  try {
    shown.page.unmount();
  } catch (err) {
    problems.report(err);
  }
  shown = null;
}

async function show(route: Route): Promise<void> {
  const def = PAGES.find((p) => p.id === route.page);
  if (shown && def && shown.def.id === def.id) {
    shown.page.update?.(route);
    return;
  }
  const token = ++showing;
  leave();
  header.setPage(def ?? null);
  if (!def) {
    debug.page = "not-found";
    main.replaceChildren(
      h(
        "div",
        { class: "not-found", "data-testid": "page-not-found" },
        h("p", {}, `There is no page “${route.page}”.`),
        h("p", {}, ...PAGES.flatMap((p, i) => [i ? " · " : "", h("a", { href: hashFor(p.id) }, p.title)])),
      ),
    );
    return;
  }
  debug.page = "";
  main.replaceChildren(h("div", { class: "page-loading muted" }, "loading…"));
  let mod: PageModule;
  try {
    mod = await def.load();
  } catch (err) {
    if (token === showing) problems.report(err);
    return;
  }
  if (token !== showing) return; // another route was chosen meanwhile
  const root = h("div", { class: `page page-${def.id}`, "data-testid": `page-${def.id}` });
  main.replaceChildren(root);
  try {
    shown = { def, page: mod.mount(root, contextFor(def), route) };
  } catch (err) {
    problems.report(err);
    return;
  }
  debug.page = def.id;
  debug.mounts++;
}

live.start();
status.start();
startRouter(DEFAULT_PAGE, (route) => void show(route));
