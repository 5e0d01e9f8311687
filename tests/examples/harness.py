"""Harness for the example tests: a receiver that stands in for the profile and trace backends,
and a way to run an example as a subprocess that is always stopped.

The receiver speaks the two real wire formats the examples send, over real HTTP on 127.0.0.1:
Pyroscope's ``/push.v1.PusherService/Push`` (what spanprof's default exporter sends) and OTLP/HTTP
traces on ``/v1/traces`` (what the OpenTelemetry SDK's exporter sends). It answers
``GET /api/v1/info`` like a spanprof server, so the agent keeps ``active_span_id`` on samples.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pprof_reader
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MAX_BODY = 32 << 20


def _push_request_class():
    """PushRequest{series=1: RawProfileSeries{labels=1: LabelPair{name=1, value=2},
    samples=2: RawSample{raw_profile=1, ID=2}}} from the public push.v1 field numbers."""
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="spanprof_tests_push.proto", package="spanprof_tests.push", syntax="proto3"
    )
    lp = fdp.message_type.add(name="LabelPair")
    lp.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    lp.field.add(name="value", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    rs = fdp.message_type.add(name="RawSample")
    rs.field.add(name="raw_profile", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    rs.field.add(name="ID", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    series = fdp.message_type.add(name="RawProfileSeries")
    series.field.add(
        name="labels", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
        type_name=".spanprof_tests.push.LabelPair",
    )  # fmt: skip
    series.field.add(
        name="samples", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
        type_name=".spanprof_tests.push.RawSample",
    )  # fmt: skip
    req = fdp.message_type.add(name="PushRequest")
    req.field.add(
        name="series", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
        type_name=".spanprof_tests.push.RawProfileSeries",
    )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("spanprof_tests.push.PushRequest"))  # fmt: skip


PushRequest = _push_request_class()


@dataclass
class Upload:
    series: Dict[str, str]  # series labels (service_name, tags, ...)
    profile: pprof_reader.Decoded


@dataclass
class ExportedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: Dict[str, str]


@dataclass
class Receiver:
    url: str
    uploads: List[Upload] = field(default_factory=list)
    spans: List[ExportedSpan] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def samples(self, service: Optional[str] = None) -> List[pprof_reader.Sample]:
        with self.lock:
            return [
                s
                for u in self.uploads
                if service is None or u.series.get("service_name") == service
                for s in u.profile.samples
            ]

    def spans_named(self, name: str) -> List[ExportedSpan]:
        with self.lock:
            return [s for s in self.spans if s.name == name]


def _decode_spans(body: bytes) -> List[ExportedSpan]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    out = []
    for rs in req.resource_spans:
        res = {a.key: a.value.string_value for a in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(
                    ExportedSpan(
                        service=res.get("service.name", ""),
                        name=sp.name,
                        trace_id=sp.trace_id.hex(),
                        span_id=sp.span_id.hex(),
                        parent_span_id=sp.parent_span_id.hex(),
                        attributes={a.key: a.value.string_value for a in sp.attributes},
                    )
                )
    return out


def _make_handler(rec: Receiver):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output readable
            pass

        def _reply(self, code: int, body: bytes = b"", ctype: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/api/v1/info":
                self._reply(200, b'{"server": "spanprof", "version": "test-receiver"}')
            else:
                self._reply(404, b'{"message": "not found"}')

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, b'{"message": "too large"}')
                return
            body = self.rfile.read(length)
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            try:
                if self.path.startswith("/push.v1.PusherService/Push"):
                    req = PushRequest()
                    req.ParseFromString(body)
                    for series in req.series:
                        labels = {lp.name: lp.value for lp in series.labels}
                        for raw in series.samples:
                            decoded = pprof_reader.decode(raw.raw_profile)
                            with rec.lock:
                                rec.uploads.append(Upload(labels, decoded))
                    self._reply(200, b"{}", "application/proto")
                elif self.path.startswith("/v1/traces"):
                    spans = _decode_spans(body)
                    with rec.lock:
                        rec.spans.extend(spans)
                    self._reply(200, b"", "application/x-protobuf")
                else:
                    self._reply(404, b'{"message": "not found"}')
            except Exception as e:  # a decoding failure is a test failure, reported at the end
                with rec.lock:
                    rec.errors.append(f"{self.path}: {e!r}")
                self._reply(400, b'{"message": "bad request"}')

    return Handler


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def example_env(receiver: Receiver, **extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p)
    env["SPANPROF_SERVER_ADDRESS"] = receiver.url
    env["PYROSCOPE_SERVER_ADDRESS"] = receiver.url
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Example:
    """A running example; stopped (SIGINT, then SIGKILL to its process group) on exit."""

    def __init__(self, argv: Sequence[str], env: Dict[str, str], cwd: Path = ROOT) -> None:
        self.proc = subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> str:
        """Stops a service the way an operator would; it must exit cleanly (status 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self._finish(timeout, "stop")

    def wait(self, timeout: float) -> str:
        """Waits for an example that ends by itself (a batch job); it must succeed."""
        return self._finish(timeout, "finish")

    def _finish(self, timeout: float, what: str) -> str:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate()
            raise AssertionError(
                f"example did not {what} within {timeout}s:\n{out.decode()}"
            ) from None
        text = out.decode(errors="replace")
        assert self.proc.returncode == 0, f"example exited with {self.proc.returncode}:\n{text}"
        return text

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.communicate()


def wait_http(url: str, proc: Example, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise AssertionError(f"example exited early:\n{proc.stop()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def get(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


PYTHON = sys.executable


def serve_receiver() -> tuple:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    rec = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _make_handler(rec)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, rec


HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def check_labels_hex(labels: Dict[str, str]) -> None:
    assert HEX16.match(labels.get("span_id", "")), f"no span_id: {labels}"
    assert HEX32.match(labels.get("trace_id", "")), f"no trace_id: {labels}"
    if "active_span_id" in labels:
        assert HEX16.match(labels["active_span_id"]), labels


def samples_in(rec: Receiver, service: str, function: str) -> List[pprof_reader.Sample]:
    return [s for s in rec.samples(service) if function in s.functions]


def check_span_linked(
    rec: Receiver, service: str, function: str, every_sample: bool = True
) -> List[pprof_reader.Sample]:
    """Every sample taken in `function` carries the span it ran in, and that span is one the
    example exported as a trace: span_id = the local root's pyroscope.profile.id, same trace.
    every_sample=False (for an outside sampler such as pyroscope-io, whose thread tags reach its
    samples with a lag) checks the samples that carry a span, and that there are some."""
    samples = samples_in(rec, service, function)
    seen = sorted({f for s in rec.samples(service) for f in s.functions[:1]})[:20]
    assert samples, f"{service}: no sample in {function}(); leaf functions seen: {seen}"
    if not every_sample:
        samples = [s for s in samples if "span_id" in s.labels]
        assert samples, f"{service}: no sample in {function}() carries a span"
    roots = {
        sp.attributes["pyroscope.profile.id"]: sp
        for sp in rec.spans
        if sp.service == service and "pyroscope.profile.id" in sp.attributes
    }
    for s in samples:
        check_labels_hex(s.labels)
        span_id, trace_id = s.labels["span_id"], s.labels["trace_id"]
        root = roots.get(span_id)
        assert root is not None, f"span_id {span_id} is no exported root span's profile id"
        assert (root.span_id, root.trace_id) == (span_id, trace_id)
        assert s.labels.get("span_name") == root.name
    return samples
