// The fleet server's dashboard: the station page's shell (hash router, problem display,
// header look) around the fleet's pages (pages/registry.ts: map, alerts, machine). The shell
// owns what pages share: the login, the live stream (/ws), and the fleet's state (every
// machine's position and colour, kept current by the stream).
//
// A login token comes from the login form (kept in localStorage) or once from `?token=` in
// the address (moved to storage and removed from the address). A 401 anywhere shows the form.

import "uplot/dist/uPlot.min.css";
import "../style.css";
import "./fleet.css";
import { setConnectionBadge } from "../components/badges";
import { ProblemsView, type ProblemsDebug } from "../components/problems";
import { hashFor, parseHash, startRouter } from "../shell/router";
import { byId, fmtInt, h, setText } from "../util";
import { login, logout, onUnauthorized, session } from "./api";
import { COLOURS, FILL, LABEL } from "./colours";
import { FleetLive } from "./live";
import { DEFAULT_PAGE, PAGES } from "./pages/registry";
import type { FleetPageContext, FleetPageDef, FleetPageModule, MountedPage, Route } from "./pages/types";
import { FleetState } from "./state";

interface Debug {
  page: string;
  mounts: number;
  problems: ProblemsDebug;
  /** the login form is shown */
  login: boolean;
  [part: string]: unknown;
}

// a token handed in the address is kept, and taken out of the address (and history)
const params = new URLSearchParams(location.search);
const handed = params.get("token");
if (handed) {
  session.set({ token: handed, username: params.get("user") ?? "", role: "" });
  params.delete("token");
  params.delete("user");
  const q = params.toString();
  history.replaceState(null, "", `${location.pathname}${q ? `?${q}` : ""}${location.hash}`);
}

const problems = new ProblemsView(byId("problems"));
const live = new FleetLive(() => session.get()?.token ?? null, () => needLogin("the live stream needs a login"));
const fleet = new FleetState(live, problems);
const main = byId("page");
const nav = byId("nav");
const userPill = byId("user");
const logoutBtn = byId<HTMLButtonElement>("logout");
const counts = byId("fleet-counts");

const debug: Debug = { page: "", mounts: 0, problems: problems.debug, login: false };
(window as unknown as { __rigwatch: Debug }).__rigwatch = debug;
debug.live = live.debug;
debug.fleet = fleet.debug;

live.onState((state, detail) => setConnectionBadge(byId("connection-state"), state, detail));
onUnauthorized((p) => needLogin(p.detail));

// ---- header -----------------------------------------------------------------------------------

nav.replaceChildren(
  ...PAGES.filter((p) => p.nav).map((p) =>
    h("a", { href: hashFor(p.id), class: "nav-link", "data-page": p.id, "data-testid": `nav-${p.id}` }, p.title),
  ),
);

const countEls = COLOURS.map((c) =>
  h(
    "span",
    { class: "fleet-count", "data-colour": c, "data-testid": `count-${c}`, title: `${LABEL[c]} (${c})` },
    h("i", { class: "dot", style: `background:${FILL[c]}` }),
    h("b", { class: "num" }, "—"),
  ),
);
counts.replaceChildren(...countEls);
fleet.subscribe(() => {
  COLOURS.forEach((_c, i) => setText(countEls[i].querySelector("b") as HTMLElement, fmtInt(fleet.counts[i])));
});

function showUser(): void {
  const s = session.get();
  userPill.hidden = !s;
  logoutBtn.hidden = !s;
  if (s) setText(userPill, s.username ? `${s.username}${s.role ? ` · ${s.role}` : ""}` : "token");
}

logoutBtn.addEventListener("click", () => {
  void logout().finally(() => {
    session.clear();
    needLogin("logged out");
  });
});

function setPageTitle(def: FleetPageDef | null): void {
  for (const a of nav.querySelectorAll<HTMLElement>("a[data-page]")) {
    if (a.dataset.page === def?.id) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = [def?.title, "rigwatch fleet"].filter((s) => s).join(" · ");
}

// ---- pages ------------------------------------------------------------------------------------

let shown: { def: FleetPageDef; page: MountedPage } | null = null;
let showing = 0;
let loggedOut = false;

function contextFor(def: FleetPageDef): FleetPageContext {
  return {
    id: def.id,
    live,
    fleet,
    problems,
    session: () => session.get(),
    expose<T extends object>(c: T): T {
      debug[def.id] = c;
      return c;
    },
    navigate(page, p = [], opts = {}) {
      const hash = hashFor(page, p);
      if (opts.replace) history.replaceState(null, "", hash);
      if (location.hash === hash) {
        if (opts.replace) void show({ page, params: p });
        return;
      }
      location.hash = hash;
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
  if (loggedOut) return;
  const def = PAGES.find((p) => p.id === route.page);
  if (shown && def && shown.def.id === def.id) {
    shown.page.update?.(route);
    return;
  }
  const token = ++showing;
  leave();
  setPageTitle(def ?? null);
  if (!def) {
    debug.page = "not-found";
    main.replaceChildren(
      h(
        "div",
        { class: "not-found", "data-testid": "page-not-found" },
        h("p", {}, `There is no page “${route.page}”.`),
        h("p", {}, ...PAGES.filter((p) => p.nav).flatMap((p, i) => [i ? " · " : "", h("a", { href: hashFor(p.id) }, p.title)])),
      ),
    );
    return;
  }
  debug.page = "";
  main.replaceChildren(h("div", { class: "page-loading muted" }, "loading…"));
  let mod: FleetPageModule;
  try {
    mod = await def.load();
  } catch (err) {
    if (token === showing) problems.report(err);
    return;
  }
  if (token !== showing || loggedOut) return;
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

// ---- login ------------------------------------------------------------------------------------

function needLogin(why: string): void {
  if (loggedOut) return;
  loggedOut = true;
  session.clear();
  live.stop();
  leave();
  showUser();
  setPageTitle(null);
  debug.page = "login";
  debug.login = true;
  main.replaceChildren(loginForm(why));
}

function loginForm(why: string): HTMLElement {
  const user = h("input", { name: "username", autocomplete: "username", required: true, "data-testid": "login-user" });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, "data-testid": "login-password" });
  const note = h("p", { class: "muted small", "data-testid": "login-note" }, why);
  const button = h("button", { type: "submit", class: "btn primary", "data-testid": "login-submit" }, "log in");
  const form = h(
    "form",
    { class: "login panel", "data-testid": "login-form" },
    h("h2", {}, "Log in to the fleet"),
    h("label", {}, h("span", {}, "user"), user),
    h("label", {}, h("span", {}, "password"), pass),
    note,
    button,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    button.disabled = true;
    login(user.value, pass.value)
      .then((t) => {
        session.set({ token: t.token, username: t.username, role: t.role });
        problems.clear("login");
        start();
      })
      .catch((err: unknown) => {
        problems.report(err, "login");
        button.disabled = false;
        pass.select();
      });
  });
  window.setTimeout(() => user.focus(), 0);
  return h("div", { class: "login-wrap" }, form);
}

let routerStarted = false;

function start(): void {
  loggedOut = false;
  debug.login = false;
  showUser();
  live.start();
  void fleet.load();
  if (!routerStarted) {
    routerStarted = true;
    startRouter(DEFAULT_PAGE, (route) => void show(route));
  } else {
    void show(parseHash(location.hash, DEFAULT_PAGE));
  }
}

start();
