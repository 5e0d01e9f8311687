import { describe, expect, it } from "vitest";
import {
  formatHash, labelSelector, parseHash, parseLabels, parseTime, resolveRange, selectionFromParams,
  selectionQuery, selectionToParams, withParams, type Selection,
} from "../src/state";
import { NOW_MS } from "./fixtures";

describe("URL state", () => {
  it("round-trips every page through the hash", () => {
    const routes = [
      { page: "traces", id: "", params: { service: "spanprof-demo", min_ms: "100", sort: "duration", from: "now-15m", to: "now" } },
      { page: "trace", id: "4bf92f3577b34da6a3ce929d0e0e4736", params: { span: "b7ad6b7169203331", mode: "children", q: "prime" } },
      { page: "profiles", id: "", params: { service: "svc one", labels: "env=prod,thread_name=Main Thread", zoom: "a\u001fb;c" } },
      { page: "compare", id: "", params: selectionToParams({ kind: "name", service: "s", name: "GET /x?y=1&z", from: "now-1h", to: "now", mode: "self" }, "a") },
    ] as const;
    for (const r of routes) {
      const back = parseHash(formatHash({ ...r, params: { ...r.params } }));
      expect(back).toEqual({ ...r, params: { ...r.params } });
    }
  });

  it("falls back to the traces page and drops empty values", () => {
    expect(parseHash("")).toEqual({ page: "traces", id: "", params: {} });
    expect(parseHash("#/nowhere?x=")).toEqual({ page: "traces", id: "", params: {} });
    const r = withParams(parseHash("#/traces?service=a&name=b"), { name: "", min_ms: "5" });
    expect(formatHash(r)).toBe("#/traces?min_ms=5&service=a");
  });
});

describe("time", () => {
  it("reads absolute and relative times against a pinned clock", () => {
    expect(parseTime("now", NOW_MS)).toBe(NOW_MS);
    expect(parseTime("now-15m", NOW_MS)).toBe(NOW_MS - 15 * 60_000);
    expect(parseTime("now-7d", NOW_MS)).toBe(NOW_MS - 7 * 86_400_000);
    expect(parseTime("1794999000000", NOW_MS)).toBe(1794999000000);
    expect(parseTime("2026-11-23T10:00:00Z", NOW_MS)).toBe(Date.UTC(2026, 10, 23, 10));
    expect(parseTime("yesterday", NOW_MS)).toBeNull();
  });

  it("rejects inverted and unreadable ranges", () => {
    expect(resolveRange({ from: "now-1h", to: "now" }, NOW_MS)).toEqual({ fromMs: NOW_MS - 3_600_000, toMs: NOW_MS });
    expect(resolveRange({}, NOW_MS).fromMs).toBe(NOW_MS - 3_600_000);
    expect(() => resolveRange({ from: "now", to: "now-1h" }, NOW_MS)).toThrow(/starts after it ends/);
    expect(() => resolveRange({ from: "soon" }, NOW_MS)).toThrow(/cannot read the start time "soon"/);
  });
});

describe("labels and selections", () => {
  it("builds a Prometheus selector with quoting", () => {
    expect(parseLabels("env=prod, region = eu ,bad")).toEqual([["env", "prod"], ["region", "eu"]]);
    expect(labelSelector("my svc", [["env", 'a"b'], ["bad key", "x"]])).toBe('{service_name="my svc",env="a\\"b"}');
    expect(labelSelector("", [])).toBe("{}");
  });

  it("turns each kind of selection into a flame graph query", () => {
    const span: Selection = { kind: "span", trace: "t1", span: "s1", mode: "self" };
    expect(selectionQuery(span, NOW_MS).toString()).toBe("trace_id=t1&span_id=s1&mode=self");
    const name: Selection = { kind: "name", service: "svc", name: "GET /cpu", from: "now-5m", to: "now", mode: "children" };
    expect(Object.fromEntries(selectionQuery(name, NOW_MS))).toEqual({
      service: "svc", span_name: "GET /cpu", mode: "children", from: String(NOW_MS - 300_000), to: String(NOW_MS),
    });
    const range: Selection = { kind: "range", service: "svc", type: "process_cpu:cpu:nanoseconds:cpu:nanoseconds", labels: "env=prod", from: "1794990000000", to: "1794999000000" };
    expect(Object.fromEntries(selectionQuery(range, NOW_MS))).toEqual({
      service: "svc", profile_type: range.type, selector: '{service_name="svc",env="prod"}', from: "1794990000000", to: "1794999000000",
    });
    for (const sel of [span, name, range]) {
      expect(selectionFromParams(selectionToParams(sel, "b"), "b")).toEqual(sel);
    }
    expect(selectionFromParams({ "a.kind": "span", "a.trace": "t" }, "a")).toBeNull();
  });
});
