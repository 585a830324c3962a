// REST client of the station. The types come from the station's OpenAPI document
// (`src/generated/api.ts`, written by openapi-typescript at build time from
// `rigwatch openapi`): a field renamed in a Python response model fails `npm run build`.
// The request functions are ours (fetch); every one of them returns the parsed body or throws
// ApiError, which carries the RFC 9457 problem details the station answers errors with.

import type { components, paths } from "./generated/api";

type Schemas = components["schemas"];

export type Hello = Schemas["Hello"];
export type DeviceStatus = Schemas["DeviceStatus"];
export type DeviceState = DeviceStatus["state"];
export type RecorderStatus = Schemas["RecorderStatus"];
export type RecorderState = RecorderStatus["state"];
export type StationStatus = Schemas["StationStatus"];
export type BufferStatus = Schemas["BufferStatus"];
export type RecordingInfo = Schemas["RecordingInfo"];
export type RangeQuery = Schemas["RangeQuery"];
export type Problem = Schemas["Problem"];
export type FieldProblem = Schemas["FieldProblem"];
export type AcousticsState = Schemas["AcousticsOut"];
export type AcousticGrid = Schemas["GridOut"];
export type AcousticParameters = Schemas["ParametersOut"];
export type AcousticParametersChange = Schemas["ParametersIn"];
export type AcousticMethod = AcousticParameters["method"];
export type BandConfig = Schemas["BandConfig"];
export type BandKind = BandConfig["kind"];
export type AcousticSelection = Schemas["SelectionOut"];
export type ControlState = Schemas["ControlOut"];
export type RunnerStatus = Schemas["RunnerOut"];
export type Authority = Schemas["AuthorityOut"];
export type AuthorityChange = Schemas["AuthorityIn"];
export type Actuator = Schemas["ActuatorOut"];
export type ActuatorStatus = Actuator["status"];
export type RedlineTrip = Schemas["TripOut"];
export type AuditEntry = Schemas["AuditEntryOut"];
export type ScenarioStarted = Schemas["ScenarioOut"];

// ---- what the OpenAPI document says about each operation ---------------------------------

type Method = "get" | "post" | "delete";
/** Paths that have an operation for `M`. */
type PathWith<M extends Method> = {
  [P in keyof paths]: paths[P][M] extends { responses: unknown } ? P : never;
}[keyof paths];
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
/** The JSON body of the 200 answer. */
type Ok<O> = O extends { responses: { 200: { content: { "application/json": infer T } } } } ? T : never;
type QueryOf<O> = O extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;
type PathParamsOf<O> = O extends { parameters: { path: infer A } } ? A : never;
type BodyOf<O> = O extends { requestBody?: { content: { "application/json": infer B } } } ? B : never;

// ---- errors ------------------------------------------------------------------------------

/** A failed request: the problem details the server sent, or one made up for what went wrong
 * on the way (no answer, not JSON). */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;
  /** "GET /api/status" */
  readonly request: string;

  constructor(request: string, problem: Problem) {
    super(`${request}: ${problem.status ? `${problem.status} ` : ""}${problem.title}: ${problem.detail}`);
    this.name = "ApiError";
    this.request = request;
    this.status = problem.status;
    this.problem = problem;
  }
}

/** Whether `v` (a parsed JSON body) is RFC 9457 problem details: title, status and detail. */
function isProblem(v: unknown): v is Problem {
  if (v === null || typeof v !== "object") return false;
  const p = v as Record<string, unknown>;
  return typeof p.title === "string" && typeof p.status === "number" && typeof p.detail === "string";
}

/** The problem a response carries; a made-up one (its status, the start of its body) when
 * its body is not problem details. Invalid fields come as `{field, reason}` (the station) or
 * `{field, message}` (the fleet server): both are read as `{field, reason}`. */
export async function problemFromResponse(resp: Response): Promise<Problem> {
  const text = await resp.text().catch(() => "");
  try {
    const body: unknown = JSON.parse(text);
    if (isProblem(body)) {
      if (!body.errors) return body;
      const errors = (body.errors as unknown as Record<string, string | undefined>[]).map((e) => ({
        field: e.field ?? "",
        reason: e.reason ?? e.message ?? "",
      }));
      return { ...body, errors };
    }
  } catch {
    /* not JSON: described below */
  }
  const snippet = text.replace(/\s+/g, " ").trim().slice(0, 240);
  return {
    type: "about:blank",
    title: resp.statusText || "Error",
    status: resp.status,
    detail: snippet ? `the answer was not problem details: ${snippet}` : "the answer had no body",
  };
}

