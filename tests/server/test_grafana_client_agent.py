"""querier.v1 through connect-go's client (as Grafana speaks it) against a server holding what
spanprof's real agent recorded: a Python workload under the OpenTelemetry SDK with
SpanProfileProcessor, pushed over HTTP by the agent's own exporter, its spans exported over OTLP.
Each answer is checked against Pyroscope's semantics for the same request."""

from __future__ import annotations

import subprocess
import textwrap
import time

import pytest
from conftest import CPU, agent_available, run_agent_script
from test_grafana_client import CLIENT, call

# Two requests (root spans) in two traces: req-a runs work_a (and a child span running
# child_work), req-b runs work_b. Each burns CPU in pure Python, so its frames are its own.
WORKLOAD = textwrap.dedent(
    """
    import json, sys, time
    import spanprof
    from spanprof.otel import SpanProfileProcessor
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    spanprof.configure(application_name="agent-go", server_address=sys.argv[1], sample_rate=100)
    tp = TracerProvider(resource=Resource.create({"service.name": "agent-go"}))
    tp.add_span_processor(SpanProfileProcessor())
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces")))
    tracer = tp.get_tracer("agent-go")

    def burn(seconds):
        t = time.process_time()
        x = 0
        while time.process_time() - t < seconds:
            x += 1
        return x

    def work_a():
        return burn(0.8)

    def child_work():
        return burn(0.4)

    def work_b():
        return burn(0.8)

    ids = {}
    with tracer.start_as_current_span("req-a") as a:
        work_a()
        with tracer.start_as_current_span("db-a") as c:
            child_work()
    with tracer.start_as_current_span("req-b") as b:
        work_b()
    spanprof.shutdown()
    tp.shutdown()
    hexs = lambda s: format(s.get_span_context().span_id, "016x")
    hext = lambda s: format(s.get_span_context().trace_id, "032x")
    print(json.dumps({"a": hexs(a), "child": hexs(c), "b": hexs(b), "trace_a": hext(a),
                      "trace_b": hext(b)}))
    """
)
END_MS = str(int(time.time() * 1000) + 3_600_000)


@pytest.fixture(scope="module")
def recorded(server_binary, tmp_path_factory):
    """A server holding the agent's recording, and the spans' ids."""
    if not agent_available():
        pytest.skip("spanprof._native has no start(): the agent core is not built yet")
    if not CLIENT.exists():
        pytest.skip(f"{CLIENT} not built (run scripts/setup)")
    from conftest import Server

    s = Server(str(tmp_path_factory.mktemp("agent-go")), []).start()
    ids = run_agent_script(WORKLOAD, s.url)
    yield s, ids
    s.stop()


def merge(s, **fields) -> dict:
    req = {
        "profileTypeID": CPU,
        "labelSelector": '{service_name="agent-go"}',
        "start": "0",
        "end": END_MS,
        **fields,
    }
    ok, r = call(s, CLIENT, "SelectMergeStacktraces", req)
    assert ok, r
    return r


def names(r: dict) -> set[str]:
    return set(r["flamegraph"]["names"])


def total(r: dict) -> int:
    return int(r["flamegraph"].get("total", 0))


def test_label_calls_see_the_agents_series(recorded):
    s, _ = recorded
    ok, r = call(s, CLIENT, "ProfileTypes", {"start": "1", "end": END_MS})
    assert ok and CPU in {t["ID"] for t in r["profileTypes"]}
    ok, r = call(s, CLIENT, "LabelValues", {"name": "service_name", "start": "1", "end": END_MS})
    assert ok and r["names"] == ["agent-go"]
    # The local root's name is a series label, as pyroscope-otel makes it; span ids are not.
    ok, r = call(s, CLIENT, "LabelValues", {"name": "span_name", "start": "1", "end": END_MS})
    assert ok and {"req-a", "req-b"} <= set(r["names"])
    ok, r = call(s, CLIENT, "LabelNames", {"start": "1", "end": END_MS})
    assert ok and "span_id" not in r["names"] and "trace_id" not in r["names"]


