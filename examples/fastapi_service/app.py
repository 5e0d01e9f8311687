"""FastAPI (asyncio) service with OpenTelemetry auto-instrumentation and spanprof span profiles.

Run it with a server for profiles and traces, e.g. `spanprof serve --otlp-listen 127.0.0.1:4318`
(or any Pyroscope server on :4040, and a trace backend on :4318):

    python examples/fastapi_service/app.py
    curl 'http://127.0.0.1:8000/slow?n=40000'     # CPU-heavy: shows up in the span's flame graph
    curl 'http://127.0.0.1:8000/fast'

Environment: PORT (8000), SPANPROF_SERVER_ADDRESS (http://localhost:4040), and the standard
OTEL_EXPORTER_OTLP_ENDPOINT (the SDK's default: http://localhost:4318).

Every request runs in its own asyncio task on one event loop. spanprof labels each sample with the
span current in the *task's* context, so two concurrent requests never get each other's span id.
"""

from __future__ import annotations

import asyncio
import os

import uvicorn
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spanprof
from spanprof.otel import SpanProfileProcessor

SERVICE_NAME = "fastapi-example"

app = FastAPI()
tracer = trace.get_tracer("examples.fastapi_service")


def count_primes(start: int, stop: int) -> int:
    """Deliberately slow pure-Python CPU work: trial division."""
    found = 0
    for n in range(max(start, 2), stop):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            found += 1
    return found


@app.get("/slow")
async def slow(n: int = 40000) -> dict:
    total = 0
    with tracer.start_as_current_span("count_primes"):  # a child span: see active_span_id
        for start in range(0, n, 5000):
            total += count_primes(start, min(start + 5000, n))
            await asyncio.sleep(0)  # yield to the other requests' tasks between chunks
    return {"primes_below": n, "count": total}


@app.get("/fast")
async def fast() -> dict:
    return {"ok": True}


def main() -> None:
    spanprof.configure(
        application_name=SERVICE_NAME,
        server_address=os.environ.get("SPANPROF_SERVER_ADDRESS", "http://localhost:4040"),
        tags={"example": "fastapi"},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SpanProfileProcessor())  # links spans and profile samples
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        # uvicorn stops cleanly on SIGINT and SIGTERM, so the lines below run.
        uvicorn.run(
            app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
        )
    finally:
        provider.shutdown()  # flush the last spans
        spanprof.shutdown()  # flush the last profile window


if __name__ == "__main__":
    main()
