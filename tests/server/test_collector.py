"""Real peers in the middle: spanprof's agent (with the real OpenTelemetry SDK) → a real
OpenTelemetry Collector (built from the go.opentelemetry.io/collector modules by scripts/setup:
tests/peers/collector) → `spanprof serve`, for profiles and traces, exported by the Collector over OTLP/HTTP and over
OTLP/gRPC (its `otlp` exporter to `--otlp-grpc`). The Collector re-encodes
profiles with its pdata (resource attributes become string-table references): the service name,
the agent's tags and the span links must survive that."""

from __future__ import annotations

import os
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from conftest import CPU, ROOT, flame_names, run_agent_script

COLLECTOR = Path(
    os.environ.get("SPANPROF_OTELCOL_BIN", ROOT / "build" / "tools" / "spanprof-otelcol")
)

AGENT = textwrap.dedent(
    """
    import json, sys, time
    import spanprof
    from spanprof.otel import SpanProfileProcessor
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    collector = sys.argv[1]
    spanprof.configure(application_name="via-collector", server_address="otlp+" + collector,
                       sample_rate=100, tags={"env": "ci", "team": "obs"})
    tp = TracerProvider(resource=Resource.create({"service.name": "via-collector"}))
    tp.add_span_processor(SpanProfileProcessor())
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=collector + "/v1/traces")))
    tracer = tp.get_tracer("collector-e2e")

    def collector_e2e_work():
        end = time.process_time() + 1.5
        while time.process_time() < end:
            pass

    with tracer.start_as_current_span("collector-root") as root:
        with tracer.start_as_current_span("collector-child"):
            collector_e2e_work()
    spanprof.shutdown()
    tp.shutdown()
    print(json.dumps({"span_id": format(root.get_span_context().span_id, "016x"),
                      "trace_id": format(root.get_span_context().trace_id, "032x")}))
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"collector exited early:\n{log.read_text(errors='replace')}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"collector did not listen:\n{log.read_text(errors='replace')}")


def _collector_config(receiver_port: int, exporter: str) -> str:
    # No sending queue and no retries: the receiver answers after the export to spanprof is done,
    # so what the agent flushed is stored once shutdown() returns, and an export error shows.
    return textwrap.dedent(
        f"""
        receivers:
          otlp:
            protocols:
              http:
                endpoint: 127.0.0.1:{receiver_port}
        exporters:
          {exporter}
        service:
          telemetry:
            metrics:
              level: none
          pipelines:
            traces:
              receivers: [otlp]
              exporters: [{exporter.split(":")[0]}]
            profiles:
              receivers: [otlp]
              exporters: [{exporter.split(":")[0]}]
        """
    )


@pytest.fixture(params=["otlphttp", "otlp"])
def collector(make_server, tmp_path, request):
    """A server, and a Collector receiving OTLP/HTTP and exporting to it with the exporter named
    by the parameter: `otlphttp` (OTLP/HTTP) or `otlp` (OTLP/gRPC, gzip, to --otlp-grpc); yields
    (server, the Collector's URL, its log)."""
    if not COLLECTOR.exists():
        pytest.skip(f"{COLLECTOR} not built (scripts/setup builds tests/peers/collector)")
    server = make_server("--otlp-listen", "127.0.0.1:0", "--otlp-grpc", "127.0.0.1:0")
    port = _free_port()
    endpoint = server.url if request.param == "otlphttp" else server.grpc_addr
    tls = "" if request.param == "otlphttp" else "tls:\n  insecure: true\n"
    exporter = textwrap.indent(
        f"{request.param}:\n"
        + textwrap.indent(
            f"endpoint: {endpoint}\n{tls}"
            "sending_queue:\n  enabled: false\nretry_on_failure:\n  enabled: false\n",
            "  ",
        ),
        "          ",
    ).strip()
    cfg = tmp_path / "collector.yaml"
    cfg.write_text(_collector_config(port, exporter))
    log = tmp_path / "collector.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(COLLECTOR),
                f"--config=file:{cfg}",
                "--feature-gates=service.profilesSupport",
            ],
            stdout=out,
            stderr=out,
        )
    try:
        _wait_port(port, proc, log)
        yield server, f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_agent_through_collector_keeps_service_tags_and_links(collector):
    server, url, log = collector
    ids = run_agent_script(AGENT, url, context=log.read_text(errors="replace"))
    now_ms = int(time.time() * 1000)
    window = {"start": str(now_ms - 600_000), "end": str(now_ms + 60_000)}

    # Service name and tags: series labels, not unknown_service.
    values = server.connect_json("LabelValues", {"name": "service_name", **window})["names"]
    assert values == ["via-collector"], values
    for name, value in (("env", "ci"), ("team", "obs")):
        got = server.connect_json("LabelValues", {"name": name, **window}).get("names")
        assert got == [value], (name, got)
    # Span ids are no series labels (a real Pyroscope would make one series per span).
    names = server.connect_json("LabelNames", window)["names"]
    assert not {"span_id", "trace_id", "active_span_id"} & set(names), names
    fg = server.connect_json(
        "SelectMergeStacktraces",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="via-collector", env="ci"}',
            **window,
        },
    )["flamegraph"]
    assert "collector_e2e_work" in flame_names(fg)

    # The link survived: the root span's profile (Pyroscope's span_id) ...
    fg = server.connect_json(
        "SelectMergeSpanProfile",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="via-collector"}',
            "spanSelector": [ids["span_id"]],
            **window,
        },
    )["flamegraph"]
    assert "collector_e2e_work" in flame_names(fg), fg.get("names")
    # ... and the trace, through the Collector too, with the samples on the active child span.
    doc = server.get_json(f"/api/v1/traces/{ids['trace_id']}")
    spans = {s["name"]: s for s in doc["spans"]}
    assert spans["collector-child"]["service"] == "via-collector"
    assert spans["collector-child"]["self_samples"] > 0
    assert spans["collector-root"]["self_samples"] < spans["collector-child"]["self_samples"]
