// The server's JSON API (/api/v1, ARCHITECTURE.md) and the Pyroscope Connect querier (JSON).
import type { FlameGraphJSON } from "./flame/model";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export interface TraceSummary {
  trace_id: string;
  service: string;
  root_name: string;
  start_unix_nano: number;
  duration_ns: number;
  span_count: number;
  has_profile: boolean;
  sample_count: number;
  /** Whether any span of the trace has status ERROR. */
  error?: boolean;
  /** Wall-clock nanoseconds the trace's wall samples stand for. */
  wall_ns?: number;
}

/** /api/v1/traces: one page of matching traces, their count and duration distribution. */
export interface TraceSearchResult {
  traces: TraceSummary[];
  total?: number;
  offset?: number;
  next_offset?: number | null;
  scan_limited?: boolean;
  histogram?: { bounds_ns: number[]; counts: number[] };
}

/** /api/v1/profile/traces: traces ranked by time in a function (or in all code). */
export interface FunctionTrace {
  trace_id: string;
  stored: boolean;
  root_name: string;
  service: string;
  start_unix_nano: number;
  duration_ns: number;
  value: number;
  trace_value: number;
  samples: number;
}

export interface FunctionTraces {
  traces: FunctionTrace[];
  function_value: number;
  total: number;
  unattributed: number;
  period_ns: number;
}

export interface Span {
  span_id: string;
  parent_span_id: string;
  name: string;
  service: string;
  kind: string | number;
  start_unix_nano: number;
  end_unix_nano: number;
  status?: { code?: number | string; message?: string };
  attributes?: Record<string, unknown>;
  events?: { name: string; time_unix_nano: number; attributes?: Record<string, unknown> }[];
  resource?: Record<string, unknown>;
  scope?: { name?: string; version?: string };
  self_samples: number;
  total_samples: number;
  /** CPU nanoseconds (the CPU profile's value), this span only / with its children. */
  self_cpu_ns?: number;
  total_cpu_ns?: number;
  /** Wall-clock nanoseconds by the wall samples' thread_state, this span only / with children. */
  wall_ns?: { self: WallStates; total: WallStates };
}

/** Wall nanoseconds per `thread_state` ("other": samples without a known state). */
export interface WallStates {
  running?: number;
  gil_wait?: number;
  blocked?: number;
  awaiting?: number;
  other?: number;
}

export interface Trace {
  trace_id: string;
  spans: Span[];
  period_ns: number;
  /** The wall profile's sampling period and Pyroscope profile type id ("" without wall samples). */
  wall_period_ns?: number;
  wall_profile_type?: string;
}

export interface Timeline {
  points: [number, number][];
  unit: string;
}

export interface ProfileType {
  ID: string;
  name?: string;
}

/** Recent GET answers, so re-rendering a page after a URL change does not refetch. */
const cache = new Map<string, { at: number; value: unknown }>();
const CACHE_MS = 15_000;

async function readError(res: Response): Promise<string> {
  const text = await res.text().catch(() => "");
  try {
    const j = JSON.parse(text) as { message?: string; error?: string };
    if (j.message || j.error) return String(j.message || j.error);
  } catch {
    // not JSON: fall through to the raw text
  }
  return text.trim().slice(0, 300) || res.statusText;
}

export async function getJSON<T>(path: string, params?: URLSearchParams | Record<string, string>, signal?: AbortSignal): Promise<T> {
  const qs = params ? new URLSearchParams(params).toString() : "";
  const url = `${path}${qs ? "?" + qs : ""}`;
  const hit = cache.get(url);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.value as T;
  let res: Response;
  try {
    res = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(`cannot reach the spanprof server (${(e as Error).message})`, 0);
  }
  if (!res.ok) throw new ApiError(`${path} answered ${res.status}: ${await readError(res)}`, res.status);
  const value = (await res.json()) as T;
  cache.set(url, { at: Date.now(), value });
  if (cache.size > 200) cache.delete(cache.keys().next().value!);
  return value;
}

export function clearCache(): void {
  cache.clear();
}

/** A Connect unary call with a JSON body (proto3 JSON: lowerCamelCase, int64 as strings). */
export async function connect<T>(method: string, body: unknown, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`/querier.v1.QuerierService/${method}`, {
      method: "POST",
      signal,
      headers: { "Content-Type": "application/json", "Connect-Protocol-Version": "1" },
      body: JSON.stringify(body),
    });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(`cannot reach the spanprof server (${(e as Error).message})`, 0);
  }
  if (!res.ok) throw new ApiError(`${method} answered ${res.status}: ${await readError(res)}`, res.status);
  return (await res.json()) as T;
}

export const api = {
  services: (signal?: AbortSignal) => getJSON<{ services: string[] }>("/api/v1/services", undefined, signal),
  traces: (q: Record<string, string>, signal?: AbortSignal) => getJSON<TraceSearchResult>("/api/v1/traces", q, signal),
  profileTraces: (q: URLSearchParams, signal?: AbortSignal) => getJSON<FunctionTraces>("/api/v1/profile/traces", q, signal),
  trace: (id: string, signal?: AbortSignal) => getJSON<Trace>(`/api/v1/traces/${encodeURIComponent(id)}`, undefined, signal),
  flamegraph: (q: URLSearchParams, signal?: AbortSignal) => getJSON<FlameGraphJSON>("/api/v1/flamegraph", q, signal),
  timeline: (q: URLSearchParams, signal?: AbortSignal) => getJSON<Timeline>("/api/v1/timeline", q, signal),
  profileTypes: async (fromMs: number, toMs: number, signal?: AbortSignal) =>
    ((await connect<{ profileTypes?: ProfileType[] }>("ProfileTypes", { start: String(fromMs), end: String(toMs) }, signal)).profileTypes ?? []),
  labelNames: async (selector: string, fromMs: number, toMs: number, signal?: AbortSignal) =>
    ((await connect<{ names?: string[] }>("LabelNames", { matchers: [selector], start: String(fromMs), end: String(toMs) }, signal)).names ?? []),
  labelValues: async (name: string, selector: string, fromMs: number, toMs: number, signal?: AbortSignal) =>
    ((await connect<{ names?: string[] }>("LabelValues", { name, matchers: [selector], start: String(fromMs), end: String(toMs) }, signal)).names ?? []),
};
