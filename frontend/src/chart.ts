// uPlot wrappers. Every channel is drawn as a min/max envelope: two series (max, min) in the
// channel's colour plus a translucent band between them, so decimated peaks stay visible.
// LiveChart keeps a rolling window of the newest frames; envelopeOptions also serves the
// recording plot.

import uPlot from "uplot";
import type { DataFrame } from "./live";

export const PALETTE = [
  "#4cc9f0", "#ff6b9a", "#ffd166", "#06d6a0", "#b794f6", "#ff9f43", "#7dd3fc", "#d9f99d",
];

export const THEME = {
  axis: "#9aa7b5",
  grid: "rgba(154, 167, 181, 0.12)",
  font: '11px "JetBrains Mono", "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace',
  labelFont: '600 11px system-ui, "Segoe UI", Roboto, sans-serif',
};

export interface ChannelStyle {
  name: string;
  unit: string;
  color: string;
}

/** colour with an alpha, from "#rrggbb" */
export function withAlpha(hex: string, alpha: number): string {
  const v = Number.parseInt(hex.slice(1), 16);
  return `rgba(${(v >> 16) & 255}, ${(v >> 8) & 255}, ${v & 255}, ${alpha})`;
}

export interface EnvelopeOpts {
  channels: ChannelStyle[];
  width: number;
  height: number;
  /** x values are Unix seconds (time axis) rather than plain seconds */
  time: boolean;
  xRange?: uPlot.Scale.Range;
  yRange?: uPlot.Scale.Range;
  cursor?: boolean;
  onCursor?: (u: uPlot) => void;
}

const pad2 = (n: number): string => String(n).padStart(2, "0");

/** Time-axis tick labels: 24 h local clock, with decimals when ticks are under a second. */
function clockTicks(_u: uPlot, splits: number[], _axis: number, _space: number, incr: number): string[] {
  const decimals = incr >= 1 ? 0 : incr >= 0.1 ? 1 : incr >= 0.01 ? 2 : 3;
  return splits.map((v) => {
    const d = new Date(v * 1000);
    const hms = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
    return decimals ? `${hms}${(v % 1).toFixed(decimals).slice(1)}` : hms;
  });
}

function unitLabel(channels: ChannelStyle[]): string {
  const units = [...new Set(channels.map((c) => c.unit).filter((u) => u))];
  return units.join(", ");
}

/** uPlot options for [x, ch0max, ch0min, ch1max, ch1min, ...] with one band per channel. */
export function envelopeOptions(o: EnvelopeOpts): uPlot.Options {
  const series: uPlot.Series[] = [{}];
  const bands: uPlot.Band[] = [];
  o.channels.forEach((c, i) => {
    const common = { stroke: c.color, width: 1, points: { show: false }, spanGaps: false };
    series.push({ ...common, label: `${c.name} max`, scale: "y" });
    series.push({ ...common, label: `${c.name} min`, scale: "y" });
    bands.push({ series: [1 + 2 * i, 2 + 2 * i], fill: withAlpha(c.color, 0.14) });
  });
  const axis = {
    stroke: THEME.axis,
    font: THEME.font,
    labelFont: THEME.labelFont,
    grid: { stroke: THEME.grid, width: 1 },
    ticks: { stroke: THEME.grid, width: 1, size: 4 },
  };
  const unit = unitLabel(o.channels);
  return {
    width: o.width,
    height: o.height,
    pxAlign: 0,
    // room on the right for the last time label, which uPlot centres on its tick
    padding: [10, o.time ? 30 : 14, 0, 0],
    legend: { show: false },
    cursor: o.cursor
      ? { drag: { x: true, y: false, setScale: true }, points: { show: false } }
      : { show: false, drag: { x: false, y: false, setScale: false } },
    scales: {
      x: { time: o.time, ...(o.xRange ? { range: o.xRange } : {}) },
      y: { auto: true, ...(o.yRange ? { range: o.yRange } : {}) },
    },
    axes: [
      {
        ...axis,
        size: 30,
        values: o.time ? clockTicks : (_u, v) => v.map((x) => `${+x.toFixed(3)} s`),
      },
      { ...axis, size: 64, label: unit || undefined, labelSize: unit ? 16 : 0 },
    ],
    series,
    bands,
    hooks: o.onCursor ? { setCursor: [o.onCursor] } : {},
  };
}

