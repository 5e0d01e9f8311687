// URL state. Everything a page shows is derived from the location hash, so any view can be shared
// as a link and the back button works. Hash routing keeps the UI independent of how the server
// serves files (no fallback route needed):
//   #/traces?service=&name=&min_ms=&max_ms=&from=&to=&sort=
//   #/trace/<trace_id>?span=&mode=self|children&from=&to=&q=&zoom=
//   #/profiles?service=&type=&labels=&from=&to=&sel_from=&sel_to=&q=&zoom=
//   #/compare?a.kind=&a.…=&b.kind=&b.…=&q=
// Times are either absolute ms since epoch or relative to now ("now", "now-15m", "now-2h", "now-7d").

import { fmtWhen } from "./format";
import { profileTypeLabel } from "./names";

export type Page = "traces" | "trace" | "profiles" | "compare";

export interface Route {
  page: Page;
  /** Path argument: the trace id on the trace page. */
  id: string;
  params: Record<string, string>;
}

const PAGES: Page[] = ["traces", "trace", "profiles", "compare"];

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#/, "");
  const q = h.indexOf("?");
  const path = (q >= 0 ? h.slice(0, q) : h).replace(/^\/+|\/+$/g, "");
  const search = q >= 0 ? h.slice(q + 1) : "";
  const parts = path.split("/").filter((p) => p !== "");
  const first = (parts[0] ?? "traces") as Page;
  const page: Page = PAGES.includes(first) ? first : "traces";
  const id = page === "trace" ? decodeURIComponent(parts[1] ?? "") : "";
  const params: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(search)) if (v !== "") params[k] = v;
  return { page, id, params };
}

export function formatHash(route: Route): string {
  const sp = new URLSearchParams();
  for (const k of Object.keys(route.params).sort()) {
    const v = route.params[k];
    if (v !== undefined && v !== "") sp.set(k, v);
  }
  const path = route.page === "trace" ? `/trace/${encodeURIComponent(route.id)}` : `/${route.page}`;
  const s = sp.toString();
  return `#${path}${s ? "?" + s : ""}`;
}

/** A copy of `route` with `changes` applied; an empty or undefined value removes the key. */
export function withParams(route: Route, changes: Record<string, string | undefined>): Route {
  const params = { ...route.params };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined || v === "") delete params[k];
    else params[k] = v;
  }
  return { ...route, params };
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** ms since epoch for an absolute ("1732390000000") or relative ("now-15m") time, else null. */
export function parseTime(t: string, nowMs: number): number | null {
  const s = t.trim();
  if (/^\d{10,16}$/.test(s)) return Number(s);
  const m = /^now(?:-(\d+)([smhd]))?$/.exec(s);
  if (m) return m[1] ? nowMs - Number(m[1]) * UNIT_MS[m[2]] : nowMs;
  // datetime-local input values and ISO strings.
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d/.test(s)) {
    const v = Date.parse(s);
    return Number.isNaN(v) ? null : v;
  }
  return null;
}

export interface TimeRange {
  from: string;
  to: string;
}

export const DEFAULT_RANGE: TimeRange = { from: "now-1h", to: "now" };

export const RANGE_PRESETS: { label: string; from: string }[] = [
  { label: "5 min", from: "now-5m" },
  { label: "15 min", from: "now-15m" },
  { label: "1 h", from: "now-1h" },
  { label: "6 h", from: "now-6h" },
  { label: "24 h", from: "now-24h" },
  { label: "7 d", from: "now-7d" },
];

/**
 * A relative range that shows data starting at `firstMs` without leaving it a sliver at the right
 * edge: the data's age plus a margin, in minutes up to an hour, hours up to two days, then days
 * (at most 7).
 */
export function fitRange(firstMs: number, nowMs: number): TimeRange {
  const age = Math.max(0, nowMs - firstMs);
  const span = age + Math.max(age * 0.15, 30_000);
  const min = Math.ceil(span / 60_000);
  if (min <= 60) return { from: `now-${Math.max(2, min)}m`, to: "now" };
  const hours = Math.ceil(span / 3_600_000);
  if (hours <= 48) return { from: `now-${hours}h`, to: "now" };
  return { from: `now-${Math.min(7, Math.ceil(span / 86_400_000))}d`, to: "now" };
}

/** Resolves a range to absolute ms; throws a readable error for a bad or inverted range. */
export function resolveRange(r: Partial<TimeRange>, nowMs: number): { fromMs: number; toMs: number } {
  const from = r.from || DEFAULT_RANGE.from;
  const to = r.to || DEFAULT_RANGE.to;
  const fromMs = parseTime(from, nowMs);
  const toMs = parseTime(to, nowMs);
  if (fromMs === null) throw new Error(`cannot read the start time "${from}"`);
  if (toMs === null) throw new Error(`cannot read the end time "${to}"`);
  if (fromMs >= toMs) throw new Error("the time range starts after it ends");
  return { fromMs, toMs };
}

export function rangeOf(params: Record<string, string>, prefix = ""): TimeRange {
  return { from: params[prefix + "from"] || DEFAULT_RANGE.from, to: params[prefix + "to"] || DEFAULT_RANGE.to };
}

