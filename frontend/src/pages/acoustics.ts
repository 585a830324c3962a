// Acoustic camera page: the newest map over the focus grid (the pipe surface unrolled) with a
// colour scale over an adjustable dynamic range below the peak, the method and band picker,
// listening to cells (click a cell to listen, again to stop; several at once, one heard or
// all mixed, played with the Web Audio API) and the map's peaks. Maps and sound arrive on the
// live WebSocket (`subscribe_acoustics`); the camera's state comes from GET /api/acoustics.
// A station without a camera answers 404: the page says so.

import type { AcousticAudioFrame, AcousticMapFrame } from "../acoustic-frames";
import {
  type AcousticParameters,
  type AcousticParametersChange,
  type AcousticSelection,
  type AcousticsState,
  ApiError,
  acousticMapUrl,
  deselectAcousticCell,
  getAcoustics,
  selectAcousticCell,
  setAcousticParameters,
} from "../api";
import { AcousticParamsForm, bandText, fmtHz } from "../components/acoustic-params";
import { PcmPlayer } from "../components/audio-player";
import { type Cell, type HeatMarker, type HeatScale, Heatmap } from "../components/heatmap";
import type { AcousticLiveSubscription, AcousticSubscription } from "../live-client";
import { errorText, fmtInt, fmtNum, h, mountHtml, setText, settings } from "../util";
import type { MountedPage, PageContext } from "./types";
import "./acoustics.css";

const STATE_PROBLEM = "acoustics-state";
const REFRESH_MS = 2000;
const DEFAULT_RANGE_DB = 20;
/** Reference pressure of sound pressure level, Pa (ISO 80000-8). */
const P_REF_PA = 20e-6;

/** `window.__rigwatch.acoustics` */
export interface AcousticsDebug {
  mounted: boolean;
  /** null until GET /api/acoustics answered; false: the station has no camera */
  available: boolean | null;
  mapsReceived: number;
  lastMapSeq: number;
  mapGaps: number;
  mapDraws: number;
  quantity: string;
  method: string;
  band: string;
  scaleTitle: string;
  rangeDb: number;
  peaks: { row: number; col: number; value: number }[];
  audioFramesReceived: number;
  lastAudioSeq: number;
  audioGaps: number;
  audioDecoded: number;
  audioScheduled: number;
  audioDropped: number;
  audioUnderruns: number;
  contextState: string;
  latencyMs: number;
  soundOn: boolean;
  mix: string;
  selections: { id: string; row: number; col: number }[];
  subscription: AcousticSubscription | null;
  subscribed: AcousticSubscription | null;
  parameterPosts: number;
  parameterRefusals: number;
  serverErrors: string[];
  decodeErrors: number;
  /** CSS pixels from the map canvas's top-left corner to a cell's centre (for tests) */
  cellCentre(row: number, col: number): { x: number; y: number };
}

