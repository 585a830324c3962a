// Redline status beside a small live chart: the redlines watched now, the trips so far (with
// the value and the reason), and a rolling chart of the channels the redlines watch, fed by
// the live WebSocket's subscription (the same envelope chart as the Live page).
//
// Which channels: those the station names for its active redlines when it sends them; else
// the channels named in the trips' messages; else the operator's choice (a comma-separated
// list, kept in the browser), by default the first device's pressure channels.

import type { ControlState, DeviceStatus, RedlineTrip } from "../api";
import type { DataFrame, LiveClient, LiveSubscription, Subscribed } from "../live-client";
import { fmtValue, h, setText, settings } from "../util";
import { type ChannelStyle, LiveChart, channelColor } from "./charts";

const WINDOW_S = 20;
const FPS = 10;
const MAX_CHANNELS = 6;
const SETTING = "control.chartChannels";

/** A redline as the station may describe it (name only today). */
interface RedlineInfo {
  name: string;
  channels?: string[];
}

export interface RedlineDebug {
  channels: string[];
  device: string;
  framesReceived: number;
  subscribed: boolean;
}

function activeInfo(state: ControlState): RedlineInfo[] {
  return (state.redlines.active as unknown[]).map((r) =>
    typeof r === "string" ? { name: r } : (r as RedlineInfo),
  );
}

/** Channel names mentioned in the trips' messages ("median(P3, P4, P5) > 25 ..."). */
function channelsInTrips(trips: readonly RedlineTrip[], known: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const t of trips)
    for (const word of t.message.split(/[^A-Za-z0-9_]+/))
      if (known.has(word) && !out.includes(word)) out.push(word);
  return out;
}

export class RedlinePanel {
  readonly el: HTMLElement;
  readonly debug: RedlineDebug = { channels: [], device: "", framesReceived: 0, subscribed: false };
  private readonly status: HTMLElement;
  private readonly trips: HTMLElement;
  private readonly chartEl: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly input: HTMLInputElement;
  private readonly legend: HTMLElement;
  private readonly chart: LiveChart;
  private devices: DeviceStatus[] = [];
  private state: ControlState | null = null;
  private sub: LiveSubscription | null = null;
  private subKey = "";
  private statusSig = "";

  constructor(private readonly live: LiveClient) {
    this.status = h("div", { class: "redline-list", "data-testid": "redline-status" });
    this.trips = h("div", { class: "trip-list", "data-testid": "redline-trips" });
    this.chartEl = h("div", { class: "chart", "data-testid": "redline-chart" });
    this.empty = h("div", { class: "chart-empty" }, "waiting for data…");
    this.input = h("input", {
      type: "text",
      class: "chart-channels num",
      "data-testid": "redline-chart-channels",
      "aria-label": "channels on the chart",
      placeholder: "P1, P3",
      value: settings.get(SETTING) ?? "",
    });
    this.legend = h("div", { class: "chart-legend", "data-testid": "redline-chart-legend" });
    this.input.addEventListener("change", () => {
      settings.set(SETTING, this.input.value.trim());
      this.apply();
    });
    this.el = h(
      "div",
      { class: "redlines" },
      h(
        "div",
        { class: "redline-side" },
        h("div", { class: "sub-head" }, "watched now"),
        this.status,
        h("div", { class: "sub-head" }, "trips"),
        this.trips,
      ),
      h(
        "div",
        { class: "redline-chart" },
        h("div", { class: "chart-wrap" }, this.chartEl, this.empty),
        h("div", { class: "chart-foot" }, this.legend, h("label", { class: "chart-pick small muted" }, "chart ", this.input)),
      ),
    );
    this.chart = new LiveChart(this.chartEl, WINDOW_S);
  }

  setDevices(devices: DeviceStatus[]): void {
    this.devices = devices;
    this.apply();
  }

