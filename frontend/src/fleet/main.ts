// The fleet server's dashboard: the station page's shell (hash router, page host, problem
// display, header look) around the fleet's pages (pages/registry.ts: map, alerts, machine).
// The shell owns what pages share: the login, the live stream (/ws), and the fleet's state
// (every machine's position and colour, kept current by the stream).
//
// A login token comes from the login form (kept in localStorage) or once from `?token=` in
// the address (moved to storage and removed from the address). A 401 anywhere shows the form;
// a refused token (expired, logged out elsewhere) is also shown as a problem, a request that
// needed a login while there was no token (the first visit) is not.

import "uplot/dist/uPlot.min.css";
import "../style.css";
import "./fleet.css";
import { setConnectionBadge } from "../components/badges";
import { ProblemsView, type ProblemsDebug } from "../components/problems";
import { PageHost, type PageHostDebug } from "../shell/page-host";
import { hashFor } from "../shell/router";
import { byId, fmtInt, h, setText } from "../util";
import { LoginRequired, login, logout, onUnauthorized, session } from "./api";
import { COLOURS, FILL, LABEL } from "./colours";
import { FleetLive } from "./live";
import { DEFAULT_PAGE, PAGES } from "./pages/registry";
import type { FleetPageContext, FleetPageDef } from "./pages/types";
import { FleetState } from "./state";

interface Debug extends PageHostDebug {
  problems: ProblemsDebug;
  /** the login form is shown */
  login: boolean;
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

// a request that needed a login while there was no token is answered by the login form alone
const problems = new ProblemsView(byId("problems"), { ignore: (err) => err instanceof LoginRequired });
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

const host = new PageHost<FleetPageContext, FleetPageDef>({
  root: main,
  pages: PAGES,
  defaultPage: DEFAULT_PAGE,
  problems,
  debug,
  context: (_def, base) => ({ ...base, live, fleet, problems, session: () => session.get() }),
  onPage: setPageTitle,
  linked: PAGES.filter((p) => p.nav),
});
let loggedOut = false;

// ---- login ------------------------------------------------------------------------------------

function needLogin(why: string): void {
  if (loggedOut) return;
  loggedOut = true;
  session.clear();
  live.stop();
  host.stop();
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

function start(): void {
  loggedOut = false;
  debug.login = false;
  showUser();
  live.start();
  void fleet.load();
  host.start();
}

start();
