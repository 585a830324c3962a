// A map over a focus grid, on a canvas: one rectangle per grid cell (edges half-way between
// the points' positions, so an uneven grid draws true to scale), axes in metres, a colour bar
// with its values, and markers (selected cells, peaks). The pipe surface arrives unrolled:
// columns along the pipe, rows around it (row 0 at the bottom, as the y axis grows upwards).
// Clicking a cell calls `onCell`; hovering calls `onHover`.

import { colourOf, niceTicks, tickLabel } from "./colormap";

/** The charts' look (components/charts.ts), without loading uPlot for this page. */
const THEME = {
  axis: "#9aa7b5",
  font: '11px "JetBrains Mono", "DejaVu Sans Mono", ui-monospace, Menlo, Consolas, monospace',
  labelFont: '600 11px system-ui, "Segoe UI", Roboto, sans-serif',
};

export interface HeatGrid {
  rows: number;
  cols: number;
  /** position of each column (m), `cols` values */
  xM: number[];
  /** position of each row (m), `rows` values */
  yM: number[];
  xLabel: string;
  yLabel: string;
}

/** What the colours mean: `lo` is the darkest colour, `hi` the brightest. */
export interface HeatScale {
  lo: number;
  hi: number;
  /** the colour bar's title */
  title: string;
}

export interface HeatMarker {
  row: number;
  col: number;
  label: string;
  /** selection: listened to; audible: the selection heard now; peak: a map maximum */
  kind: "selection" | "audible" | "peak";
}

export interface Cell {
  row: number;
  col: number;
}

const MARGIN = { left: 62, right: 104, top: 12, bottom: 42 };
const BAR_WIDTH = 14;
const BAR_GAP = 16;
const MIN_PLOT_H = 240;
const MAX_PLOT_H = 520;
const NAN_COLOUR = "#1b2430";
const MARKER_COLOUR: Record<HeatMarker["kind"], string> = {
  selection: "#ffffff",
  audible: "#4cc9f0",
  peak: "#06d6a0",
};

/** Cell edges around sorted centres: half-way between neighbours, half a step beyond the ends. */
function edgesOf(centres: number[]): number[] {
  const n = centres.length;
  if (n === 0) return [0, 1];
  if (n === 1) return [centres[0] - 0.05, centres[0] + 0.05];
  const out = [centres[0] - (centres[1] - centres[0]) / 2];
  for (let i = 0; i < n - 1; i++) out.push((centres[i] + centres[i + 1]) / 2);
  out.push(centres[n - 1] + (centres[n - 1] - centres[n - 2]) / 2);
  return out;
}

export class Heatmap {
  readonly canvas: HTMLCanvasElement;
  onCell: ((cell: Cell) => void) | null = null;
  onHover: ((cell: Cell | null) => void) | null = null;
  /** maps drawn (for tests and people) */
  draws = 0;
  private grid: HeatGrid | null = null;
  private xEdges: number[] = [];
  private yEdges: number[] = [];
  private levels: Float32Array | null = null;
  private scale: HeatScale = { lo: 0, hi: 1, title: "" };
  private markers: HeatMarker[] = [];
  private hover: Cell | null = null;
  private cssW = 0;
  private cssH = 0;
  private frame = 0;
  private readonly resizeObs: ResizeObserver;

  constructor(private readonly host: HTMLElement) {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "heatmap-canvas";
    host.append(this.canvas);
    this.resizeObs = new ResizeObserver(() => this.schedule());
    this.resizeObs.observe(host);
    this.canvas.addEventListener("mousemove", (ev) => this.setHover(this.cellAt(ev.offsetX, ev.offsetY)));
    this.canvas.addEventListener("mouseleave", () => this.setHover(null));
    this.canvas.addEventListener("click", (ev) => {
      const cell = this.cellAt(ev.offsetX, ev.offsetY);
      if (cell) this.onCell?.(cell);
    });
  }

  setGrid(grid: HeatGrid): void {
    this.grid = grid;
    this.xEdges = edgesOf(grid.xM);
    this.yEdges = edgesOf(grid.yM);
    this.levels = null;
    this.schedule();
  }

