"""The WSGI application served by gunicorn (see gunicorn.conf.py next to this file).

Nothing here starts profiling or tracing: a pre-fork server forks its workers *after* importing
the configuration, and each worker must start its own sampler, exporter threads and span
exporter. gunicorn.conf.py calls setup_telemetry() from its post_fork hook.
"""

from __future__ import annotations

import hashlib
import os

from flask import Flask, jsonify, request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spanprof
from spanprof.otel import SpanProfileProcessor

SERVICE_NAME = "gunicorn-example"

app = Flask(__name__)
_provider: TracerProvider | None = None


def hash_chain(seed: bytes, rounds: int) -> str:
    """CPU work with a Python loop around a C call, like most real request handlers."""
    digest = seed
    for i in range(rounds):
        digest = hashlib.sha256(digest + i.to_bytes(4, "little")).digest()
    return digest.hex()


@app.get("/slow")
def slow():
    rounds = min(int(request.args.get("rounds", "300000")), 5_000_000)
    return jsonify(pid=os.getpid(), digest=hash_chain(b"spanprof", rounds))


@app.get("/fast")
def fast():
    return jsonify(pid=os.getpid())


def setup_telemetry() -> None:
    """Called once in each worker process, right after gunicorn forks it."""
    global _provider
    spanprof.configure(
        application_name=SERVICE_NAME,
        server_address=os.environ.get("SPANPROF_SERVER_ADDRESS", "http://localhost:4040"),
        report_pid=True,  # one process per worker: keep their samples apart
        tags={"example": "gunicorn"},
    )
    _provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    _provider.add_span_processor(SpanProfileProcessor())
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    FlaskInstrumentor().instrument_app(app, tracer_provider=_provider)


def flush_telemetry() -> None:
    """Called from gunicorn's worker_exit hook: a worker's last spans and samples are sent."""
    if _provider is not None:
        _provider.shutdown()
    spanprof.shutdown()
