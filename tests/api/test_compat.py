"""A program written for pyroscope-io + pyroscope-otel runs unchanged with the two import lines
swapped, and its spans get pyroscope.profile.id linking them to their samples."""

from __future__ import annotations

import json
import textwrap

from support import run_python, samples_with

PROGRAM = textwrap.dedent(
    """
    import json
    import os
    import time

    import spanprof as pyroscope
    from spanprof.otel import PyroscopeSpanProcessor

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    pyroscope.configure(
        application_name="compat.app",
        server_address=os.environ["PYROSCOPE_SERVER_ADDRESS"],
        sample_rate=100,
        oncpu=True,
        gil_only=True,
        enable_logging=True,
        tags={"region": "eu-north"},
        line_no=pyroscope.LineNo.LastInstruction,
    )

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(PyroscopeSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer(__name__)

    def checkout_work():
        end = time.thread_time() + 0.6
        x = 0
        while time.thread_time() < end:
            x += sum(i * i for i in range(500))
        return x

    with tracer.start_as_current_span("POST /checkout"):
        with tracer.start_as_current_span("price-items"):
            with pyroscope.tag_wrapper({"endpoint": "/checkout"}):
                checkout_work()
    pyroscope.add_thread_tag("worker", "1")
    pyroscope.remove_thread_tag("worker", "1")

    spans = {s.name: dict(s.attributes) for s in exporter.get_finished_spans()}
    ids = {s.name: format(s.context.span_id, "016x") for s in exporter.get_finished_spans()}
    print(json.dumps({"attributes": spans, "ids": ids}))
    pyroscope.shutdown()
    """
)


def test_pyroscope_program_runs_unchanged_and_spans_link_to_samples(receiver):
    out = run_python(PROGRAM, {"PYROSCOPE_SERVER_ADDRESS": receiver.url})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    root_id = result["ids"]["POST /checkout"]
    assert result["attributes"]["POST /checkout"]["pyroscope.profile.id"] == root_id
    assert "pyroscope.profile.id" not in result["attributes"]["price-items"]
    series = receiver.series()
    assert {s.labels["service_name"] for s in series} == {"compat.app"}
    assert all(s.labels["region"] == "eu-north" for s in series)
    work = samples_with(series, "checkout_work")
    assert len(work) >= 1
    for s in work:
        assert s.labels.get("span_id") == root_id
        assert s.labels.get("span_name") == "POST /checkout"
        assert s.labels.get("endpoint") == "/checkout"
        assert "active_span_id" not in s.labels  # a plain Pyroscope server: not sent
