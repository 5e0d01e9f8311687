"""Test support for the API tests: a Pyroscope-like receiver on real HTTP (127.0.0.1, ephemeral
port) whose answers a test scripts (errors, 429, hanging, dead), a PushRequest decoder built from
descriptors written here from the public field numbers, and a subprocess runner.

pprof bodies are read with tests/examples/pprof_reader.py (message classes from the public pprof
field numbers), so nothing here trusts spanprof's own encoders to read their output.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ROOT = Path(__file__).resolve().parents[2]
# Where the spanprof under test lives: child processes import the same copy as this one (tests may
# run on a private copy of src/ while the shared tree's extension is being rebuilt).
SRC = Path(importlib.util.find_spec("spanprof").origin).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "examples"))
import pprof_reader  # noqa: E402

MAX_BODY = 32 << 20


def _push_classes():
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="spanprof_tests_push.proto", package="t", syntax="proto3"
    )

    def msg(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = ".t." + type_name

    one, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("LabelPair", [("name", 1, F.TYPE_STRING, one, ""), ("value", 2, F.TYPE_STRING, one, "")])
    msg("RawSample", [("raw_profile", 1, F.TYPE_BYTES, one, ""), ("ID", 2, F.TYPE_STRING, one, "")])
    msg(
        "RawProfileSeries",
        [
            ("labels", 1, F.TYPE_MESSAGE, rep, "LabelPair"),
            ("samples", 2, F.TYPE_MESSAGE, rep, "RawSample"),
        ],
    )
    msg("PushRequest", [("series", 1, F.TYPE_MESSAGE, rep, "RawProfileSeries")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("t.PushRequest"))


PushRequest = _push_classes()


@dataclass
class Series:
    labels: Dict[str, str]
    profiles: List[pprof_reader.Decoded]
    raw: List[bytes]  # the pprof bytes as sent (gzip)
    ids: List[str]


def decode_push(body: bytes, content_encoding: str = "gzip") -> List[Series]:
    if content_encoding == "gzip":
        body = gzip.decompress(body)
    req = PushRequest()
    req.ParseFromString(body)
    out = []
    for s in req.series:
        raws = [x.raw_profile for x in s.samples]
        out.append(
            Series(
                {lp.name: lp.value for lp in s.labels},
                [pprof_reader.decode(r) for r in raws],
                raws,
                [x.ID for x in s.samples],
            )
        )
    return out


def pprof_times(raw: bytes) -> Tuple[int, int]:
    """(time_nanos, duration_nanos) of a pprof body."""
    p = pprof_reader.Profile()
    p.ParseFromString(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    return p.time_nanos, p.duration_nanos


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    headers: Dict[str, str]
    body: bytes
    at: float


# A behaviour answers one request: (status, body, extra headers) or None to hang until released.
Behaviour = Callable[[Request], Optional[Tuple[int, bytes, Dict[str, str]]]]


def ok(_req: Request) -> Tuple[int, bytes, Dict[str, str]]:
    return 200, b"", {}


@dataclass
class Receiver:
    """Records every request; answers pushes with ``behaviour`` (default 200)."""

    behaviour: Behaviour = ok
    spanprof: bool = False  # answer GET /api/v1/info like a spanprof server
    requests: List[Request] = field(default_factory=list)
    # re-entrant: wait_for's predicate reads the requests under it
    lock: threading.RLock = field(default_factory=threading.RLock)
    changed: threading.Condition = field(default=None)  # type: ignore[assignment]
    release: threading.Event = field(default_factory=threading.Event)
    url: str = ""

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def pushes(self, path: str = "/push.v1.PusherService/Push") -> List[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == path and r.method == "POST"]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(min(left, 0.2))
        return True

    def series(self) -> List[Series]:
        return [
            s
            for r in self.pushes()
            for s in decode_push(r.body, r.headers.get("content-encoding", ""))
        ]


def _handler(rec: Receiver):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _answer(self, status: int, body: bytes, headers: Dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self, body: bytes) -> Request:
            parts = urlsplit(self.path)
            req = Request(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                body,
                time.time(),
            )
            with rec.changed:
                rec.requests.append(req)
                rec.changed.notify_all()
            return req

        def do_GET(self):
            req = self._record(b"")
            if req.path == "/api/v1/info" and rec.spanprof:
                self._answer(
                    200,
                    b'{"server": "spanprof", "version": "test"}',
                    {"Content-Type": "application/json"},
                )
            else:
                self._answer(404, b'{"code": "not_found", "message": "no such route"}', {})

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            if n > MAX_BODY:
                self._answer(413, b"too large", {})
                return
            req = self._record(self.rfile.read(n))
            answer = rec.behaviour(req)
            if answer is None:  # hang: the client's timeout fires first
                rec.release.wait(30)
                return
            self._answer(*answer)

    return H


class Server:
    def __init__(self, rec: Receiver, port: int = 0) -> None:
        self.rec = rec
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(rec))
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        rec.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @classmethod
    def on_port(cls, rec: Receiver, port: int) -> Server:
        return cls(rec, port)

    def close(self) -> None:
        self.rec.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    """A port nothing listens on (bound then closed): a dead server."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def burn(seconds_cpu: float) -> int:
    """Spends about ``seconds_cpu`` of this thread's CPU time in Python code."""
    end = time.thread_time() + seconds_cpu
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i * i
    return x


def run_python(
    code: str,
    env: Dict[str, str],
    args: Sequence[str] = (),
    timeout: float = 120.0,
    argv: Optional[Sequence[str]] = None,
) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter of this venv with spanprof importable."""
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join([str(SRC), full.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full.update(env)
    cmd = list(argv) if argv is not None else [sys.executable, "-c", code, *args]
    return subprocess.run(
        cmd, env=full, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT)
    )


def samples_with(series: List[Series], function_part: str) -> List[pprof_reader.Sample]:
    return [
        s
        for se in series
        for p in se.profiles
        for s in p.samples
        if any(function_part in f for f in s.functions)
    ]
