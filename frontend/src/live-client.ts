// WebSocket client of the live stream (/ws, see docs/live-protocol.md): MessagePack frames,
// arrays as raw little-endian bytes. One connection for the whole page (the shell owns it and
// shows its state); pages hold subscriptions on it, one per device as the protocol allows,
// and end them when they are left. Reconnects with backoff and re-sends the subscriptions.
// The control part's frames (docs/control-api.md: `valve_state` to every client,
// `control_state` after `subscribe_control`, the replies to control messages) go to the
// control listeners.

import { decode, encode } from "@msgpack/msgpack";
import { type AcousticAudioFrame, type AcousticMapFrame, decodeAudioFrame, decodeMapFrame } from "./acoustic-frames";
import type { ControlState } from "./api";
import { toNumber } from "./util";

export type ConnState = "connecting" | "open" | "closed";

export interface Subscription {
  device: string;
  channels: string[];
  displayRateHz: number;
  fps: number;
}

export interface Subscribed {
  device: string;
  channels: string[];
  units: string[];
  sampleRateHz: number;
  bucketSize: number;
  fps: number;
}

/** One decoded `data` frame, de-interleaved into one column per channel. */
export interface DataFrame {
  device: string;
  seq: number;
  startIndex: number;
  endIndex: number;
  missed: number;
  sampleRateHz: number;
  bucketSize: number;
  channels: string[];
  /** Number of rows (buckets, or raw samples when bucketSize is 1). */
  rows: number;
  /** Seconds since the Unix epoch of each row's first sample. */
  t: Float64Array;
  /** Per channel: bucket minimum (the raw value when bucketSize is 1). */
  min: Float32Array[];
  /** Per channel: bucket maximum (the same array as `min` when bucketSize is 1). */
  max: Float32Array[];
  /** When the newest block entered the engine, ms since the Unix epoch (NaN if absent). */
  ingestMs: number;
}

/** What a subscription's owner is told. */
export interface SubscriptionHandlers {
  onSubscribed(msg: Subscribed): void;
  onData(frame: DataFrame): void;
  /** An `error` frame: for this device, or for no device in particular. */
  onServerError(code: string, message: string): void;
  onDecodeError?(err: unknown): void;
}

/** A page's hold on one device's stream. */
export interface LiveSubscription {
  /** Changes channels, display rate or fps (the server replaces the subscription). */
  update(sub: Omit<Subscription, "device">): void;
  /** Ends it: `unsubscribe` is sent and no more frames are delivered. */
  close(): void;
}

/** What the acoustic camera sends (`subscribe_acoustics`): maps, the focused sound. */
export interface AcousticSubscription {
  maps: boolean;
  audio: boolean;
}

/** What the acoustic subscription's owner is told. */
export interface AcousticHandlers {
  /** `acoustics_subscribed`: the server confirmed (frames from now on are of this one). */
  onSubscribed(sub: AcousticSubscription): void;
  onMap(frame: AcousticMapFrame): void;
  onAudio(frame: AcousticAudioFrame): void;
  /** An `error` frame (`no_acoustics`: the station has no camera). */
  onServerError(code: string, message: string): void;
  onDecodeError?(err: unknown): void;
}

/** A page's hold on the acoustic camera's frames (one per connection, as the protocol has it). */
export interface AcousticLiveSubscription {
  /** Asks for maps and/or audio (the server replaces the subscription). */
  update(sub: AcousticSubscription): void;
  /** Ends it: `unsubscribe_acoustics` is sent and no more frames are delivered. */
  close(): void;
}

interface HeldAcoustics {
  sub: AcousticSubscription;
  handlers: AcousticHandlers;
}

