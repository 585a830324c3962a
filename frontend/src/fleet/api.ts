// REST client of the fleet server (src/rigwatch/fleet/routes_api.py, schemas.py). Requests
// carry the login token (`Authorization: Bearer`); failures throw the station client's
// ApiError with the server's RFC 9457 problem details (read by the station client's
// problemFromResponse, field problems included), so the shared problem display shows them.
// A 401 tells the shell (login needed) through `onUnauthorized`; one of a request sent
// without a token throws LoginRequired (no token was refused: the login form is all there is
// to show).

import { ApiError, type Problem, problemFromResponse } from "../api";
import { settings } from "../util";

export type Colour = "green" | "yellow" | "red" | "black" | "grey";
export type AlertState = "active" | "acknowledged" | "cleared";
export type Severity = "warning" | "critical";
export type Role = "viewer" | "operator" | "admin";

/** GET /api/fleet/map: index i of every list is one machine. */
export interface FleetMap {
  count: number;
  id: string[];
  name: string[];
  colour: Colour[];
  latitude: (number | null)[];
  longitude: (number | null)[];
}

export interface Machine {
  id: string;
  name: string;
  type: string;
  site: string;
  latitude: number | null;
  longitude: number | null;
  tags: Record<string, string>;
  created_at: string;
}

export interface Latest {
  machine_id: string;
  colour: Colour;
  reason: string;
  timestamp: string | null;
  received_at: string | null;
  last_fresh_at: string | null;
  values: Record<string, number>;
  /** rule id -> ok, warning, critical, unknown */
  metrics: Record<string, string>;
  info: Record<string, unknown> | null;
}

export interface MetricHistory {
  machine_id: string;
  metric: string;
  resolution: "raw" | "hour";
  t: string[];
  value: number[];
  backfill?: boolean[] | null;
  min?: number[] | null;
  max?: number[] | null;
  count?: number[] | null;
  truncated: boolean;
}

export interface Alert {
  id: string;
  machine_id: string;
  rule_id: string;
  metric: string | null;
  value: number | null;
  severity: Severity;
  peak_severity: Severity;
  state: AlertState;
  message: string;
  opened_at: string;
  last_seen_at: string;
  count: number;
  escalated_at: string | null;
  acknowledged_by: string | null;
  acknowledged_at: string | null;
  acknowledged_comment: string | null;
  cleared_by: string | null;
  cleared_at: string | null;
  cleared_comment: string | null;
}

export type Threshold = number | [number, number];

/** A metric rule of GET /api/rules (src/rigwatch/fleet/rules.py MetricRule). */
export interface MetricRule {
  id: string | null;
  metric: string;
  unit: string;
  condition: "above" | "below" | "outside";
  warning: Threshold | null;
  critical: Threshold | null;
  hysteresis: number;
  description: string;
}

export interface RuleSet {
  machine: { grey_after_s: number };
  rules: MetricRule[];
}

export interface TokenOut {
  token: string;
  username: string;
  role: Role;
  expires_at: string;
}

// ---- the login token ------------------------------------------------------------------------

const TOKEN_KEY = "fleet.token";
const USER_KEY = "fleet.user";

export interface Session {
  token: string;
  username: string;
  role: Role | "";
}

export const session = {
  get(): Session | null {
    const token = settings.get(TOKEN_KEY);
    if (!token) return null;
    const [username = "", role = ""] = (settings.get(USER_KEY) ?? "").split("\u0000");
    return { token, username, role: role as Role | "" };
  },
  set(s: Session): void {
    settings.set(TOKEN_KEY, s.token);
    settings.set(USER_KEY, `${s.username}\u0000${s.role}`);
  },
  clear(): void {
    settings.set(TOKEN_KEY, "");
    settings.set(USER_KEY, "");
  },
};

let unauthorized: (problem: Problem) => void = () => undefined;

/** Called when a request is answered 401 (no, wrong or expired token). */
export function onUnauthorized(fn: (problem: Problem) => void): void {
  unauthorized = fn;
}