  /** Values to colour (rows x cols, row-major; NaN: no value) on `scale`. */
  setData(levels: Float32Array | null, scale: HeatScale): void {
    this.levels = levels;
    this.scale = scale;
    this.schedule();
  }

  setMarkers(markers: HeatMarker[]): void {
    this.markers = markers;
    this.schedule();
  }

  /** Centre of a cell in CSS pixels from the canvas's top-left corner. */
  cellCentre(cell: Cell): { x: number; y: number } {
    const r = this.cellRect(cell);
    return { x: r.x + r.w / 2, y: r.y + r.h / 2 };
  }

  destroy(): void {
    this.resizeObs.disconnect();
    window.cancelAnimationFrame(this.frame);
    this.canvas.remove();
  }

  // ---- geometry ------------------------------------------------------------------------------

  private plotBox(): { left: number; top: number; width: number; height: number } {
    return {
      left: MARGIN.left,
      top: MARGIN.top,
      width: Math.max(10, this.cssW - MARGIN.left - MARGIN.right),
      height: Math.max(10, this.cssH - MARGIN.top - MARGIN.bottom),
    };
  }

  private xRange(): [number, number] {
    const e = this.xEdges;
    return [Math.min(e[0], e[e.length - 1]), Math.max(e[0], e[e.length - 1])];
  }

  private yRange(): [number, number] {
    const e = this.yEdges;
    return [Math.min(e[0], e[e.length - 1]), Math.max(e[0], e[e.length - 1])];
  }

  private xPx(x: number): number {
    const b = this.plotBox();
    const [x0, x1] = this.xRange();
    return b.left + ((x - x0) / (x1 - x0 || 1)) * b.width;
  }

  private yPx(y: number): number {
    const b = this.plotBox();
    const [y0, y1] = this.yRange();
    return b.top + b.height - ((y - y0) / (y1 - y0 || 1)) * b.height;
  }

  /** A cell's rectangle, its edges on whole device pixels: neighbours share their edges
   * exactly, so no seam shows between them. */
  private cellRect(cell: Cell): { x: number; y: number; w: number; h: number } {
    const dpr = window.devicePixelRatio || 1;
    const snap = (v: number): number => Math.round(v * dpr) / dpr;
    const xa = snap(this.xPx(this.xEdges[cell.col]));
    const xb = snap(this.xPx(this.xEdges[cell.col + 1]));
    const ya = snap(this.yPx(this.yEdges[cell.row]));
    const yb = snap(this.yPx(this.yEdges[cell.row + 1]));
    return { x: Math.min(xa, xb), y: Math.min(ya, yb), w: Math.abs(xb - xa), h: Math.abs(yb - ya) };
  }

  private cellAt(px: number, py: number): Cell | null {
    const g = this.grid;
    if (!g) return null;
    const find = (edges: number[], toPx: (v: number) => number, p: number): number => {
      for (let i = 0; i < edges.length - 1; i++) {
        const a = toPx(edges[i]);
        const b = toPx(edges[i + 1]);
        if (p >= Math.min(a, b) && p < Math.max(a, b)) return i;
      }
      return -1;
    };
    const col = find(this.xEdges, (v) => this.xPx(v), px);
    const row = find(this.yEdges, (v) => this.yPx(v), py);
    return col >= 0 && row >= 0 ? { row, col } : null;
  }

  private setHover(cell: Cell | null): void {
    if (cell?.row === this.hover?.row && cell?.col === this.hover?.col) return;
    this.hover = cell;
    this.canvas.style.cursor = cell ? "pointer" : "default";
    this.onHover?.(cell);
    this.schedule();
  }