/** A frame of the control part (docs/control-api.md, WebSocket). */
export type ControlFrame =
  /** The whole control state (the body of GET /api/control), after `subscribe_control` and
   * after every change; `seq` increases with each state the station makes: a frame whose
   * `seq` is not above the last one applied is older. */
  | { type: "control_state"; seq: number; state: ControlState }
  /** After every acknowledged or failed command of the 9-output valve bank: one bit per
   * output (1 energised) as acknowledged, and the indices of outputs nobody knows. */
  | { type: "valve_state"; valves: number[]; unknown: number[] }
  /** Replies to this connection's own control messages. */
  | { type: "valve_response"; success: boolean; valves: number[]; message: string }
  | { type: "step_motor_response"; success: boolean; motorId: number; angle: number; response: string }
  | { type: "control_authority"; holder: string; lease: string | null; leaseS: number; expiresInS: number | null }
  | { type: "heartbeat"; holder: string; expiresInS: number }
  | { type: "system_mode"; mode: string }
  | { type: "control_unsubscribed" };

/** What a control listener is told. */
export interface ControlHandlers {
  onFrame(frame: ControlFrame): void;
  onDecodeError?(err: unknown): void;
}

/** A page's hold on the control frames. */
export interface ControlListener {
  /** Ends it: no more frames; `unsubscribe_control` is sent when no listener wants the
   * state any more. */
  close(): void;
}

interface HeldControl {
  handlers: ControlHandlers;
  /** wants `control_state` (the client sends `subscribe_control` for it) */
  state: boolean;
}

const numbers = (v: unknown): number[] => (Array.isArray(v) ? v.map(toNumber) : []);
const optNumber = (v: unknown): number | null => (v === null || v === undefined ? null : toNumber(v));

function isControlState(v: unknown): v is ControlState {
  if (v === null || typeof v !== "object") return false;
  const st = v as Record<string, unknown>;
  const obj = (x: unknown): boolean => x !== null && typeof x === "object";
  return obj(st.runner) && obj(st.authority) && obj(st.redlines) && Array.isArray(st.actuators) && Array.isArray(st.scenarios);
}

/** The control frame in `m`, or null when `m` is not one. Throws on a control frame whose
 * fields are not what the protocol says. */
export function decodeControlFrame(m: Msg): ControlFrame | null {
  switch (m.type) {
    case "control_state":
      if (!isControlState(m.state)) throw new Error("control_state without a control state");
      return { type: "control_state", seq: toNumber(m.seq), state: m.state };
    case "valve_state":
      if (!Array.isArray(m.valves)) throw new Error("valve_state without valves");
      return { type: "valve_state", valves: numbers(m.valves), unknown: numbers(m.unknown) };
    case "valve_response":
      return {
        type: "valve_response",
        success: m.success === true,
        valves: numbers(m.valves),
        message: String(m.message ?? ""),
      };
    case "step_motor_response":
      return {
        type: "step_motor_response",
        success: m.success === true,
        motorId: toNumber(m.motor_id),
        angle: toNumber(m.angle),
        response: String(m.response ?? ""),
      };
    case "control_authority":
      return {
        type: "control_authority",
        holder: String(m.holder ?? ""),
        lease: typeof m.lease === "string" ? m.lease : null,
        leaseS: toNumber(m.lease_s),
        expiresInS: optNumber(m.expires_in_s),
      };
    case "heartbeat":
      return { type: "heartbeat", holder: String(m.holder ?? ""), expiresInS: toNumber(m.expires_in_s) };
    case "system_mode":
      return { type: "system_mode", mode: String(m.mode ?? "") };
    case "control_unsubscribed":
      return { type: "control_unsubscribed" };
    default:
      return null;
  }
}

type Msg = Record<string, unknown>;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function asBytes(v: unknown, field: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new Error(`field ${field} is not binary`);
}

/** Float32 view of little-endian bytes; copies when the bytes are not 4-byte aligned. */
export function f32(bytes: Uint8Array, n: number): Float32Array {
  if (bytes.byteLength < n * 4) throw new Error(`float32 payload too short: ${bytes.byteLength} < ${n * 4}`);
  if (!LITTLE_ENDIAN) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, n * 4);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  if (bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  return new Float32Array(bytes.slice(0, n * 4).buffer);
}

