"""spanprof server benchmark: ingest throughput, SelectMergeSpanProfile latency over a day of data,
merging an hour of one service (and the same merge with Google's pprof tool), bytes per sample row.

Realistic pushes: one per service every 10 s of profile time, about 300 sample rows each (50 span
ids x 6 stacks), 40-frame stacks from a pool of 60 that share prefixes, 10 ms period, span_id /
active_span_id / trace_id / span_name labels as the spanprof agent sends them.

    .venvs/3.11/bin/python bench/server_bench.py [--hours 24] [--services 10] [--seconds 10]

Prints a Markdown table (and JSON with --json). Needs build/server/spanprof-server; the pprof
comparison needs build/tools/pprof (scripts/setup installs it).
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))
from conftest import load_protos, make_pprof  # noqa: E402

BINARY = Path(os.environ.get("SPANPROF_SERVER_BIN", ROOT / "build" / "server" / "spanprof-server"))
PPROF = ROOT / "build" / "tools" / "pprof"
LOADGEN = ROOT / "build" / "tools" / "spanprof-loadgen"  # bench/loadgen, built by scripts/setup
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
MARK = b"eeeeeeee"  # replaced per push by an 8-hex push id: span/trace ids become unique
SPANS, STACKS_PER_SPAN, DEPTH, POOL = 50, 6, 40, 60
SPAN_NAMES = 8  # span_name is a series label: the server stores one profile per name in a push
PERIOD = 10_000_000


def template(pb, service: str) -> bytes:
    """pprof with marker ids; length-preserving replacement of MARK gives each push new ids."""
    rnd = random.Random(service)
    pool = []
    for k in range(POOL):
        base = k % 6  # six families share their first 30 frames
        frames = [f"pkg{base}.module.func_{d}" for d in range(30)]
        frames += [f"pkg{base}.leaf{k}.fn_{d}" for d in range(DEPTH - 30)]
        pool.append(frames)
    stacks = []
    for j in range(SPANS):
        labels = {
            "span_id": MARK.decode() + f"{j:08x}",
            "active_span_id": MARK.decode() + f"{j + 0x10000:08x}",
            "trace_id": MARK.decode() + f"{j:024x}",
            "span_name": f"GET /route{j % SPAN_NAMES}",
        }
        for _ in range(STACKS_PER_SPAN):
            stacks.append((pool[rnd.randrange(POOL)], rnd.randint(1, 20), labels))
    return make_pprof(pb, stacks, period=PERIOD, time_ns=0)


def push_body(pb, raw: bytes, service: str) -> bytes:
    req = pb.get("push.v1.PushRequest")()
    s = req.series.add()
    for k, v in (("__name__", "process_cpu"), ("service_name", service)):
        lp = s.labels.add()
        lp.name, lp.value = k, v
    s.samples.add().raw_profile = raw  # plain: the markers must stay visible; the body is gzipped
    return req.SerializeToString()


def push_id(service_idx: int, n: int) -> bytes:
    return f"{service_idx:02x}{n:06x}".encode()


class Server:
    def __init__(self, data: str, *args: str):
        self.log = open(os.path.join(data, "server.log"), "wb")
        self.proc = subprocess.Popen(
            [
                str(BINARY),
                "--data-dir",
                data,
                "--listen",
                "127.0.0.1:0",
                "--retention",
                "0",
                "--log-level",
                "warn",
                "--admin-tenant",  # /api/v1/stats: server-wide figures for the bench's tenant
                "anonymous",
                *args,
            ],
            stdout=self.log,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = ""
        while "LISTENING api" not in line:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError("server failed to start")
        self.host, port = line.split()[-1].rsplit(":", 1)
        self.port = int(port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=120)


def conn(port: int) -> http.client.HTTPConnection:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.connect()
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle + delayed-ACK stalls
    return c


def post(c: http.client.HTTPConnection, path: str, body: bytes, headers: dict) -> tuple[int, bytes]:
    c.request("POST", path, body, headers)
    r = c.getresponse()
    return r.status, r.read()


# ---------------- ingest throughput ----------------
PUSH_PATH = "/push.v1.PusherService/Push"
PUSH_HEADERS = {"Content-Type": "application/proto", "Content-Encoding": "gzip"}


def ingest_bodies(widx: int, bodies: int) -> list[bytes]:
    """Client `widx`'s push bodies, gzipped, each with its own span/trace ids."""
    pb = load_protos()
    body_t = push_body(pb, template(pb, f"ingest-{widx}"), f"ingest-{widx}")
    return [gzip.compress(body_t.replace(MARK, push_id(widx, n)), 1) for n in range(bodies)]


