"""CPU the agent's drain thread spends per round while one thread burns CPU (it wakes every
100 ms): drain_ns_total / drain_runs from spanprof.stats(), and the CPU of every thread other than
the busy one (process CPU - busy thread CPU) as a share of the busy thread's CPU.

    PYTHONPATH=src python bench/agent_drain_cost.py [--seconds 3]

At 1 Hz there is almost nothing to drain, so the figure is the round's fixed cost (wake-up, and
the GIL take when the drain needs one).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

from spanprof import _native


def busy(seconds: float) -> None:
    t = time.thread_time()
    x = 0
    while time.thread_time() - t < seconds:
        for i in range(10000):
            x += i


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    print(
        f"{time.strftime('%Y-%m-%d')}, Linux {platform.release()}, CPython {platform.python_version()}"
    )
    print("| rate | drain rounds | drain CPU per round | other threads' CPU / busy thread's CPU |")
    print("|---:|---:|---:|---:|")
    for rate in (1, 100):
        s0 = _native.stats()
        p0, t0 = time.process_time(), time.thread_time()
        _native.start(rate, True, False, False, False)
        busy(a.seconds)
        _native.stop()
        p1, t1 = time.process_time(), time.thread_time()
        s1 = _native.stats()
        _native.collect()
        runs = s1["drain_runs"] - s0["drain_runs"]
        ns = s1["drain_ns_total"] - s0["drain_ns_total"]
        other = (p1 - p0) - (t1 - t0)
        print(
            f"| {rate} Hz | {runs} | {ns / max(runs, 1) / 1000:.1f} µs | {100 * other / (t1 - t0):.3f}% |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
