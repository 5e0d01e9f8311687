"""The profiled program of the suite's process-level benchmarks (run as its own process).

    python bench/peers/target.py --profiler P --kind K [--url URL] [--size S] [--depth D]

Profiler P, started in-process before any timing: ``none``, ``spanprof`` (spanprof.configure),
``pyroscope-gil`` / ``pyroscope-all`` (pyroscope-io with gil_only=True / False). ``pyspy`` runs
unprofiled here: the suite attaches ``py-spy record`` to this process from outside. Both in-process
profilers sample at 100 Hz and push to URL every second (the suite's receiver on 127.0.0.1).

Protocol: after the profiler is started and a warm-up block has run, the program prints
``READY <pid>`` and waits for a line on stdin (the suite attaches py-spy in between), then runs the
timed work section, prints one JSON line with its own measurements, stops the profiler and exits.

Kinds:
- ``cpu``: one thread, pure-Python work under a ~20-frame stack; SIZE blocks.
- ``mixed``: 8 threads, each SIZE rounds of ~2 ms CPU then a 1 ms blocking sleep.
- ``depth``: one thread recurses to DEPTH frames of ``recurse_step`` and burns SIZE/10 s of CPU in
  ``deep_leaf`` at the bottom.
- ``attrib``: three threads burn CPU in ``burn_one``/``burn_two``/``burn_three`` in the ratio 1:2:3
  (SIZE/10 s for the first); each reports its own thread CPU clock.
- ``footprint``: 8 threads of the ``cpu`` work for SIZE/10 s each; reports VmRSS/VmHWM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any, Callable, Dict, List

PROFILERS = ("none", "spanprof", "pyroscope-gil", "pyroscope-all", "pyspy")


def start_profiler(name: str, url: str, rate: int) -> Callable[[], Any]:
    """Starts profiler ``name``; returns the function that stops it (flushing its last window)."""
    if name == "spanprof":
        import spanprof

        spanprof.configure(
            application_name="bench", server_address=url, sample_rate=rate, upload_interval=1
        )
        return spanprof.shutdown
    if name in ("pyroscope-gil", "pyroscope-all"):
        import pyroscope

        pyroscope.configure(
            application_name="bench",
            server_address=url,
            sample_rate=rate,
            upload_interval=1,
            gil_only=name == "pyroscope-gil",
        )
        return pyroscope.shutdown
    if name in ("none", "pyspy"):
        return lambda: None
    raise SystemExit(f"target: unknown profiler {name!r}")


# ---- work ------------------------------------------------------------------------------------


def _leaf(n: int) -> int:
    x = 0
    for i in range(n):
        x += (i * i) % 7
    return x


def _nest(level: int, n: int) -> int:
    if level == 0:
        return _leaf(n)
    return _nest(level - 1, n)


def cpu_block() -> int:
    """~2 ms of pure-Python work under ~20 frames."""
    return _nest(18, 20_000)


def burn(seconds: float) -> int:
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        x += _leaf(2_000)
    return x


def recurse_step(depth: int, seconds: float) -> int:
    if depth <= 1:
        return deep_leaf(seconds)
    return recurse_step(depth - 1, seconds)


def deep_leaf(seconds: float) -> int:
    return burn(seconds)


def burn_one(seconds: float) -> int:
    return burn(seconds)


def burn_two(seconds: float) -> int:
    return burn(seconds)


def burn_three(seconds: float) -> int:
    return burn(seconds)


def rss_kib() -> Dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0])
    return out


def run_threads(n: int, fn: Callable[[int], Any]) -> List[Any]:
    results: List[Any] = [None] * n
    barrier = threading.Barrier(n)

    def body(i: int) -> None:
        barrier.wait()
        results[i] = fn(i)

    ts = [threading.Thread(target=body, args=(i,), name=f"worker-{i}") for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return results


def work(kind: str, size: int, depth: int) -> Dict[str, Any]:
    """Runs the timed section; returns extra figures (the caller times it)."""
    if kind == "cpu":
        for _ in range(size):
            cpu_block()
        return {}
    if kind == "mixed":

        def mixed(_i: int) -> None:
            for _ in range(size):
                cpu_block()
                time.sleep(0.001)

        run_threads(8, mixed)
        return {}
    if kind == "depth":
        recurse_step(depth, size / 10)
        return {}
    if kind == "attrib":
        fns = (burn_one, burn_two, burn_three)

        def attrib(i: int) -> float:
            t0 = time.thread_time()
            fns[i]((i + 1) * size / 10)
            return time.thread_time() - t0

        return {
            "thread_cpu": dict(zip(("burn_one", "burn_two", "burn_three"), run_threads(3, attrib)))
        }
    if kind == "footprint":
        run_threads(8, lambda _i: burn(size / 10))
        return {}
    raise SystemExit(f"target: unknown kind {kind!r}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profiler", choices=PROFILERS, required=True)
    ap.add_argument("--kind", required=True)
    ap.add_argument("--url", default="")
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--depth", type=int, default=64)
    args = ap.parse_args()
    if args.kind == "depth":
        sys.setrecursionlimit(args.depth + 500)

    rss_before = rss_kib()
    stop = start_profiler(args.profiler, args.url, args.rate)
    # Warm-up: the profiler's threads settle, caches fill, the first timers fire.
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        cpu_block()
    print(f"READY {os.getpid()}", flush=True)
    sys.stdin.readline()

    c0, w0, t0 = time.process_time(), time.perf_counter(), time.thread_time()
    extra = work(args.kind, args.size, args.depth)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    # thread_cpu_s: the main thread's own CPU clock (the whole work of kinds cpu and depth).
    result: Dict[str, Any] = {
        "cpu_s": cpu,
        "wall_s": wall,
        "main_thread_cpu_s": time.thread_time() - t0,
        **extra,
    }
    result.update(
        {"rss_start_kib": rss_before["VmRSS"], **{f"{k}_kib": v for k, v in rss_kib().items()}}
    )
    if args.profiler == "spanprof":
        import spanprof

        result["stats"] = {k: v for k, v in spanprof.stats().items() if isinstance(v, (int, float))}
    print(json.dumps(result), flush=True)
    stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
