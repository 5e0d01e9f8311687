import { describe, expect, it } from "vitest";
import type { Span } from "../src/api";
import { explainEmpty, explainInChildren } from "../src/explain";
import { profileNoun } from "../src/names";
import { decodeFlameGraph, type FlameGraphJSON } from "../src/flame/model";
import { selectionFromParams, selectionQuery, selectionToParams, type Selection } from "../src/state";
import { breakdown, breakdownText, defaultKind, describeWait, dominantState, heaviestPath, isLibrary, qualifiedName, shares } from "../src/wall";
import { fixture, NOW_MS } from "./fixtures";

const MS = 1_000_000;

function span(over: Partial<Span>): Span {
  return {
    span_id: "00000000000000e1",
    parent_span_id: "",
    name: "GET /slow",
    service: "shop",
    kind: "SERVER",
    start_unix_nano: 1_000 * MS,
    end_unix_nano: 1_400 * MS,
    self_samples: 2,
    total_samples: 2,
    self_cpu_ns: 20 * MS,
    total_cpu_ns: 20 * MS,
    wall_ns: {
      self: { running: 20 * MS, gil_wait: 0, blocked: 0, awaiting: 280 * MS, other: 0 },
      total: { running: 20 * MS, gil_wait: 10 * MS, blocked: 110 * MS, awaiting: 280 * MS, other: 0 },
    },
    ...over,
  };
}

describe("wall breakdown", () => {
  it("sums running as CPU, GIL wait + blocked as waiting, and awaiting", () => {
    const b = breakdown(span({}), "children")!;
    expect(b).toEqual({ cpu: 20 * MS, waiting: 120 * MS, awaiting: 280 * MS, other: 0, wall: 420 * MS });
    expect(breakdownText(breakdown(span({}), "self")!, 400 * MS)).toBe("on CPU 20 ms · awaiting 280 ms (of 400 ms)");
    expect(breakdown(span({ wall_ns: undefined }), "self")).toBeNull();
  });

  it("scales concurrent children down to the duration", () => {
    const s = shares(breakdown(span({}), "children")!, 400 * MS);
    expect(s.cpu + s.waiting + s.awaiting).toBeCloseTo(1);
    expect(s.awaiting).toBeCloseTo(280 / 420);
    const alone = shares(breakdown(span({}), "self")!, 400 * MS);
    expect(alone.awaiting).toBeCloseTo(0.7);
  });

  it("opens a mostly waiting span with its wall profile, a busy one with CPU", () => {
    expect(defaultKind(span({}), "self", 10 * MS)).toBe("wall");
    expect(defaultKind(span({ self_cpu_ns: 300 * MS }), "self", 10 * MS)).toBe("cpu");
    // Without wall samples there is nothing else to show.
    expect(defaultKind(span({ self_cpu_ns: 0, wall_ns: undefined }), "self", 10 * MS)).toBe("cpu");
    // Older servers: CPU from the sample count.
    expect(defaultKind(span({ self_cpu_ns: undefined, self_samples: 30 }), "self", 10 * MS)).toBe("cpu");
  });

  it("picks the heaviest off-CPU state", () => {
    expect(dominantState(span({}), "children")).toBe("awaiting");
    expect(dominantState(span({ wall_ns: { self: { running: 5 }, total: { running: 5 } } }), "self")).toBe("running");
  });
});

describe("heaviest wait", () => {
  const flame = decodeFlameGraph(fixture<FlameGraphJSON>("flamegraph_wall.json"));

  it("names the awaited library call from the application line that awaits it", () => {
    const p = heaviestPath(flame)!;
    expect(p.leaf?.name).toBe("<await Future>");
    expect(p.frame).toEqual({ name: "sleep", file: "/usr/lib/python3.11/asyncio/tasks.py", line: 665 });
    expect(p.caller).toEqual({ name: "wait_for_inventory", file: "service.py", line: 88 });
    expect(p.value).toBe(280 * MS);
    expect(describeWait(p, "awaiting")).toBe("280 ms awaiting `asyncio.sleep` in `wait_for_inventory`, service.py:88");
  });

  it("names the application frame itself when it made the blocking call", () => {
    const json: FlameGraphJSON = {
      names: ["total", "handle_slow", "charge_card", "<sleep>"],
      files: ["", "/srv/app/service.py", "/srv/app/service.py", ""],
      lines: [0, 80, 120, 0],
      levels: [
        [0, 110 * MS, 0, 0],
        [0, 110 * MS, 0, 1],
        [0, 110 * MS, 0, 2],
        [0, 110 * MS, 110 * MS, 3],
      ],
      total: 110 * MS,
    };
    const p = heaviestPath(decodeFlameGraph(json))!;
    expect(describeWait(p, "blocked")).toBe("110 ms blocked in `<sleep>` at `charge_card`, service.py:120, called from `handle_slow`, service.py:80");
  });

  it("names a wait deep inside a library from the application line that entered the library", () => {
    const lib = "/venv/lib/python3.12/site-packages";
    const json: FlameGraphJSON = {
      names: ["total", "fetch_price", "get", "_send", "read", "<socket recv>"],
      files: ["", "/srv/app/prices.py", `${lib}/httpx/_client.py`, `${lib}/httpx/_transport.py`, "/usr/lib/python3.12/ssl.py", ""],
      lines: [0, 42, 1010, 230, 1100, 0],
      levels: [
        [0, 50 * MS, 0, 0],
        [0, 50 * MS, 0, 1],
        [0, 50 * MS, 0, 2],
        [0, 50 * MS, 0, 3],
        [0, 50 * MS, 0, 4],
        [0, 50 * MS, 50 * MS, 5],
      ],
      total: 50 * MS,
    };
    const p = heaviestPath(decodeFlameGraph(json))!;
    expect(p.frame.name).toBe("read");
    expect(p.caller?.name).toBe("_send");
    expect(describeWait(p, "blocked")).toBe("50 ms blocked in `httpx.get` in `fetch_price`, prices.py:42");
  });

  it("has nothing to say about an empty graph", () => {
    expect(heaviestPath(decodeFlameGraph({ names: ["total"], levels: [], total: 0 }))).toBeNull();
  });

  it("tells library files from the application's", () => {
    expect(isLibrary("/usr/lib/python3.13t/threading.py")).toBe(true);
    expect(isLibrary("/venv/lib/python3.12/site-packages/httpx/_client.py")).toBe(true);
    expect(isLibrary("/srv/app/service.py")).toBe(false);
    expect(qualifiedName({ name: "send", file: "/venv/lib/python3.12/site-packages/httpx/_client.py", line: 1 })).toBe("httpx.send");
    expect(qualifiedName({ name: "recv", file: "/usr/lib/python3.11/socket.py", line: 1 })).toBe("socket.recv");
  });
});

