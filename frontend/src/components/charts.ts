// uPlot charts. Every channel is drawn as a min/max envelope: two series (max, min) in the
// channel's colour plus a translucent band between them, so decimated peaks stay visible.
// LiveChart keeps a rolling window of the newest live frames; RecordingPlot draws one
// recording's min/max-decimated range (GET /api/parquet_data).

import uPlot from "uplot";
import type { RangeQuery } from "../api";
import type { DataFrame } from "../live-client";
import { fmtDuration, fmtInt, fmtRate, fmtTimeNs, fmtValue, h, setText } from "../util";

export const PALETTE = [
  "#4cc9f0", "#ff6b9a", "#ffd166", "#06d6a0", "#b794f6", "#ff9f43", "#7dd3fc", "#d9f99d",
];

/** A channel's colour: its position among its device's channels (the same on every page). */
export function channelColor(channels: readonly string[], channel: string): string {
  let i = channels.indexOf(channel);
  if (i < 0) i = [...channel].reduce((a, ch) => (a * 31 + ch.charCodeAt(0)) >>> 0, 7);
  return PALETTE[i % PALETTE.length];
}

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

const FILL_ALPHA = 0.14;

/** Fills the area between each channel's max and min series (translucent, under the lines)
 * with one vertical hairline per bucket, from its max to its min.
 *
 * Canvases are often rasterised in software (no GPU: headless, remote desktops, old panel
 * PCs), where filling a polygon of a few thousand edges (uPlot's bands, or a polygon of max
 * forwards and min backwards) takes 100-300 ms: the live chart would fall to a few frames
 * per second. Hairlines take a few ms. Where several hairlines share a pixel column their
 * alpha adds up, so each gets the alpha that sums to FILL_ALPHA; where buckets are further
 * apart than a pixel, the lines widen to the spacing. */
function envelopeFills(colors: string[]): (u: uPlot) => void {
  return (u) => {
    const ctx = u.ctx;
    const xs = u.data[0];
    const n = xs.length;
    if (n < 2) return;
    // only the visible range (plus one bucket either side)
    const xmin = u.scales.x.min ?? -Infinity;
    const xmax = u.scales.x.max ?? Infinity;
    let i0 = 0;
    while (i0 < n - 1 && xs[i0 + 1] < xmin) i0++;
    let i1 = n - 1;
    while (i1 > i0 && xs[i1 - 1] > xmax) i1--;
    const px = new Float64Array(i1 - i0 + 1);
    for (let i = i0; i <= i1; i++) px[i - i0] = u.valToPos(xs[i], "x", true);
    const { left, top, width, height } = u.bbox;
    // buckets per canvas pixel column
    const perPx = (i1 - i0) / Math.max(1, Math.abs(px[px.length - 1] - px[0]));
    const lineWidth = perPx >= 1 ? 1 : Math.min(1 / perPx, 24);
    const alpha = perPx >= 1 ? 1 - (1 - FILL_ALPHA) ** (1 / perPx) : FILL_ALPHA;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.lineWidth = lineWidth;
    ctx.lineCap = "butt";
    colors.forEach((color, c) => {
      const hi = u.data[1 + 2 * c];
      const lo = u.data[2 + 2 * c];
      if (!hi || !lo || !u.series[1 + 2 * c].show) return;
      const path = new Path2D();
      for (let i = i0; i <= i1; i++) {
        const a = hi[i];
        const b = lo[i];
        if (a == null || b == null || !Number.isFinite(a) || !Number.isFinite(b)) continue;
        const x = px[i - i0] + lineWidth / 2; // the bucket covers [x, next x)
        path.moveTo(x, u.valToPos(a, "y", true));
        path.lineTo(x, u.valToPos(b, "y", true));
      }
      ctx.strokeStyle = withAlpha(color, alpha);
      ctx.stroke(path);
    });
    ctx.restore();
  };
}

/** uPlot options for [x, ch0max, ch0min, ch1max, ch1min, ...]: per channel two lines in its
 * colour and a translucent fill between them. */