/** Rolling storage of envelope columns, contiguous so uPlot gets subarray views. */
class RollingStore {
  private cap: number;
  x: Float64Array;
  hi: Float32Array[];
  lo: Float32Array[];
  start = 0;
  end = 0;

  constructor(readonly nch: number, cap = 8192) {
    this.cap = cap;
    this.x = new Float64Array(cap);
    this.hi = Array.from({ length: nch }, () => new Float32Array(cap));
    this.lo = Array.from({ length: nch }, () => new Float32Array(cap));
  }

  get length(): number {
    return this.end - this.start;
  }

  get lastX(): number {
    return this.end > this.start ? this.x[this.end - 1] : Number.NaN;
  }

  clear(): void {
    this.start = 0;
    this.end = 0;
  }

  private makeRoom(n: number): void {
    if (this.end + n <= this.cap) return;
    const len = this.length;
    if (len + n > this.cap * 0.75) {
      const cap = Math.max(this.cap * 2, (len + n) * 2);
      const grow = <T extends Float64Array | Float32Array>(a: T, make: (k: number) => T): T => {
        const b = make(cap);
        b.set(a.subarray(this.start, this.end));
        return b;
      };
      this.x = grow(this.x, (k) => new Float64Array(k));
      this.hi = this.hi.map((a) => grow(a, (k) => new Float32Array(k)));
      this.lo = this.lo.map((a) => grow(a, (k) => new Float32Array(k)));
      this.cap = cap;
    } else {
      this.x.copyWithin(0, this.start, this.end);
      for (const a of this.hi) a.copyWithin(0, this.start, this.end);
      for (const a of this.lo) a.copyWithin(0, this.start, this.end);
    }
    this.start = 0;
    this.end = len;
  }

  /** Appends rows; rows not newer than the last one are dropped so x stays increasing
   * (a new subscription may overlap what is already drawn). */
  append(t: Float64Array, lo: Float32Array[], hi: Float32Array[]): void {
    let k = 0;
    const last = this.lastX;
    if (!Number.isNaN(last)) while (k < t.length && t[k] <= last) k++;
    const n = t.length - k;
    if (n <= 0) return;
    this.makeRoom(n);
    this.x.set(k ? t.subarray(k) : t, this.end);
    for (let c = 0; c < this.nch; c++) {
      this.lo[c].set(k ? lo[c].subarray(k) : lo[c], this.end);
      this.hi[c].set(k ? hi[c].subarray(k) : hi[c], this.end);
    }
    this.end += n;
  }

  /** Drops rows older than tmin (binary search on the sorted x). */
  trimBefore(tmin: number): void {
    let a = this.start;
    let b = this.end;
    while (a < b) {
      const m = (a + b) >>> 1;
      if (this.x[m] < tmin) a = m + 1;
      else b = m;
    }
    this.start = a;
  }

  aligned(): uPlot.AlignedData {
    const s = this.start;
    const e = this.end;
    const out: uPlot.TypedArray[] = [this.x.subarray(s, e)];
    for (let c = 0; c < this.nch; c++) out.push(this.hi[c].subarray(s, e), this.lo[c].subarray(s, e));
    return out;
  }
}

/** A live, rolling-window envelope chart of one device's channels. */
export class LiveChart {
  private plot: uPlot | null = null;
  private store: RollingStore | null = null;
  private key = "";
  private windowS: number;
  private latest = Number.NaN;
  private pending = false;
  private yr: [number, number] | null = null;
  private yShrinkSince = 0;
  private readonly resizeObs: ResizeObserver;
  private isPaused = false;
  /** points (rows x channels) on the chart at the last draw */
  samplesDrawn = 0;
  draws = 0;

  constructor(
    private readonly el: HTMLElement,
    windowS: number,
  ) {
    this.windowS = windowS;
    this.resizeObs = new ResizeObserver(() => this.fit());
    this.resizeObs.observe(el);
  }

