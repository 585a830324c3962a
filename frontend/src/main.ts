// Station page: wires the REST status, the live WebSocket chart and the recordings panel.

import "uplot/dist/uPlot.min.css";
import "./style.css";
import { type DeviceStatus, getBufferStatus, getHello, getStatus } from "./api";
import { type ChannelStyle, LiveChart, PALETTE } from "./chart";
import { type ConnState, type DataFrame, LiveClient, type Subscribed } from "./live";
import { RecordingsPanel } from "./recordings";
import { StatusView, poll } from "./status";
import { byId, fmtInt, fmtNum, fmtRate, fmtValue, h, setText } from "./util";

const WINDOWS_S = [2, 10, 30];
const FPS = 30;

/** Counters for people and tests (read by tests/e2e). */
interface Debug {
  framesReceived: number;
  lastSeq: number;
  seqGaps: number;
  missedSamples: number;
  staleFrames: number;
  decodeErrors: number;
  serverErrors: string[];
  samplesDrawn: number;
  draws: number;
  chartSpanS: number;
  lastLatencyMs: number;
  framesPerSecond: number;
  lastFrameChannels: string[];
  lastBucketSize: number;
  connection: ConnState;
  subscription: { device: string; channels: string[]; displayRateHz: number; fps: number } | null;
  subscribed: Subscribed | null;
  recordings: number;
  recordingPlots: number;
}

const debug: Debug = {
  framesReceived: 0,
  lastSeq: -1,
  seqGaps: 0,
  missedSamples: 0,
  staleFrames: 0,
  decodeErrors: 0,
  serverErrors: [],
  samplesDrawn: 0,
  draws: 0,
  chartSpanS: 0,
  lastLatencyMs: Number.NaN,
  framesPerSecond: 0,
  lastFrameChannels: [],
  lastBucketSize: 0,
  connection: "connecting",
  subscription: null,
  subscribed: null,
  recordings: 0,
  recordingPlots: 0,
};
(window as unknown as { __rigwatch: Debug }).__rigwatch = debug;

const store = {
  get(key: string): string | null {
    try {
      return localStorage.getItem(`rigwatch.${key}`);
    } catch {
      return null;
    }
  },
  set(key: string, value: string): void {
    try {
      localStorage.setItem(`rigwatch.${key}`, value);
    } catch {
      /* private mode: settings just do not persist */
    }
  },
};

// ---- state ---------------------------------------------------------------------------------

let devices: DeviceStatus[] = [];
let devicesSig = "";
let device = store.get("device") ?? "";
let windowS = Number(store.get("window")) || 10;
if (!WINDOWS_S.includes(windowS)) windowS = 10;
const selected = new Map<string, Set<string>>();
let expectedKey = "";
let latencyEma = Number.NaN;
let lastFrame: DataFrame | null = null;

const els = {
  conn: byId("connection-state"),
  deviceSelect: byId<HTMLSelectElement>("device-select"),
  windowSelect: byId("window-select"),
  picker: byId("channel-picker"),
  pause: byId<HTMLButtonElement>("pause"),
  subInfo: byId("sub-info"),
  liveError: byId("live-error"),
  chart: byId("live-chart"),
  chartEmpty: byId("live-empty"),
  fps: byId("frames-per-second"),
  frames: byId("frames-received"),
  latency: byId("latency"),
  missed: byId("missed-samples"),
  gaps: byId("seq-gaps"),
  drawn: byId("samples-drawn"),
  bucket: byId("bucket-size"),
  version: byId("version"),
};

const chart = new LiveChart(els.chart, windowS);
const status = new StatusView();

function colorFor(dev: string, channel: string): string {
  const d = devices.find((x) => x.name === dev);
  let i = d ? d.channels.findIndex((c) => c.name === channel) : -1;
  if (i < 0) i = [...channel].reduce((a, ch) => (a * 31 + ch.charCodeAt(0)) >>> 0, 7);
  return PALETTE[i % PALETTE.length];
}

const recordings = new RecordingsPanel(colorFor);

function currentDevice(): DeviceStatus | undefined {
  return devices.find((d) => d.name === device);
}

function selectedChannels(d: DeviceStatus): string[] {
  let set = selected.get(d.name);
  if (!set) {
    const saved = store.get(`channels.${d.name}`);
    const names = d.channels.map((c) => c.name);
    const fromSaved = saved ? saved.split(",").filter((n) => names.includes(n)) : [];
    set = new Set(fromSaved.length ? fromSaved : names);
    selected.set(d.name, set);
  }
  return d.channels.map((c) => c.name).filter((n) => set.has(n));
}

// ---- live subscription ---------------------------------------------------------------------

function displayRateHz(): number {
  // About two min/max buckets per horizontal pixel over the visible window.
  const points = Math.min(4000, Math.max(800, Math.round(chart.plotWidth() * 2)));
  return Math.max(10, Math.round(points / windowS));
}