  /** The canvas's CSS size: the host's width; a height that keeps metres about true to scale
   * within bounds (a pipe is much longer than its half circumference). */
  private measure(): void {
    const w = Math.max(200, Math.floor(this.host.clientWidth));
    let plotH = MIN_PLOT_H;
    if (this.grid) {
      const [x0, x1] = this.xRange();
      const [y0, y1] = this.yRange();
      const plotW = w - MARGIN.left - MARGIN.right;
      const maxH = Math.max(MIN_PLOT_H, Math.min(MAX_PLOT_H, window.innerHeight * 0.55));
      plotH = Math.min(maxH, Math.max(MIN_PLOT_H, (plotW * (y1 - y0)) / (x1 - x0 || 1)));
    }
    const h = Math.round(plotH + MARGIN.top + MARGIN.bottom);
    if (w === this.cssW && h === this.cssH) return;
    this.cssW = w;
    this.cssH = h;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    this.canvas.style.width = `${w}px`;
    this.canvas.style.height = `${h}px`;
  }

  // ---- drawing -------------------------------------------------------------------------------

  private schedule(): void {
    if (this.frame) return;
    this.frame = window.requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  private draw(): void {
    this.measure();
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.cssW, this.cssH);
    const g = this.grid;
    if (!g) return;
    this.drawCells(ctx, g);
    this.drawAxes(ctx, g);
    this.drawColourBar(ctx);
    this.drawMarkers(ctx);
    if (this.levels) this.draws++;
  }

  private drawCells(ctx: CanvasRenderingContext2D, g: HeatGrid): void {
    const b = this.plotBox();
    ctx.fillStyle = NAN_COLOUR;
    ctx.fillRect(b.left, b.top, b.width, b.height);
    const v = this.levels;
    if (!v || v.length !== g.rows * g.cols) return;
    const { lo, hi } = this.scale;
    for (let r = 0; r < g.rows; r++) {
      for (let c = 0; c < g.cols; c++) {
        const colour = colourOf(v[r * g.cols + c], lo, hi);
        if (!colour) continue;
        const rect = this.cellRect({ row: r, col: c });
        ctx.fillStyle = colour;
        ctx.fillRect(rect.x, rect.y, rect.w, rect.h);
      }
    }
  }

  private drawAxes(ctx: CanvasRenderingContext2D, g: HeatGrid): void {
    const b = this.plotBox();
    ctx.strokeStyle = THEME.axis;
    ctx.fillStyle = THEME.axis;
    ctx.lineWidth = 1;
    ctx.strokeRect(b.left - 0.5, b.top - 0.5, b.width + 1, b.height + 1);
    ctx.font = THEME.font;
    const [x0, x1] = this.xRange();
    const xt = niceTicks(x0, x1, Math.max(2, Math.floor(b.width / 80)));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.beginPath();
    for (const x of xt) {
      const px = Math.round(this.xPx(x)) + 0.5;
      ctx.moveTo(px, b.top + b.height);
      ctx.lineTo(px, b.top + b.height + 4);
      ctx.fillText(tickLabel(x, xt), px, b.top + b.height + 6);
    }
    const [y0, y1] = this.yRange();
    const yt = niceTicks(y0, y1, Math.max(2, Math.floor(b.height / 40)));
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const y of yt) {
      const py = Math.round(this.yPx(y)) + 0.5;
      ctx.moveTo(b.left - 4, py);
      ctx.lineTo(b.left, py);
      ctx.fillText(tickLabel(y, yt), b.left - 6, py);
    }
    ctx.stroke();
    ctx.font = THEME.labelFont;
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(g.xLabel, b.left + b.width / 2, this.cssH - 2);
    ctx.save();
    ctx.translate(14, b.top + b.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = "middle";
    ctx.fillText(g.yLabel, 0, 0);
    ctx.restore();
  }