interface RequestOpts {
  body?: unknown;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** more request headers (the control lease) */
  headers?: Record<string, string>;
}

async function request<T>(method: "GET" | "POST" | "DELETE", url: string, opts: RequestOpts = {}): Promise<T> {
  const what = `${method} ${url.split("?")[0]}`;
  const timeoutMs = opts.timeoutMs ?? 8000;
  const ctrl = new AbortController();
  const timer = window.setTimeout(() => ctrl.abort(), timeoutMs);
  const onAbort = (): void => ctrl.abort();
  opts.signal?.addEventListener("abort", onAbort);
  const headers: Record<string, string> = { Accept: "application/json, application/problem+json", ...opts.headers };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  let resp: Response;
  try {
    resp = await fetch(url, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: ctrl.signal,
    });
    if (!resp.ok) throw new ApiError(what, await problemFromResponse(resp));
    return (await resp.json()) as T;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    if (opts.signal?.aborted) throw err; // the caller gave up: not a problem to show
    const timedOut = ctrl.signal.aborted;
    throw new ApiError(what, {
      type: "about:blank",
      title: timedOut ? "No answer" : "Station unreachable",
      status: 0,
      detail: timedOut ? `no answer within ${timeoutMs / 1000} s` : `the request failed: ${String(err)}`,
    });
  } finally {
    window.clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

/** `/api/x/{name}` with its parameters filled in (encoded). */
function fill<P extends keyof paths>(path: P, params: Record<string, string>): string {
  return (path as string).replace(/\{(\w+)\}/g, (_m, k: string) => encodeURIComponent(params[k] ?? ""));
}

function withQuery(url: string, query: Record<string, string | number | null | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) q.set(k, String(v));
  const s = q.toString();
  return s ? `${url}?${s}` : url;
}

function get<P extends PathWith<"get">>(path: P, opts?: RequestOpts): Promise<Ok<Operation<P, "get">>> {
  return request("GET", path, opts);
}

// ---- the endpoints the page uses -----------------------------------------------------------

export const getHello = (): Promise<Hello> => get("/api/hello");
export const getStatus = (): Promise<StationStatus> => get("/api/status");
export const getBufferStatus = (): Promise<BufferStatus> => get("/api/buffer_status");

export async function getRecordings(): Promise<RecordingInfo[]> {
  return (await get("/api/parquet_files")).files;
}

type DataOp = Operation<"/api/parquet_data/{filename}", "get">;
export type RangeQueryParams = QueryOf<DataOp>;

export function getRecordingData(
  filename: PathParamsOf<DataOp>["filename"],
  query: RangeQueryParams,
  signal?: AbortSignal,
): Promise<Ok<DataOp>> {
  const url = withQuery(fill("/api/parquet_data/{filename}", { filename }), query);
  return request("GET", url, { timeoutMs: 30000, signal });
}

export const downloadUrl = (filename: string): string =>
  fill("/api/parquet_download/{filename}", { filename });

type SaveOp = Operation<"/api/save_sensor_buffer", "post">;

export function saveSensorBuffer(body: BodyOf<SaveOp> = null): Promise<Ok<SaveOp>> {
  return request("POST", "/api/save_sensor_buffer", { body: body ?? undefined, timeoutMs: 60000 });
}

// ---- the acoustic camera (404 on a station without one) --------------------------------------

export const getAcoustics = (): Promise<AcousticsState> => get("/api/acoustics");

type ParamsOp = Operation<"/api/acoustics/parameters", "post">;

/** Changes map parameters (method, band...); they apply from the next map. 422: refused. */
export function setAcousticParameters(body: BodyOf<ParamsOp>): Promise<Ok<ParamsOp>> {
  return request("POST", "/api/acoustics/parameters", { body });
}

type SelectOp = Operation<"/api/acoustics/selections", "post">;

/** Listens to a map cell (an existing selection of the cell is returned). */
export function selectAcousticCell(body: BodyOf<SelectOp>): Promise<Ok<SelectOp>> {
  return request("POST", "/api/acoustics/selections", { body });
}

type DeselectOp = Operation<"/api/acoustics/selections/{selection_id}", "delete">;

/** Stops listening to a selection. */
export function deselectAcousticCell(
  selectionId: PathParamsOf<DeselectOp>["selection_id"],
): Promise<Ok<DeselectOp>> {
  const url = fill("/api/acoustics/selections/{selection_id}", { selection_id: selectionId });
  return request("DELETE", url);
}