def _ingest_worker(port: int, widx: int, seconds: float, bodies: int, ready, go, out) -> None:
    # Bodies are built and gzipped before the clock starts (each with its own span/trace ids), so
    # the timed loop is only HTTP on a keep-alive connection: the clients measure the server, not
    # Python's protobuf and gzip. Past `bodies` pushes the bodies repeat (ids then recur, which
    # the server stores like any other push).
    pre = ingest_bodies(widx, bodies)
    c = conn(port)
    ready.put(widx)
    go.wait()
    n = ok = 0
    lat = []
    cpu = time.process_time()
    end = time.time() + seconds
    while time.time() < end:
        t = time.perf_counter()
        status, _ = post(c, PUSH_PATH, pre[n % bodies], PUSH_HEADERS)
        lat.append((time.perf_counter() - t) * 1000)
        ok += status == 200
        n += 1
    out.put((ok, time.process_time() - cpu, n, lat))


def _write_bodies(job: tuple[int, int, str]) -> None:
    """One client's bodies as loadgen frames: uint32 little-endian length, then the bytes."""
    widx, bodies, path = job
    with open(path, "wb") as f:
        for b in ingest_bodies(widx, bodies):
            f.write(len(b).to_bytes(4, "little") + b)


def ingest_python(port: int, seconds: float, clients: int, bodies: int, server_pid: int) -> dict:
    """One Python process per connection: the fallback when the Go load generator is not built."""
    q: mp.Queue = mp.Queue()
    ready: mp.Queue = mp.Queue()
    go = mp.Event()
    ps = [
        mp.Process(target=_ingest_worker, args=(port, i, seconds, bodies, ready, go, q))
        for i in range(clients)
    ]
    for p in ps:
        p.start()
    for _ in ps:
        ready.get()
    cpu0 = cpu_seconds(server_pid)
    go.set()
    results = [q.get() for _ in ps]
    cpu1 = cpu_seconds(server_pid)
    for p in ps:
        p.join()
    ok = sum(r[0] for r in results)
    requests = sum(r[2] for r in results)
    lat = [x for r in results for x in r[3]]
    return {
        "pushes": ok,
        "errors": requests - ok,
        "acked_pushes": ok,
        "server_cpu_s": cpu1 - cpu0,
        "client_cpu_ms_per_push": sum(r[1] for r in results) * 1000 / max(1, requests),
        "latency_ms": {p: pct(lat, n) for p, n in (("p50", 50), ("p90", 90), ("p99", 99))},
        "warmup_s": 0.0,
    }