/** Int64 nanoseconds (little-endian bytes) to Number seconds since the epoch. */
export function nsToSeconds(bytes: Uint8Array, n: number): Float64Array {
  if (bytes.byteLength < n * 8) throw new Error(`int64 payload too short: ${bytes.byteLength} < ${n * 8}`);
  const out = new Float64Array(n);
  if (n === 0) return out;
  let ints: BigInt64Array;
  if (LITTLE_ENDIAN) {
    ints =
      bytes.byteOffset % 8 === 0
        ? new BigInt64Array(bytes.buffer, bytes.byteOffset, n)
        : new BigInt64Array(bytes.slice(0, n * 8).buffer);
  } else {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, n * 8);
    ints = new BigInt64Array(n);
    for (let i = 0; i < n; i++) ints[i] = dv.getBigInt64(i * 8, true);
  }
  // Subtract a whole-second base as BigInt first so the fraction keeps full precision.
  const base = ints[0] - (ints[0] % 1_000_000_000n);
  const baseS = Number(base / 1_000_000_000n);
  for (let i = 0; i < n; i++) out[i] = baseS + Number(ints[i] - base) / 1e9;
  return out;
}

/** De-interleaves row-major [rows, nch] float32 into one column per channel. */
function columns(flat: Float32Array, rows: number, nch: number): Float32Array[] {
  const cols: Float32Array[] = [];
  for (let c = 0; c < nch; c++) {
    const col = new Float32Array(rows);
    for (let r = 0, k = c; r < rows; r++, k += nch) col[r] = flat[k];
    cols.push(col);
  }
  return cols;
}

export function decodeDataFrame(m: Msg): DataFrame {
  const shape = m.shape as unknown[];
  if (!Array.isArray(shape) || shape.length !== 2) throw new Error("data frame without [rows, channels] shape");
  const rows = toNumber(shape[0]);
  const nch = toNumber(shape[1]);
  const dtype = m.dtype ?? "<f4";
  if (dtype !== "<f4") throw new Error(`unsupported dtype ${String(dtype)}`);
  const channels = (m.channels as string[]) ?? [];
  if (channels.length !== nch) throw new Error(`shape says ${nch} channels, got ${channels.length} names`);
  const bucketSize = toNumber(m.bucket_size ?? 1);
  let min: Float32Array[];
  let max: Float32Array[];
  if (m.min !== undefined && m.max !== undefined) {
    min = columns(f32(asBytes(m.min, "min"), rows * nch), rows, nch);
    max = columns(f32(asBytes(m.max, "max"), rows * nch), rows, nch);
  } else {
    min = columns(f32(asBytes(m.data, "data"), rows * nch), rows, nch);
    max = min;
  }
  const ingest = toNumber(m.ingest_ns);
  return {
    device: String(m.device),
    seq: toNumber(m.seq),
    startIndex: toNumber(m.start_index),
    endIndex: toNumber(m.end_index),
    missed: toNumber(m.missed ?? 0),
    sampleRateHz: toNumber(m.sample_rate_hz),
    bucketSize,
    channels,
    rows,
    t: nsToSeconds(asBytes(m.t_ns, "t_ns"), rows),
    min,
    max,
    ingestMs: Number.isFinite(ingest) ? ingest / 1e6 : Number.NaN,
  };
}

interface Held {
  sub: Subscription;
  handlers: SubscriptionHandlers;
}

export class LiveClient {
  private ws: WebSocket | null = null;
  /** what pages hold, by device */
  private readonly held = new Map<string, Held>();
  /** the acoustic camera's subscription, if a page holds it */
  private acoustic: HeldAcoustics | null = null;
  /** who listens to the control frames */
  private readonly control = new Set<HeldControl>();
  private backoffMs = 500;
  private retryTimer = 0;
  private stopped = true;
  private connState: ConnState = "closed";
  private stateDetail = "";
  private readonly stateListeners = new Set<(state: ConnState, detail: string) => void>();

