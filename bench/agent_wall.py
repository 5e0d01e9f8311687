"""Wall-clock mode (issue #15), side by side in one run.

1. Overhead at 100 Hz, in process (measuring brief, point 1): groups of the same CPU block run
   with no profiler, spanprof (CPU + wall profiles, `profile_types=("cpu","wall")`) and, where
   installed, pyroscope-io with `oncpu=False` (its wall mode, idle threads included), the order
   rotating per group; start, a 0.4 s settle (the first full read of every thread and task) and stop outside the
   timed region; process CPU time.
   Workloads: 1 busy thread; 8 busy threads; 1 busy thread beside 200 idle threads and 2,000
   asyncio tasks suspended on an await (an event loop in its own thread).
2. Cost per round of the wall sampler as idle threads or suspended tasks grow (10 ... 10,000),
   each in a fresh process: the sampler thread's CPU per round and the drain's CPU per round
   (stats `wall_sampler_ns`, `drain_ns_total`), as % of a core at 100 Hz.
3. Span labels under asyncio: 20 tasks, each in its own span, each awaiting asyncio.sleep(0.3) in a
   coroutine of its own, repeated; the share of the awaited time found in that coroutine and
   the share of it on the right span: spanprof vs pyroscope-io + pyroscope-otel (oncpu=False).

    .venvs/3.11/bin/python bench/agent_wall.py [--groups 30] [--block 0.2] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "bench" / "peers"))
sys.path.insert(0, str(ROOT / "tests" / "api"))
from calibration import units_for  # noqa: E402
from target import cpu_block  # noqa: E402


def machine() -> str:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} cores, Linux {platform.release()}, "
        f"CPython {platform.python_version()}, load avg {os.getloadavg()[0]:.2f}"
    )


def have_pyroscope() -> bool:
    try:
        import pyroscope  # noqa: F401
    except ImportError:
        return False
    return True


# ---- 1. overhead -------------------------------------------------------------------------------


def start(name: str, url: str) -> Callable[[], Any]:
    if name == "spanprof":
        import spanprof

        spanprof.configure(application_name="bench-wall", server_address=url, upload_interval=1,
                           profile_types=("cpu", "wall"))  # fmt: skip
        return spanprof.shutdown
    if name == "pyroscope-wall":
        import pyroscope

        pyroscope.configure(application_name="bench-wall", server_address=url, upload_interval=1,
                            oncpu=False, gil_only=False)  # fmt: skip
        return pyroscope.shutdown
    return lambda: None


class Busy:
    """n persistent threads running the same CPU block on demand."""

    def __init__(self, n: int, units: int) -> None:
        self.go = [threading.Semaphore(0) for _ in range(n)]
        self.done = threading.Semaphore(0)
        self.units = max(1, units // n)
        for g in self.go:
            threading.Thread(target=self._run, args=(g,), daemon=True).start()

    def _run(self, go: threading.Semaphore) -> None:
        while True:
            go.acquire()
            for _ in range(self.units):
                cpu_block()
            self.done.release()

    def block(self) -> None:
        for g in self.go:
            g.release()
        for _ in self.go:
            self.done.acquire()


def park_idle(threads: int, tasks: int) -> Callable[[], None]:
    """Idle threads on an Event and suspended tasks on an asyncio.Event in a loop thread."""
    ev = threading.Event()
    for _ in range(threads):
        threading.Thread(target=ev.wait, daemon=True).start()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    async def parked(e: asyncio.Event) -> None:
        await e.wait()

    async def main() -> None:
        e = asyncio.Event()
        ts = [asyncio.ensure_future(parked(e)) for _ in range(tasks)]
        ready.set()
        await asyncio.gather(*ts)

    threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True).start()
    ready.wait()
    return ev.set


def overhead(profilers: List[str], groups: int, block_s: float, url: str) -> Dict[str, Any]:
    units = max(8, units_for(cpu_block, block_s, probe=0.05))
    one = Busy(1, units)
    workloads: Dict[str, Callable[[], None]] = {
        "1 busy thread": one.block,
        "8 busy threads": Busy(8, units).block,
        # the idle population is parked when this row starts (after the rows above)
        "1 busy thread + 200 idle threads + 2,000 suspended tasks": one.block,
    }
    from spanprof import _native

    def own_ns() -> int:
        s = _native.stats()
        return int(s["handler_ns_total"] + s["drain_ns_total"] + s["wall_sampler_ns"])

    out: Dict[str, Any] = {}
    for label, block in workloads.items():
        if "idle" in label:
            park_idle(200, 2000)
        block()  # warm-up
        times: Dict[str, List[float]] = {p: [] for p in profilers}
        accounted_ns = 0
        for g in range(groups):
            order = profilers[g % len(profilers) :] + profilers[: g % len(profilers)]
            for prof in order:
                stop = start(prof, url)
                # A program starts the agent once: the first read of every thread and task (the
                # first 16 rounds with 2,000 tasks) is start-up, not the steady cost measured here.
                time.sleep(0.4)
                own0 = own_ns()
                t = time.process_time()
                block()
                times[prof].append(time.process_time() - t)
                if prof == "spanprof":
                    accounted_ns += own_ns() - own0
                stop()
        out[label] = {
            p: {
                "median_ratio": statistics.median(a / b for a, b in zip(times[p], times["none"])),
                "p25_p75": statistics.quantiles(
                    [a / b for a, b in zip(times[p], times["none"])], n=4
                )[::2],
            }
            for p in profilers
            if p != "none"
        }
        out[label]["spanprof"]["accounted"] = accounted_ns / 1e9 / sum(times["spanprof"])
        print(f"  {label}: {json.dumps(out[label])}", flush=True)
    return out


# ---- 2. cost per round -------------------------------------------------------------------------


def tick_cost_child(kind: str, n: int, seconds: float) -> Dict[str, Any]:
    from spanprof import _native

    release = park_idle(n if kind == "threads" else 0, n if kind == "tasks" else 0)
    time.sleep(0.3)
    _native.start(rate_hz=100, wall=True)
    time.sleep(0.5)  # first full reads done
    s0 = _native.stats()
    t0 = time.monotonic()
    time.sleep(seconds)
    s1 = _native.stats()
    elapsed = time.monotonic() - t0
    _native.stop()
    _native.collect()
    release()
    ticks = max(1, s1["wall_ticks"] - s0["wall_ticks"])

    def d(k: str) -> int:
        return int(s1[k] - s0[k])

    return {
        "kind": kind,
        "n": n,
        "ticks": ticks,
        "rounds_per_s": ticks / elapsed,
        "core_pct": 100 * (d("wall_sampler_ns") + d("drain_ns_total")) / 1e9 / elapsed,
        "sampler_us": d("wall_sampler_ns") / ticks / 1e3,
        "drain_us": d("drain_ns_total") / ticks / 1e3,
        "tasks_read": d("wall_tasks_read"),
        "tasks_skipped": d("wall_tasks_skipped"),
        "repeats": d("wall_repeats"),
    }


def tick_costs(seconds: float) -> List[Dict[str, Any]]:
    rows = []
    for kind in ("threads", "tasks"):
        for n in (10, 100, 1000, 10000):
            cmd = [sys.executable, __file__, "--tick-cost", kind, str(n), str(seconds)]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                               env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))  # fmt: skip
            if r.returncode != 0:
                rows.append({"kind": kind, "n": n, "error": r.stderr.strip()[-300:]})
                continue
            row = json.loads(r.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(f"  {kind} {n}: {row}", flush=True)
    return rows


# ---- 3. span labels under asyncio --------------------------------------------------------------

ASYNC = (
    r"""