def test_span_and_trace_selectors_keep_only_that_requests_samples(recorded):
    s, ids = recorded
    everything = merge(s)
    a = merge(s, spanSelector=[ids["a"]])
    b = merge(s, spanSelector=[ids["b"]])
    # A root span's selection holds its own code and its child span's (same local root), never
    # the other request's.
    assert {"work_a", "child_work"} <= names(a) and "work_b" not in names(a)
    assert "work_b" in names(b) and not {"work_a", "child_work"} & names(b)
    both = merge(s, spanSelector=[ids["a"], ids["b"]])
    assert total(both) == total(a) + total(b) <= total(everything)
    # The child span is not a local root: Pyroscope's span selector matches the span_id label,
    # which the agent sets to the local root, so it selects nothing.
    assert total(merge(s, spanSelector=[ids["child"]])) == 0
    # One trace per request: the trace selector picks the same samples as its root span.
    assert total(merge(s, traceIdSelector=[ids["trace_a"]])) == total(a)
    bad = call(
        s,
        CLIENT,
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "spanSelector": [ids["a"]], "traceIdSelector": [ids["trace_a"]]},
    )
    assert bad[0] is False and bad[1]["code"] == "invalid_argument"


def test_call_site_series_heatmap_dot_and_analysis(recorded):
    s, ids = recorded
    a = merge(s, spanSelector=[ids["a"]])
    # A call site from the recorded stacks: the root-first frames down to work_a (from the pprof
    # of request a), which keeps work_a's samples and nothing of request b.
    ok, p = call(
        s,
        CLIENT,
        "SelectMergeProfile",
        {"profileTypeID": CPU, "labelSelector": '{span_name="req-a"}', "start": "0", "end": END_MS},
    )
    assert ok
    strings, fns = p["stringTable"], {f["id"]: f for f in p["function"]}
    locs = {loc["id"]: fns[loc["line"][0]["functionId"]] for loc in p["location"]}
    stack = None
    for smp in p["sample"]:
        frames = [strings[int(locs[i]["name"])] for i in reversed(smp["locationId"])]
        if "work_a" in frames:
            stack = frames[: frames.index("work_a") + 1]
            break
    assert stack, "no sample of request a ran work_a"
    site = merge(s, stackTraceSelector={"callSite": [{"name": n} for n in stack]})
    assert "work_a" in names(site) and "work_b" not in names(site)
    assert 0 < total(site) <= total(a)
    # SelectSeries grouped by span_name: each request's series sums to its span selection.
    ok, r = call(
        s,
        CLIENT,
        "SelectSeries",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="agent-go"}',
            "start": str(int(time.time() * 1000) - 3_600_000),
            "end": END_MS,
            "step": 3600,
            "groupBy": ["span_name"],
        },
    )
    assert ok
    # (Samples outside any span form a series without span_name.)
    by = {
        (x.get("labels") or [{"value": ""}])[0]["value"]: sum(pt["value"] for pt in x["points"])
        for x in r["series"]
    }
    assert by["req-a"] == total(a)
    assert by["req-b"] == total(merge(s, spanSelector=[ids["b"]]))
    # SelectHeatmap SPAN: its points are the requests' local roots, its exemplars name them.
    ok, h = call(
        s,
        CLIENT,
        "SelectHeatmap",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="agent-go"}',
            "start": str(int(time.time() * 1000) - 3_600_000),
            "end": END_MS,
            "step": 60,
            "queryType": "HEATMAP_QUERY_TYPE_SPAN",
            "exemplarType": "EXEMPLAR_TYPE_SPAN",
        },
    )
    assert ok and h["series"]
    spans = {e["spanId"] for x in h["series"] for sl in x["slots"] for e in sl.get("exemplars", [])}
    assert spans and spans <= {ids["a"], ids["b"]}
    # DOT of request a: its functions only, and it parses with Graphviz's dot.
    d = merge(s, spanSelector=[ids["a"]], format="PROFILE_FORMAT_DOT")["dot"]
    assert d.startswith('digraph "unnamed" {') and "work_a" in d and "work_b" not in d
    subprocess.run(["dot", "-Tcanon"], input=d.encode(), capture_output=True, check=True)
    ok, an = call(
        s,
        CLIENT,
        "AnalyzeQuery",
        {"start": "0", "end": END_MS, "query": CPU + '{span_name="req-a"}'},
    )
    assert ok and int(an["queryImpact"]["totalQueriedSeries"]) >= 1
    assert int(an["queryScopes"][0]["profileCount"]) >= 1
