// The header every page shares: brand, navigation, station name, mode, uptime, live clients,
// version, and the live connection's state.

import { type StationStatus, getHello } from "../api";
import { setConnectionBadge, setModeBadge } from "../components/badges";
import type { ProblemsView } from "../components/problems";
import type { LiveClient } from "../live-client";
import type { PageDef } from "../pages/types";
import { byId, fmtInt, fmtUptime, h, setText } from "../util";
import { hashFor } from "./router";
import type { StatusStore } from "./status-store";

export class Header {
  private readonly station = byId("station-name");
  private readonly mode = byId("station-mode");
  private readonly uptime = byId("uptime");
  private readonly clients = byId("live-clients");
  private readonly version = byId("version");
  private readonly conn = byId("connection-state");
  private readonly nav = byId("nav");
  private uptimeS = Number.NaN;
  private uptimeAt = 0;
  private stationName = "";
  private pageTitle = "";

  constructor(pages: readonly PageDef[], status: StatusStore, live: LiveClient, problems: ProblemsView) {
    this.nav.replaceChildren(
      ...pages.map((p) =>
        h("a", { href: hashFor(p.id), class: "nav-link", "data-page": p.id, "data-testid": `nav-${p.id}` }, p.title),
      ),
    );
    status.subscribe((st) => this.render(st));
    live.onState((state, detail) => setConnectionBadge(this.conn, state, detail));
    getHello()
      .then((hello) => {
        setText(this.version, `v${hello.version}`);
        this.setStation(hello.station);
      })
      .catch((err: unknown) => problems.report(err));
    // uptime moves on between two status refreshes
    window.setInterval(() => this.tickUptime(), 1000);
  }

  /** Marks the shown page in the navigation and the window title. */
  setPage(def: PageDef | null): void {
    for (const a of this.nav.querySelectorAll<HTMLElement>("a[data-page]")) {
      if (a.dataset.page === def?.id) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    this.pageTitle = def?.title ?? "";
    this.setTitle();
  }

  private render(st: StationStatus): void {
    this.setStation(st.station);
    setModeBadge(this.mode, st.mode, st.mode_since);
    this.uptimeS = st.uptime_s;
    this.uptimeAt = performance.now();
    this.tickUptime();
    setText(this.clients, fmtInt(st.live.clients));
  }

  private setStation(name: string): void {
    if (name === this.stationName) return;
    this.stationName = name;
    setText(this.station, name);
    this.setTitle();
  }

  private setTitle(): void {
    document.title = [this.pageTitle, this.stationName, "rigwatch"].filter((s) => s).join(" · ");
  }

  private tickUptime(): void {
    if (!Number.isFinite(this.uptimeS)) return;
    // at most 10 s past the last answer: a station that stopped answering does not age on
    const dt = Math.min(performance.now() - this.uptimeAt, 10_000) / 1000;
    setText(this.uptime, fmtUptime(this.uptimeS + dt));
  }
}