import asyncio, json, sys, time
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
sys.path.insert(0, sys.argv[3])
from support import Receiver, Server
rec = Receiver()
server = Server(rec)
which = sys.argv[1]
provider = TracerProvider()
if which == "spanprof":
    import spanprof
    from spanprof.otel import SpanProfileProcessor
    spanprof.configure(application_name="asyncwall", server_address=rec.url, upload_interval=1,
                       profile_types=("wall",))
    provider.add_span_processor(SpanProfileProcessor())
    stop = spanprof.shutdown
else:
    import pyroscope
    from pyroscope.otel import PyroscopeSpanProcessor
    pyroscope.configure(application_name="asyncwall", server_address=rec.url, upload_interval=1,
                        oncpu=False, gil_only=False)
    provider.add_span_processor(PyroscopeSpanProcessor())
    stop = pyroscope.shutdown
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("bench")
ids = {}

async def request(i, rnd):
    with tracer.start_as_current_span(f"req{i}") as span:
        ids[f"{rnd}-{i}"] = format(span.get_span_context().span_id, "016x")
        await COROS[i]()

async def main():
    for rnd in range(int(sys.argv[2])):
        await asyncio.gather(*(request(i, rnd) for i in range(20)))
"""
    + "".join(
        f"\nasync def wait_for_inventory_{i}():\n    await asyncio.sleep(0.3)\n" for i in range(20)
    )
    + r"""
