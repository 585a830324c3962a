// Recordings page: the recorded segments and buffer snapshots (newest first); choosing one
// plots it (min/max-decimated by the station) with a download link; "Save buffer snapshot"
// writes the ring buffers to Parquet now. The chosen file is in the route
// (`#/recordings/<file>`), so a reload or a shared link shows it again.

import { type RangeQuery, type RecordingInfo, downloadUrl, getRecordingData, getRecordings, saveSensorBuffer } from "../api";
import { RecordingPlot, channelColor } from "../components/charts";
import { problemOf } from "../components/problems";
import { DataTable } from "../components/table";
import { fmtBytes, fmtDuration, fmtInt, fmtTimeNs, h, mountHtml, setText } from "../util";
import type { MountedPage, PageContext, Route } from "./types";

const LIST_PROBLEM = "recordings-list";
const REFRESH_MS = 10_000;

/** `window.__rigwatch.recordings` */
export interface RecordingsDebug {
  mounted: boolean;
  /** files listed (segments and snapshots) */
  files: number;
  listRefreshes: number;
  plotsRendered: number;
  /** the file plotted last */
  plotted: string | null;
  snapshotRequests: number;
  /** files written by the last snapshot that worked */
  snapshotFiles: string[];
  /** HTTP status of the last refused snapshot (0: none) */
  snapshotRefused: number;
}

const HTML = `
<div class="rec-layout">
  <section class="panel rec-files" data-testid="recordings-panel">
    <div class="panel-head">
      <h2>Recordings</h2>
      <span class="count num" data-ref="count" data-testid="recordings-count">0</span>
      <span class="muted small num" data-ref="summary"></span>
      <div class="spacer"></div>
      <span class="snapshot-result" data-ref="snapResult" data-testid="snapshot-result" hidden></span>
      <button type="button" class="btn primary" data-ref="snapshot" data-testid="save-snapshot"
        title="write every device's ring buffer to a Parquet file now (POST /api/save_sensor_buffer)">Save buffer snapshot</button>
    </div>
    <div class="list" data-ref="list" data-testid="recordings-list"><div class="empty">loading…</div></div>
  </section>
  <section class="panel recplot" data-testid="recording-panel">
    <div class="panel-head">
      <h2 data-ref="title" data-testid="recording-title">No recording chosen</h2>
      <a class="btn" data-ref="download" data-testid="recording-download" hidden>Download .parquet</a>
      <div class="spacer"></div>
      <div class="legend" data-ref="legend"></div>
    </div>
    <div class="meta num muted" data-ref="meta"></div>
    <div class="chart" data-ref="plot" data-testid="recording-plot"></div>
    <div class="readout num muted" data-ref="readout"></div>
  </section>
</div>`;

const REFS = ["count", "summary", "snapResult", "snapshot", "list", "title", "download", "legend", "meta", "plot", "readout"] as const;

function durationS(f: RecordingInfo): number | null {
  if (f.start_ns == null || f.end_ns == null) return null;
  return (f.end_ns - f.start_ns) / 1e9;
}

/** The file name without the device prefix and the extension (the table has both). */
function shortName(f: RecordingInfo): string {
  let s = f.filename.replace(/\.parquet$/, "");
  if (f.snapshot) s = s.replace(/^buffer_/, "");
  if (f.device && s.startsWith(`${f.device}_`)) s = s.slice(f.device.length + 1);
  return s;
}

