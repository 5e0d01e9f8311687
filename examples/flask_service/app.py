"""Flask (threads) service with OpenTelemetry auto-instrumentation and spanprof span profiles.

Run it with a server for profiles and traces, e.g. `spanprof serve --otlp-listen 127.0.0.1:4318`
(or any Pyroscope server on :4040, and a trace backend on :4318):

    python examples/flask_service/app.py
    curl 'http://127.0.0.1:8000/slow?n=27'     # CPU-heavy: shows up in the span's flame graph
    curl 'http://127.0.0.1:8000/fast'

Environment: PORT (8000), SPANPROF_SERVER_ADDRESS (http://localhost:4040), and the standard
OTEL_EXPORTER_OTLP_ENDPOINT (the SDK's default: http://localhost:4318).

Each request runs on its own thread; spanprof's per-thread CPU timers charge every sample to the
thread that spent the CPU, labelled with that thread's current span.
"""

from __future__ import annotations

import os
import signal

from flask import Flask, jsonify, request
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spanprof
from spanprof.otel import SpanProfileProcessor

SERVICE_NAME = "flask-example"

app = Flask(__name__)
tracer = trace.get_tracer("examples.flask_service")


def fibonacci(n: int) -> int:
    """Deliberately slow pure-Python CPU work: naive recursion."""
    return n if n < 2 else fibonacci(n - 1) + fibonacci(n - 2)


@app.get("/slow")
def slow():
    n = min(int(request.args.get("n", "27")), 32)
    with tracer.start_as_current_span("fibonacci"):  # a child span: see active_span_id
        results = [fibonacci(n) for _ in range(3)]
    return jsonify(n=n, result=results[0])


@app.get("/fast")
def fast():
    return jsonify(ok=True)


def _stop(signum, frame):  # the development server only stops on KeyboardInterrupt
    raise KeyboardInterrupt


def main() -> None:
    spanprof.configure(
        application_name=SERVICE_NAME,
        server_address=os.environ.get("SPANPROF_SERVER_ADDRESS", "http://localhost:4040"),
        tags={"example": "flask"},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SpanProfileProcessor())  # links spans and profile samples
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FlaskInstrumentor().instrument_app(app, tracer_provider=provider)
    signal.signal(signal.SIGTERM, _stop)
    try:
        app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), threaded=True)
    except KeyboardInterrupt:
        pass
    finally:
        provider.shutdown()  # flush the last spans
        spanprof.shutdown()  # flush the last profile window


if __name__ == "__main__":
    main()