  render(state: ControlState): void {
    this.state = state;
    const active = activeInfo(state);
    const tripped = new Set(state.redlines.trips.map((t) => t.redline));
    const sig = JSON.stringify([active, state.redlines.trips.slice(-6)]);
    if (sig !== this.statusSig) {
      this.statusSig = sig;
      this.status.replaceChildren(
        ...(active.length
          ? active.map((r) =>
              h(
                "div",
                { class: `redline${tripped.has(r.name) ? " tripped" : ""}`, "data-testid": "redline", "data-name": r.name },
                h("i", { class: "dot" }),
                h("b", {}, r.name),
                r.channels ? h("span", { class: "muted num" }, r.channels.join(", ")) : null,
                h("span", { class: "spacer" }),
                h("span", { class: `badge ${tripped.has(r.name) ? "bad" : "ok"}` }, tripped.has(r.name) ? "tripped" : "ok"),
              ),
            )
          : [h("div", { class: "muted small" }, "none (no scenario running)")]),
      );
      const trips = state.redlines.trips.slice(-6).reverse();
      this.trips.replaceChildren(
        ...(trips.length
          ? trips.map((t) =>
              h(
                "div",
                { class: "trip", "data-testid": "redline-trip", title: t.message },
                h("span", { class: "num muted" }, t.time.slice(11, 23)),
                h("b", {}, t.redline),
                h("span", { class: "num" }, t.value === null ? "stale" : fmtValue(t.value)),
                h("div", { class: "trip-msg small" }, t.message),
              ),
            )
          : [h("div", { class: "muted small" }, "none")]),
      );
    }
    this.apply();
  }

  /** The channels to chart and their device. */
  private pick(): { device: DeviceStatus; channels: string[] } | null {
    if (!this.devices.length) return null;
    const all = new Set(this.devices.flatMap((d) => d.channels.map((c) => c.name)));
    const st = this.state;
    let want: string[] = [];
    if (st) want = [...new Set(activeInfo(st).flatMap((r) => r.channels ?? []))];
    if (!want.length && this.input.value.trim()) want = this.input.value.split(/[\s,]+/).filter((c) => all.has(c));
    if (!want.length && st) want = channelsInTrips(st.redlines.trips, all);
    if (!want.length) {
      const d0 = this.devices[0];
      const unit = d0.channels[0]?.unit;
      want = d0.channels.filter((c) => c.unit === unit).map((c) => c.name);
    }
    // one device per subscription: the one carrying most of them
    let best: DeviceStatus | null = null;
    let bestN = 0;
    for (const d of this.devices) {
      const n = d.channels.filter((c) => want.includes(c.name)).length;
      if (n > bestN) [best, bestN] = [d, n];
    }
    if (!best) return null;
    const names = best.channels.map((c) => c.name).filter((c) => want.includes(c));
    return { device: best, channels: names.slice(0, MAX_CHANNELS) };
  }

  private apply(): void {
    const p = this.pick();
    const key = p ? `${p.device.name}:${p.channels.join(",")}` : "";
    if (key === this.subKey) return;
    this.subKey = key;
    this.sub?.close();
    this.sub = null;
    this.debug.subscribed = false;
    if (!p) return;
    const names = p.device.channels.map((c) => c.name);
    const styles: ChannelStyle[] = p.channels.map((name) => ({
      name,
      unit: p.device.channels.find((c) => c.name === name)?.unit ?? "",
      color: channelColor(names, name),
    }));
    this.debug.channels = p.channels;
    this.debug.device = p.device.name;
    if (!this.input.value.trim()) this.input.placeholder = p.channels.join(", ");
    this.chart.setChannels(styles);
    this.legend.replaceChildren(
      ...styles.map((c) =>
        h("span", {}, h("i", { class: "swatch", style: `background:${c.color}` }), c.unit ? `${c.name} ${c.unit}` : c.name),
      ),
    );
    this.chart.clear();
    const expected = p.channels.join(",");
    this.sub = this.live.subscribe(
      { device: p.device.name, channels: p.channels, displayRateHz: 50, fps: FPS },
      {
        onSubscribed: (_m: Subscribed) => {
          this.debug.subscribed = true;
        },
        onData: (f: DataFrame) => {
          if (f.channels.join(",") !== expected) return;
          this.debug.framesReceived++;
          this.chart.push(f);
          this.empty.hidden = true;
        },
        onServerError: (code: string, message: string) => {
          setText(this.empty, `live: ${code}: ${message}`);
          this.empty.hidden = false;
        },
      },
    );
  }

  destroy(): void {
    this.sub?.close();
    this.sub = null;
    this.chart.destroy();
  }
}