const HTML = `
<div class="ac-layout" data-ref="layout" hidden>
  <section class="panel ac-main" data-testid="acoustic-panel">
    <div class="panel-head">
      <h2>Acoustic camera</h2>
      <span class="muted small num" data-ref="device" data-testid="acoustic-device"></span>
      <div class="spacer"></div>
      <span class="ac-scale" data-ref="scaleLabel" data-testid="scale-label"></span>
      <label class="ac-slider" title="colour scale: this far below the map's peak">
        <span class="muted">range</span>
        <input type="range" min="3" max="60" step="1" data-ref="range" data-testid="dynamic-range" />
        <b class="num" data-ref="rangeVal" data-testid="dynamic-range-value"></b>
      </label>
    </div>
    <div data-ref="params"></div>
    <div class="ac-map-wrap">
      <div class="ac-map" data-ref="mapHost" data-testid="acoustic-map"></div>
      <div class="chart-empty" data-ref="mapEmpty">waiting for the first map…</div>
    </div>
    <div class="readout num muted" data-ref="readout" data-testid="map-readout">click a cell to listen to it</div>
    <div class="stats" data-testid="map-info">
      <div class="stat"><span>map</span><b class="num" data-ref="seq" data-testid="map-seq">—</b></div>
      <div class="stat"><span>time</span><b class="num" data-ref="time" data-testid="map-time">—</b></div>
      <div class="stat"><span>method</span><b data-ref="method" data-testid="map-method">—</b></div>
      <div class="stat"><span>band</span><b class="num" data-ref="band" data-testid="map-band">—</b></div>
      <div class="stat" title="time the map took to compute"><span>ms</span><b class="num" data-ref="compute" data-testid="map-compute">—</b></div>
      <div class="stat"><span>maps/s</span><b class="num" data-ref="mps" data-testid="maps-per-second">—</b></div>
      <div class="stat"><span>gaps</span><b class="num" data-ref="mapGaps" data-testid="map-gaps">0</b></div>
      <div class="spacer"></div>
      <span class="ac-export muted small">export
        <a class="dl" data-ref="pngLink" data-testid="export-png" href="#" download>PNG</a>
        <a class="dl" data-ref="npyLink" data-testid="export-npy" href="#" download>NPY</a>
        <a class="dl" data-ref="csvLink" data-testid="export-csv" href="#" download>CSV</a>
      </span>
    </div>
  </section>
  <aside class="side">
    <section class="panel" data-ref="listen" data-testid="listen-panel" data-frames="0" data-scheduled="0">
      <div class="panel-head">
        <h2>Listen</h2>
        <div class="spacer"></div>
        <button type="button" class="btn" data-ref="sound" data-testid="sound-toggle">Sound on</button>
        <input type="range" min="0" max="2" step="0.05" value="1" class="ac-volume" data-ref="volume" data-testid="volume" aria-label="volume" title="volume" />
      </div>
      <div class="kv-grid ac-kv">
        <div class="kv"><span class="k">frames</span><span class="v num" data-ref="aFrames" data-testid="audio-frames">0</span></div>
        <div class="kv"><span class="k">gaps</span><span class="v num" data-ref="aGaps" data-testid="audio-gaps">0</span></div>
        <div class="kv" title="focus delays and filter + frame length + queued sound + output (network not included)"><span class="k">latency ms</span><span class="v num" data-ref="aLatency" data-testid="audio-latency">—</span></div>
        <div class="kv"><span class="k">queued ms</span><span class="v num" data-ref="aBuffered" data-testid="audio-buffered">—</span></div>
        <div class="kv"><span class="k">played</span><span class="v num" data-ref="aScheduled" data-testid="audio-scheduled">0</span></div>
        <div class="kv"><span class="k">dropped</span><span class="v num" data-ref="aDropped" data-testid="audio-dropped">0</span></div>
        <div class="kv"><span class="k">output</span><span class="v num" data-ref="aContext" data-testid="audio-context">off</span></div>
        <div class="kv"><span class="k">clipped</span><span class="v num" data-ref="aClipped" data-testid="audio-clipped">0</span></div>
      </div>
      <div class="ac-mix" data-ref="mix" data-testid="mix-choice"></div>
      <div data-ref="selections" data-testid="selections"></div>
    </section>
    <section class="panel" data-testid="peaks-panel">
      <div class="panel-head"><h2>Peaks</h2><div class="spacer"></div><span class="muted small" data-ref="peakUnit"></span></div>
      <div data-ref="peaks" data-testid="peak-list"><div class="empty">no map yet</div></div>
    </section>
    <section class="panel" data-testid="camera-panel">
      <div class="panel-head"><h2>Camera</h2></div>
      <div class="kv-grid ac-kv ac-kv1" data-ref="camera"></div>
    </section>
  </aside>
</div>
<div class="ac-none" data-ref="none" data-testid="no-acoustic-camera" hidden></div>
<div class="page-loading muted" data-ref="loading">loading the acoustic camera…</div>`;

const REFS = [
  "layout", "device", "scaleLabel", "range", "rangeVal", "pngLink", "npyLink", "csvLink", "params",
  "mapHost", "mapEmpty", "readout", "seq", "time", "method", "band", "compute", "mps", "mapGaps",
  "listen", "sound", "volume", "aFrames", "aGaps", "aLatency", "aBuffered", "aScheduled", "aDropped",
  "aContext", "aClipped", "mix", "selections", "peaks", "peakUnit", "camera", "none", "loading",
] as const;