const live = new LiveClient(LiveClient.defaultUrl(), {
  onState(state, detail) {
    debug.connection = state;
    els.conn.dataset.state = state;
    els.conn.title = detail;
    setText(els.conn, state === "open" ? "live" : state === "connecting" ? "connecting…" : "disconnected");
  },
  onSubscribed(msg) {
    debug.subscribed = msg;
    if (msg.device === device) {
      expectedKey = msg.channels.join(",");
      setText(
        els.subInfo,
        `${fmtRate(msg.sampleRateHz)} · ${msg.bucketSize > 1 ? `min/max of ${msg.bucketSize}` : "raw"} · ${fmtNum(msg.fps, 0)} fps`,
      );
    }
  },
  onData(frame) {
    if (frame.channels.join(",") !== expectedKey) {
      debug.staleFrames++; // still from the previous subscription
      return;
    }
    debug.framesReceived++;
    if (debug.lastSeq >= 0 && frame.seq !== debug.lastSeq + 1 && frame.seq > debug.lastSeq) {
      debug.seqGaps += frame.seq - debug.lastSeq - 1;
    }
    debug.lastSeq = frame.seq;
    debug.missedSamples += frame.missed;
    debug.lastFrameChannels = frame.channels;
    debug.lastBucketSize = frame.bucketSize;
    if (Number.isFinite(frame.ingestMs)) {
      const lat = performance.timeOrigin + performance.now() - frame.ingestMs;
      debug.lastLatencyMs = lat;
      latencyEma = Number.isFinite(latencyEma) ? latencyEma * 0.9 + lat * 0.1 : lat;
    }
    const d = currentDevice();
    const styles: ChannelStyle[] = frame.channels.map((name) => ({
      name,
      unit: d?.channels.find((c) => c.name === name)?.unit ?? "",
      color: colorFor(frame.device, name),
    }));
    chart.setChannels(styles);
    chart.push(frame);
    lastFrame = frame;
  },
  onServerError(code, message) {
    debug.serverErrors.push(`${code}: ${message}`);
    showLiveError(`server: ${code}: ${message}`);
  },
  onDecodeError(err) {
    debug.decodeErrors++;
    showLiveError(`could not decode a frame: ${err instanceof Error ? err.message : String(err)}`);
  },
});

let liveErrorTimer = 0;
function showLiveError(msg: string): void {
  els.liveError.hidden = false;
  setText(els.liveError, msg);
  window.clearTimeout(liveErrorTimer);
  liveErrorTimer = window.setTimeout(() => {
    els.liveError.hidden = true;
  }, 8000);
}

/** Sends the subscription for the current device, channels and window. keepData keeps what
 * is drawn (only the display rate changes); otherwise the chart starts empty. */
function resubscribe(keepData = false): void {
  const d = currentDevice();
  if (!d) {
    live.subscribe(null);
    debug.subscription = null;
    return;
  }
  const channels = selectedChannels(d);
  const sub = { device: d.name, channels, displayRateHz: displayRateHz(), fps: FPS };
  expectedKey = channels.join(",");
  debug.subscription = sub;
  debug.lastSeq = -1; // seq restarts with a new subscription
  chart.setChannels(
    channels.map((name) => ({ name, unit: d.channels.find((c) => c.name === name)?.unit ?? "", color: colorFor(d.name, name) })),
  );
  if (!keepData) chart.clear();
  live.subscribe(sub);
}

// ---- controls ------------------------------------------------------------------------------

function renderDeviceSelect(): void {
  els.deviceSelect.replaceChildren(
    ...devices.map((d) =>
      h("option", { value: d.name, selected: d.name === device }, `${d.name} · ${d.channels.length} ch · ${fmtRate(d.sample_rate_hz)}`),
    ),
  );
}

function renderPicker(): void {
  const d = currentDevice();
  if (!d) {
    els.picker.replaceChildren(h("span", { class: "muted" }, "no device"));
    return;
  }
  const on = new Set(selectedChannels(d));
  const items = d.channels.map((c) => {
    const input = h("input", {
      type: "checkbox",
      value: c.name,
      checked: on.has(c.name),
      disabled: on.size === 1 && on.has(c.name),
      "data-testid": `channel-toggle-${c.name}`,
    });
    return h(
      "label",
      { class: `chan${on.has(c.name) ? " on" : ""}`, title: on.size === 1 && on.has(c.name) ? "at least one channel stays on" : `${c.name} [${c.unit}]` },
      input,
      h("i", { class: "swatch", style: `background:${colorFor(d.name, c.name)}` }),
      h("span", { class: "chan-name" }, c.name),
      c.unit ? h("span", { class: "chan-unit" }, c.unit) : null,
      h("span", { class: "chan-val num", "data-testid": `channel-value-${c.name}` }, ""),
    );
  });
  els.picker.replaceChildren(...items);
}

els.picker.addEventListener("change", (ev) => {
  const input = ev.target as HTMLInputElement;
  const d = currentDevice();
  if (!d || input.type !== "checkbox") return;
  const set = new Set(selectedChannels(d));
  if (input.checked) set.add(input.value);
  else if (set.size > 1) set.delete(input.value);
  selected.set(d.name, set);
  store.set(`channels.${d.name}`, [...set].join(","));
  renderPicker();
  resubscribe();
});

