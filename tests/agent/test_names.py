"""Function names, files and lines of generators, coroutines, methods, lambdas and nested
functions. Each construct burns CPU on its own marked line."""

from __future__ import annotations

import asyncio
import inspect
import sys
import time

HERE = __file__
QUALNAMES = sys.version_info >= (3, 11)  # co_qualname; older versions report co_name


def marked_line(fn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    for i, line in enumerate(lines):
        if marker in line:
            return start + i
    raise AssertionError(marker)


def gen_burn(seconds):
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        yield sum(range(20000))  # MARK-gen


async def coro_inner(seconds):
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        sum(range(20000))  # MARK-coro
        await asyncio.sleep(0)


async def coro_outer(seconds):
    await coro_inner(seconds)


class Burner:
    def method(self, seconds):
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            sum(range(20000))  # MARK-method

    @classmethod
    def cls_method(cls, seconds):
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            sum(range(20000))  # MARK-classmethod


def outer(seconds):
    def inner():
        start = time.thread_time()
        while time.thread_time() - start < seconds:
            sum(range(20000))  # MARK-nested

    inner()


def run_lambda(seconds):
    start = time.thread_time()
    f = lambda: sum(range(20000))  # MARK-lambda  # noqa: E731
    while time.thread_time() - start < seconds:
        f()


def frames_with(profile, name):
    out = []
    for frames, _labels, count in profile.samples():
        for i, (fn, file, _line) in enumerate(frames):
            if fn == name and file == HERE:
                out.append((frames, i, count))
                break
    return out


def expect(profile, qualname, plain, marker, fn_for_lines, caller=None):
    name = qualname if QUALNAMES else plain
    hits = frames_with(profile, name)
    assert hits, (name, [f[0][0] for f, _l, _c in profile.samples()][:20])
    line = marked_line(fn_for_lines, marker)
    on_line = sum(c for frames, i, c in hits if frames[i][1] == HERE and frames[i][2] == line)
    assert on_line >= 0.5 * sum(c for _f, _i, c in hits), (
        name,
        line,
        [(f[i], c) for f, i, c in hits][:10],
    )
    if caller is not None:
        callers = {frames[i + 1][0] for frames, i, _c in hits if i + 1 < len(frames)}
        assert caller in callers, callers


def test_names_files_and_lines(native):
    native.start(100, True, False, False, False)
    for _ in gen_burn(0.3):
        pass
    asyncio.run(coro_outer(0.3))
    Burner().method(0.3)
    Burner.cls_method(0.3)
    outer(0.3)
    run_lambda(0.3)
    native.stop()
    p = native.collect()
    expect(p, "gen_burn", "gen_burn", "MARK-gen", gen_burn, caller="test_names_files_and_lines")
    expect(p, "coro_inner", "coro_inner", "MARK-coro", coro_inner, caller="coro_outer")
    expect(p, "Burner.method", "method", "MARK-method", Burner.method)
    expect(p, "Burner.cls_method", "cls_method", "MARK-classmethod", Burner.cls_method.__func__)
    expect(p, "outer.<locals>.inner", "inner", "MARK-nested", outer, caller="outer")
    expect(
        p,
        "run_lambda.<locals>.<lambda>",
        "<lambda>",
        "MARK-lambda",
        run_lambda,
        caller="run_lambda",
    )
