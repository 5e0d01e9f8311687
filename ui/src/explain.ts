// Plain-words reasons why a span's flame graph is empty.
import type { Span } from "./api";
import { fmtDuration, plural } from "./format";

export interface EmptyReason {
  /** One sentence a user can act on. */
  text: string;
  /** Whether the merged profile of all spans with this name could help (short spans). */
  suggestMerged: boolean;
  /** Whether switching to "this span and its children" would show samples. */
  suggestChildren: boolean;
  /** Whether the span's wall-clock profile shows where its time went. */
  suggestWall?: boolean;
}

/** What the wall profile says about a span without CPU samples (see wall.ts). */
export interface WallHint {
  /** Wall nanoseconds off CPU (waiting + awaiting) and in all. */
  offCpuNs: number;
  wallNs: number;
  /** The heaviest wait in words, once known ("280 ms awaiting `asyncio.sleep` in …"). */
  wait?: string;
  /** The span's own code has no wall samples: these figures are its child spans'. */
  inChildren?: boolean;
}

/**
 * A span whose own code has no samples of either kind while its child spans have wall samples
 * (e.g. a request's root span around the span that awaited): the time went to the children.
 */
export function explainInChildren(span: Span, wall: WallHint): EmptyReason {
  const where = wall.wait ? ` ${wall.wait}.` : "";
  const cpu = span.total_samples > 0 ? `${plural(span.total_samples, "CPU sample")}, ` : "";
  return {
    text: `No sample landed in this span's own code: its time went to its child spans (${cpu}${fmtDuration(wall.offCpuNs)} off CPU).${where} Switch to "this span and its children".`,
    suggestMerged: false,
    suggestChildren: true,
    suggestWall: true,
  };
}

/**
 * Why `span` has no samples in `mode`, or null when it has some. `traceSamples` is the number of
 * samples of the whole trace: zero means the service sent no profile for it at all. `wall`, when
 * the span has wall-clock samples, replaces the guesses by what they show.
 */
export function explainEmpty(span: Span, mode: "self" | "children", periodNs: number, traceSamples: number, wall?: WallHint): EmptyReason | null {
  const samples = mode === "self" ? span.self_samples : span.total_samples;
  if (samples > 0) return null;
  const dur = Math.max(0, span.end_unix_nano - span.start_unix_nano);
  const interval = periodNs > 0 ? fmtDuration(periodNs) : "10 ms";
  if (wall && wall.wallNs > 0) {
    if (wall.inChildren) return explainInChildren(span, wall);
    const where = wall.wait ? ` ${wall.wait}.` : "";
    const kids = mode === "self" && span.total_samples > 0 ? ` Its child spans have ${plural(span.total_samples, "CPU sample")}.` : "";
    return {
      text: `No CPU sample landed in this span${mode === "self" ? "'s own code" : ""} (${fmtDuration(dur)} long): it spent ${fmtDuration(wall.offCpuNs)} off CPU.${where}${kids} Its wall-clock profile shows where the time went.`,
      suggestMerged: false,
      suggestChildren: kids !== "",
      suggestWall: true,
    };
  }
  if (mode === "self" && span.total_samples > 0) {
    return {
      text: `No sample landed in this span's own code: all ${span.total_samples} were taken while its child spans ran. Switch to "this span and its children".`,
      suggestMerged: false,
      suggestChildren: true,
    };
  }
  if (periodNs > 0 && dur < periodNs) {
    return {
      text: `This span is ${fmtDuration(dur)} long, shorter than the ${interval} sampling interval: the profiler takes one sample per ${interval} of CPU time, so a span this short is rarely caught. The merged profile of all spans with this name shows where such spans spend their time.`,
      suggestMerged: true,
      suggestChildren: false,
    };
  }
  if (traceSamples === 0) {
    return {
      text: `No span of this trace has profile samples. Either the service is not profiled (spanprof.configure and SpanProfileProcessor), or its profile has not been uploaded yet (the agent uploads every 10 s), or the trace used less than ${interval} of CPU.`,
      suggestMerged: true,
      suggestChildren: false,
    };
  }
  return {
    text: `This span lasted ${fmtDuration(dur)} but used less CPU than one ${interval} sample: it spent its time waiting (sleeping, on I/O, a lock, or another service), and a CPU profile only sees code running on a CPU.`,
    suggestMerged: true,
    suggestChildren: false,
  };
}
