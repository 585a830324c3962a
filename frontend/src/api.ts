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

function isProblem(v: unknown): v is Problem {
  if (v === null || typeof v !== "object") return false;
  const p = v as Record<string, unknown>;
  return typeof p.title === "string" && typeof p.status === "number" && typeof p.detail === "string";
}

/** The problem a response carries; a made-up one when its body is not problem details. */
async function problemFromResponse(resp: Response): Promise<Problem> {
  const text = await resp.text().catch(() => "");
  try {
    const body: unknown = JSON.parse(text);
    if (isProblem(body)) return body;
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
}

async function request<T>(method: "GET" | "POST" | "DELETE", url: string, opts: RequestOpts = {}): Promise<T> {
  const what = `${method} ${url.split("?")[0]}`;
  const timeoutMs = opts.timeoutMs ?? 8000;
  const ctrl = new AbortController();
  const timer = window.setTimeout(() => ctrl.abort(), timeoutMs);
  const onAbort = (): void => ctrl.abort();
  opts.signal?.addEventListener("abort", onAbort);
  const headers: Record<string, string> = { Accept: "application/json, application/problem+json" };
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
