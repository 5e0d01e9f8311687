"""The agent core on every supported CPython, side by side in one run (issue #14).

For each interpreter venv under .venvs/ (those whose interpreter lives in the Debian sid root run
through scripts/sid), in one session, interleaved by interpreter:
- bench/agent_sample_cost.py: time in the signal handler per sample at 10/100/1,000 frames;
- bench/agent_overhead.py: in-process off/on pairs at 100 Hz, 1 and 8 busy threads (on a
  free-threaded build the 8 threads run in parallel);
- where pyroscope-io installs in that venv (bench/requirements.txt), bench/peers/inproc.py:
  spanprof and pyroscope-io started and stopped in one process around the same blocks, against
  a local receiver.
Prints a markdown section and writes JSON (--json).

    .venvs/3.11/bin/python bench/agent_versions.py [--pairs 100] [--repeats 3] [--only 3.14,3.13t]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SID_MARK = ".spanprof-sid"


def interpreters(only: Optional[List[str]]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for venv in sorted((ROOT / ".venvs").glob("3.*"), key=lambda p: (len(p.name), p.name)):
        py = venv / "bin" / "python"
        if not py.exists() or (only and venv.name not in only):
            continue
        prefix = [str(ROOT / "scripts" / "sid")] if (venv / SID_MARK).exists() else []
        out[venv.name] = [*prefix, str(py)]
    return out


def run_json(cmd: List[str], timeout: float) -> Dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", dir=ROOT / "build", delete=False) as f:
        path = f.name
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    t0 = time.monotonic()
    r = subprocess.run([*cmd, "--json", path], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)  # fmt: skip
    took = time.monotonic() - t0
    try:
        data = json.loads(Path(path).read_text()) if r.returncode == 0 else {}
    except (OSError, ValueError):
        data = {}
    finally:
        Path(path).unlink(missing_ok=True)
    return {"rc": r.returncode, "seconds": round(took, 1), "data": data,
            "stderr": r.stderr[-2000:] if r.returncode else ""}  # fmt: skip


def peer_requirement() -> str:
    for line in (BENCH / "requirements.txt").read_text().splitlines():
        if line.startswith("pyroscope-io"):
            return line.strip()
    return "pyroscope-io"


def has_pyroscope(cmd: List[str]) -> bool:
    """Installs pyroscope-io (bench/requirements.txt's pin) into the venv where PyPI has a wheel."""
    r = subprocess.run([*cmd, "-c", "import pyroscope"], cwd=ROOT, capture_output=True)
    if r.returncode != 0:
        subprocess.run([*cmd, "-m", "pip", "install", "-q", "--only-binary", ":all:",
                        peer_requirement()], cwd=ROOT, capture_output=True)  # fmt: skip
        r = subprocess.run([*cmd, "-c", "import pyroscope"], cwd=ROOT, capture_output=True)
    return r.returncode == 0


def inproc(cmd: List[str], groups: int, url: str) -> Dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run([*cmd, str(BENCH / "peers" / "inproc.py"), "--kind", "cpu", "--groups",
                        str(groups), "--url", url], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=1800)  # fmt: skip
    if r.returncode != 0:
        return {"rc": r.returncode, "stderr": r.stderr[-2000:]}
    times = json.loads(r.stdout.strip().splitlines()[-1])["times"]
    base = times["none"]
    ratios = {
        prof: statistics.median(t / b for t, b in zip(ts, base))
        for prof, ts in times.items()
        if prof != "none"
    }
    return {"rc": 0, "groups": groups, "median_ratio": ratios}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--groups", type=int, default=30, help="pyroscope-io in-process groups")
    ap.add_argument("--only", help="comma-separated venv names, e.g. 3.14,3.13t")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    (ROOT / "build").mkdir(exist_ok=True)
    pys = interpreters(args.only.split(",") if args.only else None)
    results: Dict[str, Dict[str, Any]] = {v: {} for v in pys}
    for v, cmd in pys.items():
        results[v]["cost"] = run_json(
            [*cmd, str(BENCH / "agent_sample_cost.py"), "--repeats", str(args.repeats)], 900
        )
    for v, cmd in pys.items():
        results[v]["overhead"] = run_json(
            [*cmd, str(BENCH / "agent_overhead.py"), "--pairs", str(args.pairs)], 1800
        )
    if args.json:  # what is measured so far survives a failure below
        args.json.write_text(json.dumps({"results": results}, indent=1))
    sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests" / "api")]
    from support import Receiver, Server  # real HTTP receiver on 127.0.0.1

    rec = Receiver()
    server = Server(rec)
    try:
        for v, cmd in pys.items():
            if has_pyroscope(cmd):
                results[v]["pyroscope"] = inproc(cmd, args.groups, rec.url)
    finally:
        server.close()

    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
        f"load avg {os.getloadavg()[0]:.2f} at the end",
        "",
        "| CPython | handler µs/sample at 10 / 100 / 1,000 frames (median of rounds) | warm µs at 100 "
        "| overhead 1 thread (95% CI) | overhead 8 threads (95% CI) | pyroscope-io in-process |",
        "|---|---|---|---|---|---|",
    ]
    for v, res in results.items():
        rows = {r["depth"]: r for r in res["cost"]["data"].get("rows", [])}
        cost = " / ".join(
            f"{rows[d]['in_signal_median_run_mean_us']:.2f}" if d in rows else "-"
            for d in (10, 100, 1000)
        )
        warm = f"{rows[100]['warm_us']:.2f}" if 100 in rows else "-"
        ov = {r["label"]: r for r in res["overhead"]["data"].get("rows", [])}

        def cell(label: str, ov: Dict[str, Any] = ov) -> str:
            r = ov.get(label)
            if r is None:
                return "failed"
            return f"{r['median']:.4f} ({r['ci95'][0]:.4f}-{r['ci95'][1]:.4f})"

        peer = res.get("pyroscope")
        if peer is None:
            peer_cell = "not installable"
        elif peer.get("rc") != 0:
            peer_cell = "failed"
        else:
            m = peer["median_ratio"]
            peer_cell = (
                f"spanprof {m['spanprof']:.4f}, pyroscope-io gil_only {m['pyroscope-gil']:.4f}, "
                f"all threads {m['pyroscope-all']:.4f} ({peer['groups']} groups)"
            )
        lines.append(
            f"| {v} | {cost} | {warm} | {cell('1 thread')} | {cell('8 busy threads')} | {peer_cell} |"
        )
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "markdown": lines}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
