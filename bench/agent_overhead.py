"""Overhead of the agent core's sampler on CPU-bound Python, measured inside one process.

Method (see /work/shared/brief/measuring.md): the same block of work is run alternately with the
sampler off and on, many short pairs, the order inside each pair alternating; each block is timed
with process CPU time (it includes the sampler's drain thread and the signal handlers). Reported:
median of the per-pair ratios on/off, with a distribution-free 95% confidence interval of that
median and the 25th-75th percentile spread. `--control` adds an A/A row (sampler off in both
blocks): what the method reads when there is nothing to find. start() happens before a 20 ms
pause outside the timed block (a real program starts the agent once; the cost that remains in
the block is sampling plus the drain's periodic work).

    PYTHONPATH=src python bench/agent_overhead.py [--pairs 100] [--block 0.1] [--rate 100] [--wall]

Also printed, per workload: the overhead the sampler accounts for itself, (handler ns + drain CPU
ns) / CPU time of the profiled blocks. It is a lower bound (it leaves out the kernel's signal
delivery, a few microseconds per sample, and GIL hand-offs the drain causes) but, unlike the
ratio, it does not drown in the noise of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import threading
import time

from calibration import units_for

from spanprof import _native


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def work_unit() -> int:
    # Some depth (fib recursion ~20 frames) and plain loops.
    total = fib(18)
    for i in range(2000):
        total += i * i % 7
    return total


def calibrate(seconds: float) -> int:
    return units_for(work_unit, seconds, probe=seconds / 4)


def block_single(units: int) -> None:
    for _ in range(units):
        work_unit()


class Pool:
    """Persistent busy threads: they exist before start(), which arms every existing thread at
    once (threads created inside a block would wait for the drain's next thread scan)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.go = [threading.Semaphore(0) for _ in range(n)]
        self.done = threading.Semaphore(0)
        self.units = 0
        for i in range(n):
            threading.Thread(target=self._run, args=(i,), daemon=True).start()

    def _run(self, i: int) -> None:
        while True:
            self.go[i].acquire()
            block_single(self.units)
            self.done.release()

    def block(self, units: int) -> None:
        self.units = max(1, units // self.n)
        for g in self.go:
            g.release()
        for _ in range(self.n):
            self.done.acquire()


def timed(fn, *args) -> float:
    t = time.process_time()
    fn(*args)
    return time.process_time() - t


def median_ci(xs: list) -> tuple:
    """Distribution-free ~95% confidence interval of the median (order statistics)."""
    ys = sorted(xs)
    n = len(ys)
    half = 0.98 * n**0.5  # 1.96 * sqrt(n) / 2
    lo = max(0, int(n / 2 - half))
    hi = min(n - 1, int(n / 2 + half + 0.5))
    return ys[lo], ys[hi]


def measure(
    label: str,
    fn,
    args,
    pairs: int,
    rate: int,
    control: bool = False,
    wall: bool = False,
    settle: float = 0.02,
) -> dict:
    """control=True: both blocks of a pair run with the sampler off (an A/A run): its ratio
    shows what the method reads when there is no difference at all."""
    ratios = []
    on_cpu = 0.0
    before = _native.stats()
    for i in range(pairs):
        order = (False, True) if i % 2 == 0 else (True, False)
        res = {}
        for on in order:
            if on and not control:
                _native.start(rate, True, False, False, False, wall=wall)
            # Let a fresh drain thread take and release the GIL once (its start-up) outside the
            # timed block: the block measures sampling, not start(); both arms wait alike.
            time.sleep(settle)
            res[on] = timed(fn, *args)
            if on and not control:
                _native.stop()
                _native.collect()
        ratios.append(res[True] / res[False])
        on_cpu += res[True]
    after = _native.stats()
    own_ns = sum(
        after[k] - before[k] for k in ("handler_ns_total", "drain_ns_total", "wall_sampler_ns")
    )
    q = statistics.quantiles(ratios, n=4)
    ci = median_ci(ratios)
    return {
        "label": label,
        "median": statistics.median(ratios),
        "ci95": ci,
        "p25": q[0],
        "p75": q[2],
        "min": min(ratios),
        "max": max(ratios),
        "pairs": pairs,
        "accounted": own_ns / 1e9 / on_cpu,
        "samples": after["samples_taken"] - before["samples_taken"],
    }


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import os

    return (
        f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"CPython {platform.python_version()}, load avg {os.getloadavg()[0]:.2f}"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--block", type=float, default=0.1, help="CPU seconds per block")
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--threads", type=int, default=8, help="0: only the one-thread workload")
    ap.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    ap.add_argument(
        "--control", action="store_true", help="also run an A/A control (sampler off in both)"
    )
    ap.add_argument(
        "--wall", action="store_true", help="wall-clock sampling on too (CPU + wall profiles)"
    )
    ap.add_argument("--idle-threads", type=int, default=0, help="threads parked on an Event")
    ap.add_argument(
        "--settle",
        type=float,
        default=0.02,
        help="seconds between start() and the timed block (wall mode reads every idle thread and "
        "task in full once after start: give it the time a long-running program gives it)",
    )
    ap.add_argument("--idle-tasks", type=int, default=0, help="asyncio tasks parked on an Event")
    a = ap.parse_args()
    units = calibrate(a.block)
    if a.idle_threads or a.idle_tasks:
        from agent_wall import park_idle

        park_idle(a.idle_threads, a.idle_tasks)
    print(machine())
    before = _native.stats()
    rows = [
        measure("1 thread", block_single, (units,), a.pairs, a.rate, wall=a.wall, settle=a.settle)
    ]
    if a.threads > 0:
        pool = Pool(a.threads)
        rows.append(
            measure(
                f"{a.threads} busy threads",
                pool.block,
                (units,),
                a.pairs,
                a.rate,
                wall=a.wall,
                settle=a.settle,
            )
        )
    if a.control:
        rows.append(
            measure("control: 1 thread, sampler off in both", block_single, (units,), a.pairs,
                    a.rate, control=True)
        )  # fmt: skip
    after = _native.stats()
    mode = ("CPU + wall-clock" if a.wall else "CPU") + (
        f", beside {a.idle_threads} idle threads and {a.idle_tasks} suspended tasks"
        if a.idle_threads or a.idle_tasks
        else ""
    )
    print(
        f"{mode}, rate {a.rate} Hz, {a.pairs} pairs of ~{a.block:.2f} s CPU blocks, process CPU time"
    )
    print(
        "| workload | median on/off | 95% CI of median | p25-p75 | min-max | accounted overhead "
        "| samples |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['label']} | {r['median']:.4f} | {r['ci95'][0]:.4f}-{r['ci95'][1]:.4f} | "
            f"{r['p25']:.4f}-{r['p75']:.4f} | "
            f"{r['min']:.3f}-{r['max']:.3f} | {100 * r['accounted']:.3f}% | {r['samples']} |"
        )
    taken = after["samples_taken"] - before["samples_taken"]
    dropped = after["samples_dropped"] - before["samples_dropped"]
    hns = after["handler_ns_total"] - before["handler_ns_total"]
    dns = after["drain_ns_total"] - before["drain_ns_total"]
    print(
        f"samples taken {taken}, dropped {dropped}, handler {hns / max(taken, 1) / 1000:.2f} us/sample, "
        f"drain CPU {dns / max(taken, 1) / 1000:.2f} us/sample"
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {
                    "machine": machine(),
                    "rate": a.rate,
                    "pairs": a.pairs,
                    "block_s": a.block,
                    "rows": rows,
                    "samples_taken": taken,
                    "samples_dropped": dropped,
                    "handler_ns_per_sample": hns / max(taken, 1),
                    "drain_ns_per_sample": dns / max(taken, 1),
                },
                f,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