def ingest_go(
    port: int, seconds: float, clients: int, bodies: int, server_pid: int, warmup: float
) -> dict:
    """build/tools/spanprof-loadgen: one keep-alive connection per client, one push in flight on
    each, cycling through every client's bodies (connection i starts at client i's)."""
    with tempfile.TemporaryDirectory(prefix="spanprof-loadgen-") as d:
        files = [os.path.join(d, f"bodies-{i}.bin") for i in range(clients)]
        with mp.Pool(min(clients, os.cpu_count() or 1)) as pool:
            pool.map(_write_bodies, [(i, bodies, f) for i, f in enumerate(files)])
        cmd = [str(LOADGEN), "-url", f"http://127.0.0.1:{port}{PUSH_PATH}", "-c", str(clients)]
        cmd += ["-d", f"{seconds}s", "-warmup", f"{warmup}s"]
        for k, v in PUSH_HEADERS.items():
            cmd += ["-H", f"{k}: {v}"]
        cpu0 = cpu_seconds(server_pid)
        p = subprocess.run(
            [*cmd, *files], capture_output=True, text=True, timeout=seconds + warmup + 300
        )
        cpu1 = cpu_seconds(server_pid)
    if p.returncode != 0:
        raise RuntimeError(f"spanprof-loadgen failed: {p.stderr.strip()}")
    r = json.loads(p.stdout)
    errors = sum(r["errors"].values())
    if errors:
        print(f"loadgen errors {r['errors']}: {r.get('first_error', '')}", file=sys.stderr)
    return {
        "pushes": r["ok"],
        "errors": errors,
        # The server's CPU covers the whole run (warm-up and the pushes in flight at the
        # deadline too), so it is divided by every acknowledged push of the run.
        "acked_pushes": r["total_ok"],
        "server_cpu_s": cpu1 - cpu0,
        "client_cpu_ms_per_push": r["cpu_ms_per_request"],
        "latency_ms": {k: r["latency_ms"][k] for k in ("p50", "p90", "p99")},
        "warmup_s": warmup,
        # TCP connections opened: more than `clients` when the server closes kept-alive ones.
        "dials": r["dials"],
    }


def bench_ingest(seconds: float, clients: int, generator: str = "auto", warmup: float = 1) -> dict:
    if generator == "auto":
        generator = "go" if LOADGEN.exists() else "python"
    with tempfile.TemporaryDirectory() as d:
        s = Server(d)
        if generator == "go":
            bodies = max(100, min(4000, int((seconds + warmup) * 3000 / clients)))
            r = ingest_go(s.port, seconds, clients, bodies, s.proc.pid, warmup)
        else:
            bodies = max(100, min(4000, int(seconds * 3000 / clients)))
            r = ingest_python(s.port, seconds, clients, bodies, s.proc.pid)
        c = conn(s.port)
        c.request("GET", "/api/v1/stats")
        st = json.loads(c.getresponse().read())
        stored = st["profiles"]
        c.close()
        s.stop()
    total = r["pushes"]
    return {
        "generator": generator,
        "clients": clients,
        "seconds": seconds,
        "warmup_s": r["warmup_s"],
        "pushes": total,
        "pushes_per_s": total / seconds,
        "errors": r["errors"],
        "rows_per_push": SPANS * STACKS_PER_SPAN,
        # The clients share the 2 cores with the server: server CPU per push says what one
        # server core sustains independent of how fast the clients can produce pushes.
        "server_cpu_ms_per_push": r["server_cpu_s"] * 1000 / max(1, r["acked_pushes"]),
        # What the clients spend per push (HTTP only: bodies are pre-encoded).
        "client_cpu_ms_per_push": r["client_cpu_ms_per_push"],
        "latency_ms": r["latency_ms"],
        "dials": r.get("dials"),
        # Every acknowledged push is durable: after the run the database holds SPAN_NAMES
        # profiles per acknowledged push.
        "acked_pushes": r["acked_pushes"],
        "stored_profiles": stored,
        "stored_ok": stored == r["acked_pushes"] * SPAN_NAMES,
        "load_avg_1m": os.getloadavg()[0],
        # Group commit: how many write transactions one fdatasync of the WAL acknowledged.
        "commits_per_sync": st["server"].get("synced_batches", 0)
        / max(1, st["server"].get("wal_syncs", 0)),
    }


