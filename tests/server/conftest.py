"""Fixtures for the server integration tests: a real spanprof-server on ephemeral 127.0.0.1 ports,
the compiled .proto messages (`pb`; the wire builders live in wire.py) and small HTTP helpers.
Tests skip with a reason when the binary is not built."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

import pytest
from wire import (  # noqa: F401  (re-exported to the test modules)
    Frame,
    load_protos,
    make_pprof,
    otlp_profiles_request,
    push_request,
    push_series,
)

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SPANPROF_SERVER_BIN", ROOT / "build" / "server" / "spanprof-server"))
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


class Server:
    def __init__(self, data_dir: str, args: list[str]):
        self.data_dir = data_dir
        self.args = args
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(data_dir, "server.log")
        self.url = ""
        self.otlp_url = ""
        self.grpc_addr = ""  # host:port of --otlp-grpc
        self.token: Optional[str] = None

    def start(self) -> Server:
        os.makedirs(self.data_dir, exist_ok=True)
        self.log = open(self.log_path, "ab")
        start_len = os.path.getsize(self.log_path)
        self.proc = subprocess.Popen(
            [str(BINARY), "--data-dir", self.data_dir, "--listen", "127.0.0.1:0", *self.args],
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            text = Path(self.log_path).read_bytes()[start_len:].decode(errors="replace")
            api = [ln for ln in text.splitlines() if ln.startswith("LISTENING api ")]
            want_otlp = any(a == "--otlp-listen" for a in self.args)
            otlp = [ln for ln in text.splitlines() if ln.startswith("LISTENING otlp ")]
            want_grpc = any(a == "--otlp-grpc" for a in self.args)
            grpc = [ln for ln in text.splitlines() if ln.startswith("LISTENING otlp-grpc ")]
            if api and (otlp or not want_otlp) and (grpc or not want_grpc):
                self.url = "http://" + api[0].split()[-1]
                if otlp:
                    self.otlp_url = "http://" + otlp[0].split()[-1]
                if grpc:
                    self.grpc_addr = grpc[0].split()[-1]
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{text}")
            time.sleep(0.05)
        raise RuntimeError("server did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=30)
        finally:
            self.log.close()
        self.proc = None
        return rc

    def log_text(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    # ---- HTTP ----
    def request(
        self,
        method: str,
        path: str,
        body: Optional[bytes] = None,
        headers: Optional[dict[str, str]] = None,
        base: Optional[str] = None,
    ) -> tuple[int, bytes, dict[str, str]]:
        h = dict(headers or {})
        if self.token and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request((base or self.url) + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def get_json(self, path: str, headers: Optional[dict[str, str]] = None) -> Any:
        code, body, _ = self.request("GET", path, headers=headers)
        assert code == 200, (code, body)
        return json.loads(body)

    def connect_json(self, method: str, req: dict, headers: Optional[dict[str, str]] = None) -> Any:
        h = {"Content-Type": "application/json", **(headers or {})}
        code, body, _ = self.request(
            "POST", f"/querier.v1.QuerierService/{method}", json.dumps(req).encode(), h
        )
        assert code == 200, (code, body)
        return json.loads(body)


@pytest.fixture(scope="session")
def server_binary() -> Path:
    if not BINARY.exists():
        pytest.skip(f"{BINARY} not built (run scripts/build)")
    return BINARY


@pytest.fixture()
def make_server(server_binary, tmp_path_factory):
    servers: list[Server] = []

    def make(*args: str, data_dir: Optional[str] = None) -> Server:
        d = data_dir or str(tmp_path_factory.mktemp("spanprof-data"))
        s = Server(d, list(args)).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        if s.alive():
            s.stop()


@pytest.fixture()
def server(make_server) -> Server:
    return make_server("--otlp-listen", "127.0.0.1:0")


@pytest.fixture(scope="session")
def pb():
    """Dynamic message classes for our .proto files (no generated Python kept in the repo)."""
    if not shutil.which("protoc"):
        pytest.skip("protoc not installed")
    return load_protos()


def agent_available() -> bool:
    """Whether spanprof's agent core is built (its extension has start())."""
    try:
        from spanprof import _native
    except ImportError:
        return False
    return hasattr(_native, "start")