  get channelKey(): string {
    return this.key;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  set paused(p: boolean) {
    this.isPaused = p;
    if (!p) this.schedule();
  }

  setWindow(s: number): void {
    this.windowS = s;
    this.schedule();
  }

  /** (Re)builds the chart for these channels; keeps data when the channels are unchanged. */
  setChannels(channels: ChannelStyle[]): void {
    const key = channels.map((c) => `${c.name}|${c.unit}|${c.color}`).join(",");
    if (key === this.key && this.plot) return;
    this.key = key;
    this.plot?.destroy();
    this.store = new RollingStore(channels.length);
    this.latest = Number.NaN;
    this.yr = null;
    const { width, height } = this.size();
    const opts = envelopeOptions({
      channels,
      width,
      height,
      time: true,
      cursor: false,
      xRange: () => this.xRange(),
      yRange: (_u, lo, hi) => this.yRange(lo, hi),
    });
    this.plot = new uPlot(opts, this.store.aligned(), this.el);
    this.samplesDrawn = 0;
  }

  clear(): void {
    this.store?.clear();
    this.latest = Number.NaN;
    this.yr = null;
    this.samplesDrawn = 0;
    this.schedule();
  }

  push(f: DataFrame): void {
    const store = this.store;
    if (!store || f.rows === 0 || store.nch !== f.channels.length) return;
    // Time going backwards (replay restarted, device reset): start over.
    if (store.length && f.t[0] < store.lastX - 1) store.clear();
    store.append(f.t, f.min, f.max);
    const end = f.t[f.rows - 1] + f.bucketSize / (f.sampleRateHz || 1);
    this.latest = Number.isFinite(this.latest) ? Math.max(this.latest, end) : end;
    store.trimBefore(this.latest - this.windowS - 1);
    this.schedule();
  }

  private xRange(): uPlot.Range.MinMax {
    if (!Number.isFinite(this.latest)) {
      const now = Date.now() / 1000;
      return [now - this.windowS, now];
    }
    return [this.latest - this.windowS, this.latest];
  }

  /** Auto range with hysteresis: grows at once, shrinks only after 1.5 s of smaller data. */
  private yRange(lo: number | null, hi: number | null): uPlot.Range.MinMax {
    if (lo === null || hi === null || !Number.isFinite(lo) || !Number.isFinite(hi)) {
      return this.yr ?? [-1, 1];
    }
    if (lo === hi) {
      const d = Math.abs(lo) * 0.1 || 1;
      lo -= d;
      hi += d;
    }
    const pad = (hi - lo) * 0.08;
    lo -= pad;
    hi += pad;
    const now = performance.now();
    const cur = this.yr;
    if (cur && lo >= cur[0] && hi <= cur[1]) {
      if (hi - lo > 0.45 * (cur[1] - cur[0])) {
        this.yShrinkSince = now;
        return cur;
      }
      if (now - this.yShrinkSince < 1500) return cur;
    }
    this.yShrinkSince = now;
    this.yr = [lo, hi];
    return this.yr;
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private draw(): void {
    if (!this.plot || !this.store || this.isPaused) return;
    this.plot.setData(this.store.aligned(), true);
    this.samplesDrawn = this.store.length * this.store.nch;
    this.draws++;
  }

  private size(): { width: number; height: number } {
    const r = this.el.getBoundingClientRect();
    return { width: Math.max(200, Math.floor(r.width)), height: Math.max(120, Math.floor(r.height)) };
  }

  private fit(): void {
    if (!this.plot) return;
    const { width, height } = this.size();
    if (width !== this.plot.width || height !== this.plot.height) this.plot.setSize({ width, height });
  }

  /** Seconds of data currently held for the visible window. */
  spanS(): number {
    const st = this.store;
    if (!st || st.length < 2) return 0;
    return Math.min(this.windowS, st.lastX - Math.max(st.x[st.start], this.latest - this.windowS));
  }

  /** Plot area width in CSS pixels: sets how many display points per second to ask for. */
  plotWidth(): number {
    return this.plot ? this.plot.bbox.width / devicePixelRatio : this.size().width - 80;
  }
}
