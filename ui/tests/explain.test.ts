import { describe, expect, it } from "vitest";
import type { Span, Trace } from "../src/api";
import { explainEmpty } from "../src/explain";
import { fmtDuration, unitOf, valueFormatter } from "../src/format";
import { fixture } from "./fixtures";

const trace = fixture<Trace>("trace.json");
const byName = (n: string): Span => trace.spans.find((s) => s.name === n)!;

describe("explainEmpty", () => {
  it("says nothing for a span with samples", () => {
    expect(explainEmpty(byName("compute_primes"), "self", trace.period_ns, 77)).toBeNull();
  });

  it("explains a span shorter than the sampling interval in plain words", () => {
    const r = explainEmpty(byName("cache_lookup"), "children", trace.period_ns, 77)!;
    expect(r.text).toContain("This span is 4 ms long, shorter than the 10 ms sampling interval");
    expect(r.suggestMerged).toBe(true);
  });

  it("points at the children when only they have samples", () => {
    const root = { ...byName("GET /cpu"), self_samples: 0 };
    const r = explainEmpty(root, "self", trace.period_ns, 77)!;
    expect(r.suggestChildren).toBe(true);
    expect(r.text).toContain("all 77 were taken while its child spans ran");
  });

  it("tells a waiting span from an unprofiled trace", () => {
    const waiting = { ...byName("render_report"), self_samples: 0, total_samples: 0 };
    expect(explainEmpty(waiting, "children", trace.period_ns, 77)!.text).toContain("lasted 188 ms but used less CPU than one 10 ms sample");
    expect(explainEmpty(waiting, "children", trace.period_ns, 0)!.text).toContain("No span of this trace has profile samples");
  });
});

describe("format", () => {
  it("formats durations and flame graph values", () => {
    expect(fmtDuration(4_000_000)).toBe("4 ms");
    expect(fmtDuration(1_250_000_000)).toBe("1.25 s");
    expect(fmtDuration(812_000_000)).toBe("812 ms");
    expect(fmtDuration(125_000_000_000)).toBe("2 min 5 s");
    expect(valueFormatter("nanoseconds", 10_000_000)(500_000_000)).toBe("500 ms (50 samples)");
    expect(valueFormatter("samples", 10_000_000)(3)).toBe("3 samples (≈30 ms)");
    expect(unitOf({ total: 100, sample_count: 100 })).toBe("samples");
    expect(unitOf(fixture<{ total: number; sample_count: number }>("flamegraph_service.json"))).toBe("nanoseconds");
  });
});
