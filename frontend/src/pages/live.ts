// Live page: the live min/max chart of one device (device selector, channel picker, window,
// pause), live stats, and the device / buffer / recorder cards with the error counters.
// Its subscription lives while the page is shown: leaving the page unsubscribes.

import { type BufferStatus, type DeviceStatus, type StationStatus, getBufferStatus } from "../api";
import { type ChannelStyle, LiveChart, channelColor } from "../components/charts";
import { deviceCards, errorCounters } from "../components/device-cards";
import type { DataFrame, LiveSubscription, Subscribed, Subscription } from "../live-client";
import { fmtInt, fmtNum, fmtRate, fmtValue, h, mountHtml, setText, settings } from "../util";
import type { MountedPage, PageContext } from "./types";

const WINDOWS_S = [2, 10, 30];
const FPS = 30;
const BUFFER_PROBLEM = "buffer-poll";

/** `window.__rigwatch.live` */
export interface LiveDebug {
  /** false once the page is left */
  mounted: boolean;
  framesReceived: number;
  lastSeq: number;
  seqGaps: number;
  missedSamples: number;
  /** frames of a subscription that was replaced, dropped */
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
  subscription: Subscription | null;
  subscribed: Subscribed | null;
  /** subscribe messages sent (a new device, channels or window) */
  subscribes: number;
  /** subscriptions ended (another device, or the page left) */
  unsubscribes: number;
}

const HTML = `
<div class="live-layout">
  <section class="panel live" data-testid="live-panel">
    <div class="panel-head">
      <h2>Live</h2>
      <select data-ref="deviceSelect" data-testid="device-select" aria-label="device"></select>
      <div class="seg" data-ref="windowSelect" data-testid="window-select" role="group" aria-label="window"></div>
      <button type="button" class="btn" data-ref="pause" data-testid="pause">Pause</button>
      <span class="live-error" data-ref="liveError" data-testid="live-error" hidden></span>
      <div class="spacer"></div>
      <span class="sub-info num muted" data-ref="subInfo" data-testid="subscription-info"></span>
    </div>
    <div class="channel-picker" data-ref="picker" data-testid="channel-picker"></div>
    <div class="chart-wrap">
      <div class="chart" data-ref="chart" data-testid="live-chart"></div>
      <div class="chart-empty" data-ref="chartEmpty">waiting for data…</div>
    </div>
    <div class="stats" data-testid="live-stats">
      <div class="stat"><span>frames/s</span><b class="num" data-ref="fps" data-testid="frames-per-second">—</b></div>
      <div class="stat"><span>frames</span><b class="num" data-ref="frames" data-testid="frames-received">0</b></div>
      <div class="stat"><span>latency ms</span><b class="num" data-ref="latency" data-testid="latency">—</b></div>
      <div class="stat"><span>missed samples</span><b class="num" data-ref="missed" data-testid="missed-samples">0</b></div>
      <div class="stat"><span>seq gaps</span><b class="num" data-ref="gaps" data-testid="seq-gaps">0</b></div>
      <div class="stat"><span>bucket</span><b class="num" data-ref="bucket" data-testid="bucket-size">—</b></div>
      <div class="stat"><span>points drawn</span><b class="num" data-ref="drawn" data-testid="samples-drawn">0</b></div>
    </div>
  </section>
  <aside class="side">
    <section class="panel" data-testid="buffer-status">
      <div class="panel-head"><h2>Devices · buffer · recorder</h2></div>
      <div class="device-cards" data-ref="cards"><div class="empty">waiting for the station…</div></div>
    </section>
    <section class="panel errors" data-ref="errors" data-testid="error-counters" hidden>
      <div class="panel-head"><h2>Errors</h2></div>
      <div class="error-list" data-ref="errorList"></div>
    </section>
  </aside>
</div>`;

const REFS = [
  "deviceSelect", "windowSelect", "pause", "liveError", "subInfo", "picker", "chart", "chartEmpty",
  "fps", "frames", "latency", "missed", "gaps", "bucket", "drawn", "cards", "errors", "errorList",
] as const;

