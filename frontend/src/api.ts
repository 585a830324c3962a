// REST client of the station server. Every call returns parsed JSON or throws ApiError, which
// carries the RFC 9457 problem details when the server sent them.

export interface ChannelInfo {
  name: string;
  unit: string;
}

export interface DeviceStatus {
  name: string;
  driver: string;
  state: string;
  sample_rate_hz: number;
  channels: ChannelInfo[];
  rows: number;
  blocks: number;
  device_errors: number;
  last_error?: string | null;
}

export interface RecorderStatus {
  state: string;
  current_segment?: string | null;
  /** some server versions name the open segment `segment` */
  segment?: string | null;
  segments_closed: number;
  rows_recorded: number;
  bytes_written: number;
  missed_rows: number;
  last_error: string | null;
}

export interface StationStatus {
  station: string;
  mode: string;
  uptime_s: number;
  devices: DeviceStatus[];
  recorder: Record<string, RecorderStatus>;
  live: { clients: number; frames_sent: number; samples_skipped: number };
  errors: Record<string, number>;
  /** last message per error counter, when the server sends them */
  error_messages?: Record<string, string>;
}

export interface BufferDeviceStatus {
  capacity_rows: number;
  write_index: number;
  oldest_index: number;
  rows_available: number;
  fill_ratio: number;
  memory_bytes: number;
  seconds_available: number;
}

export interface BufferStatus {
  devices: Record<string, BufferDeviceStatus>;
}

export interface Hello {
  message: string;
  station: string;
  version: string;
}

export interface ParquetFile {
  filename: string;
  device: string;
  size_bytes: number;
  rows: number;
  start_ns: number | null;
  end_ns: number | null;
  channels: string[];
  units: string[];
  sample_rate_hz: number | null;
  error?: string;
}

export interface ParquetData {
  filename: string;
  device: string;
  sample_rate_hz: number;
  channels: ChannelInfo[];
  rows_total: number;
  rows_selected: number;
  bucket_size: number;
  t_s: number[];
  series: Record<string, { min: (number | null)[]; max: (number | null)[] }>;
}

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
}

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;

  constructor(status: number, message: string, problem: Problem | null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }
}

async function request<T>(path: string, init?: RequestInit, timeoutMs = 8000): Promise<T> {
  const ctrl = new AbortController();
  const timer = window.setTimeout(() => ctrl.abort(), timeoutMs);
  let resp: Response;
  try {
    resp = await fetch(path, { ...init, signal: ctrl.signal, headers: { Accept: "application/json" } });
  } catch (err) {
    const why = ctrl.signal.aborted ? `no answer within ${timeoutMs} ms` : "station unreachable";
    throw new ApiError(0, `${path}: ${why}${ctrl.signal.aborted ? "" : ` (${String(err)})`}`, null);
  } finally {
    window.clearTimeout(timer);
  }
  if (!resp.ok) {
    let problem: Problem | null = null;
    try {
      problem = (await resp.json()) as Problem;
    } catch {
      problem = null;
    }
    const what = problem?.detail ?? problem?.title ?? resp.statusText;
    throw new ApiError(resp.status, `${path}: ${resp.status} ${what}`, problem);
  }
  return (await resp.json()) as T;
}

export const getHello = (): Promise<Hello> => request<Hello>("/api/hello");
export const getStatus = (): Promise<StationStatus> => request<StationStatus>("/api/status");
export const getBufferStatus = (): Promise<BufferStatus> =>
  request<BufferStatus>("/api/buffer_status");

export async function getParquetFiles(): Promise<ParquetFile[]> {
  const body = await request<{ files: ParquetFile[] }>("/api/parquet_files");
  return body.files ?? [];
}

export function getParquetData(
  filename: string,
  opts: { maxPoints?: number; channels?: string[]; startNs?: number; endNs?: number } = {},
): Promise<ParquetData> {
  const q = new URLSearchParams();
  q.set("max_points", String(opts.maxPoints ?? 2000));
  if (opts.channels?.length) q.set("channels", opts.channels.join(","));
  if (opts.startNs !== undefined) q.set("start_ns", String(opts.startNs));
  if (opts.endNs !== undefined) q.set("end_ns", String(opts.endNs));
  return request<ParquetData>(
    `/api/parquet_data/${encodeURIComponent(filename)}?${q.toString()}`,
    undefined,
    30000,
  );
}

export const downloadUrl = (filename: string): string =>
  `/api/parquet_download/${encodeURIComponent(filename)}`;

export const saveSensorBuffer = (): Promise<{ files: unknown[] }> =>
  request<{ files: unknown[] }>("/api/save_sensor_buffer", { method: "POST" }, 60000);