def run_agent_script(script: str, url: str, context: str = "") -> dict:
    """Runs `script` (with `url` as argv[1]) on this interpreter with the checkout's spanprof, and
    returns the JSON object on its last line of output; `context` is added to a failure."""
    import sys

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", script, url], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stderr + context
    return json.loads(out.stdout.strip().splitlines()[-1])


def flame_names(fg: dict) -> set[str]:
    return set(fg.get("names", []))


def push_big_svc_b(server, pb) -> int:
    """Adds a profile of 30 samples of svc-b to `loaded` (svc-b then outweighs svc-a); its ns."""
    now_ns = time.time_ns()
    body = push_request(
        pb,
        {"__name__": "process_cpu", "service_name": "svc-b", "env": "prod"},
        make_pprof(pb, [(["main", "b_fn"], 30, {})], time_ns=now_ns),
    )
    code, resp, _ = server.request(
        "POST", "/push.v1.PusherService/Push", body, {"Content-Type": "application/proto"}
    )
    assert code == 200, resp
    return now_ns


def top_series_request(now_ns: int, end_ms: str) -> tuple[int, dict]:
    """(start, SelectSeries request): 60 s steps by service, the top one, with exemplars; the
    profile at now_ns half a step before a step end, the fixture's (seconds earlier) in that step."""
    start = now_ns // 1_000_000 - 3_600_000 - 30_000
    return start, {
        "profileTypeID": CPU,
        "labelSelector": "{}",
        "start": str(start),
        "end": end_ms,
        "step": 60,
        "groupBy": ["service_name"],
        "limit": "1",
        "exemplarType": "EXEMPLAR_TYPE_INDIVIDUAL",
    }


ROOT_SPAN = "00000000000000a1"
CHILD_SPAN = "00000000000000a2"
OTHER_SPAN = "00000000000000b1"
TRACE = "000000000000000000000000000000c1"


@pytest.fixture()
def loaded(server, pb):
    """Two services; svc-a has span-labelled samples and a stored trace (root a1 → child a2)."""
    now_ns = time.time_ns()
    stacks = [
        (
            ["main", "handle", "root_only_fn"],
            2,
            {"span_id": ROOT_SPAN, "trace_id": TRACE, "span_name": "GET /a"},
        ),
        (
            ["main", "handle", "child_fn"],
            3,
            {
                "span_id": ROOT_SPAN,
                "active_span_id": CHILD_SPAN,
                "trace_id": TRACE,
                "span_name": "GET /a",
            },
        ),
        (["main", "idle"], 4, {}),
        (["main", "other_span_fn"], 5, {"span_id": OTHER_SPAN, "span_name": "GET /b"}),
    ]
    for svc, st in (("svc-a", stacks), ("svc-b", [(["main", "b_fn"], 6, {})])):
        body = push_request(
            pb,
            {"__name__": "process_cpu", "service_name": svc, "env": "prod"},
            make_pprof(pb, st, time_ns=now_ns),
        )
        code, resp, _ = server.request(
            "POST", "/push.v1.PusherService/Push", body, {"Content-Type": "application/proto"}
        )
        assert code == 200, resp
    trace = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc-a"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": ROOT_SPAN,
                                "name": "GET /a",
                                "startTimeUnixNano": str(now_ns - 50_000_000),
                                "endTimeUnixNano": str(now_ns),
                            },
                            {
                                "traceId": TRACE,
                                "spanId": CHILD_SPAN,
                                "parentSpanId": ROOT_SPAN,
                                "name": "db.query",
                                "startTimeUnixNano": str(now_ns - 40_000_000),
                                "endTimeUnixNano": str(now_ns - 10_000_000),
                            },
                        ]
                    }
                ],
            }
        ]
    }
    code, resp, _ = server.request(
        "POST", "/v1/traces", json.dumps(trace).encode(), {"Content-Type": "application/json"}
    )
    assert code == 200, resp
    return server
