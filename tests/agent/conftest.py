"""Shared fixtures for the agent-core tests: every test starts and ends with the sampler stopped and
the aggregate empty, so one test's samples never leak into another's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from spanprof import _native

# The folder the tested spanprof package was imported from, handed to child processes: in CI's
# sanitizer run that is the ASan build's copy, not the checkout's src/.
SRC = str(Path(_native.__file__).resolve().parents[1])


@pytest.fixture()
def native():
    _native.stop()
    _native.collect()
    yield _native
    _native.stop()
    _native.set_span_var(None)
    _native.collect()


def wait_for_timers(native, count: int, timeout: float = 5.0) -> None:
    """Waits until the drain's thread scan has armed timers for `count` threads."""
    deadline = time.monotonic() + timeout
    while native.stats()["timers_active"] < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"timers_active stayed at {native.stats()['timers_active']}")
        time.sleep(0.01)


def burn_cpu(seconds: float) -> float:
    """Burns `seconds` of this thread's CPU time in Python code; returns the CPU time used."""
    start = time.thread_time()
    x = 0
    while time.thread_time() - start < seconds:
        for _ in range(2000):
            x += 1
    return time.thread_time() - start


def run_python(
    code: str, timeout: float = 120, env_extra: dict | None = None
) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh interpreter (same venv) with spanprof importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def leaf_counts(profile) -> dict[str, int]:
    out: dict[str, int] = {}
    for frames, _labels, count in profile.samples():
        out[frames[0][0]] = out.get(frames[0][0], 0) + count
    return out
