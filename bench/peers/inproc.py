"""In-process overhead of spanprof and pyroscope-io measured the same way (measuring brief, point 1).

    python bench/peers/inproc.py --kind cpu|mixed --groups N [--block 0.2] --url URL

Both profilers can be started and stopped inside one process (spanprof.configure / shutdown,
pyroscope.configure / shutdown), so each group runs the same block of work once per profiler,
``none`` included, in an order that rotates from group to group; start, a 50 ms settle and stop
are outside the timed region. Each block is timed with process CPU time (it includes the
profilers' own threads). Prints one JSON line: per profiler, the block times of every group.
Adjacent blocks of the same work agree to about ±0.2% on these machines, where whole processes
drift by ±6-25%, so this resolves the 1% target that the process-level runs cannot.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from calibration import units_for
from target import cpu_block, run_threads, start_profiler

PROFILERS = ("none", "spanprof", "pyroscope-gil", "pyroscope-all")


def make_block(kind: str, seconds: float) -> Callable[[], None]:
    """A fixed amount of work calibrated to about ``seconds`` of CPU without a profiler."""
    units = max(8, units_for(cpu_block, seconds, probe=0.05))
    if kind == "cpu":

        def block() -> None:
            for _ in range(units):
                cpu_block()

        return block

    def one(_i: int) -> None:
        for _ in range(max(1, units // 8)):
            cpu_block()
            time.sleep(0.001)

    return lambda: run_threads(8, one) and None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=("cpu", "mixed"), required=True)
    ap.add_argument("--groups", type=int, default=30)
    ap.add_argument("--block", type=float, default=0.2)
    ap.add_argument("--url", required=True)
    args = ap.parse_args()
    block = make_block(args.kind, args.block)
    block()  # warm-up
    times: Dict[str, List[float]] = {p: [] for p in PROFILERS}
    for g in range(args.groups):
        order = PROFILERS[g % len(PROFILERS) :] + PROFILERS[: g % len(PROFILERS)]
        for prof in order:
            stop = start_profiler(prof, args.url, 100)
            time.sleep(0.05)  # the profiler's threads start and its timers arm
            t = time.process_time()
            block()
            times[prof].append(time.process_time() - t)
            stop()
    print(json.dumps({"times": times}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
