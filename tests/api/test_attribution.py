"""Issue 4: samples carry the span current in the interrupted thread's or task's OpenTelemetry
context — asyncio tasks, threads, nested spans, executors — read back from the file exporter."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from pathlib import Path
from typing import Callable, Dict, List

from opentelemetry import context as otel_context
from opentelemetry import trace
from support import burn, pprof_reader

import spanprof

RATE = 200
PERIOD_NS = 1_000_000_000 // RATE


def has_fn(sample: pprof_reader.Sample, name: str) -> bool:
    return any(f == name or f.endswith("." + name) for f in sample.functions)


def weight(sample: pprof_reader.Sample) -> int:
    """How many samples an aggregated pprof sample stands for."""
    return max(1, sample.values[0] // PERIOD_NS)


def make_workers(prefix: str, n: int) -> List[Callable[[float], int]]:
    """n functions with distinct names (prefix_0 ...), so a sample's stack says whose work it was."""
    out = []
    for i in range(n):
        ns: Dict[str, object] = {"burn": burn}
        exec(f"def {prefix}_{i}(seconds):\n    return burn(seconds)\n", ns)
        out.append(ns[f"{prefix}_{i}"])
    return out


def profile_samples(tmp_path: Path) -> List[pprof_reader.Sample]:
    assert spanprof.shutdown() is True
    files = sorted(tmp_path.glob("*.pb.gz"))
    assert files
    return [s for f in files for s in pprof_reader.read_file(f).samples]


def start(tmp_path: Path) -> None:
    spanprof.configure(
        application_name="attribution",
        server_address=f"file://{tmp_path}",
        sample_rate=RATE,
        upload_interval=300,
    )


def hex_id(span) -> str:
    return format(span.get_span_context().span_id, "016x")


def check_owned(samples, prefix: str, ids: Dict[int, str]) -> None:
    """At least 99% of the samples in worker i carry span i's id, and none another's."""
    wrong, unlabelled, total = [], 0, 0
    for s in samples:
        owners = [i for i in ids if has_fn(s, f"{prefix}_{i}")]
        if not owners:
            continue
        (i,) = owners
        total += weight(s)
        got = s.labels.get("span_id")
        if got is None:
            unlabelled += weight(s)
        elif got != ids[i]:
            wrong.append((i, got))
    assert total >= len(ids), f"too few samples in the workers: {total}"
    assert not wrong, f"samples labelled with another task's span: {wrong[:5]}"
    assert (total - unlabelled) / total >= 0.99, f"{unlabelled} of {total} samples without a span"


def test_50_concurrent_asyncio_tasks_each_get_their_own_span(tmp_path, tracer):
    # GIVEN 50 tasks on one event loop, each in its own root span, each burning CPU in its own
    # function and yielding to the others between slices
    n, rounds, slice_s = 50, 10, 0.004
    workers = make_workers("async_worker", n)
    ids: Dict[int, str] = {}

    async def task(i: int) -> None:
        with tracer.start_as_current_span(f"task-{i}") as span:
            ids[i] = hex_id(span)
            for _ in range(rounds):
                workers[i](slice_s)
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task(i) for i in range(n)))

    start(tmp_path)
    asyncio.run(main())
    # THEN each task's samples carry that task's span
    check_owned(profile_samples(tmp_path), "async_worker", ids)


def test_8_threads_each_get_their_own_span(tmp_path, tracer):
    n = 8
    workers = make_workers("thread_worker", n)
    ids: Dict[int, str] = {}
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        with tracer.start_as_current_span(f"thread-{i}") as span:
            ids[i] = hex_id(span)
            barrier.wait()
            for _ in range(10):
                workers[i](0.025)

    start(tmp_path)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_owned(profile_samples(tmp_path), "thread_worker", ids)


def nested_root_work(s: float) -> int:
    return burn(s)


def nested_child_work(s: float) -> int:
    return burn(s)


def nested_after_child_work(s: float) -> int:
    return burn(s)


def test_nested_spans_label_the_innermost_span_and_the_root(tmp_path, tracer):
    start(tmp_path)
    with tracer.start_as_current_span("root") as root:
        nested_root_work(0.3)
        with tracer.start_as_current_span("child") as child:
            nested_child_work(0.3)
        nested_after_child_work(0.3)
    samples = profile_samples(tmp_path)
    root_id, child_id = hex_id(root), hex_id(child)
    trace_id = format(root.get_span_context().trace_id, "032x")

    def labels_in(fn: str):
        got = [s for s in samples if has_fn(s, fn)]
        assert sum(map(weight, got)) >= 20, (fn, got)
        return [s.labels for s in got]

    for labels in labels_in("nested_root_work") + labels_in("nested_after_child_work"):
        assert (labels.get("span_id"), labels.get("active_span_id")) == (root_id, root_id)
        assert labels.get("span_name") == "root" and labels.get("trace_id") == trace_id
    for labels in labels_in("nested_child_work"):
        assert (labels.get("span_id"), labels.get("active_span_id")) == (root_id, child_id)
        assert labels.get("span_name") == "root"
    assert root.attributes["pyroscope.profile.id"] == root_id
    assert "pyroscope.profile.id" not in child.attributes


def to_thread_work(s: float) -> int:
    return burn(s)


def executor_work(s: float) -> int:
    return burn(s)


def test_asyncio_to_thread_and_context_propagating_executor(tmp_path, tracer):
    start(tmp_path)

    async def main():
        with tracer.start_as_current_span("offload") as span:
            await asyncio.to_thread(to_thread_work, 0.3)
            ctx = contextvars.copy_context()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, functools.partial(ctx.run, executor_work, 0.3))
            return hex_id(span)

    span_id = asyncio.run(main())
    samples = profile_samples(tmp_path)
    for fn in ("to_thread_work", "executor_work"):
        mine = [s for s in samples if has_fn(s, fn)]
        assert sum(map(weight, mine)) >= 20
        assert all(s.labels.get("span_id") == span_id for s in mine), fn


def unattached_work(s: float) -> int:
    return burn(s)


def survivor_work(s: float) -> int:
    return burn(s)


def test_span_never_made_current_labels_nothing_and_ending_elsewhere_steals_nothing(
    tmp_path, tracer
):
    start(tmp_path)
    orphan = tracer.start_span("never-current")
    unattached_work(0.2)
    with tracer.start_as_current_span("survivor") as survivor:
        # a span started here but ended on another thread, mid-way through our work
        other = tracer.start_span("ended-elsewhere")
        t = threading.Thread(target=other.end)
        survivor_work(0.15)
        t.start()
        t.join()
        survivor_work(0.15)
    orphan.end()
    samples = profile_samples(tmp_path)
    assert all("span_id" not in s.labels for s in samples if has_fn(s, "unattached_work"))
    mine = [s for s in samples if has_fn(s, "survivor_work")]
    assert sum(map(weight, mine)) >= 20 and all(
        s.labels.get("span_id") == hex_id(survivor) for s in mine
    )


def test_context_attach_and_use_span_are_followed(tmp_path, tracer):
    start(tmp_path)
    span = tracer.start_span("manual")
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        survivor_work(0.2)
    finally:
        otel_context.detach(token)
    with trace.use_span(span, end_on_exit=True):
        unattached_work(0.2)
    samples = profile_samples(tmp_path)
    for fn in ("survivor_work", "unattached_work"):
        mine = [s for s in samples if has_fn(s, fn)]
        assert sum(map(weight, mine)) >= 20 and all(
            s.labels.get("span_id") == hex_id(span) for s in mine
        ), fn
