// The acoustic camera's frames on the live WebSocket (see docs/live-protocol.md and the
// station's rigwatch.web.acoustics_feed / rigwatch.acoustics.pcm): `acoustic_map` (float32
// map, row-major [rows, cols]) and `audio` (PCM of the selected points, interleaved
// [n_samples, channels], int16 or float32 little-endian).

import { toNumber } from "./util";

type Msg = Record<string, unknown>;

export type MapQuantity = "spl_db" | "pseudo_spectrum";

/** A local maximum of a map: its cell, focus point (m) and value (the map's quantity). */
export interface MapPeak {
  row: number;
  col: number;
  value: number;
  positionM: [number, number, number];
}

/** One decoded `acoustic_map` frame. */
export interface AcousticMapFrame {
  seq: number;
  /** newest sample in the map, ms since the Unix epoch */
  timestampMs: number;
  rows: number;
  cols: number;
  /** rows x cols, row-major: dB re 20 uPa (spl_db) or a 0..1 pseudo-spectrum */
  values: Float32Array;
  quantity: MapQuantity;
  unit: string;
  method: string;
  band: string;
  fLowHz: number;
  fHighHz: number;
  computeMs: number;
  excluded: string[];
  /** strongest first */
  peaks: MapPeak[];
}

/** One decoded `audio` frame: the focused sound of every selection over the same samples. */
export interface AcousticAudioFrame {
  seq: number;
  /** index of the first sample in the acquisition's sample count */
  startIndex: number;
  sampleRateHz: number;
  /** selection id of each channel */
  selections: string[];
  /** samples per channel */
  length: number;
  /** per channel, Web Audio scale: 1.0 is `fullScale` */
  channels: Float32Array<ArrayBuffer>[];
  /** the signal value (Pa) of 1.0 */
  fullScale: number;
  clipped: number;
  /** the focus's own latency (delays and filter), ms */
  latencyMs: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function bytesOf(v: unknown, field: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new Error(`field ${field} is not binary`);
}

/** `bytes` checked to hold `n` items of `size` bytes, copied when their offset is not a
 * multiple of `size` (typed arrays need aligned views). */
function alignedBytes(bytes: Uint8Array, n: number, size: number): Uint8Array {
  if (bytes.byteLength < n * size) throw new Error(`payload too short: ${bytes.byteLength} < ${n * size} bytes`);
  return bytes.byteOffset % size === 0 ? bytes : bytes.slice(0, n * size);
}

function float32le(bytes: Uint8Array, n: number): Float32Array {
  const b = alignedBytes(bytes, n, 4);
  if (LITTLE_ENDIAN) return new Float32Array(b.buffer, b.byteOffset, n);
  const dv = new DataView(b.buffer, b.byteOffset, n * 4);
  return Float32Array.from({ length: n }, (_, i) => dv.getFloat32(i * 4, true));
}

function int16le(bytes: Uint8Array, n: number): Int16Array {
  const b = alignedBytes(bytes, n, 2);
  if (LITTLE_ENDIAN) return new Int16Array(b.buffer, b.byteOffset, n);
  const dv = new DataView(b.buffer, b.byteOffset, n * 2);
  return Int16Array.from({ length: n }, (_, i) => dv.getInt16(i * 2, true));
}

function shape2(m: Msg, what: string): [number, number] {
  const shape = m.shape as unknown[];
  if (!Array.isArray(shape) || shape.length !== 2) throw new Error(`${what} frame without a 2-D shape`);
  const a = toNumber(shape[0]);
  const b = toNumber(shape[1]);
  if (!(a >= 0 && b >= 0)) throw new Error(`${what} frame with shape ${JSON.stringify(shape)}`);
  return [a, b];
}

function position(v: unknown): [number, number, number] {
  const p = Array.isArray(v) ? v.map(toNumber) : [];
  return [p[0] ?? Number.NaN, p[1] ?? Number.NaN, p[2] ?? Number.NaN];
}

export function decodeMapFrame(m: Msg): AcousticMapFrame {
  const [rows, cols] = shape2(m, "acoustic_map");
  const dtype = m.dtype ?? "<f4";
  if (dtype !== "<f4") throw new Error(`acoustic_map: unsupported dtype ${String(dtype)}`);
  const values = float32le(bytesOf(m.data, "data"), rows * cols);
  const quantity = m.quantity === "pseudo_spectrum" ? "pseudo_spectrum" : "spl_db";
  const peaks = Array.isArray(m.peaks)
    ? (m.peaks as Msg[]).map((p) => ({
        row: toNumber(p.row),
        col: toNumber(p.col),
        value: toNumber(p.value),
        positionM: position(p.position_m),
      }))
    : [];
  return {
    seq: toNumber(m.seq),
    timestampMs: toNumber(m.timestamp_ns) / 1e6,
    rows,
    cols,
    values,
    quantity,
    unit: String(m.unit ?? ""),
    method: String(m.method ?? ""),
    band: String(m.band ?? ""),
    fLowHz: toNumber(m.f_low_hz),
    fHighHz: toNumber(m.f_high_hz),
    computeMs: toNumber(m.compute_ms),
    excluded: Array.isArray(m.excluded) ? m.excluded.map(String) : [],
    peaks,
  };
}

const INT16_MAX = 32767;

export function decodeAudioFrame(m: Msg): AcousticAudioFrame {
  const [n, nch] = shape2(m, "audio");
  const selections = Array.isArray(m.selections) ? m.selections.map(String) : [];
  if (selections.length !== nch) throw new Error(`audio: ${nch} channels but ${selections.length} selection ids`);
  const bytes = bytesOf(m.data, "data");
  const channels = Array.from({ length: nch }, () => new Float32Array(n));
  if (m.dtype === "<i2") {
    const ints = int16le(bytes, n * nch);
    for (let c = 0; c < nch; c++) {
      const out = channels[c];
      for (let i = 0, k = c; i < n; i++, k += nch) out[i] = ints[k] / INT16_MAX;
    }
  } else if (m.dtype === "<f4") {
    const floats = float32le(bytes, n * nch);
    for (let c = 0; c < nch; c++) {
      const out = channels[c];
      for (let i = 0, k = c; i < n; i++, k += nch) out[i] = floats[k];
    }
  } else {
    throw new Error(`audio: unsupported dtype ${String(m.dtype)}`);
  }
  return {
    seq: toNumber(m.seq),
    startIndex: toNumber(m.start_index),
    sampleRateHz: toNumber(m.sample_rate_hz),
    selections,
    length: n,
    channels,
    fullScale: toNumber(m.full_scale ?? 1),
    clipped: toNumber(m.clipped ?? 0),
    latencyMs: toNumber(m.latency_ms),
  };
}
