// The fleet server's live stream (/ws, src/rigwatch/fleet/hub.py): JSON text frames, first a
// snapshot of every machine that reported (columnar), then `machine_update` deltas numbered
// by `seq`, gathered into `machine_updates` frames (`?batch=1`: all updates queued for this
// client at each send, in order). A gap in the numbers means updates were missed: the client reconnects and starts
// again from a fresh snapshot. The server also sends a fresh snapshot by itself (reason
// "resync") when this client fell behind. Reconnects with backoff after a drop.

import type { ConnState } from "../live-client";
import type { Colour } from "./api";

export interface MachineUpdate {
  type: "machine_update";
  seq: number;
  machine_id: string;
  status: Colour;
  data: Record<string, number | null> | null;
  timestamp: string | null;
  reason?: string;
  accepted_ns?: number;
}

export interface Snapshot {
  type: "snapshot";
  seq: number;
  reason: string;
  machines: {
    machine_id: string[];
    status: Colour[];
    data: (Record<string, number | null> | null)[];
    timestamp: (string | null)[];
    reason: string[];
  };
}

export interface MachineUpdates {
  type: "machine_updates";
  updates: MachineUpdate[];
}

export interface FleetLiveHandlers {
  onSnapshot(s: Snapshot): void;
  onUpdate(u: MachineUpdate): void;
}

/** Counters for people and tests (`window.__rigwatch.live`). */
export interface FleetLiveDebug {
  state: ConnState;
  connects: number;
  snapshots: number;
  updates: number;
  /** gaps in `seq` seen (each one reconnects) */
  gaps: number;
  lastSeq: number;
}

export class FleetLive {
  private ws: WebSocket | null = null;
  private handlers = new Set<FleetLiveHandlers>();
  private stateFns = new Set<(s: ConnState, detail: string) => void>();
  private retryMs = 500;
  private timer = 0;
  private stopped = false;
  private lastSeq = -1;
  readonly debug: FleetLiveDebug = { state: "connecting", connects: 0, snapshots: 0, updates: 0, gaps: 0, lastSeq: -1 };
  /** every machine's newest state (snapshot + updates since): bounded by the fleet's size */
  private readonly latest = new Map<string, MachineUpdate>();
  private synced = false;

  constructor(
    private readonly token: () => string | null,
    private readonly onRefused: () => void,
  ) {}

  /** Calls `h` with the last snapshot (and the updates since) at once, then with new ones. */
  subscribe(h: FleetLiveHandlers): () => void {
    this.handlers.add(h);
    if (this.synced) h.onSnapshot(this.current());
    return () => this.handlers.delete(h);
  }

  onState(fn: (s: ConnState, detail: string) => void): void {
    this.stateFns.add(fn);
    fn(this.debug.state, "");
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.ws?.close();
    this.ws = null;
    this.setState("closed", "stopped");
  }

  /** Drops the connection and connects again (a fresh snapshot). */
  restart(): void {
    window.clearTimeout(this.timer);
    const old = this.ws;
    this.ws = null;
    old?.close();
    this.connect();
  }

  /** The state now, as a snapshot (for a page shown after the connection's snapshot). */
  current(): Snapshot {
    const all = [...this.latest.values()];
    return {
      type: "snapshot",
      seq: this.lastSeq,
      reason: "current",
      machines: {
        machine_id: all.map((u) => u.machine_id),
        status: all.map((u) => u.status),
        data: all.map((u) => u.data),
        timestamp: all.map((u) => u.timestamp),
        reason: all.map((u) => u.reason ?? ""),
      },
    };
  }

  private setState(s: ConnState, detail: string): void {
    this.debug.state = s;
    for (const fn of this.stateFns) fn(s, detail);
  }

  private connect(): void {
    if (this.stopped) return;
    const token = this.token();
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${proto}//${location.host}/ws?batch=1${token ? `&token=${encodeURIComponent(token)}` : ""}`;
    this.setState("connecting", url.replace(/token=[^&]+/, "token=…"));
    const ws = new WebSocket(url);
    this.ws = ws;
    this.lastSeq = -1;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.debug.connects++;
      this.retryMs = 500;
      this.setState("open", "");
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws || typeof ev.data !== "string") return;
      let msg: Snapshot | MachineUpdate | MachineUpdates;
      try {
        msg = JSON.parse(ev.data) as Snapshot | MachineUpdate | MachineUpdates;
      } catch {
        return;
      }
      if (msg.type === "machine_updates") {
        for (const u of msg.updates) {
          this.receive(u);
          if (this.ws !== ws) return; // a gap restarted the connection: drop the rest
        }
        return;
      }
      this.receive(msg);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (ev.code === 1008) {
        this.setState("closed", ev.reason || "refused");
        this.onRefused();
        return;
      }
      this.setState("closed", ev.reason || `closed (${ev.code})`);
      if (this.stopped) return;
      this.timer = window.setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10000);
    };
  }

  private receive(msg: Snapshot | MachineUpdate): void {
    if (msg.type === "snapshot") {
      this.debug.snapshots++;
      this.lastSeq = msg.seq;
      this.debug.lastSeq = msg.seq;
      this.synced = true;
      this.latest.clear();
      const m = msg.machines;
      for (let i = 0; i < m.machine_id.length; i++) {
        this.latest.set(m.machine_id[i], {
          type: "machine_update",
          seq: msg.seq,
          machine_id: m.machine_id[i],
          status: m.status[i],
          data: m.data[i],
          timestamp: m.timestamp[i],
          reason: m.reason[i],
        });
      }
      for (const h of this.handlers) h.onSnapshot(msg);
      return;
    }
    if (msg.type !== "machine_update") return;
    if (this.lastSeq < 0) return; // no snapshot yet: it will contain this
    if (msg.seq <= this.lastSeq) return; // seen
    if (msg.seq !== this.lastSeq + 1) {
      this.debug.gaps++;
      this.restart();
      return;
    }
    this.lastSeq = msg.seq;
    this.debug.lastSeq = msg.seq;
    this.debug.updates++;
    this.latest.set(msg.machine_id, msg);
    for (const h of this.handlers) h.onUpdate(msg);
  }
}
