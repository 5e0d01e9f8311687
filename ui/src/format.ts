// Human-readable numbers: durations, CPU time, percentages, instants.

/** "812 ms", "1.25 s", "4 µs", "2 min 5 s" for a duration in nanoseconds. */
export function fmtDuration(ns: number): string {
  if (!Number.isFinite(ns)) return "–";
  const a = Math.abs(ns);
  if (a < 1_000) return `${Math.round(ns)} ns`;
  if (a < 1_000_000) return `${trim(ns / 1_000)} µs`;
  if (a < 1_000_000_000) return `${trim(ns / 1_000_000)} ms`;
  if (a < 60_000_000_000) return `${trim(ns / 1_000_000_000)} s`;
  const s = Math.round(ns / 1_000_000_000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

function trim(v: number): string {
  const a = Math.abs(v);
  return (a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : v.toFixed(2)).replace(/\.0+$|(\.\d*?)0+$/, "$1");
}

export function fmtPct(part: number, whole: number): string {
  if (whole <= 0) return "–";
  const p = (part / whole) * 100;
  return `${p >= 10 ? p.toFixed(1) : p.toFixed(2)}%`;
}

export function fmtCount(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

/** Local time with milliseconds, e.g. "2026-11-23 20:31:05.123". */
export function fmtTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** Value formatter for a flame graph: CPU nanoseconds as time, plus the sample count when known. */
export function valueFormatter(unit: "nanoseconds" | "samples", periodNs: number): (v: number) => string {
  if (unit === "samples") {
    return (v) => (periodNs > 0 ? `${plural(v, "sample")} (≈${fmtDuration(v * periodNs)})` : plural(v, "sample"));
  }
  return (v) => (periodNs > 0 ? `${fmtDuration(v)} (${plural(v / periodNs, "sample")})` : fmtDuration(v));
}

/**
 * Whether a flame graph's values are sample counts or nanoseconds: the server reports both the
 * total and the number of samples, which are equal only for counts.
 */
export function unitOf(fg: { total: number; sample_count?: number }): "nanoseconds" | "samples" {
  return fg.sample_count !== undefined && fg.sample_count > 0 && fg.total === fg.sample_count ? "samples" : "nanoseconds";
}

/** Short form for tables: CPU time, or a sample count. */
export function compactFormatter(unit: "nanoseconds" | "samples"): (v: number) => string {
  return unit === "samples" ? (v) => fmtCount(v) : (v) => fmtDuration(v);
}

/** "1 sample", "2 samples", "1,024 traces": a count with the noun in the right number. */
export function plural(n: number, one: string, many = `${one}s`): string {
  const r = Math.round(n);
  return `${fmtCount(r)} ${r === 1 ? one : many}`;
}

const UNIT_WORD: Record<string, string> = { s: "s", m: "min", h: "h", d: "d" };

/** A URL time in words: "2026-11-23 20:31:05.123" for ms since epoch, "15 min ago" for "now-15m". */
export function fmtWhen(t: string): string {
  if (/^\d{10,16}$/.test(t)) return fmtTime(Number(t));
  if (t === "now") return "now";
  const m = /^now-(\d+)([smhd])$/.exec(t);
  if (m) return `${m[1]} ${UNIT_WORD[m[2]]} ago`;
  return t.replace("T", " ");
}
