"""spanprof's benchmark suite: spanprof side by side with pyroscope-io (+ pyroscope-otel), py-spy
and no profiler, plus the per-part benchmark scripts, folded into one BENCHMARKS.md.

    python bench/suite.py [--quick | --smoke] [--out BENCHMARKS.md] [--raw bench/out/suite.json]

Run it through ``scripts/bench`` (``make bench``), which installs the peers (bench/requirements.txt)
into the 3.11 venv and builds the agent first. ``--quick`` is a few-minute run with fewer rounds;
``--smoke`` runs every code path with tiny sizes and skips the per-part scripts (the test suite's
smoke test uses it). How each figure is measured is written next to its table in the output.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PEERS = BENCH / "peers"
OUT = BENCH / "out"
sys.path.insert(0, str(ROOT / "tests" / "api"))  # support.py: push receiver + pprof reader

PY = sys.executable
BIN = Path(PY).parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONDONTWRITEBYTECODE="1")
OVERHEAD_PROFILERS = ("none", "spanprof", "pyroscope-gil", "pyroscope-all", "pyspy")
LABEL = {
    "none": "no profiler",
    "spanprof": "spanprof",
    "pyroscope-gil": "pyroscope-io gil_only=True",
    "pyroscope-all": "pyroscope-io gil_only=False",
    "pyspy": "py-spy record (attached)",
}
DEPTHS = (64, 128, 256, 512, 1024)
APP_CPU, CLIENT_CPU = "1", "0"  # taskset: profiled process on core 1, clients / py-spy on core 0


@dataclasses.dataclass
class Sizes:
    rounds_cpu: int
    cpu_blocks: int  # ~1.5 ms each
    rounds_mixed: int
    mixed_rounds: int  # per thread, ~1.5 ms CPU + 1 ms sleep each
    rounds_web: int
    web_requests: int
    depth_tenths: int  # CPU seconds x10 at the bottom of the deep stack
    depth_repeats: int
    attrib_runs: int
    attrib_tenths: int
    footprint_rounds: int
    footprint_tenths: int
    externals: bool
    span_runs: int
    ui_args: Tuple[str, ...]
    inproc_groups: int = 40  # in-process groups (one block per profiler each), per workload


FULL = Sizes(12, 1300, 12, 120, 8, 1500, 15, 2, 3, 10, 3, 5, True, 3, ("50000", "5"))
QUICK = Sizes(3, 500, 3, 50, 2, 600, 8, 1, 2, 5, 2, 3, True, 1, ("20000", "1"), 10)
SMOKE = Sizes(1, 40, 1, 6, 1, 60, 1, 1, 1, 1, 1, 1, False, 0, (), 1)


# ---- small helpers ---------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pin(core: str) -> List[str]:
    return ["taskset", "-c", core] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def proc_cpu(pid: int) -> float:
    """utime + stime of a process in seconds (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def med(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def quartiles(xs: Sequence[float]) -> Tuple[float, float]:
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return float("nan"), float("nan")
    if len(xs) < 4:
        return xs[0], xs[-1]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def pct(ratio: float) -> str:
    return "n/a" if ratio != ratio else f"{(ratio - 1) * 100:+.1f}%"


def fmt(x: Any, nd: int = 1) -> str:
    if isinstance(x, float):
        return "n/a" if x != x else f"{x:,.{nd}f}"
    return str(x)


def weight(sample: Any, period: int) -> int:
    return max(1, round(sample.values[0] / period)) if period else 1


class Receiving:
    """The suite's push receiver (tests/api/support.py: real HTTP on 127.0.0.1, decodes
    PushRequest + pprof with message classes from the public field numbers)."""

    def __init__(self) -> None:
        # Imported here: support.py locates spanprof on sys.path, i.e. the suite's snapshot.
        from support import Receiver, Server

        self.rec = Receiver()
        self.server = Server(self.rec)
        self.url = self.rec.url

    def clear(self) -> None:
        with self.rec.lock:
            self.rec.requests.clear()

    def samples(self) -> List[Any]:
        out = []
        for se in self.rec.series():
            for prof in se.profiles:
                for s in prof.samples:
                    out.append((s, prof.period))
        return out

    def close(self) -> None:
        self.server.close()


# ---- running the profiled program ------------------------------------------------------------


def attach_pyspy(pid: int, out: Path) -> subprocess.Popen:
    """py-spy record on core 0, 100 Hz, its defaults otherwise (blocking: it pauses the target
    while reading each sample); returns once py-spy says it is sampling."""
    spy = subprocess.Popen(
        [*pin(CLIENT_CPU), str(BIN / "py-spy"), "record", "--pid", str(pid), "--rate", "100",
         "--format", "raw", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert spy.stdout is not None
    line = spy.stdout.readline()
    if "Sampling" not in line:
        spy.kill()
        raise RuntimeError(f"py-spy did not attach: {line.strip()} {spy.stdout.read()[-500:]}")
    time.sleep(0.2)
    return spy


def reap(proc: Optional[subprocess.Popen], timeout: float = 30) -> None:
    """Waits for a process that should be exiting on its own (py-spy follows its target), else kills it."""
    if proc is None:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


FAILURES: List[str] = []  # runs that failed and were run again (reported in the header)


def once_more(
    what: str,
    fn: Callable[..., Dict[str, Any]],
    *args: Any,
    reset: Optional[Callable[[], None]] = None,
    **kw: Any,
) -> Dict[str, Any]:
    """Runs one measurement; if it fails, records why and runs it once more (a second failure
    fails the table). ``reset`` runs before each attempt (it clears the receiver, so a failed
    attempt's pushes are not counted). Failures are listed in BENCHMARKS.md's header."""
    if reset is not None:
        reset()
    try:
        return fn(*args, **kw)
    except (RuntimeError, subprocess.SubprocessError, OSError, ValueError) as e:
        FAILURES.append(f"{what}: {e}"[:600])
        log(f"{what} failed, running it again: {e}")
    if reset is not None:
        reset()
    return fn(*args, **kw)


def run_target(
    profiler: str, kind: str, url: str, size: int, depth: int = 64, rate: int = 100
) -> Dict[str, Any]:
    """One process of bench/peers/target.py; returns its own JSON measurements (+ py-spy's CPU)."""
    cmd = [*pin(APP_CPU), PY, str(PEERS / "target.py"), "--profiler", profiler, "--kind", kind,
           "--url", url, "--size", str(size), "--depth", str(depth), "--rate", str(rate)]  # fmt: skip
    p = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert p.stdin and p.stdout and p.stderr
    spy = None
    try:
        ready = p.stdout.readline()
        if not ready.startswith("READY"):
            p.wait(30)
            raise RuntimeError(f"target {profiler}/{kind} did not start: {p.stderr.read()[-2000:]}")
        if profiler == "pyspy":
            spy = attach_pyspy(
                p.pid, Path(tempfile.gettempdir()) / f"spanprof-bench-pyspy-{p.pid}.txt"
            )
            spy_cpu0 = proc_cpu(spy.pid)
        p.stdin.write("go\n")
        p.stdin.flush()
        line = p.stdout.readline()
        if spy is not None:
            spy_cpu = proc_cpu(spy.pid) - spy_cpu0
        rc = p.wait(120)
        if rc != 0 or not line.startswith("{"):
            raise RuntimeError(
                f"target {profiler}/{kind} failed (exit {rc}, output {line[:200]!r}): "
                f"{p.stderr.read()[-2000:]}"
            )
        result = json.loads(line)
        if spy is not None:
            result["pyspy_cpu_s"] = spy_cpu
        return result
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        reap(spy)


# ---- 1. overhead -----------------------------------------------------------------------------


def overhead_process(kind: str, rounds: int, size: int, recv: Receiving) -> Dict[str, Any]:
    """Whole processes interleaved A B C D E, A B C D E, ...; per-round ratios to no profiler."""
    runs: Dict[str, List[Dict[str, Any]]] = {p: [] for p in OVERHEAD_PROFILERS}
    for r in range(rounds):
        for prof in OVERHEAD_PROFILERS:
            recv.clear()
            runs[prof].append(
                once_more(
                    f"{kind}/{prof}", run_target, prof, kind, recv.url, size, reset=recv.clear
                )
            )
        log(f"overhead {kind}: round {r + 1}/{rounds}")
    recv.clear()
    return {"runs": runs, "summary": summarise_overhead(runs, "cpu_s", "wall_s")}


def summarise_overhead(
    runs: Dict[str, List[Dict[str, Any]]], cpu_key: str, wall_key: str
) -> Dict[str, Any]:
    base = runs["none"]
    out: Dict[str, Any] = {}
    for prof, rs in runs.items():
        cpu_r = [x[cpu_key] / b[cpu_key] for x, b in zip(rs, base)]
        wall_r = [x[wall_key] / b[wall_key] for x, b in zip(rs, base)]
        row = {
            "cpu_ratio": med(cpu_r), "cpu_q": quartiles(cpu_r), "cpu_minmax": (min(cpu_r), max(cpu_r)),
            "wall_ratio": med(wall_r), "wall_q": quartiles(wall_r),
        }  # fmt: skip
        if prof == "pyspy":
            share = [x["pyspy_cpu_s"] / x[wall_key] for x in rs if x.get("pyspy_cpu_s") is not None]
            row["pyspy_core_share"] = med(share)
        out[prof] = row
    return out


def overhead_inproc(groups: int, recv: Receiving) -> Dict[str, Any]:
    """bench/peers/inproc.py: spanprof and pyroscope-io started and stopped inside one process,
    blocks of the same work interleaved; ratios to the same group's no-profiler block."""
    out: Dict[str, Any] = {}
    for kind in ("cpu", "mixed"):
        recv.clear()
        cmd = [*pin(APP_CPU), PY, str(PEERS / "inproc.py"), "--kind", kind,
               "--groups", str(groups), "--url", recv.url]  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=900)
        if p.returncode != 0:
            raise RuntimeError(f"inproc {kind} failed: {p.stderr[-2000:]}")
        times = json.loads(p.stdout.strip().splitlines()[-1])["times"]
        summary = {}
        for prof, ts in times.items():
            ratios = [t / b for t, b in zip(ts, times["none"])]
            summary[prof] = {
                "ratio": med(ratios), "q": quartiles(ratios), "minmax": (min(ratios), max(ratios)),
                "block_s": med(ts),
            }  # fmt: skip
        out[kind] = {"times": times, "summary": summary}
        log(f"overhead in-process {kind}: {groups} groups")
    recv.clear()
    return out


def web_round(profiler: str, requests: int, recv: Receiving) -> Dict[str, Any]:
    port = free_port()
    server = subprocess.Popen(
        [*pin(APP_CPU), PY, str(PEERS / "web_app.py"), "--port", str(port), "--profiler", profiler,
         "--url", recv.url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    spy = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).read()
                break
            except OSError as e:
                if server.poll() is not None or time.monotonic() > deadline:
                    assert server.stderr is not None
                    raise RuntimeError(
                        f"web service ({profiler}) did not start: {server.stderr.read()[-2000:]}"
                    ) from e
                time.sleep(0.1)
        load = [
            *pin(CLIENT_CPU),
            PY,
            str(PEERS / "load.py"),
            "--port",
            str(port),
            "--concurrency",
            "8",
        ]

        def drive(n: int) -> Dict[str, Any]:
            out = subprocess.run(
                [*load, "--requests", str(n), "--timeout", "60"], capture_output=True, text=True
            )
            if out.returncode != 0:
                raise RuntimeError(
                    f"load client failed (exit {out.returncode}): {out.stderr[-1500:]}"
                )
            return json.loads(out.stdout.strip().splitlines()[-1])

        drive(max(50, requests // 8))  # warm-up
        if profiler == "pyspy":
            spy = attach_pyspy(
                server.pid, Path(tempfile.gettempdir()) / f"spanprof-bench-pyspy-{server.pid}.txt"
            )
            spy_cpu0 = proc_cpu(spy.pid)
        c0 = proc_cpu(server.pid)
        res = drive(requests)
        res["server_cpu_s"] = proc_cpu(server.pid) - c0
        res["cpu_per_req_ms"] = 1000 * res["server_cpu_s"] / max(1, res["requests"])
        if spy is not None:
            res["pyspy_cpu_s"] = proc_cpu(spy.pid) - spy_cpu0
        return res
    finally:
        server.send_signal(signal.SIGINT)  # uvicorn stops; the profiler's last window is flushed
        reap(server)
        reap(spy)


def overhead_web(rounds: int, requests: int, recv: Receiving) -> Dict[str, Any]:
    runs: Dict[str, List[Dict[str, Any]]] = {p: [] for p in OVERHEAD_PROFILERS}
    for r in range(rounds):
        for prof in OVERHEAD_PROFILERS:
            recv.clear()
            runs[prof].append(
                once_more(f"web/{prof}", web_round, prof, requests, recv, reset=recv.clear)
            )
        log(f"overhead web: round {r + 1}/{rounds}")
    recv.clear()
    summary = summarise_overhead(runs, "cpu_per_req_ms", "elapsed_s")
    base = runs["none"]
    for prof, rs in runs.items():
        summary[prof]["rps"] = med([x["throughput_rps"] for x in rs])
        summary[prof]["p99_ms"] = med([x["p99_ms"] for x in rs])
        summary[prof]["p99_ratio"] = med([x["p99_ms"] / b["p99_ms"] for x, b in zip(rs, base)])
        summary[prof]["errors"] = sum(x["errors"] for x in rs)
        if prof == "pyspy":
            summary[prof]["pyspy_core_share"] = med([x["pyspy_cpu_s"] / x["elapsed_s"] for x in rs])
    return {"runs": runs, "summary": summary}


# ---- 2. stack depth, 3. CPU attribution, 5. footprint ----------------------------------------


def stack_depth(sizes: Sizes, recv: Receiving) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for rep in range(sizes.depth_repeats):
        for depth in DEPTHS:
            for prof in ("spanprof", "pyroscope-gil"):
                recv.clear()
                res = once_more(
                    f"depth {depth}/{prof}",
                    run_target,
                    prof,
                    "depth",
                    recv.url,
                    sizes.depth_tenths,
                    depth=depth,
                    reset=recv.clear,
                )
                recv.rec.wait_for(lambda: bool(recv.rec.pushes()), timeout=10)
                complete = partial = 0
                for s, period in recv.samples():
                    fns = s.functions  # leaf first
                    if "recurse_step" not in fns and "deep_leaf" not in fns:
                        continue
                    w = weight(s, period)
                    ok = (
                        fns.count("recurse_step") == depth
                        and "deep_leaf" in fns
                        and fns[-1] == "<module>"
                    )
                    if ok:
                        complete += w
                    else:
                        partial += w
                # Each profiler's own clock: spanprof samples per 10 ms of the thread's CPU time,
                # pyroscope-io (py-spy) per 10 ms of wall time while the thread is not idle.
                clock = res["main_thread_cpu_s"] if prof == "spanprof" else res["wall_s"]
                out.setdefault(prof, {}).setdefault(depth, []).append(
                    {"complete": complete, "incomplete": partial, "expected": clock * 100,
                     "thread_cpu_s": res["main_thread_cpu_s"], "wall_s": res["wall_s"]}
                )  # fmt: skip
            log(f"stack depth {depth}: done (repeat {rep + 1})")
    recv.clear()
    return out


ATTRIB_FNS = ("burn_one", "burn_two", "burn_three")


def cpu_attribution(sizes: Sizes, recv: Receiving) -> Dict[str, Any]:
    out: Dict[str, List[Dict[str, Any]]] = {}
    for r in range(sizes.attrib_runs):
        for prof in ("spanprof", "pyroscope-gil"):
            recv.clear()
            res = once_more(
                f"attrib/{prof}",
                run_target,
                prof,
                "attrib",
                recv.url,
                sizes.attrib_tenths,
                reset=recv.clear,
            )
            recv.rec.wait_for(lambda: bool(recv.rec.pushes()), timeout=10)
            counts = dict.fromkeys(ATTRIB_FNS, 0)
            for s, period in recv.samples():
                for fn in ATTRIB_FNS:
                    if fn in s.functions:
                        counts[fn] += weight(s, period)
            truth = res["thread_cpu"]
            tot_t, tot_c = sum(truth.values()), sum(counts.values())
            shares = {fn: 100 * counts[fn] / tot_c if tot_c else float("nan") for fn in ATTRIB_FNS}
            truth_sh = {fn: 100 * truth[fn] / tot_t for fn in ATTRIB_FNS}
            err = max(abs(shares[fn] - truth_sh[fn]) for fn in ATTRIB_FNS)
            out.setdefault(prof, []).append(
                {
                    "samples": counts,
                    "thread_cpu_s": truth,
                    "share": shares,
                    "truth": truth_sh,
                    "max_error_pp": err,
                }
            )
        log(f"cpu attribution: run {r + 1}/{sizes.attrib_runs}")
    recv.clear()
    return out


def footprint(sizes: Sizes, recv: Receiving) -> Dict[str, Any]:
    runs: Dict[str, List[Dict[str, Any]]] = {}
    for r in range(sizes.footprint_rounds):
        for prof in ("none", "spanprof", "pyroscope-gil"):
            recv.clear()
            runs.setdefault(prof, []).append(
                once_more(
                    f"footprint/{prof}",
                    run_target,
                    prof,
                    "footprint",
                    recv.url,
                    sizes.footprint_tenths,
                )
            )
        log(f"footprint: round {r + 1}/{sizes.footprint_rounds}")
    # Drain and handler at the highest rate the kernel tick allows (requests above it are capped).
    recv.clear()
    hi = once_more(
        "footprint/spanprof 250 Hz",
        run_target,
        "spanprof",
        "footprint",
        recv.url,
        sizes.footprint_tenths,
        rate=250,
    )
    recv.clear()
    return {"runs": runs, "high_rate": hi}


# ---- per-part scripts (run as they are; their measurements are theirs) ----------------------


def run_script(cmd: List[str], timeout: float, json_path: Optional[Path] = None) -> Dict[str, Any]:
    """Runs a per-part benchmark script. When its --help offers ``--json PATH`` it gets a path;
    when it offers a bare ``--json`` flag, the JSON is read from the end of its stdout."""
    res: Dict[str, Any] = {"cmd": " ".join(cmd), "ok": False}
    json_flag = False
    if json_path is not None:
        helptext = _help(ROOT / cmd[1])
        if re.search(r"--json [A-Z]", helptext):
            json_path.unlink(missing_ok=True)
            cmd = [*cmd, "--json", str(json_path)]
        else:
            json_flag = "--json" in helptext
            if json_flag:
                cmd = [*cmd, "--json"]
            json_path = None
        res["cmd"] = " ".join(cmd)
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd=ROOT)
    except subprocess.TimeoutExpired:
        res["error"] = f"timed out after {timeout:.0f} s"
        return res
    except OSError as e:
        res["error"] = str(e)
        return res
    res["seconds"] = time.monotonic() - t0
    res["stdout"] = p.stdout
    res["ok"] = p.returncode == 0
    if p.returncode != 0:
        res["error"] = f"exit {p.returncode}: {p.stderr.strip()[-800:]}"
    try:
        if json_path is not None and json_path.exists():
            res["json"] = json.loads(json_path.read_text())
        elif json_flag and "\n{" in "\n" + p.stdout:
            cut = ("\n" + p.stdout).index("\n{")
            res["json"] = json.loads(p.stdout[cut:])
            res["stdout"] = p.stdout[:cut]
    except ValueError as e:
        res["error"] = f"bad JSON from {cmd[1]}: {e}"
    return res


# Arguments of the per-part scripts; the rest run with their defaults.
FULL_ARGS = {
    "agent_overhead.py": ["--pairs", "300", "--control"],
    "server_bench.py": ["--hours", "24", "--services", "10", "--clients", "16,8,4"],
    "span_processor_cost.py": ["--pairs", "60", "--spans", "1000"],
    "agent_sample_cost.py": ["--repeats", "5"],
    "agent_versions.py": ["--pairs", "200", "--repeats", "5"],
    "agent_wall.py": ["--groups", "30"],
}
QUICK_ARGS = {
    "agent_overhead.py": ["--pairs", "20"],
    "span_processor_cost.py": ["--pairs", "20", "--spans", "500"],
    "agent_sample_cost.py": ["--seconds", "0.5"],
    "agent_versions.py": ["--pairs", "6", "--repeats", "1", "--groups", "4", "--only", "3.11"],
    "server_bench.py": ["--hours", "1", "--services", "2", "--seconds", "2", "--queries", "50"],
    "agent_wall.py": [
        "--groups",
        "2",
        "--block",
        "0.05",
        "--tick-seconds",
        "0.5",
        "--async-rounds",
        "1",
    ],
}


def externals(sizes: Sizes) -> Dict[str, Any]:
    """The per-part scripts, run as they are (their measurements are their owners')."""
    out: Dict[str, Any] = {}
    if not sizes.externals:
        return out
    OUT.mkdir(parents=True, exist_ok=True)
    scripts = [BENCH / "agent_overhead.py", BENCH / "agent_sample_cost.py"]
    scripts += [BENCH / "span_processor_cost.py", *sorted(BENCH.glob("server_*.py"))]
    for path in scripts:
        if not path.exists():
            continue
        extra = (QUICK_ARGS if sizes is QUICK else FULL_ARGS).get(path.name, [])
        log(f"running bench/{path.name}")
        out[path.name] = run_script(
            [PY, f"bench/{path.name}", *extra], 900, OUT / f"{path.name}.json"
        )
    # The agent on every supported CPython (sample cost, overhead, pyroscope-io where it installs).
    if (BENCH / "agent_versions.py").exists():
        log("running bench/agent_versions.py")
        out["agent_versions.py"] = run_script(
            [PY, "bench/agent_versions.py",
             *(QUICK_ARGS if sizes is QUICK else FULL_ARGS).get("agent_versions.py", [])],
            3600, OUT / "agent_versions.json",
        )  # fmt: skip
    # Wall-clock mode: overhead, cost per round, asyncio span labels (spanprof vs pyroscope-io).
    if (BENCH / "agent_wall.py").exists():
        log("running bench/agent_wall.py")
        out["agent_wall.py"] = run_script(
            [PY, "bench/agent_wall.py",
             *(QUICK_ARGS if sizes is QUICK else FULL_ARGS).get("agent_wall.py", [])],
            1800, OUT / "agent_wall.json",
        )  # fmt: skip
    if (BENCH / "span_attribution.py").exists():
        log("running bench/span_attribution.py")
        out["span_attribution.py"] = run_script(
            [PY, "bench/span_attribution.py", "--runs", str(sizes.span_runs), "--markdown"], 900,
            OUT / "span_attribution.json",
        )  # fmt: skip
    if (BENCH / "flamegraph_render.mjs").exists() and shutil.which("node") and sizes.ui_args:
        log("running bench/flamegraph_render.mjs")
        res = run_script(["node", "bench/flamegraph_render.mjs", *sizes.ui_args], 900)
        if (OUT / "flamegraph_render.json").exists():
            res["json"] = json.loads((OUT / "flamegraph_render.json").read_text())
        out["flamegraph_render.mjs"] = res
    return out


def _help(path: Path) -> str:
    try:
        return subprocess.run(
            [PY, str(path), "--help"], capture_output=True, text=True, timeout=60, env=ENV
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


# ---- machine + report ------------------------------------------------------------------------


def machine() -> Dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()
    except OSError:
        commit = "?"
    versions = {}
    for pkg in ("pyroscope-io", "pyroscope-otel", "py-spy", "fastapi", "uvicorn"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = "not installed"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(), "commit": commit, "peers": versions,
    }  # fmt: skip


def loadavg() -> Tuple[float, float, float]:
    a, b, c = os.getloadavg()
    return round(a, 2), round(b, 2), round(c, 2)


def busy_processes() -> List[str]:
    """Other processes using CPU right now (for the header's noise note)."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pcpu,comm", "--sort=-pcpu"], capture_output=True, text=True
        ).stdout
    except OSError:
        return []
    rows = []
    for ln in out.splitlines()[1:8]:
        cpu, _, comm = ln.strip().partition(" ")
        try:
            if float(cpu) >= 20:
                rows.append(f"{comm.strip()} {cpu}%")
        except ValueError:
            pass
    return rows


def render(data: Dict[str, Any]) -> str:
    sys.path.insert(0, str(PEERS))
    from report import render_markdown  # bench/peers/report.py

    return render_markdown(data)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick", action="store_true", help="a few minutes: fewer rounds, smaller sizes"
    )
    mode.add_argument(
        "--smoke", action="store_true", help="every code path, tiny sizes, no per-part scripts"
    )
    ap.add_argument(
        "--out",
        type=Path,
        help="default: BENCHMARKS.md; bench/out/BENCHMARKS-<mode>.md for --quick/--smoke",
    )
    ap.add_argument("--raw", type=Path, help="default: bench/out/suite[-<mode>].json")
    args = ap.parse_args()
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    mode_name = "smoke" if args.smoke else "quick" if args.quick else "full"
    if args.out is None:  # a reduced run never overwrites the published figures
        args.out = (
            ROOT / "BENCHMARKS.md" if mode_name == "full" else OUT / f"BENCHMARKS-{mode_name}.md"
        )
    if args.raw is None:
        args.raw = OUT / ("suite.json" if mode_name == "full" else f"suite-{mode_name}.json")

    t0 = time.monotonic()
    data: Dict[str, Any] = {
        "mode": mode_name, "sizes": dataclasses.asdict(sizes), "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "load_start": loadavg(),
        "busy_start": busy_processes(), "command": " ".join(["bench/suite.py", *sys.argv[1:]]),
    }  # fmt: skip
    if not (BIN / "py-spy").exists():
        raise SystemExit(
            f"py-spy is not installed in {BIN}: run scripts/bench (it installs bench/requirements.txt)"
        )
    # Run a private copy of the package: others rebuilding src/spanprof/_native*.so in place during
    # the run would otherwise crash the profiled processes (SIGBUS) or change the code measured.
    # It lives under bench/out (others' tests clean up /tmp/spanprof-* while they run).
    OUT.mkdir(parents=True, exist_ok=True)
    snapshot = Path(tempfile.mkdtemp(prefix="src-", dir=OUT))
    shutil.copytree(
        ROOT / "src" / "spanprof",
        snapshot / "spanprof",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    ENV["PYTHONPATH"] = str(snapshot)
    sys.path.insert(0, str(snapshot))
    native = sorted((snapshot / "spanprof").glob("_native.cpython-311*.so"))
    if native:
        data["machine"]["agent_built"] = time.strftime(
            "%Y-%m-%d %H:%M UTC", time.gmtime(native[0].stat().st_mtime)
        )
    recv = Receiving()
    steps: List[Tuple[str, Callable[[], Any]]] = [
        ("overhead_cpu", lambda: overhead_process("cpu", sizes.rounds_cpu, sizes.cpu_blocks, recv)),
        (
            "overhead_mixed",
            lambda: overhead_process("mixed", sizes.rounds_mixed, sizes.mixed_rounds, recv),
        ),
        ("overhead_web", lambda: overhead_web(sizes.rounds_web, sizes.web_requests, recv)),
        ("overhead_inproc", lambda: overhead_inproc(sizes.inproc_groups, recv)),
        ("stack_depth", lambda: stack_depth(sizes, recv)),
        ("cpu_attribution", lambda: cpu_attribution(sizes, recv)),
        ("footprint", lambda: footprint(sizes, recv)),
        ("externals", lambda: externals(sizes)),
    ]
    # The suite itself (receiver, decoding) stays off the profiled programs' core; the per-part
    # scripts get every core back.
    all_cores = os.sched_getaffinity(0)
    try:
        for name, fn in steps:
            if len(all_cores) > 1:
                os.sched_setaffinity(0, all_cores if name == "externals" else {int(CLIENT_CPU)})
            s0 = time.monotonic()
            log(f"== {name}")
            try:
                data[name] = fn()
            except Exception as e:  # a broken part is reported in its table, the rest still runs
                log(f"{name} failed: {e}")
                data[name] = {"error": f"{type(e).__name__}: {e}"}
            data.setdefault("step_seconds", {})[name] = round(time.monotonic() - s0, 1)
    finally:
        recv.close()
        shutil.rmtree(snapshot, ignore_errors=True)
    data["seconds"] = time.monotonic() - t0
    data["failures"] = FAILURES
    data["load_end"] = loadavg()
    data["busy_end"] = busy_processes()
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    args.raw.write_text(json.dumps(data, indent=1, default=str))
    args.out.write_text(render(data))
    log(f"wrote {args.out} and {args.raw} in {data['seconds']:.0f} s")
    failed = [k for k, _ in steps if isinstance(data.get(k), dict) and "error" in data[k]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
