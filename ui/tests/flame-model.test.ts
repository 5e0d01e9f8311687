import { describe, expect, it } from "vitest";
import { decodeFlameGraph, findPath, FlameGraphError, nodeAt, pathOf, search, topTable, type FlameGraphJSON } from "../src/flame/model";
import { fixture } from "./fixtures";

const P = 10_000_000;

describe("decodeFlameGraph", () => {
  it("turns relative x offsets into absolute starts and links parents", () => {
    // GIVEN the service fixture (fib recurses under handle_cpu, starting at x=50 samples)
    const f = decodeFlameGraph(fixture("flamegraph_service.json"));
    // THEN every level has absolute starts
    expect(f.levels.map((l) => l.name.length)).toEqual([1, 1, 2, 2, 2, 1]);
    expect(Array.from(f.levels[2].start)).toEqual([0, 70 * P]);
    expect(Array.from(f.levels[4].start)).toEqual([0, 50 * P]);
    expect(Array.from(f.levels[5].start)).toEqual([50 * P]);
    // AND parents point at the containing node one level up
    expect(Array.from(f.levels[3].parent)).toEqual([0, 0]);
    expect(Array.from(f.levels[4].parent)).toEqual([0, 1]);
    expect(f.names[f.levels[4].name[1]]).toBe("fib");
    expect(pathOf(f, 5, 0)).toEqual(["worker", "handle_cpu", "fib", "fib", "fib"]);
    expect(f.total).toBe(100 * P);
    expect(f.nodeCount).toBe(9);
    expect(f.maxSelf).toBe(40 * P);
  });

  it("finds nodes by path and by position", () => {
    const f = decodeFlameGraph(fixture("flamegraph_service.json"));
    expect(findPath(f, ["worker", "handle_cpu", "fib"])).toEqual({ level: 3, index: 1 });
    expect(findPath(f, ["worker", "nope"])).toBeNull();
    expect(nodeAt(f.levels[2], 69.5 * P)).toBe(0);
    expect(nodeAt(f.levels[2], 70 * P)).toBe(1);
    expect(nodeAt(f.levels[5], 10 * P)).toBe(-1);
  });

  it("rejects malformed input with a message that says what is wrong", () => {
    const good = fixture<FlameGraphJSON>("flamegraph_service.json");
    expect(() => decodeFlameGraph(null)).toThrow(FlameGraphError);
    expect(() => decodeFlameGraph({ names: ["total"], levels: [[0, 1, 0]] })).toThrow(/groups of 4/);
    expect(() => decodeFlameGraph({ names: ["total"], levels: [[0, 1, 0, 7]] })).toThrow(/names index 7 out of range/);
    expect(() => decodeFlameGraph({ names: ["total"], levels: [[0, -1, 0, 0]] })).toThrow(/non-negative integer/);
    expect(() => decodeFlameGraph({ names: ["total"], levels: [[0, 1, 2, 0]] })).toThrow(/self 2 > total 1/);
    // A child that sticks out of its parent is corrupt, not silently drawn.
    const bad = structuredClone(good);
    bad.levels[5] = [95 * P, 10 * P, 0, 5];
    expect(() => decodeFlameGraph(bad)).toThrow(/outside every node of level 4/);
  });

  it("decodes an empty graph", () => {
    const f = decodeFlameGraph({ names: ["total"], levels: [], total: 0, max_self: 0 });
    expect(f.nodeCount).toBe(0);
    expect(topTable(f)).toEqual([]);
  });
});

describe("search", () => {
  it("marks matches case-insensitively and counts recursion once", () => {
    const f = decodeFlameGraph(fixture("flamegraph_service.json"));
    const r = search(f, "FIB");
    expect(r.count).toBe(3);
    expect(r.matchedTotal).toBe(20 * P);
    expect(Array.from(r.matches[4])).toEqual([0, 1]);
    expect(search(f, "  ").count).toBe(0);
  });
});

describe("topTable", () => {
  it("sums self everywhere and total only for the outermost frame of a recursion", () => {
    const f = decodeFlameGraph(fixture("flamegraph_service.json"));
    const rows = Object.fromEntries(topTable(f).map((r) => [r.name, [r.self / P, r.total / P]]));
    expect(rows).toEqual({
      worker: [0, 100],
      handle_cpu: [0, 70],
      handle_fast: [30, 30],
      compute_primes: [40, 50],
      is_prime: [10, 10],
      fib: [20, 20],
    });
  });
});