def ingest_line(i: dict) -> str:
    lat = i["latency_ms"]
    line = (
        f"ingest ({i['generator']} loadgen, {i['clients']} connections): {i['pushes_per_s']:.0f}"
        f" pushes/s, server CPU {i['server_cpu_ms_per_push']:.2f} ms/push, client CPU"
        f" {i['client_cpu_ms_per_push']:.2f} ms/push, latency p50 {lat['p50']:.1f} ms p99"
        f" {lat['p99']:.1f} ms, {i['errors']} errors, load average {i['load_avg_1m']:.1f},"
        f" {i.get('commits_per_sync', 0):.2f} commits per WAL sync"
    )
    if not i["stored_ok"]:
        line += (
            f"; STORED {i['stored_profiles']} profiles for {i['acked_pushes']} acknowledged"
            f" pushes (expected {SPAN_NAMES} each)"
        )
    return line


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc (clock ticks -> seconds)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------- a day of data ----------------
def _load_worker(port: int, jobs: list, t0: int, out: mp.Queue) -> None:
    pb = load_protos()
    temps: dict[int, bytes] = {}
    c = conn(port)
    bad = 0
    for svc, n in jobs:
        if svc not in temps:
            temps[svc] = template(pb, f"svc-{svc}")
        raw = gzip.compress(temps[svc].replace(MARK, push_id(svc, n)), 1)
        ts = t0 + n * 10
        status, _ = post(
            c, f"/ingest?name=svc-{svc}.cpu&format=pprof&from={ts}&until={ts + 10}", raw, {}
        )
        bad += status != 200
    out.put(bad)


