// Recorded Parquet segments: the list (newest first), a min/max plot of the chosen segment
// and download links.

import uPlot from "uplot";
import { type ParquetData, type ParquetFile, downloadUrl, getParquetData, getParquetFiles } from "./api";
import { type ChannelStyle, envelopeOptions } from "./chart";
import { byId, fmtBytes, fmtDuration, fmtInt, fmtRate, fmtTimeNs, fmtValue, h, setText } from "./util";

export type ColorFor = (device: string, channel: string) => string;

function durationS(f: ParquetFile): number | null {
  if (f.start_ns == null || f.end_ns == null) return null;
  return (f.end_ns - f.start_ns) / 1e9;
}

/** The file name without the device prefix and the extension (the table has both). */
function shortName(f: ParquetFile): string {
  let s = f.filename;
  if (f.device && s.startsWith(`${f.device}_`)) s = s.slice(f.device.length + 1);
  return s.replace(/\.parquet$/, "");
}

export class RecordingsPanel {
  private readonly list = byId("recordings-list");
  private readonly count = byId("recordings-count");
  private readonly plotEl = byId("recording-plot");
  private readonly title = byId("recording-title");
  private readonly meta = byId("recording-meta");
  private readonly legend = byId("recording-legend");
  private readonly readout = byId("recording-readout");
  private readonly download = byId<HTMLAnchorElement>("recording-download");
  private files: ParquetFile[] = [];
  private signature: string | null = null;
  private selected: string | null = null;
  private plot: uPlot | null = null;
  private loadToken = 0;
  plotsRendered = 0;

  constructor(private readonly colorFor: ColorFor) {
    new ResizeObserver(() => this.fit()).observe(this.plotEl);
    this.list.addEventListener("click", (ev) => {
      const target = ev.target as HTMLElement;
      if (target.closest("a")) return; // the download link does its own thing
      const row = target.closest<HTMLElement>("tr[data-filename]");
      if (row?.dataset.filename) void this.open(row.dataset.filename);
    });
    this.list.addEventListener("keydown", (ev) => {
      const row = (ev.target as HTMLElement).closest<HTMLElement>("tr[data-filename]");
      if (row?.dataset.filename && (ev.key === "Enter" || ev.key === " ")) {
        ev.preventDefault();
        void this.open(row.dataset.filename);
      }
    });
  }

  get fileCount(): number {
    return this.files.length;
  }

  async refresh(): Promise<void> {
    const files = await getParquetFiles();
    files.sort((a, b) => (b.start_ns ?? 0) - (a.start_ns ?? 0) || b.filename.localeCompare(a.filename));
    const sig = files.map((f) => `${f.filename}:${f.size_bytes}:${f.rows}:${f.error ?? ""}`).join("|");
    this.files = files;
    setText(this.count, String(files.length));
    if (sig === this.signature) return;
    this.signature = sig;
    this.renderList();
  }

  private renderList(): void {
    if (!this.files.length) {
      this.list.replaceChildren(h("div", { class: "empty" }, "No recorded segments yet."));
      return;
    }
    const rows = this.files.map((f) => {
      const tr = h(
        "tr",
        {
          "data-filename": f.filename,
          "data-testid": "recording-row",
          tabindex: 0,
          class: [f.filename === this.selected ? "selected" : "", f.error ? "has-error" : ""].join(" ").trim(),
          title: f.error ? `${f.filename}: ${f.error}` : `${f.filename} · ${fmtInt(f.rows)} rows · ${f.channels.join(", ")}`,
        },
        h("td", { class: "fname num" }, shortName(f)),
        h("td", {}, f.device),
        h("td", { class: "num" }, fmtTimeNs(f.start_ns).slice(11) || "—"),
        h("td", { class: "num r" }, fmtDuration(durationS(f))),
        h("td", { class: "num r" }, fmtBytes(f.size_bytes)),
        h(
          "td",
          { class: "r" },
          h("a", { href: downloadUrl(f.filename), download: f.filename, class: "dl", title: `download ${f.filename}`, "data-testid": "recording-download-link" }, "↓"),
        ),
      );
      return tr;
    });
    const table = h(
      "table",
      { class: "files" },
      h(
        "thead",
        {},
        h("tr", {}, h("th", {}, "segment"), h("th", {}, "device"), h("th", {}, "start"), h("th", { class: "r" }, "dur."), h("th", { class: "r" }, "size"), h("th", {}, "")),
      ),
      h("tbody", {}, ...rows),
    );
    this.list.replaceChildren(table);
  }

