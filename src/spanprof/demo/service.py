"""The demo service: a small FastAPI shop backend, instrumented with the OpenTelemetry SDK and
spanprof, with endpoints that are fast, slow (waiting) and CPU-heavy in distinct, well-named
functions, so their flame graphs are easy to recognise.

    python -m spanprof.demo.service --port 8001 --server http://127.0.0.1:4040 \\
        --otlp http://127.0.0.1:4318

Endpoints (each request is one trace; child spans are named after what they do):
  GET /fast      a cache hit: one short span, too short for a CPU sample
  GET /slow      waits on a fake inventory service (asyncio.sleep): long, but uses no CPU
  GET /cpu       builds a report in the thread pool: `count_primes_slowly` (trial division) burns
                 CPU in the "compute_report" span, `fibonacci_recursive` in its child "fibonacci"
  GET /checkout  a mix: a short "cache_lookup" span, "price_items" (CPU in
                 `apply_discount_rules`), "charge_card" (waiting), "render_receipt" (CPU in
                 `render_receipt_html`)

Requests run as asyncio tasks on one event loop; CPU work goes to a ThreadPoolExecutor with the
OpenTelemetry context copied along, so samples taken in pool threads carry the request's span.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import functools
import hashlib
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, Optional, TypeVar

SERVICE_NAME = "spanprof-demo"

T = TypeVar("T")


# --- the deliberately slow functions the flame graphs point at ---------------------------------


def count_primes_slowly(limit: int) -> int:
    """Trial division: pure-Python CPU work."""
    found = 0
    for n in range(2, limit):
        d = 2
        while d * d <= n:
            if n % d == 0:
                break
            d += 1
        else:
            found += 1
    return found


def fibonacci_recursive(n: int) -> int:
    """Exponential recursion: deep, repetitive stacks."""
    return n if n < 2 else fibonacci_recursive(n - 1) + fibonacci_recursive(n - 2)


def apply_discount_rules(items: int) -> float:
    """A quadratic pricing loop."""
    total = 0.0
    for i in range(items):
        for j in range(items):
            total += ((i * 31 + j * 17) % 97) / 100.0
    return total


def render_receipt_html(lines: int) -> str:
    """String building and hashing, line by line."""
    parts = []
    digest = hashlib.sha256()
    for i in range(lines):
        row = f"<tr><td>item {i}</td><td>{(i * 7919) % 1000 / 10:.2f}</td></tr>"
        digest.update(row.encode())
        parts.append(row)
    return "<table>" + "".join(parts) + "</table>" + digest.hexdigest()


# --- the web service --------------------------------------------------------------------------


def build_app(pool: ThreadPoolExecutor, work_scale: float = 1.0) -> Any:
    from fastapi import FastAPI
    from opentelemetry import trace

    app = FastAPI(title="spanprof demo shop")
    tracer = trace.get_tracer("spanprof.demo")

    async def in_pool(fn: Callable[..., T], *args: Any) -> T:
        # run_in_executor does not carry contextvars: copy the context so the pool thread runs
        # inside the request's span (what spanprof's sampler reads).
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, functools.partial(ctx.run, fn, *args))

    def scaled(n: int) -> int:
        return max(1, int(n * work_scale))

    @app.get("/fast")
    async def fast() -> Dict[str, Any]:
        with tracer.start_as_current_span("cache_lookup") as span:
            span.set_attribute("cache.hit", True)
            return {"ok": True}

    @app.get("/slow")
    async def slow() -> Dict[str, Any]:
        with tracer.start_as_current_span("wait_for_inventory") as span:
            span.set_attribute("peer.service", "inventory")
            await asyncio.sleep(0.3)
        return {"in_stock": 3}

    @app.get("/cpu")
    async def cpu() -> Dict[str, Any]:
        with tracer.start_as_current_span("compute_report") as span:
            limit = scaled(80_000)
            span.set_attribute("demo.prime_limit", limit)
            primes = await in_pool(count_primes_slowly, limit)
            # A child span: its samples belong to "this span and its children" of compute_report,
            # never to compute_report alone.
            with tracer.start_as_current_span("fibonacci"):
                fib = await in_pool(fibonacci_recursive, 25 if work_scale >= 1 else 20)
        return {"primes": primes, "fib": fib}

    @app.get("/checkout")
    async def checkout() -> Dict[str, Any]:
        with tracer.start_as_current_span("cache_lookup") as span:
            span.set_attribute("cache.hit", False)
        with tracer.start_as_current_span("price_items") as span:
            items = scaled(300)
            span.set_attribute("demo.items", items)
            price = await in_pool(apply_discount_rules, items)
        with tracer.start_as_current_span("charge_card") as span:
            span.set_attribute("peer.service", "payments")
            await asyncio.sleep(0.05)
        with tracer.start_as_current_span("render_receipt"):
            html = await in_pool(render_receipt_html, scaled(20_000))
        return {"price": round(price, 2), "receipt_bytes": len(html)}

    return app


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spanprof.demo.service", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument("--server", default="http://127.0.0.1:4040", help="spanprof server (profiles)")
    p.add_argument("--otlp", default="http://127.0.0.1:4318", help="OTLP/HTTP endpoint (traces)")
    p.add_argument("--upload-interval", type=int, default=5, help="profile upload period, s")
    p.add_argument("--work-scale", type=float, default=1.0, help="multiplies the CPU work")
    args = p.parse_args(argv)

    import uvicorn
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import spanprof
    from spanprof.otel import SpanProfileProcessor

    spanprof.configure(
        application_name=SERVICE_NAME,
        server_address=args.server,
        upload_interval=args.upload_interval,
        report_thread_name=True,
        tags={"env": "demo"},
        profile_types=("cpu", "wall"),  # the waiting endpoints show up in the wall profile
    )
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SpanProfileProcessor())
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=args.otlp.rstrip("/") + "/v1/traces"),
            schedule_delay_millis=1000,
        )
    )
    trace.set_tracer_provider(provider)

    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="demo-worker")
    app = build_app(pool, args.work_scale)
    # Server spans (one per request, the trace's root) come from the FastAPI instrumentation when
    # it is installed; without it the demo adds the same root span itself.
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, exclude_spans=["receive", "send"]
        )
    except ImportError:
        _add_root_span_middleware(app, trace.get_tracer("spanprof.demo"))
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        pool.shutdown(wait=False)
        provider.shutdown()
        spanprof.shutdown()
    return 0


def _add_root_span_middleware(app: Any, tracer: Any) -> None:
    from opentelemetry.trace import SpanKind

    @app.middleware("http")
    async def root_span(request: Any, call_next: Any) -> Any:
        name = f"{request.method} {request.url.path}"
        with tracer.start_as_current_span(name, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.method", request.method)
            span.set_attribute("http.route", request.url.path)
            response = await call_next(request)
            span.set_attribute("http.status_code", response.status_code)
            return response


if __name__ == "__main__":
    sys.exit(main())