def load_day(port: int, services: int, hours: float, t0: int, workers: int) -> float:
    pushes = int(hours * 360)
    jobs = [(s, n) for n in range(pushes) for s in range(services)]
    chunks = [jobs[i::workers] for i in range(workers)]
    q: mp.Queue = mp.Queue()
    start = time.time()
    ps = [mp.Process(target=_load_worker, args=(port, ch, t0, q)) for ch in chunks]
    for p in ps:
        p.start()
    bad = sum(q.get() for _ in ps)
    for p in ps:
        p.join()
    if bad:
        raise RuntimeError(f"{bad} pushes failed during load")
    return time.time() - start


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--services", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=10, help="ingest throughput run length")
    ap.add_argument(
        "--clients",
        default="4",
        help="ingest connections; a comma list (4,8,16) runs the ingest once per value",
    )
    ap.add_argument(
        "--loadgen",
        choices=("auto", "go", "python"),
        default="auto",
        help="ingest load generator: go = build/tools/spanprof-loadgen (auto: go if built)",
    )
    ap.add_argument(
        "--warmup", type=float, default=1, help="seconds of uncounted load first (Go loadgen only)"
    )
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--ingest-only", action="store_true", help="only the ingest throughput run")
    a = ap.parse_args()
    if not BINARY.exists():
        print(f"{BINARY} not built", file=sys.stderr)
        return 1
    pb = load_protos()
    res: dict = {"date": time.strftime("%Y-%m-%d"), "machine": machine()}
    sweep = []
    for clients in [int(c) for c in a.clients.split(",")]:
        i = bench_ingest(a.seconds, clients, a.loadgen, a.warmup)
        sweep.append(i)
        print(ingest_line(i), file=sys.stderr)
    res["ingest"] = sweep[0]
    if len(sweep) > 1:
        res["ingest_sweep"] = sweep
    if a.ingest_only:
        if a.json:
            print(json.dumps(res, indent=2))
        return 0

    data = tempfile.mkdtemp(prefix="spanprof-bench-")
    try:
        s = Server(data)
        t0 = int(time.time()) - int(a.hours * 3600) - 600
        res["load_s"] = load_day(s.port, a.services, a.hours, t0, workers=3)
        pushes = int(a.hours * 360)
        print(f"loaded {pushes * a.services} pushes in {res['load_s']:.0f} s", file=sys.stderr)
        c = conn(s.port)
        c.request("GET", "/api/v1/stats")
        res["stats"] = json.loads(c.getresponse().read())

        # SelectMergeSpanProfile for random spans of random services (Grafana's call: the span's
        # time range widened by a minute each side, label selector from the service).
        Req = pb.get("querier.v1.SelectMergeSpanProfileRequest")
        lat = []
        rnd = random.Random(1)
        for _ in range(a.queries):
            svc, n, j = rnd.randrange(a.services), rnd.randrange(pushes), rnd.randrange(SPANS)
            ts_ms = (t0 + n * 10) * 1000
            r = Req(
                profile_typeID=CPU,
                label_selector=f'{{service_name="svc-{svc}"}}',
                span_selector=[push_id(svc, n).decode() + f"{j:08x}"],
                start=ts_ms - 60_000,
                end=ts_ms + 70_000,
            )
            t = time.perf_counter()
            status, body = post(
                c,
                "/querier.v1.QuerierService/SelectMergeSpanProfile",
                r.SerializeToString(),
                {"Content-Type": "application/proto"},
            )
            lat.append((time.perf_counter() - t) * 1000)
            assert status == 200, body
        fg = pb.get("querier.v1.SelectMergeSpanProfileResponse").FromString(body).flamegraph
        assert fg.total > 0
        res["span_profile_ms"] = {"p50": pct(lat, 50), "p99": pct(lat, 99), "n": len(lat)}

        # Merge one hour of one service: flame graph and pprof out.
        mid = t0 + int(a.hours * 3600 / 2)
        mid -= mid % 10
        h_from, h_to = mid * 1000, (mid + 3600) * 1000 - 1
        MS = pb.get("querier.v1.SelectMergeStacktracesRequest")
        MP = pb.get("querier.v1.SelectMergeProfileRequest")
        times_fg, times_pprof = [], []

        def timed_merge(method: str, req_type: type, into: list) -> bytes:
            sel = '{service_name="svc-0"}'
            req = req_type(
                profile_typeID=CPU, label_selector=sel, start=h_from, end=h_to
            ).SerializeToString()
            t = time.perf_counter()
            status, out = post(
                c,
                f"/querier.v1.QuerierService/{method}",
                req,
                {"Content-Type": "application/proto"},
            )
            into.append((time.perf_counter() - t) * 1000)
            assert status == 200
            return out

        for _ in range(7):
            body = timed_merge("SelectMergeStacktraces", MS, times_fg)
            timed_merge("SelectMergeProfile", MP, times_pprof)
        hour_total = (
            pb.get("querier.v1.SelectMergeStacktracesResponse").FromString(body).flamegraph.total
        )
        res["merge_hour_ms"] = {
            "flamegraph_p50": statistics.median(times_fg),
            "pprof_p50": statistics.median(times_pprof),
            "total_ns": hour_total,
        }

        # The same hour with Google's pprof tool over the same profiles (written as files).
        if PPROF.exists():
            tmpl = template(pb, "svc-0")
            files = []
            with tempfile.TemporaryDirectory() as pd:
                first = (mid - t0) // 10
                for n in range(first, first + 360):
                    f = os.path.join(pd, f"p{n}.pb.gz")
                    Path(f).write_bytes(gzip.compress(tmpl.replace(MARK, push_id(0, n)), 1))
                    files.append(f)
                runs = []
                for _ in range(3):
                    t = time.perf_counter()
                    subprocess.run(
                        [str(PPROF), "-proto", "-output", os.path.join(pd, "merged.pb.gz"), *files],
                        check=True,
                        capture_output=True,
                    )
                    runs.append((time.perf_counter() - t) * 1000)
            res["pprof_tool_ms"] = statistics.median(runs)
            res["pprof_ratio"] = res["pprof_tool_ms"] / res["merge_hour_ms"]["pprof_p50"]
        s.stop()
        st = res["stats"]
        res["bytes_per_row"] = os.path.getsize(os.path.join(data, "spanprof.db")) / max(
            1, st["sample_rows"]
        )
    finally:
        shutil.rmtree(data, ignore_errors=True)
    report(res, a)
    if a.json:
        print(json.dumps(res, indent=2))
    return 0


