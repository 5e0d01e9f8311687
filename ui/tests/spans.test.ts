import { describe, expect, it } from "vitest";
import type { Span, Timeline, Trace } from "../src/api";
import { treeOrder } from "../src/spans";
import { stepFor, toCores } from "../src/timeseries";
import { fixture, NOW_MS } from "./fixtures";

const trace = fixture<Trace>("trace.json");

describe("treeOrder", () => {
  it("puts children after their parent, by start time, with depths", () => {
    const shuffled = [...trace.spans].reverse();
    expect(treeOrder(shuffled).map((r) => [r.span.name, r.depth])).toEqual([
      ["GET /cpu", 0],
      ["compute_primes", 1],
      ["render_report", 1],
      ["cache_lookup", 1],
    ]);
  });

  it("keeps orphans (parent not received) and survives a span that is its own parent", () => {
    const orphan: Span = { ...trace.spans[1], span_id: "aaaaaaaaaaaaaaaa", parent_span_id: "ffffffffffffffff", start_unix_nano: 0 };
    const loop: Span = { ...trace.spans[2], span_id: "bbbbbbbbbbbbbbbb", parent_span_id: "bbbbbbbbbbbbbbbb" };
    const rows = treeOrder([...trace.spans, orphan, loop]);
    expect(rows).toHaveLength(6);
    expect(rows[0].span.span_id).toBe("aaaaaaaaaaaaaaaa");
    expect(rows.find((r) => r.span.span_id === "bbbbbbbbbbbbbbbb")!.depth).toBe(0);
  });
});

describe("timeline", () => {
  it("picks about 240 points per range, never under the 10 s upload interval", () => {
    expect(stepFor(NOW_MS - 300_000, NOW_MS)).toBe(10_000);
    expect(stepFor(NOW_MS - 3_600_000, NOW_MS)).toBe(15_000);
    expect(stepFor(NOW_MS - 86_400_000, NOW_MS)).toBe(600_000);
  });

  it("turns CPU nanoseconds per step into cores", () => {
    const t = fixture<Timeline>("timeline.json");
    const [xs, ys] = toCores(t, 60_000);
    expect(xs[0]).toBe((NOW_MS - 600_000) / 1000);
    // 250 ms of CPU in a 60 s step = 1/240 of a core.
    expect(ys.slice(0, 4)).toEqual([0, 250_000_000 / 60e9, 500_000_000 / 60e9, 750_000_000 / 60e9]);
  });
});