// ---- requests -------------------------------------------------------------------------------

/** A request sent without a login token was answered 401: the server wants a login (no
 * anonymous reading). Nothing was refused, so the shell shows the login form and no problem. */
export class LoginRequired extends ApiError {
  constructor(request: string, problem: Problem) {
    super(request, problem);
    this.name = "LoginRequired";
  }
}

interface RequestOpts {
  body?: unknown;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** no token (login) */
  anonymous?: boolean;
}

async function request<T>(method: "GET" | "POST", url: string, opts: RequestOpts = {}): Promise<T> {
  const what = `${method} ${url.split("?")[0]}`;
  const timeoutMs = opts.timeoutMs ?? 15000;
  const ctrl = new AbortController();
  const timer = window.setTimeout(() => ctrl.abort(), timeoutMs);
  const onAbort = (): void => ctrl.abort();
  opts.signal?.addEventListener("abort", onAbort);
  const headers: Record<string, string> = { Accept: "application/json, application/problem+json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  const s = opts.anonymous ? null : session.get();
  if (s) headers.Authorization = `Bearer ${s.token}`;
  try {
    const resp = await fetch(url, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: ctrl.signal,
    });
    if (!resp.ok) {
      const problem = await problemFromResponse(resp);
      if (resp.status === 401 && !opts.anonymous) {
        unauthorized(problem);
        if (!s) throw new LoginRequired(what, problem);
      }
      throw new ApiError(what, problem);
    }
    return (await resp.json()) as T;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (opts.signal?.aborted) throw err;
    const timedOut = ctrl.signal.aborted;
    throw new ApiError(what, {
      type: "about:blank",
      title: timedOut ? "No answer" : "Fleet server unreachable",
      status: 0,
      detail: timedOut ? `no answer within ${timeoutMs / 1000} s` : `the request failed: ${String(err)}`,
    });
  } finally {
    window.clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

const enc = encodeURIComponent;

function withQuery(url: string, query: Record<string, string | number | string[] | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null) continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return s ? `${url}?${s}` : url;
}

// ---- the endpoints the dashboard uses -------------------------------------------------------

export const login = (username: string, password: string): Promise<TokenOut> =>
  request("POST", "/api/auth/login", { body: { username, password }, anonymous: true });

export async function logout(): Promise<void> {
  const s = session.get();
  if (!s) return;
  await fetch("/api/auth/logout", { method: "POST", headers: { Authorization: `Bearer ${s.token}` } }).catch(
    () => undefined,
  );
}

export const getFleetMap = (signal?: AbortSignal): Promise<FleetMap> =>
  request("GET", "/api/fleet/map", { timeoutMs: 60000, signal });

export const getMachine = (id: string): Promise<Machine> => request("GET", `/api/machines/${enc(id)}`);

export const getLatest = (id: string): Promise<Latest> => request("GET", `/api/machines/${enc(id)}/latest`);

export const getRules = (): Promise<RuleSet> => request("GET", "/api/rules");

export function getHistory(id: string, metric: string, start: Date, signal?: AbortSignal): Promise<MetricHistory> {
  const url = withQuery(`/api/machines/${enc(id)}/history`, { metric, start: start.toISOString(), limit: 20000 });
  return request("GET", url, { timeoutMs: 30000, signal });
}

export interface AlertFilter {
  machine_id?: string;
  state?: AlertState[];
  severity?: Severity;
  limit?: number;
}

export const getAlerts = (f: AlertFilter = {}): Promise<Alert[]> =>
  request("GET", withQuery("/api/alerts", { ...f }));

export const acknowledgeAlert = (id: string, comment: string): Promise<Alert> =>
  request("POST", `/api/alerts/${enc(id)}/acknowledge`, { body: { comment } });

export const clearAlert = (id: string, comment: string): Promise<Alert> =>
  request("POST", `/api/alerts/${enc(id)}/clear`, { body: { comment } });
