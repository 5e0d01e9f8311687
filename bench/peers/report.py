"""Turns the suite's raw results (bench/out/suite.json) into BENCHMARKS.md."""

from __future__ import annotations

import json
import re
import statistics
from typing import Any, Dict, List, Optional, Sequence, Tuple

LABEL = {
    "none": "no profiler",
    "spanprof": "spanprof",
    "pyroscope-gil": "pyroscope-io gil_only=True",
    "pyroscope-all": "pyroscope-io gil_only=False",
    "pyspy": "py-spy record (attached, blocking)",
}
DEPTHS = ("64", "128", "256", "512", "1024")
NAN = float("nan")


def f(x: Any, nd: int = 1) -> str:
    if isinstance(x, float):
        return "n/a" if x != x else f"{x:,.{nd}f}"
    if x is None:
        return "n/a"
    return str(x)


def ov(ratio: float) -> str:
    """A ratio to no profiler as an overhead in percent."""
    return "n/a" if ratio != ratio else f"{(ratio - 1) * 100:+.1f}%"


def med(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else NAN


def verdict(ok: Optional[bool]) -> str:
    return "inconclusive" if ok is None else ("**met**" if ok else "**missed**")


def error_block(name: str, section: Any) -> Optional[str]:
    if isinstance(section, dict) and "error" in section and len(section) == 1:
        return f"Not measured: `{name}` failed in this run: {section['error']}\n"
    return None


def without(obj: Any, keys: Sequence[str]) -> Any:
    if isinstance(obj, dict):
        return {k: without(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [without(v, keys) for v in obj]
    return obj


def raw_block(title: str, obj: Any, drop: Sequence[str] = ("stats",)) -> str:
    """Raw figures in a collapsed block (spanprof.stats() dumps only in bench/out/suite.json,
    except where a table is built from them)."""
    body = json.dumps(without(obj, drop), indent=None, default=str, sort_keys=True)
    body = re.sub(r"(\d+\.\d{4})\d+", r"\1", body)  # 4 decimals are plenty for raw figures
    body = body.replace("}, {", "},\n {").replace('], "', '],\n"')
    return f"<details><summary>raw: {title}</summary>\n\n```json\n{body}\n```\n</details>\n"


# ---- 1. overhead -------------------------------------------------------------------------------


def overhead_verdicts(
    summary: Dict[str, Any], key: str, n: int, in_process: bool = False
) -> Tuple[str, str, str]:
    """(quarter-of-pyroscope verdict, <=1% verdict, resolution note) from one table's summary.

    Resolution: the standard error of a median of n ratios, estimated from their interquartile
    range (for a normal spread, sigma = IQR / 1.35 and SE(median) = 1.25 sigma / sqrt(n)). A target
    closer to the measured median than twice that is called inconclusive, not met or missed."""
    sp = summary["spanprof"][key] - 1
    py = summary["pyroscope-gil"][key] - 1
    q1, q3 = summary["spanprof"][key.replace("ratio", "q")]
    p1, p3 = summary["pyroscope-gil"][key.replace("ratio", "q")]
    half = (q3 - q1) / 2
    se = 1.25 * (q3 - q1) / 1.35 / max(1, n) ** 0.5
    se_py = 1.25 * (p3 - p1) / 1.35 / max(1, n) ** 0.5
    quarter: Optional[bool] = None
    if sp == sp and py == py and py > 2 * se_py:  # pyroscope-io's own overhead is resolved
        if abs(sp - py / 4) > 2 * (se + se_py / 4):
            quarter = sp <= py / 4
    one: Optional[bool] = None
    if sp == sp and abs(sp - 0.01) > 2 * se:
        one = sp <= 0.01
    note = (
        f"spanprof's ratios spread ±{half * 100:.1f}% (half the interquartile range), so its median "
        f"is known to about ±{se * 100:.1f}% ({n} {'groups' if in_process else 'rounds'})"
    )
    if one is None and not in_process:
        note += "; see the in-process figures (d)"
    if py == py and py <= 2 * se_py:
        q_verdict = "inconclusive (pyroscope-io's own overhead is not resolved from zero)"
    else:
        q_verdict = verdict(quarter)
    q_txt = f"spanprof {ov(sp + 1)} vs pyroscope-io (gil_only=True) {ov(py + 1)}: a quarter of it: {q_verdict}"
    return q_txt, f"≤ 1% absolute: {verdict(one)} ({ov(sp + 1)})", note


def overhead_table(name: str, sec: Dict[str, Any], what: str) -> List[str]:
    err = error_block(name, sec)
    if err:
        return [err]
    s = sec["summary"]
    rounds = len(sec["runs"]["none"])
    out = [
        f"| profiler | process CPU-time ratio (median of {rounds} rounds) | overhead | interquartile range | min-max | app wall-time ratio | profiler's own CPU outside the app |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for prof, row in s.items():
        q1, q3 = row["cpu_q"]
        lo, hi = row["cpu_minmax"]
        spy = (
            f"{row['pyspy_core_share'] * 100:.1f}% of a core" if "pyspy_core_share" in row else "—"
        )
        out.append(
            f"| {LABEL[prof]} | {row['cpu_ratio']:.3f} | {ov(row['cpu_ratio'])} | {q1:.3f}-{q3:.3f} | "
            f"{lo:.3f}-{hi:.3f} | {row['wall_ratio']:.3f} | {spy} |"
        )
    none_cpu = [r["cpu_s"] for r in sec["runs"]["none"]]
    out.append("")
    out.append(
        f"{what} No-profiler work section: median {med(none_cpu):.2f} s CPU "
        f"(runs {min(none_cpu):.2f}-{max(none_cpu):.2f} s)."
    )
    q, one, note = overhead_verdicts(s, "cpu_ratio", rounds)
    out += ["", f"- Target, same run: {q}.", f"- Target {one}; {note}."]
    out.append(
        "- py-spy is outside the process, so its row's CPU-time ratio shows only what its pauses "
        "and reads cost the app; its app wall-time ratio includes the pauses, and its own CPU is in the last column."
    )
    out += ["", raw_block(f"{name} per-round measurements", sec["runs"])]
    return out


def web_table(sec: Dict[str, Any]) -> List[str]:
    err = error_block("overhead_web", sec)
    if err:
        return [err]
    s = sec["summary"]
    rounds = len(sec["runs"]["none"])
    out = [
        f"| profiler (median of {rounds} rounds) | throughput req/s | run-time ratio | p99 latency ms | p99 ratio | service CPU per request, ratio | interquartile range | errors | py-spy's own CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for prof, row in s.items():
        q1, q3 = row["cpu_q"]
        spy = (
            f"{row['pyspy_core_share'] * 100:.1f}% of a core" if "pyspy_core_share" in row else "—"
        )
        out.append(
            f"| {LABEL[prof]} | {row['rps']:.0f} | {row['wall_ratio']:.3f} | {row['p99_ms']:.1f} | "
            f"{row['p99_ratio']:.3f} | {row['cpu_ratio']:.3f} ({ov(row['cpu_ratio'])}) | {q1:.3f}-{q3:.3f} | "
            f"{row['errors']} | {spy} |"
        )
    q, one, note = overhead_verdicts(s, "cpu_ratio", rounds)
    out += [
        "",
        "Run-time ratio: time to serve the fixed request count over the no-profiler round's time "
        "(the inverse of the throughput ratio). Service CPU per request: the service process's "
        "utime+stime over the load (all its threads, so the in-process profilers' own threads "
        "count; 10 ms clock ticks), divided by the requests served.",
        "",
        f"- Target (on service CPU per request), same run: {q}.",
        f"- Target {one}; {note}.",
        "",
        raw_block("web service per-round measurements", sec["runs"]),
    ]
    return out


# ---- per-part scripts --------------------------------------------------------------------------


def flatten(obj: Any, prefix: str = "") -> List[Tuple[str, Any]]:
    if isinstance(obj, dict):
        rows: List[Tuple[str, Any]] = []
        for k, v in obj.items():
            rows += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return rows
    if isinstance(obj, list) and len(obj) <= 12 and all(isinstance(x, (dict, list)) for x in obj):
        rows = []
        for i, v in enumerate(obj):
            rows += flatten(v, f"{prefix}[{i}]")
        return rows
    return [(prefix, obj)]


def external_block(ext: Dict[str, Any], name: str, missing: str) -> List[str]:
    res = ext.get(name)
    if res is None:
        return [missing, ""]
    out = [f"`{res['cmd']}`" + (f" ({res['seconds']:.0f} s)" if "seconds" in res else "") + ":", ""]
    if res.get("error"):
        out += [f"It failed in this run: {res['error']}", ""]
    data = res.get("json")
    md = data.get("markdown") if isinstance(data, dict) else None
    printed = res.get("stdout", "").strip()
    if md:
        out += [md.strip(), ""]
    elif "|---" in printed:  # the script's own Markdown table, as it printed it
        out += [printed, ""]
        if data is not None:
            out += [raw_block(f"{name} JSON", data)]
        return out
    if data is not None and not md:
        rows = flatten(data)
        out += ["| figure | value |", "|---|---:|"]
        for k, v in rows[:80]:
            out.append(f"| {k} | {f(v, 3) if isinstance(v, float) else v} |")
        if len(rows) > 80:
            out.append(f"| … {len(rows) - 80} more in bench/out/suite.json | |")
        out.append("")
    elif data is None and printed:
        out += ["```", printed, "```", ""]
    elif data is None:
        out += ["(no output)", ""]
    return out


def span_share(ext: Dict[str, Any], workload: str, side: str) -> float:
    """spanprof's correct share for a workload, from span_attribution.py's JSON or its table."""
    res = ext.get("span_attribution.py") or {}
    data = res.get("json")
    try:
        runs = data["runs"][workload][side]  # type: ignore[index]
        return med([100 * r["correct"] / sum(r.values()) for r in runs if sum(r.values())])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        pass
    for line in res.get("stdout", "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] == workload and cells[1] == side:
            m = re.match(r"([\d.]+)%", cells[2])
            if m:
                return float(m.group(1))
    return NAN


# ---- document ----------------------------------------------------------------------------------


def render_markdown(d: Dict[str, Any]) -> str:
    m = d["machine"]
    ext = d.get("externals") or {}
    if not isinstance(ext, dict) or "error" in ext:
        ext = {}
    minutes = d["seconds"] / 60
    L: List[str] = ["# Benchmarks", ""]
    L += [
        "Generated by `make bench` (`scripts/bench` → `bench/suite.py`); do not edit by hand — the "
        "next run rewrites this file. Raw per-run figures: the `raw` blocks below and "
        "`bench/out/suite.json`.",
        "",
        f"- Date: {d['date']}; commit `{m['commit']}`; `{d.get('command', 'bench/suite.py')}`; mode: {d['mode']}"
        + (
            ""
            if d["mode"] == "full"
            else " (reduced sizes: a smoke/quick run, not the published figures)"
        ),
        f"- Machine: {m['cpu']}, {m['cores']} cores, Linux {m['kernel']}, CPython {m['python']}",
        f"- spanprof: this checkout's `src/spanprof` copied at the start (agent extension built "
        f"{m.get('agent_built', '?')}), so rebuilds during the run do not change what is measured",
        "- Peers: " + ", ".join(f"{k} {v}" for k, v in m["peers"].items()),
        f"- The suite took {minutes:.1f} min ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in d.get("step_seconds", {}).items())
        + ").",
        f"- Load average (1/5/15 min) at start {d['load_start']}, at end {d['load_end']}"
        + (
            f"; other processes using CPU at start: {', '.join(d['busy_start'])}"
            if d.get("busy_start")
            else ""
        )
        + (f"; at end: {', '.join(d['busy_end'])}" if d.get("busy_end") else "")
        + ".",
    ]
    noisy = max(d["load_start"][0], d["load_end"][0]) > 1.0
    if noisy:
        L.append(
            "- **Other work was running on this shared 2-core machine during the run** (load average "
            "above 1): whole-process timings are noisy; read the spread columns, and the in-process figures "
            "for anything near 1%."
        )
    fails = d.get("failures") or []
    if fails:
        L.append(
            f"- {len(fails)} run(s) failed and were run once more (a second failure would have failed "
            "the table): " + "; ".join(f"`{x[:300]}`" for x in fails)
        )
    sec = d.get("overhead_cpu")
    if isinstance(sec, dict) and "runs" in sec:
        xs = [r["cpu_s"] for r in sec["runs"]["none"]]
        if len(xs) > 1:
            L.append(
                f"- Noise: the same no-profiler CPU-bound process took {min(xs):.2f}-{max(xs):.2f} s of CPU "
                f"across rounds ({(max(xs) - min(xs)) / med(xs) * 100:.0f}% of the median)."
            )
    L += [
        "",
        "How the process-level figures are taken: every profiled program is its own process "
        "(`bench/peers/target.py`, `bench/peers/web_app.py`), pinned with `taskset` to core 1 (load "
        "client and py-spy on core 0). The profiler starts in-process (pyroscope-io 1.x and spanprof "
        "configured identically: 100 Hz, 1 s upload interval, pushing to an in-suite receiver on "
        "127.0.0.1 that decodes `PushRequest` + pprof), a warm-up block runs, then the program times its "
        "own work section. Profilers run interleaved A B C D E, A B C D E …; each round's figure is divided "
        "by the same round's no-profiler figure and the table gives the median of those ratios with their "
        "spread.",
        "",
    ]

    # 1. overhead
    L += ["## 1. Overhead at 100 Hz", ""]
    L += [
        "Targets: spanprof's overhead at most a quarter of pyroscope-io's (gil_only=True, its default) "
        "measured in the same run, and at most 1% absolute.",
        "",
        "### (a) CPU-bound, one thread",
        "",
    ]
    L += overhead_table(
        "overhead_cpu",
        d.get("overhead_cpu", {}),
        "Pure-Python work under a ~20-frame stack, one thread.",
    )
    L += ["### (b) 8 threads mixing CPU and blocking I/O", ""]
    L += overhead_table(
        "overhead_mixed",
        d.get("overhead_mixed", {}),
        "8 threads, each alternating ~1.5 ms of Python work with a 1 ms blocking sleep; process CPU time "
        "(all threads).",
    )
    web = d.get("overhead_web") or {}
    per_req = med([r["cpu_per_req_ms"] for r in web.get("runs", {}).get("none", [])])
    L += [
        "### (c) asyncio web service under a fixed request load",
        "",
        "FastAPI on uvicorn (one process), `GET /work`: Python work building and pricing 300 items "
        f"({f(per_req, 2)} ms of the service's CPU per request without a profiler, framework included), "
        "then a 2 ms `asyncio.sleep` standing for a database call. Load: `bench/peers/load.py`, "
        f"{d['sizes']['web_requests']} requests over 8 keep-alive connections on loopback (bounded at "
        "60 s), after a warm-up.",
        "",
    ]
    L += web_table(d.get("overhead_web", {}))
    L += ["### (d) In-process, spanprof and pyroscope-io measured the same way", ""]
    L += inproc_table(d.get("overhead_inproc", {}))
    L += ["### In-process figure of the agent core (bench/agent_overhead.py)", ""]
    L += agent_overhead_table(ext)

    # 2. stack depth
    L += ["## 2. Stack depth", ""]
    L += stack_table(d.get("stack_depth", {}))
    # 3. attribution
    L += ["## 3. CPU attribution", ""]
    L += attrib_table(d.get("cpu_attribution", {}))
    # 4. span attribution
    L += ["## 4. Span attribution", ""]
    L += [
        "From `bench/span_attribution.py` (its own method and peer venv): 50 concurrent asyncio tasks "
        "and 8 threads, each in its own root span, burning CPU in a function of its own; the share of "
        "samples in each worker labelled with that worker's span id. Target: ≥ 99% under asyncio.",
        "",
    ]
    share = span_share(ext, "asyncio", "spanprof")
    L += external_block(
        ext,
        "span_attribution.py",
        "Not in this run (per-part scripts skipped or `bench/span_attribution.py` absent).",
    )
    L += [
        f"- Target ≥ 99% under asyncio: {verdict(None if share != share else share >= 99)} (spanprof {f(share)}%).",
        "- The program is identical for both sides but for two imports (`import pyroscope` / "
        "`from pyroscope.otel import PyroscopeSpanProcessor` against `import spanprof as pyroscope` / "
        "`from spanprof.otel import PyroscopeSpanProcessor`), 100 Hz, `oncpu=True`, `gil_only=True`; "
        "pyroscope-io and pyroscope-otel come from PyPI in their own venv (`bench/out/venv-pyroscope`).",
        "- Under asyncio pyroscope-otel tags the OS thread, so a sample carries the span of whichever "
        "task started (or ended) a span last: about 1 in 50 is right by chance. spanprof reads the "
        "span from the interrupted task's own context. With one span per thread both are right.",
        "- pyroscope-io's sample counts (py-spy: wall clock with its own idle detection) can exceed "
        "the CPU the workers spent; the share column does not depend on it.",
        "",
        "### Span processor: cost per span",
        "",
        "`bench/span_processor_cost.py`: one process, interleaved blocks of parent+child "
        "`start_as_current_span` pairs on a plain SDK provider and on a provider with "
        "`SpanProfileProcessor` and its context mirror (the mirror switched between blocks); sampling "
        "off, so this is the processor's own cost: `on_start` (the `pyroscope.profile.id` attribute on "
        "roots, as pyroscope-otel sets it, and the immutable SpanRef), the mirror on every context "
        "attach/detach, and `on_end`.",
        "",
    ]
    L += external_block(
        ext,
        "span_processor_cost.py",
        "Not in this run (per-part scripts skipped, or `bench/span_processor_cost.py` absent).",
    )
    # 5. footprint
    L += ["## 5. Agent footprint", ""]
    L += footprint_table(d.get("footprint", {}))
    L += ["Handler cost by stack depth (`bench/agent_sample_cost.py`):", ""]
    L += sample_cost_table(ext)
    L += ["### The agent on every supported CPython (`bench/agent_versions.py`)", ""]
    L += versions_table(ext)
    L += ["### Wall-clock mode (`bench/agent_wall.py`)", ""]
    L += wall_table(ext)
    # 6. server
    L += ["## 6. Server", ""]
    servers = [k for k in ext if k.startswith("server_")]
    if not servers:
        L += [
            "Not in this run: no `bench/server_*.py` script was there, or per-part scripts were skipped.",
            "",
        ]
    if servers:
        L += [
            "`bench/server_bench.py` starts `build/server/spanprof-server` on a fresh data directory and "
            "drives it over real HTTP on the same machine. Pushes are "
            "realistic: one per service per 10 s of profile time, 300 sample rows each (50 span ids x 6 "
            "stacks), 40-frame stacks from a pool of 60 that share prefixes, 10 ms period, `span_id` / "
            "`active_span_id` / `trace_id` / `span_name` sample labels as the agent sends them. Ingest is "
            "durable: a push is answered after the SQLite commit holding it and an `fdatasync` of the "
            "write-ahead log that covers that commit; "
            "the ingest load comes from `bench/loadgen` (Go, standard library: one keep-alive "
            "connection per client, one push in flight each, pre-encoded gzipped bodies with their own "
            "span ids; Python clients when it is not built), and the report says how many connections "
            "and what they cost. "
            "`SelectMergeSpanProfile` asks for a random span of a random service with the span's time "
            "±1 min, as Grafana does. The pprof comparison writes the same hour of one service as 360 "
            "gzipped pprof files and times Google's `pprof -proto -output merged.pb.gz <files>` "
            "(`build/tools/pprof`) against the server's `SelectMergeProfile` over that hour, which also "
            "returns a merged pprof.",
            "",
        ]
    for k in servers:
        L += [f"### {k}", "", *external_block(ext, k, "")]
    if servers:
        L += [
            "- Ingest path per push: the gzip body is inflated with libdeflate in one call; pprof is "
            "read in place by a bounds-checked wire reader (`server/src/core/pbwire.h`) instead of "
            "protobuf's generated parser; every frame and stack is resolved with one hash probe into "
            "the in-memory dictionary on the HTTP thread; the single writer thread writes one blob per "
            "(push, series) and commits a group of pushes with one fsync, and inserts the `span_index` "
            "entries sorted, in chunks, behind the acknowledgement (re-derived from the stored rows "
            "after a crash). Server and load generator share the 2 cores, so pushes/s is bounded by "
            "their CPU per push together (both columns are in the table) and by the writer's commit "
            "cycle at low concurrency.",
            "- Span profile lookups probe `span_index` once per span and decode each hit profile's blob "
            "once; merges read the selected profiles' blobs by primary key and aggregate by stack id "
            "before building the tree.",
            "",
        ]
    # UI
    L += ["## Web UI: flame graph rendering", ""]
    L += ui_table(ext)
    return "\n".join(L).rstrip() + "\n"


def stack_table(sec: Dict[str, Any]) -> List[str]:
    err = error_block("stack_depth", sec)
    if err or not sec:
        return [err or "Not measured.\n"]
    out = [
        "One thread recurses to the given depth of `recurse_step` and burns CPU in `deep_leaf` at the "
        "bottom. A sample is complete when it holds exactly that many `recurse_step` frames, `deep_leaf`, "
        "and `<module>` as its root. Share complete = complete samples / samples the profiler should have "
        "taken by its own clock (spanprof: 100 per CPU second of the thread; pyroscope-io: 100 per wall "
        "second while the thread runs), capped at 100%; pyroscope-io's count can exceed that "
        "expectation on a loaded machine (its sampling is not paced exactly). Lost samples count as "
        "not complete. Target: complete stacks at every depth.",
        "",
        "| depth | spanprof: share complete | complete / truncated / expected | pyroscope-io: share complete | complete / truncated / expected |",
        "|---:|---:|---:|---:|---:|",
    ]
    ok = True
    for depth in DEPTHS:
        cells = []
        for prof in ("spanprof", "pyroscope-gil"):
            runs = sec.get(prof, {}).get(depth) or sec.get(prof, {}).get(int(depth)) or []
            c = sum(r["complete"] for r in runs)
            i = sum(r["incomplete"] for r in runs)
            e = sum(r["expected"] for r in runs)
            share = min(1.0, c / e) * 100 if e else NAN
            if prof == "spanprof" and (i > 0 or not share >= 95):
                ok = False
            cells.append(f"{f(share)}% | {c} / {i} / {e:.0f}")
        out.append(f"| {depth} | " + " | ".join(cells) + " |")
    out += [
        "",
        f"- Target, complete stacks at every depth (spanprof: no truncated sample and ≥ 95% of the "
        f"expected samples, the rest being timer granularity): {verdict(ok)}.",
        "",
        raw_block("stack depth per run", sec),
    ]
    return out


def attrib_table(sec: Dict[str, Any]) -> List[str]:
    err = error_block("cpu_attribution", sec)
    if err or not sec:
        return [err or "Not measured.\n"]
    fns = ("burn_one", "burn_two", "burn_three")
    out = [
        "Three threads burn CPU at the same time in `burn_one`, `burn_two`, `burn_three` for 1 : 2 : 3 "
        "units of their own CPU clock. Truth: each thread's `time.thread_time()` share; measured: each "
        "function's share of the samples in the three. Error: the largest absolute difference, in "
        "percentage points. Target: ≤ 2 points.",
        "",
        "| profiler | burn_one share (truth) | burn_two share (truth) | burn_three share (truth) | max error, median of runs | worst run | pooled over runs | samples |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sp_ok = None
    for prof in ("spanprof", "pyroscope-gil"):
        runs = sec.get(prof, [])
        if not runs:
            continue
        cnt = {fn: sum(r["samples"][fn] for r in runs) for fn in fns}
        tru = {fn: sum(r["thread_cpu_s"][fn] for r in runs) for fn in fns}
        tc, tt = sum(cnt.values()), sum(tru.values())
        pooled = max(abs(100 * cnt[fn] / tc - 100 * tru[fn] / tt) for fn in fns) if tc else NAN
        errs = [r["max_error_pp"] for r in runs]
        cells = [
            f"{100 * cnt[fn] / tc if tc else NAN:.1f}% ({100 * tru[fn] / tt:.1f}%)" for fn in fns
        ]
        out.append(
            f"| {LABEL[prof]} | "
            + " | ".join(cells)
            + f" | {med(errs):.1f} | {max(errs):.1f} | {pooled:.1f} | {tc} |"
        )
        if prof == "spanprof":
            sp_ok = med(errs) <= 2
    out += [
        "",
        f"- Target ≤ 2 points (spanprof, median of runs): {verdict(sp_ok)}. At n samples a share p has a "
        "sampling error of about √(p(1-p)/n) by itself (≈ 1.5 points at p = 1/3 and n = 1,000).",
        "",
        raw_block("CPU attribution per run", sec),
    ]
    return out


def footprint_table(sec: Dict[str, Any]) -> List[str]:
    err = error_block("footprint", sec)
    if err or not sec:
        return [err or "Not measured.\n"]
    runs = sec["runs"]
    base = runs["none"]
    out = [
        "Memory: 8 threads burning CPU (the same work with and without a profiler, interleaved rounds); "
        "resident set at the end of the work (`VmRSS`) and its peak (`VmHWM`), added over the "
        "no-profiler process of the same round (median). It includes the profiler's import.",
        "",
        "| profiler | VmRSS added MiB | VmHWM added MiB | VmRSS MiB (median) |",
        "|---|---:|---:|---:|",
    ]
    for prof, rs in runs.items():
        add = med([(x["VmRSS_kib"] - b["VmRSS_kib"]) / 1024 for x, b in zip(rs, base)])
        hwm = med([(x["VmHWM_kib"] - b["VmHWM_kib"]) / 1024 for x, b in zip(rs, base)])
        out.append(
            f"| {LABEL[prof]} | {add:.1f} | {hwm:.1f} | {med([x['VmRSS_kib'] / 1024 for x in rs]):.1f} |"
        )
    out += ["", "Sampler and drain, from `spanprof.stats()` at the end of the work:", ""]
    out += [
        "| run | samples taken | dropped | handler ns/sample (mean) | handler ns max | drain ns/sample | drain capacity, lower bound, samples/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def row(name: str, st: Dict[str, Any]) -> str:
        taken = st.get("samples_taken", 0)
        agg = st.get("samples_aggregated", 0)
        h = st.get("handler_ns_total", 0) / taken if taken else NAN
        dr = st.get("drain_ns_total", 0) / agg if agg else NAN
        cap = 1e9 / dr if dr == dr and dr > 0 else NAN
        return f"| {name} | {taken} | {st.get('samples_dropped', 'n/a')} | {f(h, 0)} | {st.get('handler_ns_max', 'n/a')} | {f(dr, 0)} | {f(cap, 0)} |"

    for i, r in enumerate(runs.get("spanprof", [])):
        out.append(row(f"8 threads, 100 Hz, round {i + 1}", r.get("stats", {})))
    hi = sec.get("high_rate") or {}
    if hi.get("stats"):
        out.append(row("8 threads, 250 Hz requested", hi["stats"]))
    out += [
        "",
        "Drain ns/sample = `drain_ns_total / samples_aggregated` (symbolise + aggregate, per record); "
        "it includes each drain pass's fixed cost (a pass every 100 ms whatever the load), so it falls as the rate rises and capacity = 10⁹ / that is a lower bound on the samples per second one drain thread can absorb. Handler "
        "ns/sample = `handler_ns_total / samples_taken`, timed inside the signal handler.",
        "",
        raw_block("footprint per run", sec, drop=()),
    ]
    return out


def ui_table(ext: Dict[str, Any]) -> List[str]:
    res = ext.get("flamegraph_render.mjs")
    data = (res or {}).get("json")
    if not data:
        return [
            "Not in this run (per-part scripts skipped, or node/chromium missing)."
            + (f" Error: {res['error']}" if res and res.get("error") else ""),
            "",
        ]
    out = [
        "The UI draws flame graphs with its own canvas renderer (`ui/src/flame/render.ts`); it is "
        "measured against d3-flame-graph 5.0.0 (SVG) on the same synthetic profile (deep, skewed stacks, "
        "4,000 distinct function names; `ui/bench/synthetic.ts`) in Debian's chromium driven by "
        "playwright-core. Each step is timed from the action to the next painted frame (one frame, ~16 ms, "
        "is the floor). d3-flame-graph runs with transitions off, once drawing every frame (its default, "
        "`minFrameSize(0)`) and once with its 1 px minimum frame size. First paint includes decoding the "
        "Pyroscope level encoding; zoom is a click three levels down; search highlights every frame whose "
        "name contains `function_12`; hover moves the pointer onto a frame.",
        "",
        f"`{res['cmd']}` ({data.get('chromium', '?')}):",
        "",
        f"| renderer ({data['nodes']} nodes, median of {data['runs']}) | first paint ms | zoom ms | search ms | hover ms | DOM nodes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in data["results"].items():
        out.append(
            f"| {name} | {r['first']} | {r['zoom']} | {r['search']} | {r['hover']} | {r['domNodes']} |"
        )
    out.append("")
    return out


def agent_overhead_table(ext: Dict[str, Any]) -> List[str]:
    res = ext.get("agent_overhead.py")
    data = (res or {}).get("json")
    if not isinstance(data, dict) or "rows" not in data:
        return external_block(
            ext,
            "agent_overhead.py",
            "Not in this run (per-part scripts skipped, or the script absent).",
        )
    out = [
        "The agent's sampler measured inside one process (process-level runs cannot resolve 1%): the same "
        "block of work alternately with the sampler off and on (`_native.start`/`stop` between blocks, "
        "outside the timed region, each block after a 20 ms pause so a fresh drain thread's start-up "
        f"is not timed), {data['pairs']} pairs of ~{data['block_s']} s of process CPU time, "
        f"{data['rate']} Hz; median of the per-pair on/off ratios (order flipped every pair; the "
        "8-thread workload uses 8 persistent busy threads). Accounted overhead: the sampler's own "
        "measured cost, (handler time + drain-thread CPU) / CPU of the profiled blocks, a lower "
        "bound that leaves out the kernel's signal delivery (~3 µs per sample here, ~0.03% at "
        f"100 Hz) and GIL hand-offs caused by the drain (it takes the GIL only for new code objects, "
        f"a changed thread list, or once a second). 95% CI: distribution-free, from order "
        f"statistics. `{res['cmd']}` ({res.get('seconds', 0):.0f} s).",
        "",
        "| workload | on/off ratio (median) | overhead | 95% CI of the median | p25-p75 | min-max | pairs "
        "| accounted overhead |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    verdicts = []
    for r in data["rows"]:
        lo, hi = r.get("ci95") or (r["median"], r["median"])
        out.append(
            f"| {r['label']} | {r['median']:.4f} | {ov(r['median'])} | {lo:.4f}-{hi:.4f} | "
            f"{r['p25']:.4f}-{r['p75']:.4f} | {r['min']:.3f}-{r['max']:.3f} | {r['pairs']} | "
            + (f"{100 * r['accounted']:.3f}% |" if "accounted" in r else "n/a |")
        )
        if r["label"].startswith("control"):
            verdicts.append(
                f"- Control (A/A, sampler off in both blocks): {r['median']:.4f}, 95% CI "
                f"{lo:.4f}-{hi:.4f}: what this method reads when there is no difference."
            )
            continue
        # Issue #2's targets: ratio <= 1.005 with one thread, <= 1.01 with 8 threads.
        target = 1.005 if r["label"].startswith("1 thread") else 1.01
        ok = True if hi <= target else False if lo > target else None
        verdicts.append(
            f"- Target ratio ≤ {target}, {r['label']}: {verdict(ok)} (median {r['median']:.4f}, "
            f"95% CI {lo:.4f}-{hi:.4f})."
        )
    out += [
        "",
        f"Samples taken {data['samples_taken']}, dropped {data['samples_dropped']}; handler "
        f"{data['handler_ns_per_sample'] / 1000:.2f} µs/sample, drain {data['drain_ns_per_sample'] / 1000:.2f} µs/sample.",
        "",
        *verdicts,
        "",
    ]
    return out


def script_markdown_table(ext: Dict[str, Any], script: str, method: str) -> List[str]:
    """A per-part script's own markdown (its JSON's "markdown"), after a line on its method."""
    res = ext.get(script) or {}
    data = res.get("json")
    if not isinstance(data, dict):
        return external_block(
            ext, script, "Not in this run (per-part scripts skipped, or the script absent)."
        )
    return [f"{method} Command: `{res.get('cmd', '')}`.", "", *data.get("markdown", []), ""]


def wall_table(ext: Dict[str, Any]) -> List[str]:
    return script_markdown_table(
        ext,
        "agent_wall.py",
        "Overhead: groups of the same CPU block with no profiler, spanprof (CPU + wall profiles) and "
        "pyroscope-io with `oncpu=False`, order rotating, process CPU time, median ratio to no "
        "profiler. Cost per round: the wall sampler's CPU and the drain's, per round, each idle "
        "population in a fresh process. asyncio: 20 tasks per round each awaiting "
        "`asyncio.sleep(0.3)` in a coroutine of its own.",
    )


def versions_table(ext: Dict[str, Any]) -> List[str]:
    return script_markdown_table(
        ext,
        "agent_versions.py",
        "Each interpreter's venv (3.14/3.15 run in the Debian sid root), one after the other in one "
        "run. Handler: median of the rounds' in-signal means (`agent_sample_cost.py`). Overhead: "
        "`agent_overhead.py`'s in-process off/on pairs at 100 Hz, median ratio and its 95% CI "
        "(on a free-threaded build the 8 threads run in parallel). pyroscope-io: "
        "`peers/inproc.py`, both profilers started and stopped around the same blocks in one "
        "process, median ratio to no profiler.",
    )


def sample_cost_table(ext: Dict[str, Any]) -> List[str]:
    runs = [(k, v) for k, v in ext.items() if k.startswith("agent_sample_cost.py")]
    if not any(isinstance(v.get("json"), dict) for _, v in runs):
        return external_block(
            ext,
            "agent_sample_cost.py",
            "Not in this run (per-part scripts skipped, or the script absent).",
        )
    out = [
        "Span lookup active (a SpanRef in the span ContextVar). In-signal: handler time measured by "
        "the handler itself on real timer signals (mean = `handler_ns_total / samples_taken`; p50/p90 "
        "from `handler_histogram()`, bucket upper bounds). Warm: the same sampling path run in a loop "
        "on the thread (the code's own cost, without the cache misses a timer tick leaves). Neither "
        "includes the kernel's signal delivery (a few µs on this kind of VM). 3.9/3.10 walk "
        "heap-allocated frame objects, 3.11+ frames that sit contiguously in the thread's data stack. "
        "With `--repeats`, rounds interleave the depths; the mean of one 2 s round swings by "
        "2-3x on this shared VM (cache state after the tick), so the verdict uses the median of "
        "the rounds' means, and the table shows their range. "
        "Commands: " + "; ".join(f"`{v['cmd']}`" for _, v in runs) + ".",
        "",
        "| CPython | stack depth (frames) | samples | in-signal mean µs | rounds: median (min-max) µs | p50 µs ≤ | p90 µs ≤ | max µs | warm µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, res in sorted(runs, key=lambda kv: kv[0]):
        data = res.get("json")
        if not isinstance(data, dict):
            out.append(f"| {key} | failed: {res.get('error', 'no output')} | | | | | | |")
            continue
        version = key.split("@")[1] if "@" in key else "3.11"
        for r in data["rows"]:
            rm = r.get("in_signal_run_means_us") or [r["in_signal_mean_us"]]
            rounds = (
                f"{len(rm)}: {r.get('in_signal_median_run_mean_us', rm[0]):.2f}"
                f" ({min(rm):.2f}-{max(rm):.2f})"
            )
            out.append(
                f"| {version} | {r['depth']} ({r['frames']}) | {r['samples']} | {r['in_signal_mean_us']:.2f} | "
                f"{rounds} | {f(r.get('in_signal_p50_us_le'), 2)} | {f(r.get('in_signal_p90_us_le'), 2)} | "
                f"{r['in_signal_max_us']:.1f} | {r['warm_us']:.2f} |"
            )
    # The cost of a sample is the mean in-signal time (exact: total handler ns / samples); the
    # histogram's median is only known to its bucket (4 per power of two).
    verdicts = []
    for key, res in runs:
        for r in (res.get("json") or {}).get("rows", []):
            if r["depth"] == 100 and r.get("in_signal_mean_us") is not None:
                ver = key.split("@")[1] if "@" in key else "3.11"
                rm = r.get("in_signal_run_means_us") or []
                if len(rm) >= 3:
                    med = r["in_signal_median_run_mean_us"]
                    below = sum(x < 10 for x in rm)
                    verdicts.append(
                        f"- Target < 10 µs per sample at 100 frames, CPython {ver} (median of"
                        f" {len(rm)} rounds' in-signal means {med:.2f} µs, rounds"
                        f" {min(rm):.2f}-{max(rm):.2f}, {below} of {len(rm)} under 10):"
                        f" {verdict(med < 10)}."
                    )
                    continue
                mean = r["in_signal_mean_us"]
                verdicts.append(
                    f"- Target < 10 µs per sample at 100 frames, CPython {ver} (in-signal mean "
                    f"{mean:.2f} µs): {verdict(mean < 10)}."
                )
    out += [
        "",
        *sorted(verdicts),
        "- At 100 Hz even 20 µs per sample is 0.2% of a core. The warm column is the code's own "
        "cost; the rest of the in-signal time is cache misses on the frames after the timer tick "
        "(3.9/3.10 frames are separate heap objects, hence their higher figure).",
        "",
    ]
    return out


def inproc_table(sec: Dict[str, Any]) -> List[str]:
    err = error_block("overhead_inproc", sec)
    if err or not sec:
        return [err or "Not measured.\n"]
    groups = len(next(iter(sec.values()))["times"]["none"])
    out = [
        "Both in-process profilers can be started and stopped inside one process "
        "(`bench/peers/inproc.py`, pinned to core 1): each group runs the same ~0.2 s block of work "
        "once per profiler and once without, in an order rotating from group to group; start, a 50 ms "
        "settle and stop stay outside the timed region; process CPU time (profiler threads included). "
        f"Median over {groups} groups of the ratio to the same group's no-profiler block. py-spy "
        "cannot be run this way (it attaches from outside).",
        "",
        "| workload | profiler | ratio (median) | overhead | interquartile range | min-max |",
        "|---|---|---:|---:|---:|---:|",
    ]
    verdicts = []
    for kind, name in (("cpu", "CPU-bound, 1 thread"), ("mixed", "8 threads CPU + sleep")):
        if kind not in sec:
            continue
        summ = sec[kind]["summary"]
        for prof in ("spanprof", "pyroscope-gil", "pyroscope-all"):
            r = summ[prof]
            out.append(
                f"| {name} | {LABEL[prof]} | {r['ratio']:.3f} | {ov(r['ratio'])} | "
                f"{r['q'][0]:.3f}-{r['q'][1]:.3f} | {r['minmax'][0]:.3f}-{r['minmax'][1]:.3f} |"
            )
        q, one, note = overhead_verdicts(
            {p: {"cpu_ratio": v["ratio"], "cpu_q": v["q"]} for p, v in summ.items()},
            "cpu_ratio",
            groups,
            in_process=True,
        )
        verdicts += [f"- {name}: {q}; {one}; {note}."]
    out += [
        "",
        *verdicts,
        "",
        raw_block("in-process block times (s) per group", {k: v["times"] for k, v in sec.items()}),
    ]
    return out
