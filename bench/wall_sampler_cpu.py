"""The wall sampler thread's whole CPU (as the scheduler counts it: wake-ups included) against the
CPU it measures inside its rounds, in a process with one busy thread beside idle threads and
suspended tasks (ARCHITECTURE.md "Wall-clock sampling": what a wake-up costs on this machine).

    PYTHONPATH=src:bench python bench/wall_sampler_cpu.py [--seconds 10] [--threads 200] [--tasks 2000]
"""

from __future__ import annotations

import argparse
import os
import time

from agent_wall import park_idle

from spanprof import _native


def thread_cpu_ns() -> dict:
    """CPU time per thread of this process from /proc/self/task/*/schedstat (ns)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                out[tid] = (name, int(f.read().split()[0]))
        except OSError:
            continue
    return out


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--threads", type=int, default=200)
    ap.add_argument("--tasks", type=int, default=2000)
    a = ap.parse_args()
    park_idle(a.threads, a.tasks)
    _native.start(100, True, False, False, False, wall=True)
    time.sleep(1.0)  # the first full read of every idle thread and task stays out of the figure
    before, s0, t0 = thread_cpu_ns(), _native.stats(), time.monotonic()
    while time.monotonic() - t0 < a.seconds:
        fib(20)
    after, s1 = thread_cpu_ns(), _native.stats()
    _native.stop()
    sampler = sum(ns - before.get(tid, (name, 0))[1]
                  for tid, (name, ns) in after.items() if name == "spanprof-wall")  # fmt: skip
    rounds = s1["wall_ticks"] - s0["wall_ticks"]
    in_rounds = s1["wall_sampler_ns"] - s0["wall_sampler_ns"]
    print(f"{a.threads} idle threads, {a.tasks} tasks, 1 busy thread, {a.seconds:.0f} s, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"sampler thread CPU (schedstat): {sampler / 1e6:.1f} ms; inside rounds: "
          f"{in_rounds / 1e6:.1f} ms; rounds: {rounds}; per round: {in_rounds / 1e3 / max(rounds, 1):.0f} "
          f"us inside, {(sampler - in_rounds) / 1e3 / max(rounds, 1):.0f} us outside (wake-up)")  # fmt: skip


if __name__ == "__main__":
    main()
