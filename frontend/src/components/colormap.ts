// The colour scale of maps: a dark-to-bright ramp (dark: quiet, bright: loud) that reads on
// the page's dark background, looked up from a 256-entry table, and "nice" axis ticks.

/** Anchor colours of the ramp, at equal steps from 0 (lowest level shown) to 1 (peak). */
const ANCHORS = [
  "#10142e", "#2a1f6b", "#5b2a8c", "#9c3087", "#d6456b", "#f47f45", "#fbc03c", "#fcf6a0",
];

function rgb(hex: string): [number, number, number] {
  const v = Number.parseInt(hex.slice(1), 16);
  return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
}

const LUT_SIZE = 256;

/** `LUT_SIZE` CSS colours, linearly interpolated between the anchors. */
const LUT: string[] = (() => {
  const stops = ANCHORS.map(rgb);
  const out: string[] = [];
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = (i / (LUT_SIZE - 1)) * (stops.length - 1);
    const k = Math.min(Math.floor(t), stops.length - 2);
    const f = t - k;
    const c = stops[k].map((a, j) => Math.round(a + (stops[k + 1][j] - a) * f));
    out.push(`rgb(${c[0]}, ${c[1]}, ${c[2]})`);
  }
  return out;
})();

/** Colour of a value between `lo` (darkest) and `hi` (brightest); clamped outside. NaN: null. */
export function colourOf(v: number, lo: number, hi: number): string | null {
  if (!Number.isFinite(v)) return v === -Infinity ? LUT[0] : null;
  const t = hi > lo ? (v - lo) / (hi - lo) : 1;
  const i = Math.round(Math.min(1, Math.max(0, t)) * (LUT_SIZE - 1));
  return LUT[i];
}

/** Tick values on [lo, hi] about `approx` apart in count, at 1, 2, 2.5 or 5 x 10^k steps. */
export function niceTicks(lo: number, hi: number, approx: number): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi)) || hi <= lo || approx < 1) return [];
  const raw = (hi - lo) / approx;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  const eps = step * 1e-9;
  for (let v = Math.ceil((lo - eps) / step) * step; v <= hi + eps; v += step) {
    out.push(Math.abs(v) < eps ? 0 : v);
  }
  return out;
}

/** A tick label with as many decimals as the ticks' step needs (at most 4). */
export function tickLabel(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  let d = 0;
  while (d < 4 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6) d++;
  return v.toFixed(d);
}
