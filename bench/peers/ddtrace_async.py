"""ddtrace's profiler under asyncio, measured the way bench/agent_wall.py measures spanprof and
pyroscope-io: 5 rounds of 20 tasks, each in its own span (ddtrace's own tracer), each awaiting
asyncio.sleep(0.3) in a coroutine of its own. ddtrace writes its profile to files
(DD_PROFILING_OUTPUT_PPROF, no Datadog agent needed). Prints the share of the awaited time found in
the awaiting coroutine and the share of that on the task's own span, as one JSON line.

ddtrace is not a dependency of the project: run it from a venv of its own,
    python -m venv /tmp/dd && /tmp/dd/bin/pip install ddtrace zstandard protobuf
    DD_PROFILING_OUTPUT_PPROF=/tmp/ddout/prof /tmp/dd/bin/python bench/peers/ddtrace_async.py
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import sys
import time
from pathlib import Path

import zstandard
from ddtrace.profiling import Profiler
from ddtrace.trace import tracer

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "examples"))
import pprof_reader

TASKS, ROUNDS = 20, 5
# One coroutine per task, each its own code object, so a sample names the task that waited.
_ns: dict = {"asyncio": asyncio}
exec(
    "".join(
        f"async def wait_for_inventory_{i}():\n    await asyncio.sleep(0.3)\n" for i in range(TASKS)
    ),
    _ns,
)
COROS = [_ns[f"wait_for_inventory_{i}"] for i in range(TASKS)]
span_ids: dict = {}


async def request(i: int, rnd: int) -> None:
    with tracer.trace(f"req{i}") as span:
        span_ids[span.span_id] = i
        await COROS[i]()


async def main() -> None:
    for rnd in range(ROUNDS):
        await asyncio.gather(*(request(i, rnd) for i in range(TASKS)))


def decoded(prefix: str) -> list:
    out = []
    for path in sorted(glob.glob(prefix + "*.pprof")):
        with open(path, "rb") as f:
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(f.read())
        out.append(pprof_reader.decode(raw))
    return out


prof = Profiler()
prof.start()
time.sleep(0.2)
asyncio.run(main())
prof.stop(flush=True)
in_coro = right = 0
labels = set()
for d in decoded(os.environ["DD_PROFILING_OUTPUT_PPROF"]):
    wall = [i for i, (t, _u) in enumerate(d.sample_type) if t == "wall-time"]
    for s in d.samples if wall else []:
        labels |= set(s.labels)
        coro = next((f for f in s.functions if f.startswith("wait_for_inventory_")), None)
        if coro is None:
            continue
        in_coro += s.values[wall[0]]
        sid = s.labels.get("span id")
        if sid is not None and span_ids.get(int(sid)) == int(coro.rsplit("_", 1)[1]):
            right += s.values[wall[0]]
awaited = TASKS * ROUNDS * 0.3e9
print(json.dumps({"awaited_ns": awaited, "in_coro_ns": in_coro, "right_ns": right,
                  "in_coro_share": in_coro / awaited, "right_share": right / max(in_coro, 1),
                  "labels": sorted(labels)}))  # fmt: skip
