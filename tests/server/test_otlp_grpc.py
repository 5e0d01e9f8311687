"""OTLP over gRPC (`--otlp-grpc`) against real gRPC peers: the OpenTelemetry SDK's OTLP/gRPC
exporter, and grpcio (the library that exporter uses) sending chosen bytes to the two Export
methods, for the status codes an OTLP client acts on."""

from __future__ import annotations

import gzip
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from conftest import CPU, flame_names, otlp_profiles_request
from test_retention import PROTO, PUSH, unique_push

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PROFILES = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
SPAN = bytes.fromhex("00000000000000aa")
TRACE = bytes.fromhex("000000000000000000000000000000bb")


def export(server, method: str, body: bytes, metadata=(), gzipped: bool = False) -> bytes:
    """One unary call with `body` as the request bytes; raises grpc.RpcError."""
    with grpc.insecure_channel(server.grpc_addr) as ch:
        call = ch.unary_unary(method, request_serializer=None, response_deserializer=None)
        return call(
            body,
            metadata=list(metadata),
            timeout=30,
            compression=grpc.Compression.Gzip if gzipped else None,
        )


def code_of(server, method: str, body: bytes, metadata=(), gzipped: bool = False):
    try:
        export(server, method, body, metadata, gzipped)
    except grpc.RpcError as e:
        return e.code(), e.details(), e
    return grpc.StatusCode.OK, "", None


def unknown_field(n: int) -> bytes:
    """About `n` bytes of field 15 (length-delimited), a field no OTLP request defines: padding
    a decoder skips."""
    n -= 4
    return b"\x7a" + bytes([(n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14]) + b"\0" * n


def merge(server, selector: str, tenant: str = "") -> dict:
    return server.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": selector, "start": "0"},
        headers={"X-Scope-OrgID": tenant} if tenant else None,
    )["flamegraph"]


