import { describe, expect, it } from "vitest";
import { diffFlameGraphs, shareDelta } from "../src/flame/diff";
import { decodeDiff, findPath, topTable } from "../src/flame/model";
import { fixture } from "./fixtures";

const P = 10_000_000;

describe("diffFlameGraphs", () => {
  it("merges two graphs by call path, keeping both sides' values", () => {
    // GIVEN a baseline (service fixture, 100 samples) and a comparison (span fixture, 200 samples)
    const d = diffFlameGraphs(fixture("flamegraph_service.json"), fixture("flamegraph_span.json"));
    expect(d.left_total).toBe(100 * P);
    expect(d.right_total).toBe(200 * P);
    // WHEN decoded as a diff
    const f = decodeDiff(d);
    // THEN frames present on one side only have zero on the other
    const at = (path: string[]) => {
      const n = findPath(f, path);
      expect(n).not.toBeNull();
      const lv = f.levels[n!.level];
      return [lv.total[n!.index] / P, lv.self[n!.index] / P, lv.totalR[n!.index] / P, lv.selfR[n!.index] / P];
    };
    expect(at(["worker", "handle_cpu", "compute_primes"])).toEqual([50, 40, 180, 180]);
    expect(at(["worker", "handle_cpu", "fib"])).toEqual([20, 5, 0, 0]);
    expect(at(["worker", "handle_fast", "json_dumps"])).toEqual([0, 0, 10, 10]);
    // AND the layout is normalised: the root spans both sides (width 2), children nest inside
    expect(f.layoutWidth).toBe(2);
    expect(f.levels[0].width[0]).toBeCloseTo(2);
    const cp = findPath(f, ["worker", "handle_cpu", "compute_primes"])!;
    expect(f.levels[cp.level].width[cp.index]).toBeCloseTo(0.5 + 0.9);
    // AND the per-function table carries both sides
    const rows = Object.fromEntries(topTable(f).map((r) => [r.name, [r.self / P, r.selfR / P]]));
    expect(rows.compute_primes).toEqual([40, 180]);
  });

  it("is deterministic whatever order the children came in", () => {
    const a = diffFlameGraphs(fixture("flamegraph_span.json"), fixture("flamegraph_service.json"));
    const b = diffFlameGraphs(fixture("flamegraph_span.json"), fixture("flamegraph_service.json"));
    expect(a).toEqual(b);
    // Level 3, left to right: handle_cpu's children sorted by name, then handle_fast's.
    const names = a.levels[3].filter((_, i) => i % 7 === 6).map((i) => a.names[i]);
    expect(names).toEqual(["compute_primes", "fib", "json_dumps"]);
  });

  it("diffs against an empty side", () => {
    const d = diffFlameGraphs({ names: ["total"], levels: [], total: 0 }, fixture("flamegraph_span.json"));
    const f = decodeDiff(d);
    expect(f.layoutWidth).toBe(1);
    expect(f.total).toBe(0);
    expect(f.levels[0].total[0]).toBe(0);
    expect(f.levels[0].totalR[0]).toBe(200 * P);
  });
});

describe("decodeDiff", () => {
  it("rejects levels that are not groups of 7", () => {
    expect(() => decodeDiff({ names: ["total"], levels: [[0, 1, 0, 0]], left_total: 1, right_total: 0 })).toThrow(/groups of 7/);
  });
});

describe("shareDelta", () => {
  it("is the change in percentage points of each side's total", () => {
    expect(shareDelta(50, 180, 100, 200)).toBeCloseTo(40);
    expect(shareDelta(20, 0, 100, 200)).toBeCloseTo(-20);
    expect(shareDelta(0, 5, 0, 10)).toBeCloseTo(50);
  });
});