  private drawColourBar(ctx: CanvasRenderingContext2D): void {
    const b = this.plotBox();
    const { lo, hi, title } = this.scale;
    const x = b.left + b.width + BAR_GAP;
    const steps = Math.max(2, Math.round(b.height));
    for (let i = 0; i < steps; i++) {
      const v = hi - ((hi - lo) * (i + 0.5)) / steps;
      ctx.fillStyle = colourOf(v, lo, hi) ?? NAN_COLOUR;
      ctx.fillRect(x, b.top + (b.height * i) / steps, BAR_WIDTH, b.height / steps + 0.5);
    }
    ctx.strokeStyle = THEME.axis;
    ctx.strokeRect(x - 0.5, b.top - 0.5, BAR_WIDTH + 1, b.height + 1);
    const ticks = niceTicks(lo, hi, Math.max(2, Math.floor(b.height / 32)));
    ctx.fillStyle = THEME.axis;
    ctx.font = THEME.font;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    ctx.beginPath();
    for (const v of ticks) {
      const py = Math.round(b.top + b.height * (1 - (v - lo) / (hi - lo || 1))) + 0.5;
      ctx.moveTo(x + BAR_WIDTH, py);
      ctx.lineTo(x + BAR_WIDTH + 4, py);
      ctx.fillText(tickLabel(v, ticks), x + BAR_WIDTH + 6, py);
    }
    ctx.stroke();
    ctx.save();
    ctx.font = THEME.labelFont;
    ctx.translate(this.cssW - 8, b.top + b.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    ctx.fillText(title, 0, 0);
    ctx.restore();
  }

  private drawMarkers(ctx: CanvasRenderingContext2D): void {
    const g = this.grid;
    if (!g) return;
    const inside = (m: Cell): boolean => m.row >= 0 && m.row < g.rows && m.col >= 0 && m.col < g.cols;
    ctx.font = "600 10px system-ui, sans-serif";
    ctx.textBaseline = "bottom";
    ctx.textAlign = "center";
    // peaks under selections: a selected peak shows its selection
    const ordered = [...this.markers].sort((a, b) => (a.kind === "peak" ? 0 : 1) - (b.kind === "peak" ? 0 : 1));
    for (const m of ordered) {
      if (!inside(m)) continue;
      const r = this.cellRect(m);
      const cx = r.x + r.w / 2;
      const cy = r.y + r.h / 2;
      ctx.strokeStyle = MARKER_COLOUR[m.kind];
      ctx.fillStyle = MARKER_COLOUR[m.kind];
      if (m.kind === "peak") {
        const s = Math.max(3, Math.min(6, Math.min(r.w, r.h) / 2 - 1));
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        ctx.moveTo(cx - s, cy);
        ctx.lineTo(cx + s, cy);
        ctx.moveTo(cx, cy - s);
        ctx.lineTo(cx, cy + s);
        ctx.stroke();
      } else {
        ctx.lineWidth = m.kind === "audible" ? 2.5 : 2;
        ctx.strokeRect(r.x + 1, r.y + 1, Math.max(2, r.w - 2), Math.max(2, r.h - 2));
      }
      // peaks labelled below their cell, selections above: a selected peak shows both
      if (m.kind === "peak") this.label(ctx, m.label, cx, r.y + r.h + 15, MARKER_COLOUR[m.kind]);
      else this.label(ctx, m.label, cx, r.y - 2, MARKER_COLOUR[m.kind]);
    }
    if (this.hover && inside(this.hover)) {
      const r = this.cellRect(this.hover);
      ctx.strokeStyle = "rgba(255, 255, 255, 0.7)";
      ctx.lineWidth = 1;
      ctx.strokeRect(r.x + 0.5, r.y + 0.5, r.w - 1, r.h - 1);
    }
  }

  /** A small label with a dark backing, kept inside the canvas. */
  private label(ctx: CanvasRenderingContext2D, text: string, x: number, y: number, colour: string): void {
    if (!text) return;
    const w = ctx.measureText(text).width + 6;
    const top = Math.min(Math.max(1, y - 13), this.cssH - 14);
    const left = Math.min(Math.max(1, x - w / 2), this.cssW - w - 1);
    ctx.fillStyle = "rgba(11, 15, 20, 0.78)";
    ctx.fillRect(left, top, w, 13);
    ctx.fillStyle = colour;
    ctx.textBaseline = "top";
    ctx.textAlign = "left";
    ctx.fillText(text, left + 3, top + 1);
  }
}