def sdk_export_script(addr: str, service: str, headers: str = "") -> str:
    return textwrap.dedent(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from grpc import Compression
        tp = TracerProvider(resource=Resource.create(
            {{"service.name": "{service}", "deployment.environment": "ci"}}))
        tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint="http://{addr}", insecure=True, compression=Compression.Gzip,
            headers={headers or "None"})))
        tr = tp.get_tracer("grpc-test")
        with tr.start_as_current_span("checkout", attributes={{"order.id": 7}}) as root:
            with tr.start_as_current_span("charge-card"):
                pass
            print(format(root.get_span_context().trace_id, "032x"))
        tp.shutdown()
        """
    )


def test_sdk_grpc_exporter_spans_found_by_trace_api(make_server):
    s = make_server("--otlp-grpc", "127.0.0.1:0")
    out = subprocess.run(
        [sys.executable, "-c", sdk_export_script(s.grpc_addr, "grpc-sdk-svc")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "Failed to export" not in out.stderr, out.stderr
    trace_id = out.stdout.strip().splitlines()[-1]
    found = s.get_json("/api/v1/traces?service=grpc-sdk-svc")["traces"]
    assert [t["trace_id"] for t in found] == [trace_id]
    assert found[0]["root_name"] == "checkout" and found[0]["span_count"] == 2
    t = s.get_json(f"/api/v1/traces/{trace_id}")
    root = next(sp for sp in t["spans"] if sp["name"] == "checkout")
    assert root["service"] == "grpc-sdk-svc"
    assert root["resource"]["deployment.environment"] == "ci"
    assert root["resource"]["service.name"] == "grpc-sdk-svc"
    assert root["attributes"]["order.id"] == 7
    assert root["scope"]["name"] == "grpc-test"


def test_profiles_over_grpc_filed_as_over_http(make_server, pb):
    s = make_server("--otlp-grpc", "127.0.0.1:0")
    body = otlp_profiles_request(pb, "grpc-prof", "grpc_fn", SPAN, TRACE, refs=True)
    # The same bytes through both transports, one tenant each: identical answers.
    assert export(s, PROFILES, body, [("x-scope-orgid", "via-grpc")], gzipped=True) == b""
    code, resp, _ = s.request(
        "POST",
        "/v1development/profiles",
        body,
        {"Content-Type": "application/x-protobuf", "X-Scope-OrgID": "via-http"},
    )
    assert code == 200, resp
    got = merge(s, '{service_name="grpc-prof"}', "via-grpc")
    assert "grpc_fn" in flame_names(got)
    assert got == merge(s, '{service_name="grpc-prof"}', "via-http")
    span = s.connect_json(
        "SelectMergeSpanProfile",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="grpc-prof"}',
            "spanSelector": [SPAN.hex()],
            "start": "0",
        },
        headers={"X-Scope-OrgID": "via-grpc"},
    )["flamegraph"]
    assert int(span["total"]) == 30_000_000
    # Tenants apart: the default tenant saw nothing.
    assert "grpc_fn" not in flame_names(merge(s, '{service_name="grpc-prof"}'))


def test_auth_and_tenant_metadata(make_server, pb):
    s = make_server("--otlp-grpc", "127.0.0.1:0", "--auth-token", "s3cret")
    out = subprocess.run(
        [sys.executable, "-c", sdk_export_script(s.grpc_addr, "no-auth")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "UNAUTHENTICATED" in out.stderr, out.stderr
    body = otlp_profiles_request(pb, "auth-prof", "auth_fn", SPAN, TRACE)
    for md in ([], [("authorization", "Bearer wrong")], [("authorization", "s3cret")]):
        code, details, _ = code_of(s, PROFILES, body, md)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (md, code, details)
    ok = [("authorization", "bEaReR s3cret"), ("x-scope-orgid", "team-a")]
    assert code_of(s, PROFILES, body, ok)[0] == grpc.StatusCode.OK
    bad_tenant = [("authorization", "Bearer s3cret"), ("x-scope-orgid", "a/b")]
    code, details, _ = code_of(s, PROFILES, body, bad_tenant)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "X-Scope-OrgID" in details
    auth = {"Authorization": "Bearer s3cret"}
    assert "auth_fn" in flame_names(
        s.connect_json(
            "SelectMergeStacktraces",
            {"profileTypeID": CPU, "labelSelector": '{service_name="auth-prof"}', "start": "0"},
            headers={**auth, "X-Scope-OrgID": "team-a"},
        )["flamegraph"]
    )
    other = s.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": '{service_name="auth-prof"}', "start": "0"},
        headers={**auth, "X-Scope-OrgID": "team-b"},
    )["flamegraph"]
    assert "auth_fn" not in flame_names(other)


def test_bad_input_and_limits(make_server, pb):
    s = make_server(
        "--otlp-grpc", "127.0.0.1:0", "--max-body-bytes", "65536", "--max-ingest-rate", "200000"
    )
    for method in (TRACES, PROFILES):
        code, details, _ = code_of(s, method, b"\xff\xfe garbage \x00\x01" * 8)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (method, code, details)
        assert details, "a message says what is wrong"
    # A message past --max-body-bytes, as sent and once inflated (gzip: 100 KiB → a few bytes).
    big = b"\x0a\x00" * 50_000
    for gz in (False, True):
        code, details, _ = code_of(s, TRACES, big, gzipped=gz)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, (gz, code, details)
    assert len(gzip.compress(big)) < 65536
    # The tenant's ingest rate (4 s burst = 800 kB): past it RESOURCE_EXHAUSTED with a RetryInfo,
    # the only RESOURCE_EXHAUSTED an OTLP client retries.
    body = otlp_profiles_request(pb, "rate", "rate_fn", SPAN, TRACE)
    chunk = body + unknown_field(60_000 - len(body))
    refused = None
    for _ in range(40):
        code, details, err = code_of(s, PROFILES, chunk)
        if code != grpc.StatusCode.OK:
            refused = (code, details, err)
            break
    assert refused is not None, "the rate limit never applied"
    code, details, err = refused
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "--max-ingest-rate" in details
    trailers = dict(err.trailing_metadata() or ())
    assert b"RetryInfo" in trailers.get("grpc-status-details-bin", b""), trailers
    assert s.alive()


def test_full_disk_is_unavailable(make_server, pb, tmp_path):
    s = make_server(
        "--otlp-grpc",
        "127.0.0.1:0",
        "--max-disk",
        str(512 << 10),
        "--max-disk-keep",
        "1h",
        data_dir=str(tmp_path / "data"),
    )
    for i in range(60):
        st, _, _ = s.request("POST", PUSH, unique_push(pb, i), PROTO)
        if st != 200:
            break
    assert st == 507
    # A write fits or not by its size: names of 100 kB each, until one does not fit.
    for i in range(20):
        fn = f"full{i}_" + "x" * 100_000
        body = otlp_profiles_request(pb, "full", fn, SPAN, TRACE)
        code, details, err = code_of(s, PROFILES, body)
        if code != grpc.StatusCode.OK:
            break
    assert code == grpc.StatusCode.UNAVAILABLE and "--max-disk" in details, (code, details)
    # Retried by OTLP clients; the delay is there too.
    trailers = dict(err.trailing_metadata() or ())
    assert b"RetryInfo" in trailers.get("grpc-status-details-bin", b""), trailers


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(ln for ln in f if ln.startswith("Threads:")).split()[1])


def test_concurrent_exports_queue_on_bounded_threads(make_server, pb):
    """More concurrent exports than --otlp-grpc-threads: every one is stored (they wait for a
    thread; gRPC's sync server refused such calls with RESOURCE_EXHAUSTED, which the Collector
    drops), and the server's thread count stays put."""
    s = make_server("--otlp-grpc", "127.0.0.1:0", "--otlp-grpc-threads", "2")
    assert s.proc is not None
    idle = _threads(s.proc.pid)
    peak = idle
    done = threading.Event()

    def watch():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _threads(s.proc.pid))

    w = threading.Thread(target=watch)
    w.start()
    bodies = [
        otlp_profiles_request(pb, "many", f"many{i}_" + "y" * 100_000, SPAN, TRACE)
        for i in range(48)
    ]
    try:
        with ThreadPoolExecutor(48) as ex:
            codes = list(ex.map(lambda b: code_of(s, PROFILES, b)[:2], bodies))
    finally:
        done.set()
        w.join()
    assert all(c == grpc.StatusCode.OK for c, _ in codes), codes
    assert peak <= idle + 2, (idle, peak)
    got = flame_names(merge(s, '{service_name="many"}'))
    assert all(f"many{i}_" + "y" * 100_000 in got for i in range(48))


def test_sigterm_stops_both_receivers(make_server, pb):
    s = make_server("--otlp-grpc", "127.0.0.1:0")
    body = otlp_profiles_request(pb, "stop", "stop_fn", SPAN, TRACE)
    assert code_of(s, PROFILES, body)[0] == grpc.StatusCode.OK
    assert s.stop() == 0
    assert "OTLP/gRPC receiver stopped" in s.log_text()


@pytest.mark.parametrize("addr", ["127.0.0.1:notaport", "256.1.1.1:4317"])
def test_bad_address_refuses_to_start(make_server, addr):
    with pytest.raises(RuntimeError, match=r"otlp-grpc|OTLP/gRPC"):
        make_server("--otlp-grpc", addr)
