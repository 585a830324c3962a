// This browser's hold on the station's control authority: the lease granted by
// POST /api/control/authority, renewed (the operator's heartbeat) a few times per lease period
// while it is held, released on request. It is one object for the whole app and outlives the
// Control page: going to another page does not let the lease lapse (a lapse while the stand is
// armed, running or holding aborts it). The lease is kept in sessionStorage, so a reload of
// the tab renews the same lease instead of losing it.

import { ApiError, type Authority, type CommandAuth, changeAuthority } from "./api";

const LEASE_KEY = "rigwatch.control.lease";
const TOKEN_KEY = "rigwatch.control.token";
/** Renewals per lease period: one lost or late renewal does not let the lease lapse. */
const RENEWALS_PER_LEASE = 3;
const MIN_RENEW_MS = 300;

function stored(key: string): string | null {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(key: string, value: string | null): void {
  try {
    if (value === null) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    /* private mode: nothing survives a reload */
  }
}

/** What the session reports to the page. */
export interface SessionEvent {
  /** "granted", "renewed", "released", "lost" (the station no longer accepts the lease) */
  kind: "granted" | "renewed" | "released" | "lost";
  authority: Authority | null;
  error?: unknown;
}

export class ControlSession {
  lease: string | null = stored(LEASE_KEY);
  /** the name this client was granted authority under ("" when it holds none) */
  holder = "";
  /** the operator token (Authorization: Bearer) for a station listening beyond localhost */
  token: string | null = stored(TOKEN_KEY);
  leaseS = 5;
  heartbeats = 0;
  heartbeatFailures = 0;
  private timer = 0;
  private readonly listeners = new Set<(e: SessionEvent) => void>();

  constructor() {
    if (this.lease) this.schedule(0); // a reload: renew the lease this tab held
  }

  get held(): boolean {
    return this.lease !== null;
  }

  auth(): CommandAuth {
    return { lease: this.lease, token: this.token };
  }

  setToken(token: string): void {
    this.token = token.trim() || null;
    store(TOKEN_KEY, this.token);
  }

  /** Calls `fn` on every change; returns the unsubscriber. */
  subscribe(fn: (e: SessionEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Asks for authority under `client`. Throws ApiError (409: another client holds it). */
  async request(client: string): Promise<Authority> {
    const out = await changeAuthority({ action: "request", client, lease: this.lease }, this.auth());
    this.take(out);
    this.emit({ kind: "granted", authority: out });
    return out;
  }

  /** Gives authority up. Throws ApiError (409: refused while armed, running or holding). */
  async release(): Promise<Authority> {
    const out = await changeAuthority({ action: "release", client: this.holder, lease: this.lease }, this.auth());
    this.drop();
    this.emit({ kind: "released", authority: out });
    return out;
  }

  private take(out: Authority): void {
    this.lease = out.lease ?? this.lease;
    this.holder = out.holder;
    this.leaseS = out.lease_s;
    store(LEASE_KEY, this.lease);
    this.schedule(this.periodMs());
  }

  private drop(): void {
    window.clearTimeout(this.timer);
    this.timer = 0;
    this.lease = null;
    this.holder = "";
    store(LEASE_KEY, null);
  }

  private periodMs(): number {
    return Math.max(MIN_RENEW_MS, (this.leaseS * 1000) / RENEWALS_PER_LEASE);
  }

  private schedule(ms: number): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.renew(), ms);
  }

  /** The heartbeat: renews the lease; a refusal (the lease lapsed or was taken) ends it. */
  private async renew(): Promise<void> {
    const lease = this.lease;
    if (!lease) return;
    try {
      const out = await changeAuthority({ action: "renew", client: this.holder, lease }, this.auth());
      if (this.lease !== lease) return; // released meanwhile
      this.heartbeats++;
      this.take(out);
      this.emit({ kind: "renewed", authority: out });
    } catch (err) {
      if (this.lease !== lease) return;
      this.heartbeatFailures++;
      if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
        this.drop();
        this.emit({ kind: "lost", authority: null, error: err });
        return;
      }
      this.schedule(this.periodMs() / 2); // no answer: try again soon, the lease may still hold
    }
  }

  private emit(e: SessionEvent): void {
    for (const fn of this.listeners) fn(e);
  }
}

let session: ControlSession | null = null;

/** The app's one control session (made on first use). */
export function controlSession(): ControlSession {
  session ??= new ControlSession();
  return session;
}