const pad2 = (n: number): string => String(n).padStart(2, "0");

function clock(ms: number): string {
  if (!Number.isFinite(ms)) return "—";
  const d = new Date(ms);
  return `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0").slice(0, 2)}`;
}

/** What the colours show: SPL in dB as it is, a pseudo-spectrum as 10 lg(P / Pmax). */
function displayLevels(m: AcousticMapFrame, rangeDb: number): { levels: Float32Array; scale: HeatScale; peak: number } {
  let max = -Infinity;
  for (const v of m.values) if (v > max) max = v;
  if (m.quantity === "spl_db") {
    return {
      levels: m.values,
      peak: max,
      scale: { lo: max - rangeDb, hi: max, title: "SPL, dB re 20 µPa" },
    };
  }
  const levels = new Float32Array(m.values.length);
  for (let i = 0; i < levels.length; i++) levels[i] = max > 0 ? 10 * Math.log10(m.values[i] / max) : Number.NaN;
  return {
    levels,
    peak: max,
    scale: { lo: -rangeDb, hi: 0, title: "pseudo-spectrum, 10·lg(P/Pmax)" },
  };
}

export function mount(root: HTMLElement, ctx: PageContext): MountedPage {
  const els = mountHtml(root, HTML, REFS);
  const rangeInput = els.range as HTMLInputElement;
  const form = new AcousticParamsForm();
  els.params.replaceChildren(form.el);
  const heatmap = new Heatmap(els.mapHost);
  const player = new PcmPlayer();

  let state: AcousticsState | null = null;
  let params: AcousticParameters | null = null;
  let selections: AcousticSelection[] = [];
  let lastMap: AcousticMapFrame | null = null;
  let peakValue = Number.NaN;
  let rangeDb = Number(settings.get("acoustics.range")) || 0;
  let soundOn = false;
  let held: AcousticLiveSubscription | null = null;
  let refreshTimer = 0;
  let refreshing = false;
  let hover: Cell | null = null;
  let audioClipped = 0;
  /** RMS of each selection's sound in the newest audio frame, Pa */
  const rmsPa = new Map<string, number>();
  let frameLatencyMs = Number.NaN;
  let frameMs = Number.NaN;

  const debug = ctx.expose<AcousticsDebug>({
    mounted: true,
    available: null,
    mapsReceived: 0,
    lastMapSeq: -1,
    mapGaps: 0,
    mapDraws: 0,
    quantity: "",
    method: "",
    band: "",
    scaleTitle: "",
    rangeDb: 0,
    peaks: [],
    audioFramesReceived: 0,
    lastAudioSeq: -1,
    audioGaps: 0,
    audioDecoded: 0,
    audioScheduled: 0,
    audioDropped: 0,
    audioUnderruns: 0,
    contextState: "none",
    latencyMs: Number.NaN,
    soundOn: false,
    mix: "mix",
    selections: [],
    subscription: null,
    subscribed: null,
    parameterPosts: 0,
    parameterRefusals: 0,
    serverErrors: [],
    decodeErrors: 0,
    cellCentre: (row, col) => heatmap.cellCentre({ row, col }),
  });

  const cellOf = (row: number, col: number): string => `row ${row}, col ${col}`;
  /** the cell's position on the unrolled map, metres */
  function mapPos(row: number, col: number): string {
    const g = state?.grid;
    if (!g) return "—";
    return `${fmtNum(g.x_m[col], 2)}, ${fmtNum(g.y_m[row], 2)}`;
  }

  // ---- live subscription -------------------------------------------------------------------

  function wantAudio(): boolean {
    return soundOn && selections.length > 0;
  }

  function subscribe(): void {
    const sub: AcousticSubscription = { maps: true, audio: wantAudio() };
    const same = debug.subscription && debug.subscription.maps === sub.maps && debug.subscription.audio === sub.audio;
    if (held && same) return;
    debug.subscription = sub;
    if (held) held.update(sub);
    else held = ctx.live.subscribeAcoustics(sub, handlers);
  }

  const handlers = {
    onSubscribed(sub: AcousticSubscription): void {
      debug.subscribed = sub;
      debug.lastAudioSeq = -1; // a new subscription: the next frame continues nothing
    },
    onMap(m: AcousticMapFrame): void {
      debug.mapsReceived++;
      if (debug.lastMapSeq >= 0 && m.seq > debug.lastMapSeq + 1) debug.mapGaps += m.seq - debug.lastMapSeq - 1;
      debug.lastMapSeq = m.seq;
      mapTimes.push(performance.now());
      if (mapTimes.length > 20) mapTimes.shift();
      lastMap = m;
      drawMap();
      renderMapInfo(m);
      renderPeaks(m);
    },
    onAudio(f: AcousticAudioFrame): void {
      debug.audioFramesReceived++;
      if (debug.lastAudioSeq >= 0 && f.seq > debug.lastAudioSeq + 1) debug.audioGaps += f.seq - debug.lastAudioSeq - 1;
      debug.lastAudioSeq = f.seq;
      audioClipped += f.clipped;
      frameLatencyMs = f.latencyMs;
      frameMs = (f.length / f.sampleRateHz) * 1000;
      f.selections.forEach((id, c) => {
        const ch = f.channels[c];
        let sum = 0;
        for (let i = 0; i < ch.length; i++) sum += ch[i] * ch[i];
        rmsPa.set(id, Math.sqrt(sum / Math.max(1, ch.length)) * f.fullScale);
      });
      if (soundOn) player.push(f);
      debug.audioDecoded = player.stats.decoded;
      debug.audioScheduled = player.stats.scheduled;
      debug.audioDropped = player.stats.dropped;
      els.listen.dataset.frames = String(debug.audioFramesReceived);
      els.listen.dataset.scheduled = String(player.stats.scheduled);
    },
    onServerError(code: string, message: string): void {
      debug.serverErrors.push(`${code}: ${message}`);
      ctx.problems.report(new Error(`live stream: ${code}: ${message}`), `acoustics-ws-${code}`);
    },
    onDecodeError(err: unknown): void {
      debug.decodeErrors++;
      ctx.problems.report(new Error(`could not decode an acoustic frame: ${errorText(err)}`), "acoustics-decode");
    },
  };

  // ---- the map -----------------------------------------------------------------------------

  const mapTimes: number[] = [];

  function setRange(db: number): void {
    rangeDb = Math.max(3, Math.min(60, Math.round(db)));
    rangeInput.value = String(rangeDb);
    debug.rangeDb = rangeDb;
    const pseudo = lastMap?.quantity === "pseudo_spectrum";
    setText(els.rangeVal, pseudo ? `${rangeDb}` : `${rangeDb} dB`);
    els.rangeVal.title = pseudo ? "colours span 10·lg(P/Pmax) from 0 down to minus this" : "colours span the peak level down to this far below it";
    (els.pngLink as HTMLAnchorElement).href = acousticMapUrl("png", rangeDb);
  }

  function drawMap(): void {
    const m = lastMap;
    if (!m || !state) return;
    const [rows, cols] = state.grid.shape;
    if (m.rows !== rows || m.cols !== cols) return; // a map of another grid: wait for the state
    const { levels, scale, peak } = displayLevels(m, rangeDb);
    peakValue = peak;
    heatmap.setData(levels, scale);
    els.mapEmpty.hidden = true;
    debug.quantity = m.quantity;
    debug.scaleTitle = scale.title;
    setText(els.scaleLabel, m.quantity === "spl_db" ? "SPL · dB re 20 µPa" : `${m.method === "seed_music" ? "ball-mill MUSIC" : "MUSIC"} pseudo-spectrum · 10·lg(P/Pmax)`);
    els.scaleLabel.dataset.quantity = m.quantity;
    els.scaleLabel.title = scale.title;
    setRange(rangeDb);
    renderReadout();
  }

  function renderMapInfo(m: AcousticMapFrame): void {
    setText(els.seq, fmtInt(m.seq));
    setText(els.time, clock(m.timestampMs));
    setText(els.method, m.method);
    setText(els.band, m.band);
    els.band.title = `FFT bins from ${fmtHz(m.fLowHz)} to ${fmtHz(m.fHighHz)}`;
    setText(els.compute, fmtNum(m.computeMs, m.computeMs < 10 ? 2 : 1));
    setText(els.mapGaps, fmtInt(debug.mapGaps));
    els.mapGaps.classList.toggle("warn", debug.mapGaps > 0);
    debug.method = m.method;
    debug.band = m.band;
  }

  /** A map value as shown: dB, or a pseudo-spectrum as 10 lg(P/Pmax) with the raw value. */
  function valueText(v: number): string {
    if (!lastMap) return "—";
    if (lastMap.quantity === "spl_db") return `${fmtNum(v, 1)} dB`;
    const rel = peakValue > 0 ? 10 * Math.log10(v / peakValue) : Number.NaN;
    return `${fmtNum(rel, 1)} (P ${v.toPrecision(3)})`;
  }

  function renderPeaks(m: AcousticMapFrame): void {
    debug.peaks = m.peaks.map((p) => ({ row: p.row, col: p.col, value: p.value }));
    setText(els.peakUnit, m.quantity === "spl_db" ? "dB re 20 µPa" : "pseudo-spectrum, 10·lg(P/Pmax)");
    if (!m.peaks.length) {
      els.peaks.replaceChildren(h("div", { class: "empty" }, "no peak"));
      return;
    }
    const rows = m.peaks.map((p, i) =>
      h(
        "tr",
        {
          "data-testid": "peak",
          "data-row": p.row,
          "data-col": p.col,
          tabindex: 0,
          title: `focus point x ${fmtNum(p.positionM[0], 3)}, y ${fmtNum(p.positionM[1], 3)}, z ${fmtNum(p.positionM[2], 3)} m — click to listen`,
        },
        h("td", { class: "num" }, `P${i + 1}`),
        h("td", { class: "num" }, cellOf(p.row, p.col)),
        h("td", { class: "num" }, mapPos(p.row, p.col)),
        h("td", { class: "num r" }, valueText(p.value)),
      ),
    );
    els.peaks.replaceChildren(
      h(
        "table",
        { class: "data-table ac-table" },
        h("thead", {}, h("tr", {}, h("th", { style: "width:30px" }, ""), h("th", { style: "width:112px" }, "cell"), h("th", {}, "at (m)"), h("th", { class: "r", style: "width:104px" }, "level"))),
        h("tbody", {}, ...rows),
      ),
    );
    renderMarkers();
  }

  function renderMarkers(): void {
    const marks: HeatMarker[] = [];
    lastMap?.peaks.forEach((p, i) => marks.push({ row: p.row, col: p.col, label: `P${i + 1}`, kind: "peak" }));
    for (const s of selections) {
      const audible = soundOn && (player.mode === "mix" || player.mode === s.id);
      marks.push({ row: s.row, col: s.col, label: s.id, kind: audible ? "audible" : "selection" });
    }
    heatmap.setMarkers(marks);
  }

  function renderReadout(): void {
    if (!hover) {
      setText(els.readout, selections.length ? "click a selected cell to stop listening to it" : "click a cell to listen to it");
      return;
    }
    const i = hover.row * (state?.grid.shape[1] ?? 0) + hover.col;
    const v = lastMap ? lastMap.values[i] : Number.NaN;
    const sel = selections.find((s) => s.row === hover?.row && s.col === hover?.col);
    setText(
      els.readout,
      `${cellOf(hover.row, hover.col)} · at ${mapPos(hover.row, hover.col)} m · ${valueText(v)} · ${sel ? `${sel.id}: click to stop` : "click to listen"}`,
    );
  }

  heatmap.onHover = (cell) => {
    hover = cell;
    renderReadout();
  };
  heatmap.onCell = (cell) => void toggleCell(cell);

  // ---- listening ---------------------------------------------------------------------------

  function setSelections(list: AcousticSelection[]): void {
    selections = list;
    if (player.mode !== "mix" && !list.some((s) => s.id === player.mode)) player.mode = "mix";
    for (const id of [...rmsPa.keys()]) if (!list.some((s) => s.id === id)) rmsPa.delete(id);
    debug.selections = list.map((s) => ({ id: s.id, row: s.row, col: s.col }));
    debug.mix = player.mode;
    renderSelections();
    renderMarkers();
    renderReadout();
    subscribe();
  }

  function setSound(on: boolean): void {
    if (on) player.start(); // within the click: the browser lets the context run
    else player.flush();
    soundOn = on;
    debug.soundOn = on;
    setText(els.sound, on ? "Sound off" : "Sound on");
    els.sound.classList.toggle("on", on);
    renderMarkers();
    subscribe();
  }

  async function toggleCell(cell: Cell): Promise<void> {
    const existing = selections.find((s) => s.row === cell.row && s.col === cell.col);
    if (existing) {
      await stopSelection(existing.id);
      return;
    }
    if (!soundOn) setSound(true); // the click is the user gesture Web Audio needs
    try {
      const sel = await selectAcousticCell({ row: cell.row, col: cell.col });
      if (!debug.mounted) return;
      if (!selections.some((s) => s.id === sel.id)) setSelections([...selections, sel]);
    } catch (err) {
      ctx.problems.report(err);
    }
  }

  async function stopSelection(id: string): Promise<void> {
    try {
      await deselectAcousticCell(id);
    } catch (err) {
      // already gone (another client stopped it): drop it here too
      if (!(err instanceof ApiError && err.status === 404)) {
        ctx.problems.report(err);
        return;
      }
    }
    if (!debug.mounted) return;
    setSelections(selections.filter((s) => s.id !== id));
    if (!selections.length) player.flush();
  }

  function renderSelections(): void {
    const radio = (value: string, label: string, testid: string): HTMLElement =>
      h(
        "label",
        { class: `chan${player.mode === value ? " on" : ""}` },
        h("input", { type: "radio", name: "ac-mix", value, checked: player.mode === value, "data-testid": testid }),
        h("span", {}, label),
      );
    els.mix.replaceChildren(
      h("span", { class: "muted small" }, "hear"),
      radio("mix", "all mixed", "mix-all"),
      ...selections.map((s) => radio(s.id, s.id, `mix-${s.id}`)),
    );
    if (!selections.length) {
      els.selections.replaceChildren(h("div", { class: "empty" }, "no cell selected: click the map"));
      return;
    }
    els.selections.replaceChildren(
      h(
        "table",
        { class: "data-table ac-table" },
        h("thead", {}, h("tr", {}, h("th", { style: "width:30px" }, ""), h("th", { style: "width:112px" }, "cell"), h("th", {}, "at (m)"), h("th", { class: "r", style: "width:70px" }, "level"), h("th", { style: "width:40px" }, ""))),
        h(
          "tbody",
          {},
          ...selections.map((s) =>
            h(
              "tr",
              {
                "data-testid": "selection",
                "data-id": s.id,
                "data-row": s.row,
                "data-col": s.col,
                class: player.mode === s.id ? "selected" : "",
                title: `focus point x ${fmtNum(s.position_m[0], 3)}, y ${fmtNum(s.position_m[1], 3)}, z ${fmtNum(s.position_m[2], 3)} m${s.playing ? " · playing on the station's sound card" : ""}`,
              },
              h("td", { class: "num" }, s.id),
              h("td", { class: "num" }, cellOf(s.row, s.col)),
              h("td", { class: "num" }, mapPos(s.row, s.col)),
              h("td", { class: "num r", "data-level": s.id }, ""),
              h("td", { class: "ac-stop-cell" }, h("button", { type: "button", class: "btn ac-stop", "data-stop": s.id, "data-testid": "selection-stop", title: "stop listening" }, "×")),
            ),
          ),
        ),
      ),
    );
  }

  els.selections.addEventListener("click", (ev) => {
    const b = (ev.target as HTMLElement).closest<HTMLElement>("[data-stop]");
    if (b?.dataset.stop) void stopSelection(b.dataset.stop);
  });
  els.mix.addEventListener("change", (ev) => {
    const input = ev.target as HTMLInputElement;
    if (input.name !== "ac-mix") return;
    player.mode = input.value;
    player.flush(); // the next frame starts the new choice at once
    debug.mix = player.mode;
    renderSelections();
    renderMarkers();
  });
  els.peaks.addEventListener("click", (ev) => {
    const tr = (ev.target as HTMLElement).closest<HTMLElement>("tr[data-row]");
    if (tr) void toggleCell({ row: Number(tr.dataset.row), col: Number(tr.dataset.col) });
  });
  els.sound.addEventListener("click", () => setSound(!soundOn));
  els.volume.addEventListener("input", () => player.setVolume(Number((els.volume as HTMLInputElement).value)));

  // ---- parameters --------------------------------------------------------------------------

  form.onApply = (change: AcousticParametersChange) => void applyParameters(change);

  async function applyParameters(change: AcousticParametersChange): Promise<void> {
    debug.parameterPosts++;
    form.setBusy(true);
    try {
      params = await setAcousticParameters(change);
      if (!debug.mounted) return;
      ctx.problems.clear("acoustics-parameters");
      form.settle();
      form.show(params, true);
    } catch (err) {
      debug.parameterRefusals++;
      ctx.problems.report(err, "acoustics-parameters");
      if (params && change.method) form.revertMethod(params);
    } finally {
      form.setBusy(false);
    }
  }

  // ---- camera state ------------------------------------------------------------------------

  function showNoCamera(detail: string): void {
    debug.available = false;
    els.loading.hidden = true;
    els.layout.hidden = true;
    els.none.hidden = false;
    els.none.replaceChildren(
      h("h2", {}, "This station has no acoustic camera"),
      h("p", { class: "muted" }, "Its configuration has no [acoustics] section: there are no microphones to map or listen to."),
      h("p", { class: "muted small num" }, detail),
    );
  }

  function applyState(st: AcousticsState): void {
    const first = state === null;
    const gridChanged = !state || JSON.stringify(state.grid) !== JSON.stringify(st.grid);
    state = st;
    params = st.parameters;
    debug.available = true;
    els.loading.hidden = true;
    els.none.hidden = true;
    els.layout.hidden = false;
    if (gridChanged) {
      const g = st.grid;
      const pipe = g.kind === "cylinder";
      heatmap.setGrid({
        rows: g.shape[0],
        cols: g.shape[1],
        xM: g.x_m,
        yM: g.y_m,
        xLabel: pipe ? `along the pipe, ${g.col_label}` : g.col_label,
        yLabel: pipe ? "around the pipe, arc (m)" : g.row_label,
      });
      drawMap();
    }
    if (first) {
      if (!rangeDb) rangeDb = st.parameters.dynamic_range_db || DEFAULT_RANGE_DB;
      setRange(rangeDb);
    }
    form.show(st.parameters);
    const sameSelections = JSON.stringify(st.selections) === JSON.stringify(selections);
    if (!sameSelections) setSelections(st.selections);
    setText(els.device, `${st.device} · ${st.array.n_mics} mics · ${fmtHz(st.parameters.sample_rate_hz)} · ${st.grid.shape[0]} × ${st.grid.shape[1]} ${st.grid.kind}`);
    renderCamera(st);
    subscribe();
  }

  function renderCamera(st: AcousticsState): void {
    const p = st.parameters;
    const kv = (k: string, v: string, testid?: string, warn = false): HTMLElement =>
      h("div", { class: "kv" }, h("span", { class: "k" }, k), h("span", { class: `v num${warn ? " warn" : ""}`, "data-testid": testid }, v));
    const left = [...new Set([...st.array.excluded, ...st.array.dead])];
    els.camera.replaceChildren(
      kv("state", st.stats.state, "camera-state", st.stats.state !== "running"),
      kv("maps", fmtInt(st.stats.maps), "camera-maps"),
      kv("band", bandText(p.band)),
      kv("steering", `${p.steering}${p.diagonal_removal ? ", no diagonal" : ""}`),
      kv("CSM", `${p.block_size} · ${p.window} · ${Math.round(p.overlap * 100)} % · ${p.average_s} s`),
      kv("sound speed", `${fmtNum(p.speed_of_sound_m_s, 1)} m/s`),
      kv("left out", left.length ? left.join(", ") : "none", "camera-excluded", st.array.dead.length > 0),
      kv("refused", fmtInt(st.stats.blocks_refused + st.stats.rows_missed), undefined, st.stats.blocks_refused + st.stats.rows_missed > 0),
      kv("listen", `${p.listen.low_hz ? `${fmtHz(p.listen.low_hz)}–` : "< "}${fmtHz(p.listen.high_hz)}, focus ${fmtNum(st.listen_latency_ms, 1)} ms`),
      ...(st.stats.last_error ? [kv("last error", st.stats.last_error, "camera-error", true)] : []),
    );
  }

  async function refresh(): Promise<void> {
    if (refreshing || !debug.mounted) return;
    refreshing = true;
    try {
      const st = await getAcoustics();
      if (!debug.mounted) return;
      ctx.problems.clear(STATE_PROBLEM);
      applyState(st);
    } catch (err) {
      if (!debug.mounted) return;
      if (err instanceof ApiError && err.status === 404) {
        showNoCamera(err.problem.detail);
        return; // nothing to refresh: the camera is part of the configuration
      }
      ctx.problems.report(err, STATE_PROBLEM);
    } finally {
      refreshing = false;
    }
    if (debug.mounted) refreshTimer = window.setTimeout(() => void refresh(), REFRESH_MS);
  }

  // ---- stats -------------------------------------------------------------------------------

  function tickStats(): void {
    const s = player.refreshStats();
    debug.audioDecoded = s.decoded;
    debug.audioScheduled = s.scheduled;
    debug.audioDropped = s.dropped;
    debug.audioUnderruns = s.underruns;
    debug.contextState = s.contextState;
    debug.mapDraws = heatmap.draws;
    const latency = frameLatencyMs + frameMs + s.bufferedMs + (Number.isFinite(s.outputLatencyMs) ? s.outputLatencyMs : 0);
    debug.latencyMs = latency;
    setText(els.aFrames, fmtInt(debug.audioFramesReceived));
    setText(els.aGaps, fmtInt(debug.audioGaps));
    els.aGaps.classList.toggle("warn", debug.audioGaps > 0);
    setText(els.aLatency, Number.isFinite(latency) ? fmtNum(latency, 0) : "—");
    setText(els.aBuffered, soundOn && s.contextState !== "none" ? fmtNum(s.bufferedMs, 0) : "—");
    setText(els.aScheduled, fmtInt(s.scheduled));
    setText(els.aDropped, fmtInt(s.dropped + s.underruns));
    els.aDropped.title = `${s.dropped} dropped (queue full), ${s.underruns} underruns (queue ran dry)`;
    setText(els.aContext, s.contextState === "none" ? "off" : s.contextState);
    els.aContext.title = s.outputRateHz ? `frames resampled to the output's ${fmtHz(s.outputRateHz)}` : "";
    setText(els.aClipped, fmtInt(audioClipped));
    els.aClipped.classList.toggle("warn", audioClipped > 0);
    els.listen.dataset.scheduled = String(s.scheduled);
    if (mapTimes.length > 1) {
      const span = (mapTimes[mapTimes.length - 1] - mapTimes[0]) / 1000;
      const stale = performance.now() - mapTimes[mapTimes.length - 1] > 3000;
      setText(els.mps, stale ? "0.0" : fmtNum((mapTimes.length - 1) / span, 1));
    }
    for (const s2 of selections) {
      const cell = els.selections.querySelector(`[data-level="${CSS.escape(s2.id)}"]`);
      const rms = rmsPa.get(s2.id);
      if (cell) setText(cell, rms && rms > 0 ? `${fmtNum(20 * Math.log10(rms / P_REF_PA), 1)} dB` : "—");
    }
  }

  rangeInput.addEventListener("input", () => {
    setRange(Number(rangeInput.value));
    settings.set("acoustics.range", String(rangeDb));
    drawMap();
  });
  (els.npyLink as HTMLAnchorElement).href = acousticMapUrl("npy");
  (els.csvLink as HTMLAnchorElement).href = acousticMapUrl("csv");
  renderSelections();
  void refresh();
  const statsTimer = window.setInterval(tickStats, 250);

  return {
    unmount(): void {
      debug.mounted = false;
      window.clearTimeout(refreshTimer);
      window.clearInterval(statsTimer);
      held?.close();
      held = null;
      debug.subscription = null;
      player.close();
      heatmap.destroy();
      ctx.problems.clear(STATE_PROBLEM);
    },
  };
}
