"""A multiprocessing batch job: a pool of worker processes, each profiled, each task in a span.

Run it:

    python examples/multiprocessing_batch/job.py --tasks 16 --processes 4

Environment: SPANPROF_SERVER_ADDRESS (http://localhost:4040), OTEL_EXPORTER_OTLP_ENDPOINT.

The parent opens a `batch` span and passes its trace context with each task; every task becomes a
`process_chunk` span in the worker (a local root there, so its samples carry its own span id and
the batch's trace id). Workers use the "spawn" start method and start profiling in the pool's
initializer; see docs/troubleshooting.md for fork.
"""

from __future__ import annotations

import argparse
import multiprocessing
import multiprocessing.util
import os
import zlib

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import spanprof
from spanprof.otel import SpanProfileProcessor

SERVICE_NAME = "batch-example"
_provider: TracerProvider | None = None


def make_tracer_provider(profiled: bool) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    if profiled:
        provider.add_span_processor(SpanProfileProcessor())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def init_worker() -> None:
    """Pool initializer: runs once in each worker process."""
    global _provider
    spanprof.configure(
        application_name=SERVICE_NAME,
        server_address=os.environ.get("SPANPROF_SERVER_ADDRESS", "http://localhost:4040"),
        report_pid=True,
        tags={"example": "multiprocessing"},
    )
    _provider = make_tracer_provider(profiled=True)
    trace.set_tracer_provider(_provider)
    # Pool workers leave through os._exit(), which skips atexit handlers; multiprocessing's own
    # finalizers do run when the pool is closed and joined, so flush from one of those.
    multiprocessing.util.Finalize(None, flush_worker, exitpriority=10)


def flush_worker() -> None:
    if _provider is not None:
        _provider.shutdown()
    spanprof.shutdown()


def compress_chunk(seed: int, size: int) -> int:
    """CPU work: build a pseudo-random buffer in Python, compress it."""
    x, out = seed or 1, bytearray()
    for _ in range(size):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append(x >> 16 & 0x3F)
    return len(zlib.compress(bytes(out), 9))


def process_chunk(task: tuple[int, int, dict]) -> tuple[int, int]:
    index, size, carrier = task
    tracer = trace.get_tracer("examples.multiprocessing_batch")
    with tracer.start_as_current_span("process_chunk", context=propagate.extract(carrier)) as span:
        span.set_attribute("chunk.index", index)
        return os.getpid(), compress_chunk(index, size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--size", type=int, default=400_000, help="bytes generated per task")
    args = parser.parse_args()

    provider = make_tracer_provider(profiled=False)  # the parent only waits: no profiling
    tracer = provider.get_tracer("examples.multiprocessing_batch")
    ctx = multiprocessing.get_context("spawn")
    with tracer.start_as_current_span("batch"):
        carrier: dict = {}
        propagate.inject(carrier)
        tasks = [(i, args.size, carrier) for i in range(args.tasks)]
        pool = ctx.Pool(args.processes, initializer=init_worker)
        try:
            results = pool.map(process_chunk, tasks, chunksize=1)
        finally:
            pool.close()  # close + join (not terminate) so each worker flushes
            pool.join()
    provider.shutdown()
    pids = sorted({pid for pid, _ in results})
    print(
        f"{len(results)} chunks, {sum(n for _, n in results)} compressed bytes, worker pids {pids}"
    )


if __name__ == "__main__":
    main()
