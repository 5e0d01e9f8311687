"""Span lookup at native level: a SpanRef stored in a ContextVar labels the samples taken while it
is current, per thread and per asyncio task; thread tags label a thread's samples."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest
from conftest import burn_cpu, wait_for_timers

SPAN_VAR: contextvars.ContextVar = contextvars.ContextVar("spanprof_test_span", default=None)


def ids(n: int) -> tuple[bytes, bytes, bytes]:
    return (n.to_bytes(16, "big"), (1000 + n).to_bytes(8, "big"), (2000 + n).to_bytes(8, "big"))


def test_spanref_is_immutable_and_validated(native):
    trace, span, root = ids(7)
    ref = native.SpanRef(trace, span, root, "GET /x")
    assert (ref.trace_id, ref.span_id, ref.root_span_id, ref.root_name) == (
        trace,
        span,
        root,
        "GET /x",
    )
    with pytest.raises(AttributeError):
        ref.span_id = b"x" * 8
    with pytest.raises(ValueError):
        native.SpanRef(b"short", span, root, "n")
    with pytest.raises(TypeError):
        native.SpanRef(trace, span, root, 5)
    with pytest.raises(TypeError):
        native.set_span_var("not a var")


def span_worker(n: int, seconds: float, ready, go) -> None:
    trace, span, root = ids(n)
    SPAN_VAR.set(native_mod().SpanRef(trace, span, root, f"root-{n}"))
    ready.wait()
    go.wait()
    globals()[f"work_{n}"](seconds)


def native_mod():
    from spanprof import _native

    return _native


def make_work(n: int):
    # A distinct code object per worker so a sample's stack says which worker it came from.
    src = f"def work_{n}(seconds):\n    return burn_cpu(seconds)\n"
    exec(compile(src, __file__, "exec"), globals())


for _i in range(60):
    make_work(_i)


def check_samples(profile, expect_prefix="root-"):
    seen = 0
    for frames, labels, count in profile.samples():
        work = [f[0] for f in frames if f[0].startswith("work_")]
        if not work:
            continue
        n = int(work[0].split("_")[1])
        trace, span, root = ids(n)
        assert labels.get("trace_id") == trace.hex(), (work, labels)
        assert labels["active_span_id"] == span.hex()
        assert labels["span_id"] == root.hex()
        assert labels["span_name"] == f"{expect_prefix}{n}"
        seen += count
    return seen


def test_span_labels_per_thread(native):
    native.set_span_var(SPAN_VAR)
    native.start(100, True, False, False, False)
    ready, go = threading.Barrier(5), threading.Event()
    threads = [threading.Thread(target=span_worker, args=(n, 0.25, ready, go)) for n in range(4)]
    for t in threads:
        t.start()
    ready.wait()
    wait_for_timers(native, 5)
    go.set()
    for t in threads:
        t.join()
    native.stop()
    assert check_samples(native.collect()) >= 40
    assert native.stats()["span_lookup_failed"] == 0


def test_span_labels_per_asyncio_task(native):
    native.set_span_var(SPAN_VAR)

    async def task_body(n: int) -> None:
        trace, span, root = ids(n)
        SPAN_VAR.set(native.SpanRef(trace, span, root, f"task-{n}"))
        work = globals()[f"work_{n}"]
        for _ in range(4):
            work(0.004)
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task_body(n) for n in range(50)))

    before = native.stats()
    native.start(100, True, False, False, False)
    asyncio.run(main())
    native.stop()
    assert check_samples(native.collect(), expect_prefix="task-") >= 40
    after = native.stats()
    assert after["span_lookup_ok"] > before["span_lookup_ok"]
    assert after["span_lookup_failed"] == before["span_lookup_failed"]


def test_many_context_vars_still_found(native):
    # Enough variables that the context's HAMT root becomes an array node with sub-nodes.
    native.set_span_var(SPAN_VAR)
    extra = [contextvars.ContextVar(f"filler_{i}") for i in range(200)]

    def body():
        for i, v in enumerate(extra):
            v.set(i)
        trace, span, root = ids(3)
        SPAN_VAR.set(native.SpanRef(trace, span, root, "root-3"))
        globals()["work_3"](0.3)

    native.start(100, True, False, False, False)
    contextvars.copy_context().run(body)
    native.stop()
    assert check_samples(native.collect()) >= 20


def test_no_span_means_no_span_labels(native):
    native.set_span_var(SPAN_VAR)
    native.start(100, True, False, False, False)
    contextvars.Context().run(burn_cpu, 0.2)
    native.stop()
    for _frames, labels, _c in native.collect().samples():
        assert "trace_id" not in labels


def test_thread_tags_replace_and_clear(native):
    native.start(100, True, False, False, False)
    me = threading.get_ident()
    native.set_thread_tags(me, {"stage": "one", "team": "a"})
    globals()["work_10"](0.2)
    native.set_thread_tags(me, {"stage": "two"})
    globals()["work_11"](0.2)
    native.set_thread_tags(me, None)
    globals()["work_12"](0.2)
    native.stop()
    by_work: dict[str, set] = {}
    for frames, labels, _c in native.collect().samples():
        for f in frames:
            if f[0].startswith("work_"):
                by_work.setdefault(f[0], set()).add(tuple(sorted(labels.items())))
    assert by_work["work_10"] == {(("stage", "one"), ("team", "a"))}
    assert by_work["work_11"] == {(("stage", "two"),)}
    assert by_work["work_12"] == {()}
    with pytest.raises(TypeError):
        native.set_thread_tags(me, {"k": 1})


def test_thread_tags_of_exited_threads_are_released(native):
    native.start(100, True, False, False, False)

    def short():
        native.set_thread_tags(threading.get_ident(), {"k": "v"})

    for _ in range(6000):  # more than the 4,096-slot table holds unless exited threads are released
        t = threading.Thread(target=short)
        t.start()
        t.join()
    time.sleep(0.2)
    native.set_thread_tags(threading.get_ident(), {"still": "works"})
    native.stop()
