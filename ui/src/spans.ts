// Span trees: the waterfall's row order.
import type { Span } from "./api";

export interface Row {
  span: Span;
  depth: number;
}

/** Spans in tree order (children after their parent, by start time); orphans become roots. */
export function treeOrder(spans: Span[]): Row[] {
  const ids = new Set(spans.map((s) => s.span_id));
  const kids = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const s of spans) {
    if (s.parent_span_id && ids.has(s.parent_span_id) && s.parent_span_id !== s.span_id) {
      const list = kids.get(s.parent_span_id) ?? [];
      list.push(s);
      kids.set(s.parent_span_id, list);
    } else roots.push(s);
  }
  const byStart = (a: Span, b: Span) => a.start_unix_nano - b.start_unix_nano;
  const out: Row[] = [];
  const seen = new Set<string>();
  const walk = (s: Span, depth: number) => {
    if (seen.has(s.span_id)) return;
    seen.add(s.span_id);
    out.push({ span: s, depth });
    for (const c of (kids.get(s.span_id) ?? []).sort(byStart)) walk(c, depth + 1);
  };
  for (const r of roots.sort(byStart)) walk(r, 0);
  return out;
}
