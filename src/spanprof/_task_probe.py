"""Objects whose memory tells the native wall sampler where asyncio keeps what it reads.

``probe()`` runs once, with the GIL, when wall-clock sampling starts. It builds a task on a
throw-away loop that is not run (only the task's first step is executed, by hand, so it works
while another loop runs in this thread) and returns the objects the native side looks for in the
task's memory, plus the registry of live tasks of this CPython. Nothing here runs afterwards."""

from __future__ import annotations

import contextvars
import sys
from typing import Any, Dict


async def _spanprof_probe_await(fut: Any) -> None:
    await fut


def _run_ready(loop: Any) -> None:
    """Runs the loop's ready callbacks once, as its own iteration would (3.14+ check that the loop
    is this thread's running loop): works even while another loop runs in this thread."""
    from asyncio import events

    outer = events._get_running_loop()
    events._set_running_loop(loop)
    try:
        while loop._ready:
            loop._ready.popleft()._run()
    finally:
        events._set_running_loop(outer)


def registry() -> Any:
    """The set behind asyncio's WeakSet of tasks (3.10-3.13), or None (3.14+: per-thread lists)."""
    if sys.version_info >= (3, 14):
        return None
    if sys.version_info >= (3, 12):
        import _asyncio

        return _asyncio._scheduled_tasks.data  # type: ignore[attr-defined]
    import asyncio.tasks

    return asyncio.tasks._all_tasks.data  # type: ignore[attr-defined]


def _in_thread(fn: Any, *args: Any) -> Any:
    """Runs fn in a fresh thread: no event loop or task is running there (3.14+ refuse to step a
    task while another task runs in the thread, which is the case when the agent starts from a
    coroutine)."""
    import threading

    box: Dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # reported to the caller, which turns task sampling off
            box["error"] = e

    t = threading.Thread(target=run, name="spanprof-task-probe", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def probe() -> Dict[str, Any]:
    result: Dict[str, Any] = _in_thread(_probe)
    return result


def _probe() -> Dict[str, Any]:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        pending = loop.create_future()
        finished = loop.create_future()
        finished.set_result(None)
        cancelled = loop.create_future()
        cancelled.cancel()
        ctx = contextvars.copy_context()
        coro = _spanprof_probe_await(pending)
        task = ctx.run(loop.create_task, coro, name="spanprof-probe-task")
        name = task.get_name()  # 3.12+ keep a number until asked
        # The task's first step, as the loop would run it: it suspends awaiting `pending`.
        _run_ready(loop)
        result = {
            "task": task,
            "coro": coro,
            "name": name,
            "waiter": pending,
            "pending": pending,
            "finished": finished,
            "cancelled": cancelled,
            "future_iter_type": type(pending.__await__()),
            "registry": registry(),
        }
        return result
    finally:
        # The probe objects stay referenced by the caller until it has read them.
        pass


def finish(objects: Dict[str, Any]) -> None:
    """Cancels the probe task and closes its loop (after the native side read it)."""
    _in_thread(_finish, objects)


def _finish(objects: Dict[str, Any]) -> None:
    task = objects.get("task")
    if task is None:
        return
    loop = task.get_loop()
    task.cancel()
    _run_ready(loop)
    loop.close()