  constructor(private readonly url: string) {}

  static defaultUrl(): string {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/ws`;
  }

  get state(): ConnState {
    return this.connState;
  }

  /** Calls `fn` now with the current state and on every change; returns the unsubscriber. */
  onState(fn: (state: ConnState, detail: string) => void): () => void {
    this.stateListeners.add(fn);
    fn(this.connState, this.stateDetail);
    return () => this.stateListeners.delete(fn);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.retryTimer);
    this.ws?.close();
    this.ws = null;
    this.setState("closed", "stopped");
  }

  /** Subscribes to a device's frames; a second subscription of the same device replaces the
   * first (the protocol allows one per device). */
  subscribe(sub: Subscription, handlers: SubscriptionHandlers): LiveSubscription {
    const held: Held = { sub: { ...sub }, handlers };
    this.held.set(sub.device, held);
    this.sendSubscribe(held.sub);
    return {
      update: (next) => {
        if (this.held.get(sub.device) !== held) return;
        held.sub = { ...next, device: sub.device };
        this.sendSubscribe(held.sub);
      },
      close: () => {
        if (this.held.get(sub.device) !== held) return;
        this.held.delete(sub.device);
        this.send({ type: "unsubscribe", device: sub.device });
      },
    };
  }

  /** Subscribes to the acoustic camera's maps and audio; a second subscription replaces the
   * first. */
  subscribeAcoustics(sub: AcousticSubscription, handlers: AcousticHandlers): AcousticLiveSubscription {
    const held: HeldAcoustics = { sub: { ...sub }, handlers };
    this.acoustic = held;
    this.sendAcoustic(held.sub);
    return {
      update: (next) => {
        if (this.acoustic !== held) return;
        held.sub = { ...next };
        this.sendAcoustic(held.sub);
      },
      close: () => {
        if (this.acoustic !== held) return;
        this.acoustic = null;
        this.send({ type: "unsubscribe_acoustics" });
      },
    };
  }

  /** Delivers the control part's frames to `handlers`: `valve_state` and replies always;
   * with `state`, also `control_state` (the client subscribes while any listener wants it,
   * again after each reconnection: the answer is the state of that moment). */
  listenControl(handlers: ControlHandlers, opts: { state: boolean }): ControlListener {
    const held: HeldControl = { handlers, state: opts.state };
    const wanted = this.wantsControlState();
    this.control.add(held);
    if (held.state && !wanted) this.send({ type: "subscribe_control" });
    return {
      close: () => {
        if (!this.control.delete(held)) return;
        if (held.state && !this.wantsControlState()) this.send({ type: "unsubscribe_control" });
      },
    };
  }

  private wantsControlState(): boolean {
    for (const c of this.control) if (c.state) return true;
    return false;
  }

  private sendAcoustic(sub: AcousticSubscription): void {
    this.send({ type: "subscribe_acoustics", maps: sub.maps, audio: sub.audio });
  }

  private sendSubscribe(sub: Subscription): void {
    this.send({
      type: "subscribe",
      device: sub.device,
      channels: sub.channels,
      display_rate_hz: sub.displayRateHz,
      fps: sub.fps,
    });
  }

  private send(msg: Msg): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(encode(msg));
  }

  private setState(state: ConnState, detail: string): void {
    this.connState = state;
    this.stateDetail = detail;
    for (const fn of this.stateListeners) fn(state, detail);
  }

  private connect(): void {
    if (this.stopped) return;
    this.setState("connecting", this.url);
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this.setState("closed", String(err));
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.backoffMs = 500;
      this.setState("open", this.url);
      for (const held of this.held.values()) this.sendSubscribe(held.sub);
      if (this.acoustic) this.sendAcoustic(this.acoustic.sub);
      if (this.wantsControlState()) this.send({ type: "subscribe_control" });
    };
    ws.onmessage = (ev: MessageEvent) => this.onMessage(ev.data);
    ws.onclose = (ev: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.setState("closed", ev.reason || `code ${ev.code}`);
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      // onclose follows and schedules the reconnect.
    };
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    window.clearTimeout(this.retryTimer);
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  private onMessage(data: unknown): void {
    let m: Msg;
    try {
      const raw = data instanceof ArrayBuffer ? decode(new Uint8Array(data)) : JSON.parse(String(data));
      if (raw === null || typeof raw !== "object") throw new Error("message is not a map");
      m = raw as Msg;
    } catch (err) {
      for (const held of this.held.values()) held.handlers.onDecodeError?.(err);
      this.acoustic?.handlers.onDecodeError?.(err);
      for (const c of this.control) c.handlers.onDecodeError?.(err);
      return;
    }
    if (this.onAcousticMessage(m)) return;
    if (this.onControlMessage(m)) return;
    // Frames of a device nobody holds may still be in flight after an unsubscribe: dropped.
    const held = typeof m.device === "string" ? this.held.get(m.device) : undefined;
    try {
      switch (m.type) {
        case "data":
          held?.handlers.onData(decodeDataFrame(m));
          break;
        case "subscribed":
          held?.handlers.onSubscribed({
            device: String(m.device),
            channels: (m.channels as string[]) ?? [],
            units: (m.units as string[]) ?? [],
            sampleRateHz: toNumber(m.sample_rate_hz),
            bucketSize: toNumber(m.bucket_size),
            fps: toNumber(m.fps),
          });
          break;
        case "error": {
          const code = String(m.code ?? "error");
          const message = String(m.message ?? "");
          const targets = held ? [held] : [...this.held.values()];
          for (const t of targets) t.handlers.onServerError(code, message);
          if (!held) this.acoustic?.handlers.onServerError(code, message);
          break;
        }
        default:
          break; // pong, unsubscribed, sensors: nothing to do here
      }
    } catch (err) {
      held?.handlers.onDecodeError?.(err);
    }
  }

  /** Frames of the control part (true: the message was one of them). `control_state` goes
   * only to the listeners that want it (it may still be in flight after they left). */
  private onControlMessage(m: Msg): boolean {
    let frame: ControlFrame | null;
    try {
      frame = decodeControlFrame(m);
    } catch (err) {
      for (const c of this.control) c.handlers.onDecodeError?.(err);
      return true;
    }
    if (frame === null) return false;
    for (const c of [...this.control]) {
      if (frame.type === "control_state" && !c.state) continue;
      try {
        c.handlers.onFrame(frame);
      } catch (err) {
        c.handlers.onDecodeError?.(err);
      }
    }
    return true;
  }

  /** Frames of the acoustic camera (true: the message was one of them). Frames still in
   * flight after the subscription ended are dropped. */
  private onAcousticMessage(m: Msg): boolean {
    const held = this.acoustic;
    let deliver: (() => void) | null = null;
    switch (m.type) {
      case "acoustic_map":
        deliver = () => held?.handlers.onMap(decodeMapFrame(m));
        break;
      case "audio":
        deliver = () => held?.handlers.onAudio(decodeAudioFrame(m));
        break;
      case "acoustics_subscribed":
        deliver = () => held?.handlers.onSubscribed({ maps: m.maps === true, audio: m.audio === true });
        break;
      case "error":
        if (m.code !== "no_acoustics") return false;
        deliver = () => held?.handlers.onServerError(String(m.code), String(m.message ?? ""));
        break;
      case "acoustics_unsubscribed":
        return true;
      default:
        return false;
    }
    if (!held) return true;
    try {
      deliver();
    } catch (err) {
      held.handlers.onDecodeError?.(err);
    }
    return true;
  }
}