els.deviceSelect.addEventListener("change", () => {
  device = els.deviceSelect.value;
  store.set("device", device);
  renderPicker();
  resubscribe();
});

function renderWindowButtons(): void {
  els.windowSelect.replaceChildren(
    ...WINDOWS_S.map((s) =>
      h("button", { type: "button", class: s === windowS ? "on" : "", "data-window": s, "data-testid": `window-${s}`, "aria-pressed": s === windowS ? "true" : "false" }, `${s} s`),
    ),
  );
}

els.windowSelect.addEventListener("click", (ev) => {
  const b = (ev.target as HTMLElement).closest<HTMLButtonElement>("button[data-window]");
  if (!b) return;
  windowS = Number(b.dataset.window);
  store.set("window", String(windowS));
  renderWindowButtons();
  chart.setWindow(windowS);
  resubscribe(true); // a wider window needs fewer display points per second
});

els.pause.addEventListener("click", () => {
  chart.paused = !chart.paused;
  setText(els.pause, chart.paused ? "Resume" : "Pause");
  els.pause.classList.toggle("on", chart.paused);
});

// ---- periodic work -------------------------------------------------------------------------

function applyDevices(list: DeviceStatus[]): void {
  const sig = JSON.stringify(list.map((d) => [d.name, d.sample_rate_hz, d.channels]));
  if (sig === devicesSig) return;
  devicesSig = sig;
  devices = list;
  if (!devices.some((d) => d.name === device)) device = devices[0]?.name ?? "";
  for (const [name, set] of selected) {
    const d = devices.find((x) => x.name === name);
    if (!d) selected.delete(name);
    else for (const ch of set) if (!d.channels.some((c) => c.name === ch)) set.delete(ch);
  }
  renderDeviceSelect();
  renderPicker();
  resubscribe();
}

let segmentsSeen = -1;
let lastRecRefresh = 0;

async function refreshStatus(): Promise<void> {
  try {
    const [st, buf] = await Promise.all([getStatus(), getBufferStatus().catch(() => null)]);
    applyDevices(st.devices);
    status.render(st, buf);
    status.showError(null);
    const segs = Object.values(st.recorder ?? {}).reduce((a, r) => a + (r.segments_closed ?? 0), 0);
    if (segs !== segmentsSeen || performance.now() - lastRecRefresh > 10000) {
      segmentsSeen = segs;
      lastRecRefresh = performance.now();
      await recordings.refresh().catch((err: unknown) => {
        status.showError(`recordings: ${err instanceof Error ? err.message : String(err)}`);
        segmentsSeen = -1; // retry on the next refresh
      });
      debug.recordings = recordings.fileCount;
    }
  } catch (err) {
    status.showError(`status: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const fpsWindow: [number, number][] = [];
function tickStats(): void {
  const now = performance.now();
  fpsWindow.push([now, debug.framesReceived]);
  while (fpsWindow.length > 2 && now - fpsWindow[0][0] > 2000) fpsWindow.shift();
  const [t0, f0] = fpsWindow[0];
  debug.framesPerSecond = now > t0 ? ((debug.framesReceived - f0) * 1000) / (now - t0) : 0;
  debug.samplesDrawn = chart.samplesDrawn;
  debug.draws = chart.draws;
  debug.chartSpanS = chart.spanS();
  debug.recordingPlots = recordings.plotsRendered;
  setText(els.fps, fmtNum(debug.framesPerSecond, 1));
  setText(els.frames, fmtInt(debug.framesReceived));
  setText(els.latency, Number.isFinite(latencyEma) ? fmtNum(latencyEma, Math.abs(latencyEma) < 10 ? 1 : 0) : "—");
  setText(els.missed, fmtInt(debug.missedSamples));
  els.missed.classList.toggle("warn", debug.missedSamples > 0);
  setText(els.gaps, fmtInt(debug.seqGaps));
  els.gaps.classList.toggle("warn", debug.seqGaps > 0);
  setText(els.drawn, fmtInt(chart.samplesDrawn));
  setText(els.bucket, debug.lastBucketSize ? fmtInt(debug.lastBucketSize) : "—");
  els.chartEmpty.hidden = chart.samplesDrawn > 0;
  // Per-channel range of the newest frame, next to each checkbox.
  if (lastFrame) {
    const f = lastFrame;
    f.channels.forEach((name, c) => {
      const el = els.picker.querySelector(`[data-testid="channel-value-${CSS.escape(name)}"]`);
      if (!el) return;
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < f.rows; i++) {
        if (f.min[c][i] < lo) lo = f.min[c][i];
        if (f.max[c][i] > hi) hi = f.max[c][i];
      }
      setText(el, f.rows ? `${fmtValue(lo)} … ${fmtValue(hi)}` : "");
    });
  }
}

// ---- start ---------------------------------------------------------------------------------

renderWindowButtons();
getHello()
  .then((hello) => {
    setText(els.version, `v${hello.version}`);
    setText(byId("station-name"), hello.station);
  })
  .catch(() => undefined);
live.start();
poll(refreshStatus, 2000);
window.setInterval(tickStats, 250);
