"""bench/server_bench.py's ingest run end to end with each load generator (build/tools/spanprof-loadgen
and the Python fallback), tiny sizes: every push is answered 200, the server holds one profile per
span name of every acknowledged push afterwards, and the keys bench/suite.py and the report read are
there. No timing is asserted: figures at these sizes mean nothing.

Skips with a reason when the server or the load generator is not built (scripts/setup builds both).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(os.environ.get("SPANPROF_SERVER_BIN", ROOT / "build" / "server" / "spanprof-server"))
LOADGEN = ROOT / "build" / "tools" / "spanprof-loadgen"


@pytest.mark.parametrize("generator", ["go", "python"])
def test_ingest_run_acknowledges_and_stores_every_push(generator: str) -> None:
    if not SERVER.exists():
        pytest.skip(f"{SERVER} not built (run scripts/build)")
    if generator == "go" and not LOADGEN.exists():
        pytest.skip(f"{LOADGEN} not built (run scripts/setup)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "server_bench.py"), "--ingest-only", "--json",
         "--seconds", "1", "--warmup", "0.2", "--clients", "2", "--loadgen", generator],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-4000:]
    i = json.loads(p.stdout)["ingest"]
    assert i["generator"] == generator and i["clients"] == 2
    assert i["pushes"] > 0 and i["errors"] == 0, i
    # Durable: what was acknowledged (warm-up and the deadline's in-flight pushes included) is
    # what the database holds, one profile per span name of each push.
    assert i["acked_pushes"] >= i["pushes"]
    assert i["stored_ok"], i
    for key in ("pushes_per_s", "server_cpu_ms_per_push", "client_cpu_ms_per_push"):
        assert i[key] > 0, key
    assert "load_avg_1m" in i
    lat = i["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"], lat
    assert f"ingest ({generator} loadgen, 2 connections)" in p.stderr