COROS = [globals()[f"wait_for_inventory_{i}"] for i in range(20)]
t0 = time.monotonic()
asyncio.run(main())
elapsed = time.monotonic() - t0
stop()
time.sleep(0.5)
by_id = {v: k for k, v in ids.items()}
in_coro = right = total = 0
for s in rec.series():
    for prof in s.profiles:
        for smp in prof.samples:
            v = smp.values[0]
            total += v
            coro = next((f for f in smp.functions if f.startswith("wait_for_inventory_")), None)
            if coro is None:
                continue
            in_coro += v
            sid = smp.labels.get("span_id") or smp.labels.get("profile_id")
            key = by_id.get(sid)
            if key is not None and key.split("-")[1] == coro.rsplit("_", 1)[1]:
                right += v
server.close()
print(json.dumps({"awaited_ns": 20 * 0.3e9 * int(sys.argv[2]), "in_coro_ns": in_coro,
                  "right_ns": right, "total_ns": total, "elapsed": elapsed}))
"""
)


def async_labels(rounds: int, profilers: List[str]) -> Dict[str, Any]:
    out = {}
    for which in profilers:
        r = subprocess.run([sys.executable, "-c", ASYNC, which, str(rounds), str(ROOT / "tests" / "api")],
                           capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))  # fmt: skip
        if r.returncode != 0:
            out[which] = {"error": r.stderr.strip()[-400:]}
        else:
            out[which] = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"  {which}: {out[which]}", flush=True)
    return out


# ---- report ------------------------------------------------------------------------------------


def markdown(res: Dict[str, Any]) -> List[str]:
    lines = [f"Machine: {res['machine']}.", ""]
    names = [p for p in res["profilers"] if p != "none"]
    lines += [
        "| workload (100 Hz) | "
        + " | ".join(f"{p}: CPU ratio (p25-p75)" for p in names)
        + " | spanprof: its own threads' and handlers' CPU / block CPU |"
    ]
    lines += ["|---|" + "---|" * (len(names) + 1)]
    for label, row in res["overhead"].items():
        cells = [
            f"{row[p]['median_ratio']:.4f} ({row[p]['p25_p75'][0]:.3f}-{row[p]['p25_p75'][1]:.3f})"
            for p in names
        ]
        own = f"{100 * row['spanprof'].get('accounted', 0.0):.2f}%"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {own} |")
    lines += ["", "| idle | n | rounds/s | sampler µs/round | drain µs/round | sampler + drain, % of a core | tasks skipped per round |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in res["ticks"]:
        if "error" in r:
            lines.append(f"| {r['kind']} | {r['n']} | error: {r['error'][:80]} | | | | |")
            continue
        lines.append(
            f"| {r['kind']} | {r['n']:,} | {r['rounds_per_s']:.0f} | {r['sampler_us']:.1f} | "
            f"{r['drain_us']:.1f} | {r['core_pct']:.2f}% | {r['tasks_skipped'] / r['ticks']:.0f} |"
        )
    lines += ["", "| asyncio, 20 tasks x sleep(0.3) | awaited time in its coroutine | of it on the right span |",
              "|---|---|---|"]  # fmt: skip
    for which, r in res["async"].items():
        if "error" in r:
            lines.append(f"| {which} | error: {r['error'][-120:]} | |")
            continue
        share = r["in_coro_ns"] / r["awaited_ns"]
        right = r["right_ns"] / r["in_coro_ns"] if r["in_coro_ns"] else 0.0
        lines.append(f"| {which} | {100 * share:.1f}% | {100 * right:.1f}% |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=30)
    ap.add_argument("--block", type=float, default=0.2)
    ap.add_argument("--tick-seconds", type=float, default=3.0)
    ap.add_argument("--async-rounds", type=int, default=5)
    ap.add_argument("--json", metavar="PATH")
    ap.add_argument(
        "--tick-cost", nargs=3, metavar=("KIND", "N", "SECONDS"), help=argparse.SUPPRESS
    )
    a = ap.parse_args()
    if a.tick_cost:
        kind, n, secs = a.tick_cost
        print(json.dumps(tick_cost_child(kind, int(n), float(secs))))
        return 0
    from support import Receiver, Server

    profilers = ["none", "spanprof"] + (["pyroscope-wall"] if have_pyroscope() else [])
    res: Dict[str, Any] = {"machine": machine(), "profilers": profilers}
    rec = Receiver()
    server = Server(rec)
    try:
        print("overhead", flush=True)
        res["overhead"] = overhead(profilers, a.groups, a.block, rec.url)
    finally:
        server.close()
    print("cost per round", flush=True)
    res["ticks"] = tick_costs(a.tick_seconds)
    print("asyncio span labels", flush=True)
    res["async"] = async_labels(a.async_rounds, [p for p in profilers if p != "none"])
    res["markdown"] = markdown(res)
    print("\n".join(res["markdown"]))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