describe("explainEmpty with wall data", () => {
  it("says where a span without CPU samples waited instead of guessing", () => {
    const s = span({ self_samples: 0, total_samples: 0, self_cpu_ns: 0 });
    const wait = "280 ms awaiting `asyncio.sleep` in `wait_for_inventory`, service.py:88";
    const r = explainEmpty(s, "self", 10 * MS, 0, { offCpuNs: 280 * MS, wallNs: 300 * MS, wait })!;
    expect(r.suggestWall).toBe(true);
    expect(r.text).toContain("(400 ms long): it spent 280 ms off CPU. 280 ms awaiting `asyncio.sleep` in `wait_for_inventory`, service.py:88.");
    expect(r.text).not.toContain("not profiled");
    expect(r.suggestChildren).toBe(false);
  });

  it("sends a root without samples of its own to its waiting children", () => {
    const root = span({ self_samples: 0, total_samples: 0, self_cpu_ns: 0, total_cpu_ns: 0, wall_ns: { self: {}, total: { awaiting: 300 * MS } } });
    // As the demo's GET /slow: Wall by default although the root's own code has no wall sample.
    expect(defaultKind(root, "self", 10 * MS)).toBe("wall");
    const r = explainInChildren(root, { offCpuNs: 300 * MS, wallNs: 300 * MS, inChildren: true, wait: "300 ms awaiting `asyncio.sleep` in `slow`, service.py:109" })!;
    expect(r.text).toBe('No sample landed in this span\'s own code: its time went to its child spans (300 ms off CPU). 300 ms awaiting `asyncio.sleep` in `slow`, service.py:109. Switch to "this span and its children".');
    expect(r.suggestChildren).toBe(true);
    expect(explainEmpty(root, "self", 10 * MS, 0, { offCpuNs: 300 * MS, wallNs: 300 * MS, inChildren: true })!.text).not.toContain("not profiled");
  });

  it("still points at busy children, after the wait", () => {
    const s = span({ self_samples: 0, total_samples: 8, self_cpu_ns: 0 });
    const r = explainEmpty(s, "self", 10 * MS, 8, { offCpuNs: 280 * MS, wallNs: 300 * MS })!;
    expect(r.text).toContain("Its child spans have 8 CPU samples.");
    expect(r.suggestChildren && r.suggestWall).toBe(true);
  });
});

describe("span selections of a profile type", () => {
  it("carries the profile type and thread_state filter to the flame graph query and the URL", () => {
    const sel: Selection = { kind: "span", trace: "t", span: "s", mode: "self", type: "wall:wall:nanoseconds:wall:nanoseconds", labels: "thread_state=awaiting" };
    const q = selectionQuery(sel, NOW_MS);
    expect(q.get("profile_type")).toBe("wall:wall:nanoseconds:wall:nanoseconds");
    expect(q.get("selector")).toBe('{thread_state="awaiting"}');
    expect(selectionFromParams(selectionToParams(sel, "a"), "a")).toEqual(sel);
    const cpu: Selection = { kind: "name", service: "shop", name: "x", from: "now-1h", to: "now", mode: "children" };
    const params = selectionToParams(cpu, "b");
    expect(Object.keys(params)).not.toContain("b.type");
    expect(selectionQuery(cpu, NOW_MS).has("profile_type")).toBe(false);
  });
});

describe("profile nouns", () => {
  it("says what a profile type measures", () => {
    expect(profileNoun("wall:wall:nanoseconds:wall:nanoseconds")).toBe("wall-clock time");
    expect(profileNoun("process_cpu:cpu:nanoseconds:cpu:nanoseconds")).toBe("CPU");
  });
});
