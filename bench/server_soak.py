"""Soak benchmark for `spanprof-server` under a fleet (issue #18): N agents on keep-alive
connections each pushing a small profile every 10 s (their start times spread over the period),
plus idle connections, slow-header connections, a heavy tenant pushing the largest profiles the
limits accept (--heavy connections, back to back) and a hostile one (memory-amplifying pushes
and nested JSON), while a UI client queries a flame graph in a loop. Reports pushes/s, push latency
p50/p99 (all agents, and the victim tenant alone), UI query p50/p99, failed pushes, the server's
RSS and disk over time, and acknowledged vs stored profiles and sample rows (0 lost is the
requirement).

    .venvs/3.11/bin/python bench/server_soak.py --agents 2000 --idle 200 --slow 50 --seconds 600

`--server-bin` picks the binary (default build/server/spanprof-server). Load only on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import gzip
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "server"))

from conftest import load_protos, make_pprof, push_request  # noqa: E402
from wire import new_names_pprof  # noqa: E402

CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
PUSH = "/push.v1.PusherService/Push"
# Sample rows one push stores: the fleet's bodies have 20 distinct stacks in one series; a
# heavy push has 1M equal samples of 2 sample types: one row in each of 2 series.
ROWS_PER_PUSH = {"fleet": 20, "victim": 20, "heavy": 2}
PROFILES_PER_PUSH = {"fleet": 1, "victim": 1, "heavy": 2, "dict": 1}
# A --heavy-dict push: every function name new (DICT_FUNCS of them, one location each), samples of
# DICT_DEPTH distinct frames each: DICT_FUNCS / DICT_DEPTH new stacks, one row each. Within every
# default limit (strings, samples, body size); the writer's work is the dictionary, not the rows.
DICT_FUNCS, DICT_DEPTH = 200_000, 20
ROWS_PER_PUSH["dict"] = DICT_FUNCS // DICT_DEPTH
DICT_TAG = b"pXXXXXXX"  # replaced per push by a same-length unique prefix


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


class Conn:
    """One keep-alive HTTP/1.1 connection (asyncio streams; responses read by Content-Length)."""

    def __init__(self, port: int):
        self.port = port
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
        if self.w is None:
            self.r, self.w = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 22)
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        self.w.write(head.encode() + body)
        await self.w.drain()
        assert self.r is not None
        status = await self.r.readline()
        length, close = 0, False
        while True:
            line = await self.r.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
            if k.lower() == "connection" and "close" in v.lower():
                close = True
        await self.r.readexactly(length)
        if close or not status:
            self.close()
        return int(status.split()[1]) if status else 0

    def close(self) -> None:
        if self.w is not None:
            self.w.close()
        self.r = self.w = None


async def main_async(a, port: int, pid: int, pb) -> dict:
    stop = time.monotonic() + a.seconds
    res: dict = {
        "push_ms": [],
        "victim_ms": [],
        "query_ms": [],
        "failed": 0,
        "failed_codes": {},
        "heavy_codes": {},
        "dict_codes": {},
        "dict_ms": [],
        "pushes": 0,
    }
    acked = {"fleet": 0, "victim": 0, "heavy": 0, "dict": 0}
    samples: list[dict] = []
    bodies = [
        push_request(
            pb,
            {"service_name": f"svc{i % 50}"},
            make_pprof(pb, [([f"main_{i % 50}", f"work_{k}"], 1 + k, {}) for k in range(20)]),
        )
        for i in range(100)
    ]
    proto = {"Content-Type": "application/proto"}
    heavy_body = push_request(
        pb, {"service_name": "heavy"}, gzip.compress(_amplifying_pprof(1_000_000, 2)), False
    )

    async def timed(c: Conn, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, float]:
        """One request on a keep-alive connection: (status, ms); status 0 on error or timeout."""
        t = time.monotonic()
        try:
            code = await asyncio.wait_for(c.request("POST", path, body, headers), timeout=30)
        except Exception:
            code = 0
            c.close()
        return code, (time.monotonic() - t) * 1000

    async def agent(i: int, tenant: str, key: str) -> None:
        c = Conn(port)
        await asyncio.sleep(random.random() * a.period)
        while time.monotonic() < stop:
            t = time.monotonic()
            code, ms = await timed(
                c, PUSH, bodies[i % len(bodies)], {**proto, "X-Scope-OrgID": tenant}
            )
            res["pushes"] += 1
            if code == 200:
                acked[key] += 1
                res["push_ms"].append(ms)
                if key == "victim":
                    res["victim_ms"].append(ms)
            else:
                res["failed"] += 1
                res["failed_codes"][code] = res["failed_codes"].get(code, 0) + 1
            await asyncio.sleep(max(0.0, a.period - (time.monotonic() - t)))
        c.close()

    async def heavy() -> None:
        # The largest profiles the default limits accept (1M samples x 2 types = 2M rows),
        # back to back: they are stored, so they must not be lost either.
        c = Conn(port)
        while time.monotonic() < stop:
            code, _ = await timed(c, PUSH, heavy_body, {**proto, "X-Scope-OrgID": "heavy"})
            res["heavy_codes"][code] = res["heavy_codes"].get(code, 0) + 1
            if code == 200:
                acked["heavy"] += 1
            elif code != 429:
                await asyncio.sleep(1)
            else:
                await asyncio.sleep(0.2)

    dict_template = new_names_pprof(DICT_FUNCS, DICT_DEPTH, DICT_TAG) if a.heavy_dict else b""
    dict_seq = iter(range(10**8))

    async def heavy_dict() -> None:
        # Pushes of new stacks and names only (never seen before: each gets its own prefix),
        # back to back; sent uncompressed (the server takes plain pprof too).
        c = Conn(port)
        while time.monotonic() < stop:
            raw = dict_template.replace(DICT_TAG, b"p%07d" % next(dict_seq))
            body = push_request(pb, {"service_name": "dict"}, raw, False)
            code, ms = await timed(c, PUSH, body, {**proto, "X-Scope-OrgID": "dict"})
            res["dict_codes"][code] = res["dict_codes"].get(code, 0) + 1
            if code == 200:
                acked["dict"] += 1
                res["dict_ms"].append(ms)
            else:
                await asyncio.sleep(1 if code != 429 else 0.2)

    async def idle() -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await w.drain()
        while time.monotonic() < stop:
            # Re-open when the server's idle timeout closes it: the connection stays counted.
            try:
                data = await asyncio.wait_for(
                    r.read(4096), timeout=max(0.1, stop - time.monotonic())
                )
            except asyncio.TimeoutError:
                break
            if not data:
                w.close()
                r, w = await asyncio.open_connection("127.0.0.1", port)
        w.close()

    async def slow() -> None:
        while time.monotonic() < stop:
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"POST /ingest?name=slow HTTP/1.1\r\nHost: x\r\n")
                while time.monotonic() < stop:
                    await asyncio.sleep(5)
                    w.write(b"X-Slow: 1\r\n")  # one header line every 5 s, never finished
                    await w.drain()
            except Exception:
                pass
            await asyncio.sleep(0.1)

    async def hostile() -> None:
        c = Conn(port)
        amp = push_request(
            pb,
            {"service_name": "amp"},
            gzip.compress(_amplifying_pprof(1_000_000, 40)),
            gzipped=False,
        )
        nested = gzip.compress(b"[" * 100_000)
        while time.monotonic() < stop:
            for path, body, h in (
                (PUSH, amp, proto),
                (
                    "/v1/traces",
                    nested,
                    {"Content-Type": "application/json", "Content-Encoding": "gzip"},
                ),
            ):
                try:
                    await c.request("POST", path, body, {**h, "X-Scope-OrgID": "hostile"})
                except Exception:
                    c.close()
            await asyncio.sleep(min(a.hostile_interval, max(0.0, stop - time.monotonic())))

    async def ui() -> None:
        c = Conn(port)
        q = json.dumps(
            {
                "profileTypeID": CPU,
                "labelSelector": '{service_name="svc1"}',
                "start": int(time.time() * 1000) - 3600_000,
                "end": 0,
            }
        ).encode()
        while time.monotonic() < stop:
            code, ms = await timed(
                c,
                "/querier.v1.QuerierService/SelectMergeStacktraces",
                q,
                {"Content-Type": "application/json", "X-Scope-OrgID": "fleet"},
            )
            res["query_ms"].append(ms if code == 200 else 30000.0)
            await asyncio.sleep(0.5)

    async def monitor() -> None:
        t0 = time.monotonic()
        while time.monotonic() < stop:
            try:
                rss = int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0]) * 1024
            except OSError:
                rss = 0
            disk = sum(f.stat().st_size for f in Path(a.data).glob("spanprof.db*"))
            samples.append(
                {
                    "t": round(time.monotonic() - t0),
                    "rss_mb": rss >> 20,
                    "disk_mb": disk >> 20,
                    "pushes": res["pushes"],
                }
            )
            await asyncio.sleep(a.seconds / 10)

    tasks = [agent(i, "fleet", "fleet") for i in range(a.agents)]
    tasks += [agent(i, "victim", "victim") for i in range(a.victims)]
    tasks += [idle() for _ in range(a.idle)] + [slow() for _ in range(a.slow)]
    tasks += [heavy() for _ in range(a.heavy)]
    tasks += [heavy_dict() for _ in range(a.heavy_dict)]
    tasks += [hostile()] if a.hostile_interval > 0 else []
    tasks += [ui(), monitor()]
    await asyncio.gather(*tasks)
    res["acked"] = acked
    res["timeline"] = samples
    return res


def _amplifying_pprof(samples: int, types: int) -> bytes:
    from test_hostile import _amplifying_pprof as f

    return f(samples, types)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--victims", type=int, default=20, help="agents of a second, victim tenant")
    ap.add_argument("--idle", type=int, default=200)
    ap.add_argument("--slow", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--period", type=float, default=10, help="seconds between an agent's pushes")
    ap.add_argument(
        "--hostile-interval", type=float, default=1.0, help="0: no hostile (413/400) requests"
    )
    ap.add_argument(
        "--heavy", type=int, default=4, help="connections of a tenant pushing max-size profiles"
    )
    ap.add_argument(
        "--heavy-dict",
        type=int,
        default=0,
        help="connections of a tenant pushing profiles of 200k new function names each",
    )
    ap.add_argument("--server-bin", default=str(ROOT / "build" / "server" / "spanprof-server"))
    ap.add_argument("--server-args", default="", help="extra server flags, space-separated")
    a = ap.parse_args()
    a.data = tempfile.mkdtemp(prefix="spanprof-soak-")
    pb = load_protos()
    log = open(os.path.join(a.data, "server.log"), "wb")
    proc = subprocess.Popen(
        [
            a.server_bin,
            "--data-dir",
            a.data,
            "--listen",
            "127.0.0.1:0",
            "--retention",
            "0",
            "--log-level",
            "error",
            *a.server_args.split(),
        ],
        stdout=log,
        stderr=subprocess.PIPE,
    )
    port = 0
    assert proc.stderr is not None
    for line in proc.stderr:
        m = re.match(rb"LISTENING api [\d.]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    threading_drain(proc)
    try:
        t0 = time.monotonic()
        res = asyncio.run(main_async(a, port, proc.pid, pb))
        wall = time.monotonic() - t0
        stored = {}
        import urllib.request

        for tenant in ("fleet", "victim", "heavy", "dict"):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/stats", headers={"X-Scope-OrgID": tenant}
            )
            stored[tenant] = json.loads(urllib.request.urlopen(req, timeout=60).read())
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(a.data, ignore_errors=True)
    # Acknowledged vs stored, in profiles and in sample rows (nothing is deleted: --retention 0).
    lost = {
        k: {
            "profiles": res["acked"][k] * PROFILES_PER_PUSH[k] - stored[k]["profiles"],
            "sample_rows": res["acked"][k] * ROWS_PER_PUSH[k] - stored[k]["sample_rows"],
        }
        for k in stored
    }
    out = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores, Linux {platform.release()}",
        "server": a.server_bin,
        "agents": a.agents,
        "idle": a.idle,
        "slow": a.slow,
        "seconds": a.seconds,
        "pushes_per_s": round(res["pushes"] / wall, 1),
        "heavy": a.heavy,
        "failed_pushes": res["failed"],
        "failed_codes": res["failed_codes"],
        "heavy_codes": res["heavy_codes"],
        "heavy_dict": a.heavy_dict,
        "dict_codes": res["dict_codes"],
        "dict_push_ms_p50": round(pct(res["dict_ms"], 50), 1),
        "push_ms_p50": round(pct(res["push_ms"], 50), 1),
        "push_ms_p99": round(pct(res["push_ms"], 99), 1),
        "victim_push_ms_p50": round(pct(res["victim_ms"], 50), 1),
        "victim_push_ms_p99": round(pct(res["victim_ms"], 99), 1),
        "victim_pushes_stored": res["acked"]["victim"],
        "query_ms_p50": round(pct(res["query_ms"], 50), 1),
        "query_ms_p99": round(pct(res["query_ms"], 99), 1),
        "queries": len(res["query_ms"]),
        "acked": res["acked"],
        "stored": {k: {x: v[x] for x in ("profiles", "sample_rows")} for k, v in stored.items()},
        "lost_acknowledged": lost,
        "timeline": res["timeline"],
    }
    print(json.dumps(out, indent=1))
    return 0 if all(n == 0 for v in lost.values() for n in v.values()) else 1


def threading_drain(proc) -> None:
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
