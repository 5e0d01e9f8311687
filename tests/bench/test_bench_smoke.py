"""Smoke test of the benchmark suite's harness: bench/suite.py --smoke runs every code path of the
suite (whole-process runs of each profiler, py-spy attached, the web service under load, the push
receiver's decoding, stack depth, CPU attribution, footprint) with tiny sizes, and the file it writes
has every table. No timing is asserted: figures at these sizes mean nothing.

Needs the peers of bench/requirements.txt in this venv (scripts/test installs them through
scripts/bench --install-only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_smoke_run_writes_every_table(tmp_path: Path) -> None:
    out, raw = tmp_path / "BENCHMARKS.md", tmp_path / "suite.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "suite.py"), "--smoke", "--out", str(out), "--raw", str(raw)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-4000:]
    md = out.read_text()
    for heading in (
        "## 1. Overhead at 100 Hz",
        "### (a) CPU-bound, one thread",
        "### (b) 8 threads mixing CPU and blocking I/O",
        "### (c) asyncio web service under a fixed request load",
        "### (d) In-process, spanprof and pyroscope-io measured the same way",
        "## 2. Stack depth",
        "## 3. CPU attribution",
        "## 4. Span attribution",
        "## 5. Agent footprint",
        "## 6. Server",
        "## Web UI: flame graph rendering",
    ):
        assert heading in md, heading
    assert "Machine: " in md and "CPython " in md and "The suite took" in md
    assert "failed in this run" not in md, md
    # Every profiler has a row in each overhead table, every depth a row in the depth table.
    for label in ("no profiler", "spanprof", "gil_only=True", "gil_only=False", "py-spy record"):
        assert md.count(f"| {label}") + md.count(f"| pyroscope-io {label}") >= 3, label
    for depth in (64, 128, 256, 512, 1024):
        assert f"\n| {depth} | " in md, depth

    data = json.loads(raw.read_text())
    # The receiver decoded real pushes from both in-process profilers: samples were counted.
    for prof in ("spanprof", "pyroscope-gil"):
        assert sum(r["complete"] for r in data["stack_depth"][prof]["64"]) > 0, prof
        assert sum(sum(r["samples"].values()) for r in data["cpu_attribution"][prof]) > 0, prof
    assert data["overhead_cpu"]["runs"]["pyspy"][0]["pyspy_cpu_s"] >= 0
    assert all(
        r["requests"] > 0 and r["errors"] == 0
        for rs in data["overhead_web"]["runs"].values()
        for r in rs
    )
    for kind in ("cpu", "mixed"):
        assert all(t > 0 for ts in data["overhead_inproc"][kind]["times"].values() for t in ts)
    assert data["footprint"]["runs"]["spanprof"][0]["stats"]["samples_taken"] > 0
