"""Span attribution, spanprof vs pyroscope-io + pyroscope-otel, on the same two workloads.

    python bench/span_attribution.py [--runs 3] [--rate 100] [--markdown]

Workloads (identical program text for both sides, only the two profiler imports differ):
- asyncio: 50 concurrent tasks on one event loop, each in its own root span, each burning CPU in a
  function of its own (``worker_<i>``) in 5 ms slices separated by ``await asyncio.sleep(0)``;
- threads: 8 threads, each in its own root span, each burning CPU in ``worker_<i>``.

Both profilers push to an in-process receiver (Pyroscope's ``/push.v1.PusherService/Push`` over
HTTP on 127.0.0.1); every sample whose stack holds ``worker_<i>`` is *correct* when its
``span_id`` label is span i's id, *wrong* when it is another span's id, *unlabelled* otherwise.

Setup: pyroscope-io and pyroscope-otel are installed from the package index into a venv of their
own (``bench/out/venv-pyroscope``, made from this interpreter), so the project's venvs stay as
they are. spanprof runs from this checkout (``src/``) on this interpreter.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
PEER_VENV = OUT / "venv-pyroscope"
PEER_PACKAGES = ["pyroscope-io", "pyroscope-otel", "opentelemetry-sdk"]

WORKLOAD = r"""
import asyncio, json, os, sys, threading, time
from opentelemetry.sdk.trace import TracerProvider
if os.environ["SIDE"] == "pyroscope":
    import pyroscope
    from pyroscope.otel import PyroscopeSpanProcessor
else:
    import spanprof as pyroscope
    from spanprof.otel import PyroscopeSpanProcessor

pyroscope.configure(application_name="attribution-bench", server_address=os.environ["URL"],
                    sample_rate=int(os.environ["RATE"]), oncpu=True, gil_only=True)
provider = TracerProvider()
provider.add_span_processor(PyroscopeSpanProcessor())
tracer = provider.get_tracer("bench")

def burn(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(1000):
            x += i * i
    return x

N = 50 if os.environ["WORKLOAD"] == "asyncio" else 8
workers = []
for i in range(N):
    ns = {"burn": burn}
    exec(f"def worker_{i}(s):\n    return burn(s)\n", ns)
    workers.append(ns[f"worker_{i}"])
ids = {}

async def task(i):
    with tracer.start_as_current_span(f"task-{i}") as span:
        ids[i] = format(span.get_span_context().span_id, "016x")
        for _ in range(20):
            workers[i](0.005)
            await asyncio.sleep(0)

async def main():
    await asyncio.gather(*(task(i) for i in range(N)))

def thread(i, barrier):
    with tracer.start_as_current_span(f"thread-{i}") as span:
        ids[i] = format(span.get_span_context().span_id, "016x")
        barrier.wait()
        workers[i](0.5)

time.sleep(0.5)  # let the profiler's own threads settle
if N == 50:
    asyncio.run(main())
else:
    barrier = threading.Barrier(N)
    ts = [threading.Thread(target=thread, args=(i, barrier)) for i in range(N)]
    for t in ts: t.start()
    for t in ts: t.join()
pyroscope.shutdown()
print(json.dumps(ids))
"""


def ensure_peer_venv() -> Path:
    py = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / ".installed"
    if not stamp.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
        stamp.write_text("\n".join(PEER_PACKAGES))
    return py


def peer_versions(py: Path) -> str:
    code = "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in ['pyroscope-io', 'pyroscope-otel', 'opentelemetry-sdk']))"
    return subprocess.run(
        [str(py), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


_WORKER = re.compile(r"(?:^|\.)worker_(\d+)\b")


def score(series, ids: Dict[str, str], period: int) -> Dict[str, int]:
    counts = {"correct": 0, "wrong": 0, "unlabelled": 0}
    for se in series:
        for prof in se.profiles:
            for s in prof.samples:
                owner = next((m.group(1) for f in s.functions if (m := _WORKER.search(f))), None)
                if owner is None:
                    continue
                n = max(1, s.values[0] // (prof.period or period))
                got = s.labels.get("span_id") or se.labels.get("span_id")
                if got is None:
                    counts["unlabelled"] += n
                elif got == ids[owner]:
                    counts["correct"] += n
                else:
                    counts["wrong"] += n
    return counts


def run_once(side: str, workload: str, rate: int, python: str) -> Dict[str, int]:
    sys.path.insert(0, str(ROOT / "tests" / "api"))
    from support import Receiver, Server

    rec = Receiver()
    server = Server(rec)
    try:
        env = dict(os.environ, SIDE=side, WORKLOAD=workload, RATE=str(rate), URL=rec.url)
        if side == "spanprof":
            env["PYTHONPATH"] = str(ROOT / "src")
        out = subprocess.run(
            [python, "-c", WORKLOAD], env=env, capture_output=True, text=True, timeout=300
        )
        if out.returncode != 0:
            raise RuntimeError(f"{side}/{workload} failed:\n{out.stderr[-3000:]}")
        ids = json.loads(out.stdout.strip().splitlines()[-1])
        rec.wait_for(lambda: bool(rec.pushes()), timeout=15)
        time.sleep(0.5)
        return score(rec.series(), ids, 1_000_000_000 // rate)
    finally:
        server.close()


def share(c: Dict[str, int]) -> float:
    total = sum(c.values())
    return 100.0 * c["correct"] / total if total else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument(
        "--markdown", action="store_true", help="print the BENCHMARKS.md table (always printed)"
    )
    ap.add_argument(
        "--json", metavar="PATH", help="also write the per-run counts and the machine as JSON"
    )
    args = ap.parse_args()
    peer = ensure_peer_venv()
    results: Dict[str, Dict[str, List[Dict[str, int]]]] = {}
    for workload in ("asyncio", "threads"):
        for side, python in (("pyroscope", str(peer)), ("spanprof", sys.executable)):
            for r in range(args.runs):
                c = run_once(side, workload, args.rate, python)
                results.setdefault(workload, {}).setdefault(side, []).append(c)
                print(
                    f"{workload:8} {side:10} run {r + 1}: {c} -> {share(c):.1f}% correct",
                    file=sys.stderr,
                )
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"\nDate: {time.strftime('%Y-%m-%d')}. Machine: {cpu}, {os.cpu_count()} vCPU, Linux {platform.release()}, "
        f"CPython {platform.python_version()}. Peer: {peer_versions(peer)}. Sample rate {args.rate} Hz, {args.runs} runs each.\n"
    )
    print(
        "| workload | profiler | correct share (median, min-max) | wrong | unlabelled | samples in workers |"
    )
    print("|---|---|---|---|---|---|")
    for workload, sides in results.items():
        for side, runs in sides.items():
            shares = [share(c) for c in runs]
            label = "pyroscope-io + pyroscope-otel" if side == "pyroscope" else "spanprof"
            tot = {k: sum(c[k] for c in runs) for k in ("correct", "wrong", "unlabelled")}
            print(
                f"| {workload} | {label} | {statistics.median(shares):.1f}% ({min(shares):.1f}-{max(shares):.1f}) | "
                f"{tot['wrong']} | {tot['unlabelled']} | {sum(tot.values())} |"
            )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "cpu": cpu,
                    "python": platform.python_version(),
                    "peer": peer_versions(peer),
                    "rate_hz": args.rate,
                    "runs": results,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
