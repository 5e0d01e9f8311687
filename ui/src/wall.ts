// Wall-clock time of spans: the on-CPU / waiting / awaiting breakdown the waterfall draws (from the
// wall samples' `thread_state`, as /api/v1/traces/{id} sums them per span), which profile a span
// opens with, and the heaviest wait of a wall flame graph in plain words.
import type { Span, WallStates } from "./api";
import type { Flame } from "./flame/model";
import { fmtDuration } from "./format";

export type ProfileKind = "cpu" | "wall";
export type ThreadState = "running" | "gil_wait" | "blocked" | "awaiting";
export const THREAD_STATES: ThreadState[] = ["running", "gil_wait", "blocked", "awaiting"];

/** Words for a `thread_state` value (what the agent writes). */
export const STATE_WORDS: Record<ThreadState, string> = {
  running: "running on CPU",
  gil_wait: "waiting for the GIL",
  blocked: "blocked",
  awaiting: "awaiting",
};

/** The same before the library function a wait is in ("blocked in `socket.recv`"). */
const CALL_WORDS: Record<ThreadState, string> = {
  running: "running",
  gil_wait: "waiting for the GIL in",
  blocked: "blocked in",
  awaiting: "awaiting",
};

/** A CPU share of the duration below which a span opens with its wall profile. */
export const WALL_DEFAULT_BELOW = 0.2;

export interface Breakdown {
  /** Nanoseconds on CPU (running), waiting (GIL wait + blocked), awaiting, and without a state. */
  cpu: number;
  waiting: number;
  awaiting: number;
  other: number;
  /** Sum of the four: the wall time the samples stand for. */
  wall: number;
}

function states(span: Span, mode: "self" | "children"): WallStates | null {
  const w = span.wall_ns;
  if (!w) return null;
  return mode === "self" ? w.self : w.total;
}

/** Where the span's wall time went (`mode` self: its own samples; children: with its child spans). */
export function breakdown(span: Span, mode: "self" | "children" = "children"): Breakdown | null {
  const s = states(span, mode);
  if (!s) return null;
  const b = { cpu: s.running ?? 0, waiting: (s.gil_wait ?? 0) + (s.blocked ?? 0), awaiting: s.awaiting ?? 0, other: s.other ?? 0 };
  const wall = b.cpu + b.waiting + b.awaiting + b.other;
  return wall > 0 ? { ...b, wall } : null;
}

/** The state with the most wall time, "running" excluded unless nothing else has any. */
export function dominantState(span: Span, mode: "self" | "children"): ThreadState | null {
  const s = states(span, mode);
  if (!s) return null;
  let best: ThreadState | null = null;
  for (const st of THREAD_STATES) if (st !== "running" && (s[st] ?? 0) > 0 && (!best || (s[st] ?? 0) > (s[best] ?? 0))) best = st;
  if (!best && (s.running ?? 0) > 0) best = "running";
  return best;
}

/** CPU nanoseconds of the span in `mode` (the CPU profile's value). */
export function cpuNs(span: Span, mode: "self" | "children", periodNs: number): number {
  const ns = mode === "self" ? span.self_cpu_ns : span.total_cpu_ns;
  if (ns !== undefined) return ns;
  return (mode === "self" ? span.self_samples : span.total_samples) * (periodNs || 10_000_000);
}

/**
 * Wall when the span (or, for a span whose own code has none, its children) has wall samples and
 * its CPU time is under WALL_DEFAULT_BELOW of its duration.
 */
export function defaultKind(span: Span, mode: "self" | "children", periodNs: number): ProfileKind {
  if (!breakdown(span, "children")) return "cpu";
  const dur = Math.max(1, span.end_unix_nano - span.start_unix_nano);
  return cpuNs(span, mode, periodNs) < WALL_DEFAULT_BELOW * dur ? "wall" : "cpu";
}

/** Shares of the span's duration for the waterfall's bar (each 0..1, summing to at most 1). */
export function shares(b: Breakdown, durationNs: number): { cpu: number; waiting: number; awaiting: number } {
  // Concurrent children (asyncio.gather) can add up to more than the duration: scale down then.
  const whole = Math.max(durationNs, b.wall, 1);
  return { cpu: b.cpu / whole, waiting: b.waiting / whole, awaiting: b.awaiting / whole };
}

/** "on CPU 20 ms · waiting 110 ms · awaiting 280 ms (of 400 ms)"; states without time left out. */
export function breakdownText(b: Breakdown, durationNs: number): string {
  const parts = (
    [
      ["on CPU", b.cpu],
      ["waiting", b.waiting],
      ["awaiting", b.awaiting],
      ["unknown", b.other],
    ] as const
  )
    .filter(([, v]) => v > 0)
    .map(([k, v]) => `${k} ${fmtDuration(v)}`);
  return `${parts.join(" · ")} (of ${fmtDuration(durationNs)})`;
}

