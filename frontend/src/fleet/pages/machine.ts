// One machine: who it is (registry), its status now (colour, reason, each rule's status),
// its system info as the agent reports it (today's Windows-service layout), a trend chart of
// every metric over the chosen span with the rule's warning and critical thresholds drawn,
// and its alert history. New values arrive from the live stream and are appended in place.
// Every text of the machine (name, site, tags, system info) is set as text, never as markup.

import uPlot from "uplot";
import { THEME } from "../../components/charts";
import { hashFor } from "../../shell/router";
import { fmtBytes, fmtInt, fmtValue, h } from "../../util";
import {
  type Alert,
  type Latest,
  type Machine,
  type MetricRule,
  type RuleSet,
  type Threshold,
  getAlerts,
  getHistory,
  getLatest,
  getMachine,
  getRules,
} from "../api";
import { FILL, LABEL } from "../colours";
import { fmtAgo, fmtIso } from "../format";
import type { MachineUpdate } from "../live";
import type { FleetPageContext, MountedPage, Route } from "./types";

/** `window.__rigwatch.machine` */
export interface MachineDebug {
  id: string;
  loaded: boolean;
  charts: string[];
  /** per metric: points drawn, thresholds drawn */
  points: Record<string, number>;
  thresholds: Record<string, number[]>;
  /** per metric: seconds the time axis shows */
  xSpanS: Record<string, number>;
  liveAppended: number;
  colour: string;
}

const SPANS: Record<string, number> = { "1 h": 3600, "24 h": 86400, "7 d": 7 * 86400 };

function thresholdValues(t: Threshold | null): number[] {
  if (t === null || t === undefined) return [];
  return Array.isArray(t) ? [t[0], t[1]] : [t];
}

function kv(label: string, value: string | Node, testid?: string): HTMLElement {
  return h("div", { class: "kv" }, h("span", { class: "k" }, label), h("span", { class: "v", "data-testid": testid }, value));
}