def machine() -> str:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def report(r: dict, a) -> None:
    st = r["stats"]
    print(
        f"`bench/server_bench.py --hours {a.hours:g} --services {a.services} --seconds {a.seconds:g} --clients {a.clients}` ({r['date']}, {r['machine']}):\n"
    )
    i = r["ingest"]
    if i["generator"] == "go":
        how = (
            "`build/tools/spanprof-loadgen` (bench/loadgen, Go) with"
            f" {i['clients']} keep-alive HTTP/1.1 connections, one push in flight on each, after"
            f" {i['warmup_s']:g} s of uncounted warm-up"
        )
    else:
        how = (
            f"{i['clients']} Python client processes (http.client, the fallback when"
            " build/tools/spanprof-loadgen is not built), each one keep-alive HTTP/1.1 connection"
            " posting back to back"
        )
    print(
        f"Ingest load: {how}, on this machine (so that many pushes are in flight for group commit);"
        " bodies (push.v1 + gzip, each with its own span/trace ids) are built before the clock"
        " starts, so the timed loop is only HTTP — the client CPU row shows what the load"
        " generator costs (on loopback TCP the sender also pays the kernel's receive work)."
        f" 1-min load average at the end of the ingest run: {i.get('load_avg_1m', 0):.1f}.\n"
    )
    print("| measure | value | target |")
    print("|---|---:|---:|")
    sweep = r.get("ingest_sweep", [i])
    for j in sweep:
        cpu = (
            f", CPU per push: server {j['server_cpu_ms_per_push']:.2f} ms, client"
            f" {j['client_cpu_ms_per_push']:.2f} ms"
            if len(sweep) > 1
            else ""
        )
        print(
            f"| ingest, durable (push.v1, gzip, {j['rows_per_push']} rows, {j['clients']} connections)"
            f" | {j['pushes_per_s']:.0f} pushes/s ({j['pushes_per_s'] * j['rows_per_push']:.0f} rows/s),"
            f" {j.get('errors', 0)} errors{cpu} | >= 2,000 pushes/s |"
        )
    print(
        f"| server CPU per push during {'the first' if len(sweep) > 1 else 'that'} run | {i['server_cpu_ms_per_push']:.2f} ms"
        f" ({1000 / max(0.001, i['server_cpu_ms_per_push']):.0f} pushes/s per core) | |"
    )
    if "client_cpu_ms_per_push" in i:
        print(
            f"| client CPU per push ({i.get('generator', 'python')} load generator, pre-encoded"
            f" bodies, keep-alive) | {i['client_cpu_ms_per_push']:.2f} ms"
            f" (1-min load average {i['load_avg_1m']:.1f})"
            + (f", {i['dials']} TCP connections opened" if i.get("dials") else "")
            + " | |"
        )
    if "latency_ms" in i:
        lat = i["latency_ms"]
        print(
            f"| push latency under that load (HTTP round trip, durable) | p50 {lat['p50']:.1f} ms,"
            f" p99 {lat['p99']:.1f} ms | |"
        )
    if not i.get("stored_ok", True):
        print(
            f"| **stored profiles after the run** | {i['stored_profiles']} for {i['acked_pushes']}"
            f" acknowledged pushes, expected {SPAN_NAMES} each | |"
        )
    print(
        f"| stored: {a.services} services x {a.hours:g} h | {st['profiles']} profiles, {st['sample_rows']} sample rows, loaded in {r['load_s']:.0f} s | |"
    )
    sp = r["span_profile_ms"]
    print(
        f"| SelectMergeSpanProfile ({sp['n']} random spans) | p50 {sp['p50']:.1f} ms, p99 {sp['p99']:.1f} ms | p99 <= 50 ms |"
    )
    m = r["merge_hour_ms"]
    print(
        f"| merge 1 h of one service -> flame graph (median of 7) | {m['flamegraph_p50']:.0f} ms | <= 100 ms |"
    )
    print(f"| merge 1 h of one service -> pprof (SelectMergeProfile) | {m['pprof_p50']:.0f} ms | |")
    if "pprof_tool_ms" in r:
        print(
            f"| same hour, `pprof -proto` over the 360 profiles (median of 3) | {r['pprof_tool_ms']:.0f} ms ({r['pprof_ratio']:.1f}x ours) | |"
        )
    print(f"| disk per sample row (database file / rows) | {r['bytes_per_row']:.1f} bytes | |")


if __name__ == "__main__":
    sys.exit(main())
