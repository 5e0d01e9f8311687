"""Each example, run the way its docstring says, for a few seconds against a local receiver:
its CPU-heavy function must show up in the uploaded profiles, every sample there labelled with
the span it ran in, and that span must be one the example exported as a trace."""

from __future__ import annotations

import difflib
import json
import re
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from harness import (
    EXAMPLES,
    PYTHON,
    check_span_linked,
    example_env,
    free_port,
    get,
    serve_receiver,
    wait_http,
)


def _hit(url: str, times: int, concurrency: int = 4) -> list:
    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(lambda _: json.loads(get(url)), range(times)))


def _web_service(receiver, start_example, script, slow_query, stop_signal, **load):
    """Starts a one-file web example, loads its /slow endpoint, stops it as an operator would."""
    port = free_port()
    ex = start_example([PYTHON, script], example_env(receiver, PORT=str(port)))
    wait_http(f"http://127.0.0.1:{port}/fast", ex)
    _hit(f"http://127.0.0.1:{port}/slow?{slow_query}", **load)
    ex.stop(stop_signal)


def check_request_spans(receiver, service, function, child_span):
    samples = check_span_linked(receiver, service, function)
    assert {s.labels["span_name"] for s in samples} == {"GET /slow"}
    # Concurrent requests (asyncio tasks on one loop, or threads) each keep their own span.
    assert len({s.labels["span_id"] for s in samples}) >= 2
    # The innermost span is the handler's own child span.
    children = {sp.span_id for sp in receiver.spans_named(child_span)}
    assert {s.labels.get("active_span_id") for s in samples} <= children


def test_fastapi_service(receiver, start_example):
    _web_service(receiver, start_example, "examples/fastapi_service/app.py", "n=40000", signal.SIGINT, times=8)  # fmt: skip
    check_request_spans(receiver, "fastapi-example", "count_primes", child_span="count_primes")


def test_flask_service(receiver, start_example):
    _web_service(receiver, start_example, "examples/flask_service/app.py", "n=27", signal.SIGTERM, times=6, concurrency=3)  # fmt: skip
    check_request_spans(receiver, "flask-example", "fibonacci", child_span="fibonacci")


def test_gunicorn_prefork(receiver, start_example):
    port = free_port()
    gunicorn = str(Path(PYTHON).parent / "gunicorn")
    env = example_env(receiver, BIND=f"127.0.0.1:{port}", WORKERS="3")
    ex = start_example([gunicorn, "-c", "examples/gunicorn_prefork/gunicorn.conf.py"], env)
    wait_http(f"http://127.0.0.1:{port}/fast", ex)
    served_by = {r["pid"] for r in _hit(f"http://127.0.0.1:{port}/slow", times=9, concurrency=3)}
    ex.stop(signal.SIGTERM)  # graceful: each worker's worker_exit hook flushes

    samples = check_span_linked(receiver, "gunicorn-example", "hash_chain")
    pids = {int(s.labels["pid"]) for s in samples}
    assert pids <= served_by
    assert len(pids) >= 2, f"samples from one worker only: {pids}, requests served by {served_by}"


def test_multiprocessing_batch(receiver, start_example):
    argv = [PYTHON, "examples/multiprocessing_batch/job.py", "--tasks", "12", "--processes", "2"]
    out = start_example(argv, example_env(receiver)).wait(timeout=180)
    assert "12 chunks" in out, out
    served_by = set(re.search(r"worker pids \[([0-9, ]+)\]", out).group(1).split(", "))

    samples = check_span_linked(receiver, "batch-example", "compress_chunk")
    assert {s.labels["span_name"] for s in samples} == {"process_chunk"}
    (batch,) = receiver.spans_named("batch")
    assert {s.labels["trace_id"] for s in samples} == {batch.trace_id}
    # Each worker process reports its own samples, under its own pid.
    pids = {s.labels["pid"] for s in samples}
    assert pids <= served_by
    assert len(pids) >= 2, f"samples from one worker only: {pids}, tasks run by {served_by}"


def test_queue_worker(receiver, start_example):
    argv = [PYTHON, "examples/queue_worker/worker.py", "--jobs", "12", "--threads", "4"]
    out = start_example(argv, example_env(receiver)).wait(timeout=180)
    assert "12 jobs processed" in out, out

    samples = check_span_linked(receiver, "queue-worker-example", "render_report")
    assert {s.labels["span_name"] for s in samples} == {"process_job"}
    assert len({s.labels["span_id"] for s in samples}) >= 2
    assert all(s.labels.get("thread_name", "").startswith("job") for s in samples)


MIGRATION = EXAMPLES / "pyroscope_migration"


def test_migration_pair_differs_only_in_the_imports():
    before = (MIGRATION / "app_pyroscope.py").read_text().splitlines()
    after = (MIGRATION / "app_spanprof.py").read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert changed == [
        "-import pyroscope",
        "-from pyroscope.otel import PyroscopeSpanProcessor",
        "+import spanprof as pyroscope",
        "+from spanprof.otel import PyroscopeSpanProcessor",
    ]


def _checkout_service(receiver, start_example, script, concurrency):
    port = free_port()
    ex = start_example([PYTHON, str(MIGRATION / script)], example_env(receiver, PORT=str(port)))
    wait_http(f"http://127.0.0.1:{port}/orders/status", ex, timeout=60)
    _hit(f"http://127.0.0.1:{port}/orders/checkout?items=80", times=6, concurrency=concurrency)
    ex.stop(signal.SIGINT)
    ours = script == "app_spanprof.py"
    samples = check_span_linked(receiver, "checkout-service", "price_items", every_sample=ours)
    assert {s.labels["span_name"] for s in samples} == {"GET /orders/checkout"}
    # tag_wrapper's dynamic tag travels on the samples taken inside it (pyroscope-io's reaches
    # its outside sampler with a lag, so only some of its samples carry it).
    endpoints = {s.labels.get("endpoint") for s in samples}
    assert endpoints == {"checkout"} if ours else "checkout" in endpoints
    with receiver.lock:
        return {key for u in receiver.uploads for key in u.series}


def test_migrated_service(receiver, start_example):
    _checkout_service(receiver, start_example, "app_spanprof.py", concurrency=4)


def test_original_service_on_pyroscope_io(start_example):
    """The "before" side is real, working pyroscope-io code: run it (one request at a time, since
    pyroscope-otel tags threads, not asyncio tasks), and both sides push the same series labels."""
    labels = {}
    for script, concurrency in (("app_pyroscope.py", 1), ("app_spanprof.py", 1)):
        server, rec = serve_receiver()
        try:
            labels[script] = _checkout_service(rec, start_example, script, concurrency)
        finally:
            server.shutdown()
            server.server_close()
        assert not rec.errors, rec.errors
    assert labels["app_pyroscope.py"] == labels["app_spanprof.py"]
    assert {"__name__", "service_name", "region", "otel.scope.name"} <= labels["app_spanprof.py"]