type ExportOp = Operation<"/api/acoustics/map.{fmt}", "get">;
export type MapExportFormat = PathParamsOf<ExportOp>["fmt"];

/** Download link of the newest map as PNG (colour scale over `dynamicRangeDb`), NPY or CSV. */
export const acousticMapUrl = (fmt: MapExportFormat, dynamicRangeDb?: number): string =>
  withQuery(fill("/api/acoustics/map.{fmt}", { fmt }), { dynamic_range_db: dynamicRangeDb });

// ---- control (valves, motors, the scenario runner, authority, the audit log) ---------------

/** The header that carries the control lease with every command. */
export const LEASE_HEADER = "X-Control-Lease";

/** What a command carries: the control lease (authority) and the operator token (a station
 * listening beyond localhost requires it for every command). */
export interface CommandAuth {
  lease: string | null;
  token: string | null;
}

function authHeaders(auth: CommandAuth): Record<string, string> {
  const out: Record<string, string> = {};
  if (auth.lease) out[LEASE_HEADER] = auth.lease;
  if (auth.token) out.Authorization = `Bearer ${auth.token}`;
  return out;
}

/** Runner, authority, actuators (commanded and acknowledged), redlines, scenarios. A station
 * without `[control]` answers with no actuators and no scenarios. */
export const getControl = (): Promise<ControlState> => get("/api/control");

type AuthorityOp = Operation<"/api/control/authority", "post">;

/** Requests, renews (the heartbeat) or releases control authority. 409: another client holds
 * it (or a release while hot), 403: the lease is not (or no longer) the holder's. */
export function changeAuthority(body: BodyOf<AuthorityOp>, auth: CommandAuth): Promise<Ok<AuthorityOp>> {
  return request("POST", "/api/control/authority", { body, headers: authHeaders(auth), timeoutMs: 4000 });
}

export type RunnerAction = "arm" | "disarm" | "hold" | "resume" | "reset";
type ArmOp = Operation<"/api/control/arm", "post">;

/** A transition of the scenario runner; 409 (problem details) names why it was refused. */
export function runnerAction(action: RunnerAction, auth: CommandAuth): Promise<Ok<ArmOp>> {
  return request("POST", `/api/control/${action}`, { headers: authHeaders(auth) });
}

type AbortOp = Operation<"/api/control/abort", "post">;

/** Runs the abort sequence; needs no authority (the lease is sent when there is one). */
export function abortRunner(reason: string, auth: CommandAuth): Promise<Ok<AbortOp>> {
  const body: BodyOf<AbortOp> = { reason };
  return request("POST", "/api/control/abort", { body, headers: authHeaders(auth), timeoutMs: 15000 });
}

type ScenarioOp = Operation<"/api/scenario/{name}", "post">;

/** Starts scenario `name` (the safing scenario `emergency` is answered once it ended). */
export function startScenario(name: string, auth: CommandAuth): Promise<Ok<ScenarioOp>> {
  const url = fill("/api/scenario/{name}", { name });
  return request("POST", url, { headers: authHeaders(auth), timeoutMs: 15000 });
}

type ValvesOp = Operation<"/api/valves", "post">;
export type ValveBits = BodyOf<ValvesOp>["valves"];

/** Sets the 9 outputs of the valve bank (1 energised); the reply is the acknowledged word. */
export function setValves(valves: ValveBits, auth: CommandAuth): Promise<Ok<ValvesOp>> {
  return request("POST", "/api/valves", { body: { valves }, headers: authHeaders(auth) });
}

type MotorOp = Operation<"/api/step_motor", "post">;

/** Moves step motor `motor_id` to `angle` degrees; 422 when out of its limits. */
export function stepMotor(body: BodyOf<MotorOp>, auth: CommandAuth): Promise<Ok<MotorOp>> {
  return request("POST", "/api/step_motor", { body, headers: authHeaders(auth), timeoutMs: 15000 });
}

type AuditOp = Operation<"/api/control/audit", "get">;
export type AuditQuery = Omit<QueryOf<AuditOp>, "format">;

/** Audit rows matching `query`, oldest first. 404: the station has no control part. */
export async function getAudit(query: AuditQuery): Promise<AuditEntry[]> {
  const url = withQuery("/api/control/audit", { ...query, format: "json" });
  return (await request<Schemas["AuditOut"]>("GET", url)).entries;
}

/** Download link of the audit log as CSV (same filters). */
export const auditCsvUrl = (query: AuditQuery = {}): string =>
  withQuery("/api/control/audit", { ...query, format: "csv" });