  async open(filename: string): Promise<void> {
    this.selected = filename;
    for (const tr of this.list.querySelectorAll<HTMLElement>("tr[data-filename]")) {
      tr.classList.toggle("selected", tr.dataset.filename === filename);
    }
    const token = ++this.loadToken;
    setText(this.title, filename);
    setText(this.meta, "loading…");
    this.plotEl.dataset.state = "loading";
    this.download.href = downloadUrl(filename);
    this.download.download = filename;
    this.download.hidden = false;
    try {
      const width = Math.max(400, Math.floor(this.plotEl.getBoundingClientRect().width));
      const data = await getParquetData(filename, { maxPoints: Math.min(4000, Math.max(1000, width * 2)) });
      if (token !== this.loadToken) return;
      this.draw(data);
    } catch (err) {
      if (token !== this.loadToken) return;
      this.plot?.destroy();
      this.plot = null;
      this.plotEl.dataset.state = "error";
      setText(this.meta, String(err instanceof Error ? err.message : err));
    }
  }

  private draw(d: ParquetData): void {
    const channels: ChannelStyle[] = d.channels.map((c) => ({ name: c.name, unit: c.unit, color: this.colorFor(d.device, c.name) }));
    const x = d.t_s;
    const isEpoch = x.length > 0 && x[0] > 1e8;
    const aligned: uPlot.AlignedData = [x];
    for (const c of d.channels) {
      const s = d.series[c.name] ?? { min: [], max: [] };
      aligned.push(s.max, s.min);
    }
    this.plot?.destroy();
    const r = this.plotEl.getBoundingClientRect();
    this.plot = new uPlot(
      envelopeOptions({
        channels,
        width: Math.max(300, Math.floor(r.width)),
        height: Math.max(140, Math.floor(r.height)),
        time: isEpoch,
        cursor: true,
        onCursor: (u) => this.onCursor(u, d),
      }),
      aligned,
      this.plotEl,
    );
    this.plotsRendered++;
    this.plotEl.dataset.state = "ready";
    this.plotEl.dataset.filename = d.filename;
    const span = x.length > 1 ? x[x.length - 1] - x[0] : 0;
    setText(
      this.meta,
      `${fmtRate(d.sample_rate_hz)} · ` +
        (d.rows_selected === d.rows_total ? `${fmtInt(d.rows_total)} rows` : `${fmtInt(d.rows_selected)}/${fmtInt(d.rows_total)} rows`) +
        ` · ${fmtDuration(span)} · ${d.bucket_size > 1 ? `min/max of ${fmtInt(d.bucket_size)}` : "raw"}`,
    );
    this.legend.replaceChildren(
      ...channels.map((c) => h("span", { class: "legend-item" }, h("i", { class: "swatch", style: `background:${c.color}` }), c.name)),
    );
    setText(this.readout, "drag to zoom · double-click to reset");
  }

  private onCursor(u: uPlot, d: ParquetData): void {
    const i = u.cursor.idx;
    if (i == null) {
      setText(this.readout, "drag to zoom · double-click to reset");
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
    setText(this.readout, `${tt}  ${parts.join("  ")}`);
  }

  private fit(): void {
    if (!this.plot) return;
    const r = this.plotEl.getBoundingClientRect();
    const width = Math.max(300, Math.floor(r.width));
    const height = Math.max(140, Math.floor(r.height));
    if (width !== this.plot.width || height !== this.plot.height) this.plot.setSize({ width, height });
  }
}
