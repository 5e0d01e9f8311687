"""A background worker: jobs arrive on a queue with their producer's trace context, a thread pool
processes each job inside its own span.

Run it:

    python examples/queue_worker/worker.py --jobs 20 --threads 4

Environment: SPANPROF_SERVER_ADDRESS (http://localhost:4040), OTEL_EXPORTER_OTLP_ENDPOINT.

This is the shape of a Celery/RQ/Kafka consumer: each job starts a new trace (a CONSUMER span
linked to the producer's span, as the OpenTelemetry messaging conventions suggest), so each job is
a local root span and gets its own profile, even while four jobs run at once on four threads.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind

import spanprof
from spanprof.otel import SpanProfileProcessor

SERVICE_NAME = "queue-worker-example"
tracer = trace.get_tracer("examples.queue_worker")


def render_report(rows: int) -> str:
    """CPU work: build and serialise a report in pure Python."""
    table = [{"id": i, "score": (i * 7919) % 1009, "label": f"row-{i:06d}"} for i in range(rows)]
    table.sort(key=lambda r: (r["score"], r["label"]))
    return json.dumps(table)


def enqueue(jobs: queue.Queue, job_id: int, rows: int) -> None:
    with tracer.start_as_current_span("enqueue", kind=SpanKind.PRODUCER):
        headers: dict = {}
        propagate.inject(headers)  # what a real broker carries in message headers
        jobs.put({"id": job_id, "rows": rows, "headers": headers})


def handle(message: dict) -> int:
    producer = trace.get_current_span(propagate.extract(message["headers"])).get_span_context()
    # context=Context(): a new trace per job, not a child of whatever the thread had.
    with tracer.start_as_current_span(
        "process_job", kind=SpanKind.CONSUMER, links=[Link(producer)], context=Context()
    ) as span:
        span.set_attribute("job.id", message["id"])
        return len(render_report(message["rows"]))


def consume(jobs: queue.Queue, threads: int) -> int:
    done = 0
    with ThreadPoolExecutor(threads, thread_name_prefix="job") as pool:
        futures = []
        while True:
            message = jobs.get()
            if message is None:
                break
            futures.append(pool.submit(handle, message))
        for f in futures:
            f.result()
            done += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rows", type=int, default=60_000)
    args = parser.parse_args()

    spanprof.configure(
        application_name=SERVICE_NAME,
        server_address=os.environ.get("SPANPROF_SERVER_ADDRESS", "http://localhost:4040"),
        report_thread_name=True,
        tags={"example": "queue"},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(SpanProfileProcessor())
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)

    jobs: queue.Queue = queue.Queue()
    for i in range(args.jobs):
        enqueue(jobs, i, args.rows)
    jobs.put(None)  # end of the queue
    done = consume(jobs, args.threads)
    provider.shutdown()
    spanprof.shutdown()
    print(f"{done} jobs processed")


if __name__ == "__main__":
    main()
