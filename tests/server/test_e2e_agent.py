"""End to end: spanprof's own agent + span processor + OTLP trace export against the server."""

from __future__ import annotations

import textwrap
import time

import pytest
from conftest import CPU, agent_available, flame_names, run_agent_script

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import spanprof
    from spanprof.otel import SpanProfileProcessor
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    spanprof.configure(application_name="e2e-agent", server_address=sys.argv[1], sample_rate=100)
    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "e2e-agent"}))
    tp.add_span_processor(SpanProfileProcessor())
    tp.add_span_processor(SimpleSpanProcessor(mem))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces")))
    tracer = tp.get_tracer("e2e")

    def e2e_span_work_function():
        t = time.process_time()
        x = 0
        while time.process_time() - t < 2.0:
            x += 1
        return x

    with tracer.start_as_current_span("e2e-root"):
        with tracer.start_as_current_span("e2e-child"):
            e2e_span_work_function()
    spanprof.shutdown()
    tp.shutdown()
    root = next(s for s in mem.get_finished_spans() if s.name == "e2e-root")
    print(json.dumps({"profile_id": root.attributes.get("pyroscope.profile.id"),
                      "span_id": format(root.context.span_id, "016x"),
                      "trace_id": format(root.context.trace_id, "032x")}))
    """
)


@pytest.mark.skipif(
    not agent_available(),
    reason="spanprof._native has no start(): the agent core is not built yet",
)
def test_agent_span_profile_found_by_select_merge_span_profile(server, tmp_path):
    ids = run_agent_script(SCRIPT, server.url)
    assert ids["profile_id"] == ids["span_id"], (
        ids
    )  # pyroscope.profile.id = the local root's span id
    req = {
        "profileTypeID": CPU,
        "labelSelector": '{service_name="e2e-agent"}',
        "spanSelector": [ids["profile_id"]],
        "start": str(int(time.time() * 1000) - 600_000),
        "end": str(int(time.time() * 1000) + 60_000),
    }
    fg = server.connect_json("SelectMergeSpanProfile", req)["flamegraph"]
    assert "e2e_span_work_function" in flame_names(fg), fg.get("names")
    # The trace API attributes the samples to the child span that was active.
    doc = server.get_json(f"/api/v1/traces/{ids['trace_id']}")
    spans = {s["name"]: s for s in doc["spans"]}
    assert spans["e2e-child"]["self_samples"] > 0
    assert spans["e2e-root"]["total_samples"] >= spans["e2e-child"]["self_samples"]