export function mount(root: HTMLElement, ctx: PageContext): MountedPage {
  const els = mountHtml(root, HTML, REFS);
  const deviceSelect = els.deviceSelect as HTMLSelectElement;
  const debug = ctx.expose<LiveDebug>({
    mounted: true,
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
    subscription: null,
    subscribed: null,
    subscribes: 0,
    unsubscribes: 0,
  });

  let devices: DeviceStatus[] = [];
  let devicesSig = "";
  let device = settings.get("device") ?? "";
  let windowS = Number(settings.get("window")) || 10;
  if (!WINDOWS_S.includes(windowS)) windowS = 10;
  const selected = new Map<string, Set<string>>();
  let held: LiveSubscription | null = null;
  let heldDevice = "";
  /** channels of the subscription asked for last; frames must carry exactly these */
  let expectedKey = "";
  /** the server confirmed that subscription: its frames are the ones to draw */
  let accepting = false;
  let latencyEma = Number.NaN;
  let lastFrame: DataFrame | null = null;
  let buffer: BufferStatus | null = null;
  let bufferBusy = false;
  let liveErrorTimer = 0;

  const chart = new LiveChart(els.chart, windowS);

  const currentDevice = (): DeviceStatus | undefined => devices.find((d) => d.name === device);

  function colorFor(dev: string, channel: string): string {
    const d = devices.find((x) => x.name === dev);
    return channelColor(d ? d.channels.map((c) => c.name) : [], channel);
  }

  function selectedChannels(d: DeviceStatus): string[] {
    let set = selected.get(d.name);
    if (!set) {
      const saved = settings.get(`channels.${d.name}`);
      const names = d.channels.map((c) => c.name);
      const fromSaved = saved ? saved.split(",").filter((n) => names.includes(n)) : [];
      set = new Set(fromSaved.length ? fromSaved : names);
      selected.set(d.name, set);
    }
    return d.channels.map((c) => c.name).filter((n) => set.has(n));
  }

  function styles(d: DeviceStatus, channels: string[]): ChannelStyle[] {
    return channels.map((name) => ({
      name,
      unit: d.channels.find((c) => c.name === name)?.unit ?? "",
      color: colorFor(d.name, name),
    }));
  }

  // ---- live subscription -------------------------------------------------------------------

  function displayRateHz(): number {
    // About two min/max buckets per horizontal pixel over the visible window.
    const points = Math.min(4000, Math.max(800, Math.round(chart.plotWidth() * 2)));
    return Math.max(10, Math.round(points / windowS));
  }

  function showLiveError(msg: string): void {
    els.liveError.hidden = false;
    setText(els.liveError, msg);
    window.clearTimeout(liveErrorTimer);
    liveErrorTimer = window.setTimeout(() => {
      els.liveError.hidden = true;
    }, 8000);
  }

  const handlers = {
    onSubscribed(msg: Subscribed): void {
      // the answer to what was asked last (the server names the channels in its order)
      if (msg.device !== device || [...msg.channels].sort().join(",") !== expectedKey.split(",").sort().join(",")) return;
      expectedKey = msg.channels.join(",");
      debug.subscribed = msg;
      accepting = true;
      debug.lastSeq = -1; // seq restarts with each subscription
      setText(
        els.subInfo,
        `${fmtRate(msg.sampleRateHz)} · ${msg.bucketSize > 1 ? `min/max of ${msg.bucketSize}` : "raw"} · ${fmtNum(msg.fps, 0)} fps`,
      );
    },
    onData(frame: DataFrame): void {
      if (!accepting || frame.device !== device || frame.channels.join(",") !== expectedKey) {
        debug.staleFrames++; // still from a subscription that was replaced
        return;
      }
      debug.framesReceived++;
      if (debug.lastSeq >= 0 && frame.seq > debug.lastSeq + 1) debug.seqGaps += frame.seq - debug.lastSeq - 1;
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
      if (d) chart.setChannels(styles(d, frame.channels));
      chart.push(frame);
      lastFrame = frame;
    },
    onServerError(code: string, message: string): void {
      debug.serverErrors.push(`${code}: ${message}`);
      showLiveError(`server: ${code}: ${message}`);
    },
    onDecodeError(err: unknown): void {
      debug.decodeErrors++;
      showLiveError(`could not decode a frame: ${err instanceof Error ? err.message : String(err)}`);
    },
  };

  function unsubscribe(): void {
    if (!held) return;
    held.close();
    held = null;
    heldDevice = "";
    debug.unsubscribes++;
  }

  /** Sends the subscription for the current device, channels and window. keepData keeps
   * what is drawn (only the display rate changes); otherwise the chart starts empty. */
  function resubscribe(keepData = false): void {
    const d = currentDevice();
    if (!d) {
      unsubscribe();
      debug.subscription = null;
      return;
    }
    const channels = selectedChannels(d);
    const sub: Subscription = { device: d.name, channels, displayRateHz: displayRateHz(), fps: FPS };
    expectedKey = channels.join(",");
    accepting = false;
    debug.subscription = sub;
    debug.subscribes++;
    chart.setChannels(styles(d, channels));
    if (!keepData) chart.clear();
    if (held && heldDevice === d.name) {
      held.update(sub);
    } else {
      unsubscribe();
      held = ctx.live.subscribe(sub, handlers);
      heldDevice = d.name;
    }
  }

  // ---- controls ----------------------------------------------------------------------------

  function renderDeviceSelect(): void {
    deviceSelect.replaceChildren(
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
    els.picker.replaceChildren(
      ...d.channels.map((c) => {
        const last = on.size === 1 && on.has(c.name);
        return h(
          "label",
          { class: `chan${on.has(c.name) ? " on" : ""}`, title: last ? "at least one channel stays on" : `${c.name} [${c.unit}]` },
          h("input", { type: "checkbox", value: c.name, checked: on.has(c.name), disabled: last, "data-testid": `channel-toggle-${c.name}` }),
          h("i", { class: "swatch", style: `background:${colorFor(d.name, c.name)}` }),
          h("span", { class: "chan-name" }, c.name),
          c.unit ? h("span", { class: "chan-unit" }, c.unit) : null,
          h("span", { class: "chan-val num", "data-testid": `channel-value-${c.name}` }, ""),
        );
      }),
    );
  }

  function renderWindowButtons(): void {
    els.windowSelect.replaceChildren(
      ...WINDOWS_S.map((s) =>
        h("button", { type: "button", class: s === windowS ? "on" : "", "data-window": s, "data-testid": `window-${s}`, "aria-pressed": s === windowS ? "true" : "false" }, `${s} s`),
      ),
    );
  }

  els.picker.addEventListener("change", (ev) => {
    const input = ev.target as HTMLInputElement;
    const d = currentDevice();
    if (!d || input.type !== "checkbox") return;
    const set = new Set(selectedChannels(d));
    if (input.checked) set.add(input.value);
    else if (set.size > 1) set.delete(input.value);
    selected.set(d.name, set);
    settings.set(`channels.${d.name}`, [...set].join(","));
    renderPicker();
    resubscribe();
  });

  deviceSelect.addEventListener("change", () => {
    device = deviceSelect.value;
    settings.set("device", device);
    renderPicker();
    resubscribe();
  });

  els.windowSelect.addEventListener("click", (ev) => {
    const b = (ev.target as HTMLElement).closest<HTMLButtonElement>("button[data-window]");
    if (!b) return;
    windowS = Number(b.dataset.window);
    settings.set("window", String(windowS));
    renderWindowButtons();
    chart.setWindow(windowS);
    resubscribe(true); // a wider window needs fewer display points per second
  });

  els.pause.addEventListener("click", () => {
    chart.paused = !chart.paused;
    setText(els.pause, chart.paused ? "Resume" : "Pause");
    els.pause.classList.toggle("on", chart.paused);
  });

  // ---- status ------------------------------------------------------------------------------

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

  function renderStatus(st: StationStatus): void {
    els.cards.replaceChildren(...deviceCards(st, buffer));
    const counters = errorCounters(st);
    els.errors.hidden = counters.length === 0;
    els.errorList.replaceChildren(...counters);
  }

  async function refreshBuffer(st: StationStatus): Promise<void> {
    if (bufferBusy) return;
    bufferBusy = true;
    try {
      buffer = await getBufferStatus();
      ctx.problems.clear(BUFFER_PROBLEM);
    } catch (err) {
      ctx.problems.report(err, BUFFER_PROBLEM);
    } finally {
      bufferBusy = false;
    }
    if (debug.mounted) renderStatus(st);
  }

  const stopStatus = ctx.status.subscribe((st) => {
    applyDevices(st.devices);
    renderStatus(st);
    void refreshBuffer(st);
  });

  // ---- stats -------------------------------------------------------------------------------

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

  renderWindowButtons();
  const statsTimer = window.setInterval(tickStats, 250);

  return {
    unmount(): void {
      debug.mounted = false;
      window.clearInterval(statsTimer);
      window.clearTimeout(liveErrorTimer);
      stopStatus();
      unsubscribe();
      ctx.problems.clear(BUFFER_PROBLEM);
      chart.destroy();
    },
  };
}