export interface Frame {
  name: string;
  file: string;
  line: number;
}

export interface WaitPath {
  /** The synthetic leaf (`<sleep>`, `<await Future>`) when there is one. */
  leaf: Frame | null;
  /** The innermost real Python frame and its caller. */
  frame: Frame;
  caller: Frame | null;
  /** Wall nanoseconds under `frame` on that path. */
  value: number;
  /**
   * When `frame` is library code: the innermost application frame on the path and the library
   * function it called (the call site of a wait deep inside a library), if the path has one.
   */
  app: { frame: Frame; callee: Frame } | null;
}

/** Synthetic frames the agent writes for waits: `<sleep>`, `<await Future>`, file "" and line 0. */
export function isSynthetic(name: string, file: string): boolean {
  return name.startsWith("<") && !file;
}

/**
 * The heaviest leaf path of a (wall) flame graph: the node with the most self time, then the
 * innermost real Python frame at or above it and that frame's caller. Null for an empty graph.
 */
export function heaviestPath(f: Flame): WaitPath | null {
  let best: { level: number; index: number; self: number } | null = null;
  for (let l = 1; l < f.levels.length; l++) {
    const lv = f.levels[l];
    for (let i = 0; i < lv.self.length; i++) if (lv.self[i] > 0 && (!best || lv.self[i] > best.self)) best = { level: l, index: i, self: lv.self[i] };
  }
  if (!best) return null;
  const frameAt = (l: number, i: number): Frame => {
    const n = f.levels[l].name[i];
    return { name: f.names[n], file: f.files[n] ?? "", line: f.lines[n] ?? 0 };
  };
  let l = best.level;
  let i = best.index;
  let leaf: Frame | null = null;
  while (l >= 1 && isSynthetic(frameAt(l, i).name, frameAt(l, i).file)) {
    if (!leaf) leaf = frameAt(l, i);
    i = f.levels[l].parent[i];
    l--;
  }
  if (l < 1) return null;
  const frame = frameAt(l, i);
  const value = f.levels[l].total[i];
  const pi = f.levels[l].parent[i];
  const caller = l >= 2 ? frameAt(l - 1, pi) : null;
  let app: WaitPath["app"] = null;
  if (isLibrary(frame.file)) {
    let callee = frame;
    for (let al = l - 1, ai = pi; al >= 1; ai = f.levels[al].parent[ai], al--) {
      const fr = frameAt(al, ai);
      if (!isLibrary(fr.file) && !isSynthetic(fr.name, fr.file)) {
        app = { frame: fr, callee };
        break;
      }
      callee = fr;
    }
  }
  return { leaf, frame, caller, value, app };
}

/** Whether a file is the interpreter's or a dependency's rather than the application's. */
export function isLibrary(file: string): boolean {
  return /[\\/]lib[\\/]python[\d.]+t?[\\/]|site-packages|dist-packages|^<frozen /.test(file);
}

/** "asyncio.sleep" for `sleep` in .../lib/python3.11/asyncio/tasks.py; the bare name elsewhere. */
export function qualifiedName(fr: Frame): string {
  // The first path part after the innermost site-packages (or the standard library).
  const parts = fr.file.split(/[\\/]/);
  let at = -1;
  parts.forEach((part, i) => {
    if (part === "site-packages" || part === "dist-packages" || (/^python[\d.]+t?$/.test(part) && parts[i - 1] === "lib")) at = i;
  });
  const top = at >= 0 && at + 1 < parts.length ? parts[at + 1].replace(/\.py$/, "") : "";
  return top ? `${top}.${fr.name}` : fr.name;
}

function place(fr: Frame): string {
  const parts = fr.file.split(/[\\/]/);
  const file = parts[parts.length - 1] || fr.file;
  return fr.line > 0 ? `${file}:${fr.line}` : file;
}

/**
 * One sentence naming where the wait happened, e.g. "280 ms awaiting `asyncio.sleep` in
 * `wait_for_inventory`, service.py:88" (a wait inside a library: the library function the
 * application called, and the application frame and line that called it) or "110 ms blocked in
 * `<sleep>` at `charge_card`, service.py:120, called from `handle_slow`, service.py:80" (the
 * application's own frame made the blocking call; also when the path has no application frame).
 */
export function describeWait(p: WaitPath, state: ThreadState): string {
  const head = `${fmtDuration(p.value)} ${STATE_WORDS[state]}`;
  if (p.app) return `${fmtDuration(p.value)} ${CALL_WORDS[state]} \`${qualifiedName(p.app.callee)}\` in \`${p.app.frame.name}\`, ${place(p.app.frame)}`;
  const what = p.leaf ? ` in \`${p.leaf.name}\`` : "";
  const from = p.caller ? `, called from \`${p.caller.name}\`, ${place(p.caller)}` : "";
  return `${head}${what} at \`${p.frame.name}\`, ${place(p.frame)}${from}`;
}