function text(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

class MetricChart {
  readonly el: HTMLElement;
  private readonly box: HTMLElement;
  private plot: uPlot | null = null;
  private xs: number[] = [];
  private ys: (number | null)[] = [];
  /** Start of the chosen span (s since the epoch): the x axis runs from it to now. */
  private fromS: number | null = null;
  /** The time axis' range as last set (s). */
  private xShown: [number, number] = [0, 0];
  private readonly resizeObs: ResizeObserver;
  readonly lines: { value: number; colour: string; label: string }[];

  constructor(
    readonly metric: string,
    readonly rule: MetricRule | undefined,
  ) {
    this.box = h("div", { class: "metric-chart", "data-testid": `chart-${metric}` });
    this.lines = [];
    if (rule) {
      for (const v of thresholdValues(rule.warning)) this.lines.push({ value: v, colour: FILL.yellow, label: "warning" });
      for (const v of thresholdValues(rule.critical)) this.lines.push({ value: v, colour: FILL.red, label: "critical" });
    }
    const unit = rule?.unit ? ` (${rule.unit})` : "";
    const legend = this.lines.length
      ? h(
          "span",
          { class: "muted small" },
          ...this.lines.map((l) => h("span", { class: "thr" }, h("i", { class: "thr-line", style: `border-color:${l.colour}` }), `${l.label} ${fmtValue(l.value)}`)),
        )
      : h("span", { class: "muted small" }, "no rule");
    this.el = h(
      "section",
      { class: "panel metric-panel", "data-metric": metric },
      h("div", { class: "panel-head" }, h("h2", {}, `${metric}${unit}`), legend),
      this.box,
    );
    this.resizeObs = new ResizeObserver(() => this.fit());
    this.resizeObs.observe(this.box);
  }

  setData(t: number[], v: (number | null)[], fromS: number): void {
    this.xs = t;
    this.ys = v;
    this.fromS = fromS;
    this.render();
  }

  /** Show the chosen span up to now, whatever the points: uPlot's own range for a single
   * point on a time axis in seconds is 1 000 days wide. */
  private fitX(): void {
    if (!this.plot || !this.xs.length) return;
    const lo = Math.min(this.fromS ?? this.xs[0], this.xs[0]);
    const hi = Math.max(this.xs[this.xs.length - 1], Date.now() / 1000);
    this.xShown = hi > lo ? [lo, hi] : [lo - 60, hi + 60];
    this.plot.setScale("x", { min: this.xShown[0], max: this.xShown[1] });
  }

  append(t: number, v: number | null): void {
    if (this.xs.length && t <= this.xs[this.xs.length - 1]) return;
    this.xs.push(t);
    this.ys.push(v);
    this.plot?.setData([this.xs, this.ys]);
    this.fitX();
  }

  /** Seconds the time axis shows now. */
  get xSpanS(): number {
    return this.xShown[1] - this.xShown[0];
  }

  get length(): number {
    return this.xs.length;
  }

  private render(): void {
    this.plot?.destroy();
    const { width, height } = this.size();
    const lines = this.lines;
    const values = [...this.ys.filter((y): y is number => y !== null && Number.isFinite(y)), ...lines.map((l) => l.value)];
    const lo = values.length ? Math.min(...values) : 0;
    const hi = values.length ? Math.max(...values) : 1;
    const pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
    const axis = {
      stroke: THEME.axis,
      font: THEME.font,
      grid: { stroke: THEME.grid, width: 1 },
      ticks: { stroke: THEME.grid, width: 1, size: 4 },
    };
    this.plot = new uPlot(
      {
        width,
        height,
        legend: { show: false },
        cursor: { drag: { x: true, y: false } },
        scales: { x: { time: true }, y: { range: () => [lo - pad, hi + pad] } },
        axes: [{ ...axis }, { ...axis, size: 56 }],
        series: [{}, { stroke: "#4cc9f0", width: 1.5, spanGaps: false, points: { show: this.xs.length < 60, size: 4 } }],
        hooks: {
          draw: [
            (u) => {
              const c = u.ctx;
              const { left, width: w } = u.bbox;
              c.save();
              c.lineWidth = 1.5 * devicePixelRatio;
              c.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
              for (const l of lines) {
                const y = Math.round(u.valToPos(l.value, "y", true)) + 0.5;
                c.strokeStyle = l.colour;
                c.beginPath();
                c.moveTo(left, y);
                c.lineTo(left + w, y);
                c.stroke();
              }
              c.restore();
            },
          ],
        },
      },
      [this.xs, this.ys],
      this.box,
    );
    this.fitX();
  }

  private size(): { width: number; height: number } {
    const r = this.box.getBoundingClientRect();
    return { width: Math.max(260, Math.floor(r.width)), height: 180 };
  }

  private fit(): void {
    if (!this.plot) return;
    const { width, height } = this.size();
    if (width !== this.plot.width) this.plot.setSize({ width, height });
  }

  destroy(): void {
    this.resizeObs.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }
}

export function mount(root: HTMLElement, ctx: FleetPageContext, route: Route): MountedPage {
  const head = h("div", { class: "machine-head" });
  const registry = h("div", { class: "kv-grid", "data-testid": "machine-registry" });
  const statusEl = h("div", { class: "kv-grid", "data-testid": "machine-status" });
  const sysinfo = h("div", { class: "kv-grid", "data-testid": "machine-sysinfo" });
  const charts = h("div", { class: "metric-charts", "data-testid": "machine-charts" });
  const alertsEl = h("div", { class: "machine-alerts", "data-testid": "machine-alerts" });
  const spanSeg = h("div", { class: "seg", "data-testid": "span" });
  root.append(
    head,
    h(
      "div",
      { class: "machine-layout" },
      h(
        "div",
        { class: "machine-side" },
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Status")), statusEl),
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Machine")), registry),
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "System")), sysinfo),
      ),
      h(
        "div",
        { class: "machine-main" },
        h("div", { class: "panel-head trends-head" }, h("h2", {}, "Trends"), spanSeg),
        charts,
        h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", {}, "Alert history")), alertsEl),
      ),
    ),
  );

  let id = route.params[0] ?? "";
  let span = "24 h";
  const dbg = ctx.expose<MachineDebug>({ id, loaded: false, charts: [], points: {}, thresholds: {}, xSpanS: {}, liveAppended: 0, colour: "" });
  let chartObjs = new Map<string, MetricChart>();
  let rules: RuleSet | null = null;
  let abort = new AbortController();
  let alertTimer = 0;

  for (const name of Object.keys(SPANS)) {
    const b = h("button", { type: "button", "data-span": name }, name);
    b.addEventListener("click", () => {
      span = name;
      markSpan();
      void loadCharts(null);
    });
    spanSeg.append(b);
  }
  function markSpan(): void {
    for (const b of spanSeg.querySelectorAll<HTMLElement>("button")) b.classList.toggle("on", b.dataset.span === span);
  }
  markSpan();

  function renderHead(m: Machine | null, latest: Latest | null): void {
    const colour = latest?.colour ?? "grey";
    dbg.colour = colour;
    head.replaceChildren(
      h("a", { href: hashFor("map"), class: "muted" }, "← map"),
      h("span", { class: "status-dot", style: `background:${FILL[colour]}`, "data-testid": "machine-colour", "data-colour": colour, title: LABEL[colour] }),
      h("h1", { "data-testid": "machine-name" }, m?.name ?? id),
      h("span", { class: "muted num" }, id),
      h("span", { class: `badge colour-${colour}` }, LABEL[colour]),
    );
    if (latest?.reason) head.append(h("span", { class: "muted", "data-testid": "machine-reason" }, latest.reason));
  }

  function renderRegistry(m: Machine): void {
    const tags = Object.entries(m.tags);
    registry.replaceChildren(
      kv("id", m.id),
      kv("name", m.name, "registry-name"),
      kv("type", m.type || "—"),
      kv("site", m.site || "—"),
      kv("position", m.latitude !== null && m.longitude !== null ? `${m.latitude.toFixed(4)}, ${m.longitude.toFixed(4)}` : "—"),
      kv("registered", fmtIso(m.created_at)),
      kv(
        "tags",
        tags.length ? h("span", { class: "tags" }, ...tags.map(([k, v]) => h("span", { class: "tag" }, v ? `${k}=${v}` : k))) : "—",
        "registry-tags",
      ),
    );
  }

  function renderStatus(l: Latest): void {
    statusEl.replaceChildren(
      kv("colour", `${l.colour} (${LABEL[l.colour]})`),
      kv("reason", l.reason || "—"),
      kv("last message", `${fmtIso(l.timestamp)} ${fmtAgo(l.timestamp)}`),
      kv("received", fmtIso(l.received_at)),
      ...Object.entries(l.metrics).map(([rule, st]) =>
        kv(rule, h("span", { class: `mstat mstat-${st}` }, `${st}${l.values[rule] !== undefined ? ` · ${fmtValue(l.values[rule])}` : ""}`)),
      ),
    );
  }

  function renderSysinfo(l: Latest): void {
    const info = (l.info ?? {}) as Record<string, unknown>;
    const si = (info.system_info ?? {}) as Record<string, unknown>;
    const sys = (si.system ?? {}) as Record<string, unknown>;
    const up = sys.upTime as Record<string, number> | undefined;
    const disks = (Array.isArray(si.disks) ? si.disks : []) as Record<string, unknown>[];
    const rows: HTMLElement[] = [
      kv("host", text(sys.name)),
      kv("os", `${text(sys.os)} ${sys.architecture ? `· ${text(sys.architecture)}` : ""}`),
      kv("processors", text(sys.processors)),
      kv("uptime", up ? `${up.days ?? 0}d ${up.hours ?? 0}h ${up.minutes ?? 0}m` : "—"),
      kv("agent", text(si.version)),
      kv("state", text(info.status)),
    ];
    for (const d of disks) {
      const total = Number(d.totalSize);
      const free = Number(d.freeSpace);
      rows.push(
        kv(
          `disk ${text(d.mountPoint)}`,
          `${fmtValue(Number(d.usedPercentage))} % used · ${fmtBytes(total - free)} of ${fmtBytes(total)}`,
        ),
      );
    }
    const errs = info.sensor_errors as Record<string, string> | undefined;
    if (errs) for (const [k, v] of Object.entries(errs)) rows.push(kv(`error ${k}`, text(v)));
    sysinfo.replaceChildren(...(l.info ? rows : [h("div", { class: "muted" }, "no message received yet")]));
  }

  function renderAlerts(list: Alert[]): void {
    if (!list.length) {
      alertsEl.replaceChildren(h("div", { class: "empty" }, "no alerts"));
      return;
    }
    alertsEl.replaceChildren(
      h(
        "table",
        { class: "data-table" },
        h("thead", {}, h("tr", {}, ...["severity", "state", "rule", "message", "opened", "last seen", "count", "by"].map((c) => h("th", {}, c)))),
        h(
          "tbody",
          {},
          ...list.map((a) =>
            h(
              "tr",
              { "data-testid": "machine-alert", "data-state": a.state },
              h("td", {}, h("span", { class: `badge sev-${a.severity}` }, a.severity)),
              h("td", {}, a.state),
              h("td", { class: "num" }, a.rule_id),
              h("td", {}, a.message),
              h("td", { class: "num" }, fmtIso(a.opened_at)),
              h("td", { class: "num" }, fmtIso(a.last_seen_at)),
              h("td", { class: "num r" }, fmtInt(a.count)),
              h("td", {}, [a.acknowledged_by && `ack ${a.acknowledged_by}${a.acknowledged_comment ? `: ${a.acknowledged_comment}` : ""}`, a.cleared_by && `cleared ${a.cleared_by}`].filter((s) => s).join(" · ")),
            ),
          ),
        ),
      ),
    );
  }

  async function refreshAlerts(): Promise<void> {
    try {
      renderAlerts(await getAlerts({ machine_id: id, limit: 200 }));
    } catch (err) {
      ctx.problems.report(err, "machine-alerts");
    }
  }

  async function loadCharts(latest: Latest | null): Promise<void> {
    abort.abort();
    abort = new AbortController();
    const signal = abort.signal;
    const metrics = new Set<string>(Object.keys(latest?.values ?? {}));
    for (const c of chartObjs.keys()) metrics.add(c);
    if (!latest && !chartObjs.size) return;
    const byMetric = new Map((rules?.rules ?? []).map((r) => [r.metric, r]));
    for (const m of metrics) {
      if (!chartObjs.has(m)) {
        const c = new MetricChart(m, byMetric.get(m));
        chartObjs.set(m, c);
        charts.append(c.el);
      }
    }
    if (!metrics.size) charts.replaceChildren(h("div", { class: "empty" }, "no metrics reported yet"));
    dbg.charts = [...chartObjs.keys()];
    const start = new Date(Date.now() - SPANS[span] * 1000);
    await Promise.all(
      [...chartObjs.values()].map(async (c) => {
        try {
          const hist = await getHistory(id, c.metric, start, signal);
          const t = hist.t.map((s) => new Date(s).getTime() / 1000);
          c.setData(t, hist.value, start.getTime() / 1000);
          dbg.points[c.metric] = t.length;
          dbg.thresholds[c.metric] = c.lines.map((l) => l.value);
          dbg.xSpanS[c.metric] = c.xSpanS;
        } catch (err) {
          if (!signal.aborted) ctx.problems.report(err);
        }
      }),
    );
  }

  let entry: Machine | null = null; // the machine's registry entry, read by load()

  async function load(): Promise<void> {
    dbg.id = id;
    dbg.loaded = false;
    for (const c of chartObjs.values()) c.destroy();
    chartObjs = new Map();
    charts.replaceChildren();
    renderHead(null, null);
    let machine: Machine;
    let latest: Latest;
    try {
      [machine, latest, rules] = await Promise.all([getMachine(id), getLatest(id), rules ?? getRules()]);
    } catch (err) {
      ctx.problems.report(err);
      return;
    }
    entry = machine;
    renderHead(machine, latest);
    renderRegistry(machine);
    renderStatus(latest);
    renderSysinfo(latest);
    await Promise.all([loadCharts(latest), refreshAlerts()]);
    dbg.loaded = true;
  }

  let statusTimer = 0;
  const unsubscribe = ctx.live.subscribe({
    onSnapshot: () => undefined,
    onUpdate: (u: MachineUpdate) => {
      if (u.machine_id !== id) return;
      const t = u.timestamp ? new Date(u.timestamp).getTime() / 1000 : Number.NaN;
      for (const [metric, v] of Object.entries(u.data ?? {})) {
        const c = chartObjs.get(metric);
        if (c && Number.isFinite(t)) {
          c.append(t, v);
          dbg.points[metric] = c.length;
          dbg.liveAppended++;
        }
      }
      // colour, reason and rule states: read again, at most every 500 ms
      if (!statusTimer) {
        statusTimer = window.setTimeout(() => {
          statusTimer = 0;
          // the registry entry does not change with updates: only the latest state is read
          getLatest(id)
            .then((l) => {
              renderHead(entry, l);
              renderStatus(l);
              renderSysinfo(l);
            })
            .catch((err: unknown) => ctx.problems.report(err, "machine-latest"));
          void refreshAlerts();
        }, 500);
      }
    },
  });
  alertTimer = window.setInterval(() => void refreshAlerts(), 15000);
  void load();

  return {
    update(r: Route) {
      const next = r.params[0] ?? "";
      if (next === id) return;
      id = next;
      void load();
    },
    unmount() {
      abort.abort();
      unsubscribe();
      window.clearInterval(alertTimer);
      window.clearTimeout(statusTimer);
      for (const c of chartObjs.values()) c.destroy();
    },
  };
}
