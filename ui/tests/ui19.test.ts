import { describe, expect, it } from "vitest";
import { sourceLink } from "../src/components/frame-details";
import { shareMargin, significant, wilson } from "../src/flame/confidence";
import { diffFlameGraphs, diffSupported } from "../src/flame/diff";
import { decodeDiff, decodeFlameGraph, FlameGraphError, frameKey, topTable, type FlameGraphJSON } from "../src/flame/model";
import { sandwich } from "../src/flame/sandwich";
import { fmtWhen, plural } from "../src/format";
import { profileKind, profileTypeLabel } from "../src/names";
import { fitRange } from "../src/state";

// main → helper → run (a.py:10) (x 1, its self); main → run (a.py:10) → leaf (x 3); main → run (b.py:5) (x 2)
const located: FlameGraphJSON = {
  names: ["total", "main", "run", "run", "helper", "leaf"],
  files: ["", "app.py", "a.py", "b.py", "app.py", "a.py"],
  lines: [0, 1, 10, 5, 20, 30],
  levels: [
    [0, 6, 0, 0],
    [0, 6, 0, 1],
    [0, 1, 0, 4, 0, 3, 0, 2, 0, 2, 2, 3],
    [0, 1, 1, 2, 0, 3, 3, 5],
    [],
  ].filter((l) => l.length),
  total: 6,
  sample_count: 6,
};

describe("frames with their place", () => {
  it("keeps two functions of one name apart by file", () => {
    const f = decodeFlameGraph(located);
    expect(frameKey(f, 2)).toBe("run a.py:10");
    expect(frameKey(f, 3)).toBe("run b.py:5");
    const rows = topTable(f).filter((r) => r.name === "run");
    expect(rows.map((r) => [f.files[r.index], r.total]).sort()).toEqual([["a.py", 4], ["b.py", 2]]);
  });

  it("refuses files/lines that do not match names", () => {
    expect(() => decodeFlameGraph({ ...located, files: ["x"] })).toThrow(FlameGraphError);
    expect(() => decodeFlameGraph({ ...located, lines: located.lines!.map(() => 1.5) })).toThrow(FlameGraphError);
    expect(decodeFlameGraph({ ...located, lines: located.lines!.map(() => -1) }).lines[2]).toBe(0);
  });

  it("diffs by name and place", () => {
    const other: FlameGraphJSON = { names: ["total", "main", "run"], files: ["", "app.py", "b.py"], lines: [0, 1, 5], levels: [[0, 4, 0, 0], [0, 4, 0, 1], [0, 4, 4, 2]], total: 4, sample_count: 4 };
    const d = decodeDiff(diffFlameGraphs(located, other));
    const runs = d.names.map((n, i) => (n === "run" ? frameKey(d, i) : "")).filter(Boolean);
    expect(runs.sort()).toEqual(["run a.py:10", "run b.py:5"]);
  });

  it("fills a source link template", () => {
    expect(sourceLink("vscode://file/{path}:{line}", "", "/srv/app/a.py", 10, "run")).toBe("vscode://file//srv/app/a.py:10");
    expect(sourceLink("https://github.com/o/r/blob/main/{path}#L{line}", "/srv/app/", "/srv/app/pkg/a.py", 7, "run")).toBe("https://github.com/o/r/blob/main/pkg/a.py#L7");
    expect(sourceLink("", "", "/a.py", 1, "f")).toBe("");
  });
});

describe("sandwich", () => {
  it("lists the callers and callees of one function", () => {
    const f = decodeFlameGraph(located);
    const s = sandwich(f, 2); // run in a.py
    const callers = decodeFlameGraph(s.callers);
    const callees = decodeFlameGraph(s.callees);
    // Callers of run (a.py): main directly (3) and helper (1) under main.
    expect(s.total).toBe(4);
    expect(callers.levels[1].name.length).toBe(2);
    expect([...callers.levels[1].name].map((i) => callers.names[i]).sort()).toEqual(["helper", "main"]);
    expect(callers.names[callers.levels[2].name[0]]).toBe("main");
    // Callees: leaf (3); run has 1 self sample.
    expect(callees.names[callees.levels[1].name[0]]).toBe("leaf");
    expect(callees.levels[1].total[0]).toBe(3);
    expect(s.self).toBe(1);
  });
});

describe("confidence", () => {
  it("is wide at 11 samples and narrow at 11,000", () => {
    expect(shareMargin(5, 11)).toBeGreaterThan(20);
    expect(shareMargin(5000, 11000)).toBeLessThan(1);
    const [lo, hi] = wilson(0, 10);
    expect(lo).toBe(0);
    expect(hi).toBeGreaterThan(0.2);
  });

  it("supports differences only beyond sampling error", () => {
    expect(significant(5, 11, 6, 11)).toBe(false);
    expect(significant(5000, 11000, 6000, 11000)).toBe(true);
    expect(significant(1, 0, 1, 10)).toBe(false);
    expect(diffSupported({ total: 10, totalR: 10, samples: 0, samplesR: 0 }, 1, 9)).toBe(true);
    expect(diffSupported({ total: 11, totalR: 11, samples: 11, samplesR: 11 }, 5, 6)).toBe(false);
  });
});

describe("time and names", () => {
  it("fits the default range to where the data is", () => {
    const now = 1_800_000_000_000;
    expect(fitRange(now - 90_000, now)).toEqual({ from: "now-2m", to: "now" });
    expect(fitRange(now - 10 * 60_000, now)).toEqual({ from: "now-12m", to: "now" });
    expect(fitRange(now - 3 * 3_600_000, now)).toEqual({ from: "now-4h", to: "now" });
    expect(fitRange(now - 30 * 86_400_000, now)).toEqual({ from: "now-7d", to: "now" });
  });

  it("names profile types and counts in words", () => {
    expect(profileTypeLabel("process_cpu:cpu:nanoseconds:cpu:nanoseconds")).toBe("CPU");
    expect(profileKind("wall:wall:nanoseconds:wall:nanoseconds")).toBe("Wall");
    expect(profileTypeLabel("memory:alloc_space:bytes:space:bytes")).toBe("Allocations (bytes)");
    expect(profileTypeLabel("custom:my_thing:count:x:y")).toBe("custom: my thing (count)");
    expect(plural(1, "sample")).toBe("1 sample");
    expect(plural(11, "sample")).toBe("11 samples");
    expect(plural(1024, "trace")).toBe("1,024 traces");
    expect(fmtWhen("now-15m")).toBe("15 min ago");
  });
});
