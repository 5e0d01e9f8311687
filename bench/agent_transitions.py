"""How often a sample lands while CPython enters or leaves a frame, and what the sampler did with it.

Six threads do nothing but C->Python calls (map, sorted with a key), generator resumes and deep
returns across data-stack chunks, sampled at 1,000 Hz (the load of tests/agent/test_safety.py's
transition test). Prints the sampler's counters: samples_in_transition (kept, started at the
caller), samples_dropped_unsettled, samples_dropped_fault (a read the fault guard caught), and
how many worker samples were not rooted in the worker and `Thread._bootstrap` (should be 0).

    PYTHONPATH=src python bench/agent_transitions.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time

from spanprof import _native


def leaf(x: int) -> int:
    return x + 1


def recurse(n: int) -> int:
    return 0 if n == 0 else 1 + recurse(n - 1)


def gen(n: int):
    yield from range(n)


def worker(stop: threading.Event, k: int) -> None:
    data = list(range(200))
    while not stop.is_set():
        list(map(leaf, data))
        sorted(data, key=lambda v: -v)
        sum(x for x in gen(200))
        recurse(180 + (k * 37) % 400)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    sys.setrecursionlimit(5000)
    _native.start(1000, True, False, False, False)
    stop = threading.Event()
    threads = [threading.Thread(target=worker, args=(stop, k)) for k in range(6)]
    for t in threads:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    for t in threads:
        t.join()
    _native.stop()
    names = {"leaf", "recurse", "gen", "<lambda>", "<genexpr>", "worker"}
    in_worker = unrooted = 0
    for frames, _labels, count in _native.collect().samples():
        short = [f[0].split(".")[-1] for f in frames]
        if not any(n in names for n in short):
            continue
        in_worker += count
        # A real worker stack holds `worker` and ends in the thread's outermost frame.
        if "worker" not in short or short[-1] != "_bootstrap":
            unrooted += count
    st = _native.stats()
    keys = (
        "samples_taken",
        "samples_in_transition",
        "samples_dropped_unsettled",
        "samples_dropped_fault",
    )
    out = {k: st[k] for k in keys}
    out["worker_samples"] = in_worker
    out["unrooted_worker_samples"] = unrooted
    print(f"CPython {platform.python_version()}: {json.dumps(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