/** Label filters as carried in the URL: "env=prod,region=eu" (values may not contain "," or "="). */
export function parseLabels(s: string | undefined): [string, string][] {
  if (!s) return [];
  const out: [string, string][] = [];
  for (const part of s.split(",")) {
    const eq = part.indexOf("=");
    if (eq <= 0) continue;
    out.push([part.slice(0, eq).trim(), part.slice(eq + 1).trim()]);
  }
  return out;
}

export function formatLabels(labels: [string, string][]): string {
  return labels.map(([k, v]) => `${k}=${v}`).join(",");
}

/** A Prometheus-style label selector: {service_name="svc",env="prod"}. */
export function labelSelector(service: string, labels: [string, string][]): string {
  const esc = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  const parts: string[] = [];
  if (service) parts.push(`service_name="${esc(service)}"`);
  for (const [k, v] of labels) if (/^[A-Za-z_][A-Za-z0-9_.]*$/.test(k)) parts.push(`${k}="${esc(v)}"`);
  return `{${parts.join(",")}}`;
}

/** One side of a comparison. */
export type Selection =
  | ({ kind: "span"; trace: string; span: string; mode: "self" | "children" } & SpanProfileOf)
  | ({ kind: "name"; service: string; name: string; from: string; to: string; mode: "self" | "children" } & SpanProfileOf)
  | { kind: "range"; service: string; type: string; labels: string; from: string; to: string };

/** Which profile of a span selection: a profile type id (absent: CPU) and label filters (e.g. thread_state). */
interface SpanProfileOf {
  type?: string;
  labels?: string;
}

function profileOf(g: (k: string) => string): SpanProfileOf {
  const out: SpanProfileOf = {};
  if (g("type")) out.type = g("type");
  if (g("labels")) out.labels = g("labels");
  return out;
}

export function selectionFromParams(params: Record<string, string>, side: "a" | "b"): Selection | null {
  const g = (k: string) => params[`${side}.${k}`] ?? "";
  switch (g("kind")) {
    case "span":
      return g("trace") && g("span") ? { kind: "span", trace: g("trace"), span: g("span"), mode: g("mode") === "self" ? "self" : "children", ...profileOf(g) } : null;
    case "name":
      return g("service") && g("name")
        ? { kind: "name", service: g("service"), name: g("name"), from: g("from") || DEFAULT_RANGE.from, to: g("to") || DEFAULT_RANGE.to, mode: g("mode") === "self" ? "self" : "children", ...profileOf(g) }
        : null;
    case "range":
      return g("service") ? { kind: "range", service: g("service"), type: g("type"), labels: g("labels"), from: g("from") || DEFAULT_RANGE.from, to: g("to") || DEFAULT_RANGE.to } : null;
    default:
      return null;
  }
}

export function selectionToParams(sel: Selection, side: "a" | "b"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(sel)) if (v !== undefined) out[`${side}.${k}`] = String(v);
  return out;
}

/** The /api/v1/flamegraph query for a selection, with relative times resolved against nowMs. */
export function selectionQuery(sel: Selection, nowMs: number): URLSearchParams {
  const q = new URLSearchParams();
  const spanProfile = (p: SpanProfileOf) => {
    if (p.type) q.set("profile_type", p.type);
    if (p.labels) q.set("selector", labelSelector("", parseLabels(p.labels)));
  };
  if (sel.kind === "span") {
    q.set("trace_id", sel.trace);
    q.set("span_id", sel.span);
    q.set("mode", sel.mode);
    spanProfile(sel);
    return q;
  }
  const { fromMs, toMs } = resolveRange(sel, nowMs);
  q.set("service", sel.service);
  if (sel.kind === "name") {
    q.set("span_name", sel.name);
    q.set("mode", sel.mode);
    spanProfile(sel);
  } else {
    if (sel.type) q.set("profile_type", sel.type);
    q.set("selector", labelSelector(sel.service, parseLabels(sel.labels)));
  }
  q.set("from", String(fromMs));
  q.set("to", String(toMs));
  return q;
}

function profileNote(p: SpanProfileOf): string {
  return `${p.type ? ", " + profileTypeLabel(p.type) : ""}${p.labels ? " {" + p.labels + "}" : ""}`;
}

export function describeSelection(sel: Selection): string {
  switch (sel.kind) {
    case "span":
      return `span ${sel.span} (${sel.mode === "self" ? "this span only" : "span and children"})${profileNote(sel)}`;
    case "name":
      return `all "${sel.name}" spans of ${sel.service} (${sel.mode === "self" ? "spans only" : "with children"})${profileNote(sel)}, ${fmtWhen(sel.from)} → ${fmtWhen(sel.to)}`;
    case "range":
      return `${sel.service}${sel.type ? " " + profileTypeLabel(sel.type) : ""}${sel.labels ? " {" + sel.labels + "}" : ""}, ${fmtWhen(sel.from)} → ${fmtWhen(sel.to)}`;
  }
}

/** Zoom paths travel in the URL as frame names joined by this separator. */
export const ZOOM_SEP = "\u001f";