export function mount(root: HTMLElement, ctx: PageContext, route: Route): MountedPage {
  const els = mountHtml(root, HTML, REFS);
  const snapshotBtn = els.snapshot as HTMLButtonElement;
  const download = els.download as HTMLAnchorElement;
  const debug = ctx.expose<RecordingsDebug>({
    mounted: true,
    files: 0,
    listRefreshes: 0,
    plotsRendered: 0,
    plotted: null,
    snapshotRequests: 0,
    snapshotFiles: [],
    snapshotRefused: 0,
  });
  const plot = new RecordingPlot(els.plot, { legend: els.legend, meta: els.meta, readout: els.readout });
  let chosen: string | null = null;
  let fresh = new Set<string>();
  let loading: AbortController | null = null;
  let segmentsSeen = -1;
  let lastRefresh = 0;
  let refreshing: Promise<void> | null = null;

  const table = new DataTable<RecordingInfo>({
    key: (f) => f.filename,
    version: (f) => `${f.size_bytes}:${f.rows}:${f.error ?? ""}:${fresh.has(f.filename) ? 1 : 0}`,
    rowTestId: "recording-row",
    rowClass: (f) => [f.error ? "has-error" : "", fresh.has(f.filename) ? "fresh" : ""].join(" "),
    rowTitle: (f) => (f.error ? `${f.filename}: ${f.error}` : `${f.filename} · ${(f.channels ?? []).join(", ")}`),
    empty: "Nothing recorded yet.",
    onActivate: (f) => ctx.navigate("recordings", [f.filename]),
    columns: [
      {
        label: "file",
        className: "fname num",
        cell: (f) => h("span", {}, f.snapshot ? h("span", { class: "tag", "data-testid": "snapshot-tag" }, "snapshot") : null, shortName(f)),
      },
      { label: "device", width: "14%", cell: (f) => f.device },
      { label: "start", width: "150px", className: "num", cell: (f) => fmtTimeNs(f.start_ns) },
      { label: "duration", width: "76px", align: "r", className: "num", cell: (f) => fmtDuration(durationS(f)) },
      { label: "rows", width: "90px", align: "r", className: "num", cell: (f) => fmtInt(f.rows) },
      { label: "size", width: "80px", align: "r", className: "num", cell: (f) => fmtBytes(f.size_bytes) },
      {
        label: "errors",
        width: "22%",
        className: "err-cell",
        cell: (f) => (f.error ? h("span", { class: "bad", "data-testid": "recording-error" }, f.error) : h("span", { class: "muted" }, "—")),
        title: (f) => f.error ?? undefined,
      },
      {
        label: "",
        width: "34px",
        align: "r",
        cell: (f) =>
          h("a", { href: downloadUrl(f.filename), download: f.filename, class: "dl", title: `download ${f.filename}`, "data-testid": "recording-download-link" }, "↓"),
      },
    ],
  });
  els.list.replaceChildren(table.el);

  // ---- list ----------------------------------------------------------------------------------

  async function refreshList(): Promise<void> {
    let files: RecordingInfo[];
    try {
      files = await getRecordings();
      ctx.problems.clear(LIST_PROBLEM);
    } catch (err) {
      ctx.problems.report(err, LIST_PROBLEM);
      segmentsSeen = -1; // try again with the next status
      return;
    }
    if (!debug.mounted) return;
    // newest first: by when they end, so a snapshot written now is on top
    const end = (f: RecordingInfo): number => f.end_ns ?? f.start_ns ?? 0;
    files.sort((a, b) => end(b) - end(a) || b.filename.localeCompare(a.filename));
    table.setRows(files);
    table.select(chosen);
    lastRefresh = performance.now();
    debug.files = files.length;
    debug.listRefreshes++;
    const snaps = files.filter((f) => f.snapshot).length;
    const bytes = files.reduce((a, f) => a + f.size_bytes, 0);
    setText(els.count, String(files.length));
    setText(els.summary, `${files.length - snaps} segments · ${snaps} snapshots · ${fmtBytes(bytes)}`);
  }

  function refresh(): Promise<void> {
    refreshing ??= refreshList().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  // A new segment closed (or a while passed): list again.
  const stopStatus = ctx.status.subscribe((st) => {
    const segs = Object.values(st.recorder).reduce((a, r) => a + r.segments_closed, 0);
    if (segs !== segmentsSeen || performance.now() - lastRefresh > REFRESH_MS) {
      segmentsSeen = segs;
      void refresh();
    }
  });
  if (!ctx.status.last) void refresh();

  // ---- plot ----------------------------------------------------------------------------------

  async function open(filename: string | null): Promise<void> {
    loading?.abort();
    loading = null;
    chosen = filename;
    table.select(filename);
    if (!filename) {
      plot.clear();
      setText(els.title, "No recording chosen");
      download.hidden = true;
      return;
    }
    setText(els.title, filename);
    download.href = downloadUrl(filename);
    download.download = filename;
    download.hidden = false;
    plot.loading(filename);
    const ctrl = new AbortController();
    loading = ctrl;
    const width = Math.max(400, Math.floor(els.plot.getBoundingClientRect().width));
    let data: RangeQuery;
    try {
      data = await getRecordingData(filename, { max_points: Math.min(4000, Math.max(1000, width * 2)) }, ctrl.signal);
    } catch (err) {
      if (ctrl.signal.aborted) return; // another file was chosen, or the page was left
      loading = null;
      const { problem } = problemOf(err);
      plot.failed(`could not plot ${filename}: ${problem.status ? `${problem.status} ` : ""}${problem.title}`);
      ctx.problems.report(err);
      return;
    }
    loading = null;
    const names = data.channels.map((c) => c.name);
    plot.draw(data, (channel) => channelColor(names, channel));
    debug.plotsRendered = plot.plotsRendered;
    debug.plotted = filename;
  }

  // ---- snapshot ------------------------------------------------------------------------------

  snapshotBtn.addEventListener("click", () => void saveSnapshot());

  async function saveSnapshot(): Promise<void> {
    snapshotBtn.disabled = true;
    setText(snapshotBtn, "Saving…");
    els.snapResult.hidden = true;
    debug.snapshotRequests++;
    try {
      const result = await saveSensorBuffer();
      debug.snapshotFiles = result.files;
      fresh = new Set(result.files);
      els.snapResult.className = "snapshot-result ok";
      els.snapResult.replaceChildren(
        result.files.length
          ? h("span", {}, `saved ${result.files.length} file${result.files.length === 1 ? "" : "s"}: `, ...result.files.flatMap((f, i) => [i ? ", " : "", h("code", {}, f)]))
          : "nothing to save: the buffers are empty",
      );
      await refresh();
    } catch (err) {
      const { problem } = problemOf(err);
      debug.snapshotRefused = problem.status;
      els.snapResult.className = "snapshot-result bad";
      setText(els.snapResult, `not saved: ${problem.status ? `${problem.status} ` : ""}${problem.title}`);
      ctx.problems.report(err);
    } finally {
      els.snapResult.hidden = false;
      snapshotBtn.disabled = false;
      setText(snapshotBtn, "Save buffer snapshot");
    }
  }

  void open(route.params[0] ?? null);

  return {
    update(next: Route): void {
      const filename = next.params[0] ?? null;
      if (filename !== chosen) void open(filename);
    },
    unmount(): void {
      debug.mounted = false;
      loading?.abort();
      stopStatus();
      ctx.problems.clear(LIST_PROBLEM);
      plot.destroy();
    },
  };
}
