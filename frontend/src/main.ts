// The station's web page: a shell (header, navigation, problem display) around one page at a
// time, chosen by the hash route (pages/registry.ts) and hosted by shell/page-host.ts. The
// shell owns what pages share: the live WebSocket, the status refresh and the problem display.

import "uplot/dist/uPlot.min.css";
import "./style.css";
import { ProblemsView, type ProblemsDebug } from "./components/problems";
import { type ConnState, LiveClient } from "./live-client";
import { DEFAULT_PAGE, PAGES } from "./pages/registry";
import type { PageContext, PageDef } from "./pages/types";
import { Header } from "./shell/header";
import { PageHost, type PageHostDebug } from "./shell/page-host";
import { StatusStore } from "./shell/status-store";
import { byId } from "./util";

/** `window.__rigwatch`: counters for people and tests (tests/e2e read them). Each page adds
 * its own under its id (`__rigwatch.live`, `__rigwatch.recordings`) when it is shown; they
 * stay readable after it is left. */
interface Debug extends PageHostDebug {
  connection: ConnState;
  statusPolls: number;
  problems: ProblemsDebug;
}

const problems = new ProblemsView(byId("problems"));
const live = new LiveClient(LiveClient.defaultUrl());
const status = new StatusStore(problems);
const header = new Header(PAGES, status, live, problems);

const debug: Debug = { page: "", mounts: 0, connection: live.state, statusPolls: 0, problems: problems.debug };
(window as unknown as { __rigwatch: Debug }).__rigwatch = debug;
live.onState((state) => {
  debug.connection = state;
});
status.subscribe(() => {
  debug.statusPolls = status.polls;
});

const host = new PageHost<PageContext, PageDef>({
  root: byId("page"),
  pages: PAGES,
  defaultPage: DEFAULT_PAGE,
  problems,
  debug,
  context: (_def, base) => ({ ...base, live, status, problems }),
  onPage: (def) => header.setPage(def),
});

live.start();
status.start();
host.start();