export function envelopeOptions(o: EnvelopeOpts): uPlot.Options {
  const series: uPlot.Series[] = [{}];
  o.channels.forEach((c) => {
    const common = { stroke: c.color, width: 1, points: { show: false }, spanGaps: false };
    series.push({ ...common, label: `${c.name} max`, scale: "y" });
    series.push({ ...common, label: `${c.name} min`, scale: "y" });
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
        // room for a whole "hh:mm:ss.d" label per tick
        space: o.time ? 88 : 64,
        values: o.time ? clockTicks : (_u, v) => v.map((x) => `${+x.toFixed(3)} s`),
      },
      { ...axis, size: 64, label: unit || undefined, labelSize: unit ? 16 : 0 },
    ],
    series,
    hooks: {
      // after the axes and grid, before the series: the fills lie under the lines
      drawAxes: [envelopeFills(o.channels.map((c) => c.color))],
      ...(o.onCursor ? { setCursor: [o.onCursor] } : {}),
    },
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
  private pending = 0;
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
    this.pending = requestAnimationFrame(() => {
      this.pending = 0;
      this.draw();
    });
  }

  /** Frees the chart (the page is left). */
  destroy(): void {
    if (this.pending) cancelAnimationFrame(this.pending);
    this.pending = 0;
    this.resizeObs.disconnect();
    this.plot?.destroy();
    this.plot = null;
    this.store = null;
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

const HINT = "drag to zoom · double-click to reset";

/** The min/max plot of one recording, with a legend, a summary line and a cursor readout. */
export class RecordingPlot {
  private plot: uPlot | null = null;
  private readonly resizeObs: ResizeObserver;
  plotsRendered = 0;

  constructor(
    /** the chart's box; its data-state is empty, loading, ready or error */
    private readonly el: HTMLElement,
    private readonly parts: { legend: HTMLElement; meta: HTMLElement; readout: HTMLElement },
  ) {
    this.resizeObs = new ResizeObserver(() => this.fit());
    this.resizeObs.observe(el);
    el.dataset.state = "empty";
  }

  /** Shows that `filename` is being loaded (the old plot goes). */
  loading(filename: string): void {
    this.clear();
    this.el.dataset.state = "loading";
    this.el.dataset.filename = filename;
    setText(this.parts.meta, "loading…");
  }

  /** Shows that plotting failed (the problem itself is shown by the problem display). */
  failed(message: string): void {
    this.clear();
    this.el.dataset.state = "error";
    this.el.dataset.message = message;
  }

  clear(): void {
    delete this.el.dataset.message;
    this.plot?.destroy();
    this.plot = null;
    this.parts.legend.replaceChildren();
    setText(this.parts.readout, "");
    setText(this.parts.meta, "");
    this.el.dataset.state = "empty";
  }

  draw(d: RangeQuery, colors: (channel: string) => string): void {
    const channels: ChannelStyle[] = d.channels.map((c) => ({ name: c.name, unit: c.unit, color: colors(c.name) }));
    const x = d.t_s;
    const isEpoch = x.length > 0 && x[0] > 1e8;
    const aligned: uPlot.AlignedData = [x];
    for (const c of d.channels) {
      const s = d.series[c.name] ?? { min: [], max: [] };
      aligned.push(s.max, s.min);
    }
    this.plot?.destroy();
    const { width, height } = this.size();
    this.plot = new uPlot(
      envelopeOptions({ channels, width, height, time: isEpoch, cursor: true, onCursor: (u) => this.onCursor(u, d) }),
      aligned,
      this.el,
    );
    this.plotsRendered++;
    this.el.dataset.state = "ready";
    this.el.dataset.filename = d.filename;
    const span = x.length > 1 ? x[x.length - 1] - x[0] : 0;
    setText(
      this.parts.meta,
      `${fmtRate(d.sample_rate_hz)} · ` +
        (d.rows_selected === d.rows_total ? `${fmtInt(d.rows_total)} rows` : `${fmtInt(d.rows_selected)}/${fmtInt(d.rows_total)} rows`) +
        ` · ${fmtDuration(span)} · ${d.bucket_size > 1 ? `min/max of ${fmtInt(d.bucket_size)} rows per point` : "raw samples"}`,
    );
    this.parts.legend.replaceChildren(
      ...channels.map((c) =>
        h("span", { class: "legend-item" }, h("i", { class: "swatch", style: `background:${c.color}` }), c.name, c.unit ? h("span", { class: "muted" }, c.unit) : null),
      ),
    );
    setText(this.parts.readout, HINT);
  }

  destroy(): void {
    this.resizeObs.disconnect();
    this.plot?.destroy();
    this.plot = null;
  }

  private onCursor(u: uPlot, d: RangeQuery): void {
    const i = u.cursor.idx;
    if (i == null) {
      setText(this.parts.readout, HINT);
      return;
    }
    const t = d.t_s[i];
    const parts = d.channels.map((c) => {
      const s = d.series[c.name];
      const lo = s?.min[i];
      const hi = s?.max[i];
      return lo === hi ? `${c.name} ${fmtValue(lo)}` : `${c.name} ${fmtValue(lo)}…${fmtValue(hi)}`;
    });
    const tt = t > 1e8 ? fmtTimeNs(t * 1e9).slice(11) + (t % 1).toFixed(3).slice(1) : `${t.toFixed(4)} s`;
    setText(this.parts.readout, `${tt}  ${parts.join("  ")}`);
  }

  private size(): { width: number; height: number } {
    const r = this.el.getBoundingClientRect();
    return { width: Math.max(300, Math.floor(r.width)), height: Math.max(140, Math.floor(r.height)) };
  }

  private fit(): void {
    if (!this.plot) return;
    const { width, height } = this.size();
    if (width !== this.plot.width || height !== this.plot.height) this.plot.setSize({ width, height });
  }
}
