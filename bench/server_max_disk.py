"""--max-disk with unique stacks (issue #18): every push brings 400 new stacks (800 new function
names), so the dictionary grows as fast as the profiles. The same pushes go to a server with a
budget and, side by side, to one without; the data dir's size (database, WAL, shm) is read after
every acknowledged push.

    .venvs/3.11/bin/python bench/server_max_disk.py --budget-mb 4 --pushes 300
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))

from conftest import load_protos, make_pprof, push_request  # noqa: E402


def start(binary: str, data: str, args: list[str]) -> tuple[subprocess.Popen, int]:
    p = subprocess.Popen(
        [binary, "--data-dir", data, "--listen", "127.0.0.1:0", "--log-level", "warn", *args],
        stderr=subprocess.PIPE,
    )
    assert p.stderr is not None
    for line in p.stderr:
        m = re.match(rb"LISTENING api [\d.]+:(\d+)", line)
        if m:
            return p, int(m.group(1))
    raise RuntimeError("server did not start")


def disk(data: str) -> int:
    return sum(f.stat().st_size for f in Path(data).glob("spanprof.db*"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget-mb", type=float, default=4)
    ap.add_argument("--pushes", type=int, default=300)
    ap.add_argument("--server-bin", default=str(ROOT / "build" / "server" / "spanprof-server"))
    a = ap.parse_args()
    pb = load_protos()
    budget = int(a.budget_mb * (1 << 20))
    runs = {"budget": ["--max-disk", str(budget), "--max-disk-keep", "0"], "unlimited": []}
    out: dict = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, Linux {platform.release()}",
        "budget_bytes": budget,
        "pushes": a.pushes,
        "load_avg_1m_start": os.getloadavg()[0],
    }
    for name, args in runs.items():
        data = tempfile.mkdtemp(prefix="spanprof-maxdisk-")
        proc, port = start(a.server_bin, data, ["--retention", "0", *args])
        peak, codes, ms = 0, {}, []
        try:
            for i in range(a.pushes):
                stacks = [
                    ([f"main{i % 3}", f"p{i}_mid{k}", f"p{i}_leaf{k}"], 1, {}) for k in range(400)
                ]
                body = push_request(pb, {"service_name": "uniq"}, make_pprof(pb, stacks))
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/push.v1.PusherService/Push",
                    data=body,
                    headers={"Content-Type": "application/proto"},
                )
                t = time.monotonic()
                try:
                    code = urllib.request.urlopen(req, timeout=60).status
                except urllib.error.HTTPError as e:
                    code = e.code
                ms.append((time.monotonic() - t) * 1000)
                codes[code] = codes.get(code, 0) + 1
                peak = max(peak, disk(data))
            final = disk(data)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            shutil.rmtree(data, ignore_errors=True)
        ms.sort()
        out[name] = {
            "codes": codes,
            "peak_bytes": peak,
            "final_bytes": final,
            "push_ms_p50": round(ms[len(ms) // 2], 1),
            "push_ms_p99": round(ms[int(len(ms) * 0.99)], 1),
        }
    out["load_avg_1m_end"] = os.getloadavg()[0]
    out["peak_over_budget"] = round(out["budget"]["peak_bytes"] / budget, 3)
    print(json.dumps(out, indent=1))
    return 0 if out["budget"]["peak_bytes"] <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
