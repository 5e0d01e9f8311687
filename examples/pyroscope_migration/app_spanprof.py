"""A FastAPI service instrumented the Grafana way: pyroscope-io + pyroscope-otel.

This directory holds the same service twice. app_pyroscope.py (before) and app_spanprof.py
(after) differ in the two import lines only; run `diff app_pyroscope.py app_spanprof.py`.

    python examples/pyroscope_migration/app_spanprof.py    # needs: pip install '.[otel]'
    python examples/pyroscope_migration/app_pyroscope.py   # needs: pip install pyroscope-io pyroscope-otel
    curl 'http://127.0.0.1:8000/orders/checkout?items=40'

Environment: PORT (8000), PYROSCOPE_SERVER_ADDRESS (http://localhost:4040),
OTEL_EXPORTER_OTLP_ENDPOINT (http://localhost:4318).
"""

# ruff: noqa: I001, RUF100  (keep the profiler imports together, as the last block)
from __future__ import annotations

import os

import uvicorn
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spanprof as pyroscope
from spanprof.otel import PyroscopeSpanProcessor

pyroscope.configure(
    application_name="checkout-service",
    server_address=os.environ.get("PYROSCOPE_SERVER_ADDRESS", "http://localhost:4040"),
    sample_rate=100,
    oncpu=True,
    gil_only=True,
    tags={"region": os.environ.get("REGION", "local")},
)

provider = TracerProvider(resource=Resource.create({"service.name": "checkout-service"}))
provider.add_span_processor(PyroscopeSpanProcessor())
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)

app = FastAPI()


def price_items(items: int) -> float:
    """CPU work: an exaggerated pricing rule engine."""
    total = 0.0
    for item in range(items):
        for rule in range(20_000):
            total += ((item * 31 + rule) % 97) / 100.0
    return round(total, 2)


@app.get("/orders/checkout")
async def checkout(items: int = 40) -> dict:
    with pyroscope.tag_wrapper({"endpoint": "checkout"}):  # no await inside: one thread
        total = price_items(min(items, 400))
    return {"items": items, "total": total}


@app.get("/orders/status")
async def status() -> dict:
    return {"ok": True}


if __name__ == "__main__":
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    try:
        uvicorn.run(
            app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), log_level="warning"
        )
    finally:
        provider.shutdown()
        pyroscope.shutdown()
