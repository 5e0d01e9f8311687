"""Every ingest route against a real server, checked through the query API."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import CPU, flame_names, make_pprof, otlp_profiles_request, push_request

SPAN = "0123456789abcdef"
TRACE = "0123456789abcdef0123456789abcdef"


def merge(server, selector: str, **extra) -> dict:
    req = {"profileTypeID": CPU, "labelSelector": selector, "start": "0", "end": "0", **extra}
    return server.connect_json("SelectMergeStacktraces", req)["flamegraph"]


@pytest.mark.parametrize("encoding", ["proto", "proto+gzip", "json", "json+gzip"])
@pytest.mark.parametrize("connect_header", [True, False])
def test_push_connect_encodings(server, pb, encoding, connect_header):
    svc = f"push-{encoding.replace('+', '-')}-{int(connect_header)}"
    raw = make_pprof(
        pb, [(["main", "handler", "work_" + svc.replace("-", "_")], 5, {"span_id": SPAN})]
    )
    body = push_request(pb, {"__name__": "process_cpu", "service_name": svc}, raw)
    headers = {"Content-Type": "application/proto"}
    if encoding.startswith("json"):
        msg = pb.get("push.v1.PushRequest").FromString(body)
        from google.protobuf import json_format

        body = json_format.MessageToJson(msg).encode()
        headers["Content-Type"] = "application/json"
    if encoding.endswith("gzip"):
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    if connect_header:
        headers["Connect-Protocol-Version"] = "1"
    code, resp, _ = server.request("POST", "/push.v1.PusherService/Push", body, headers)
    assert code == 200, resp
    fg = merge(server, f'{{service_name="{svc}"}}')
    assert "work_" + svc.replace("-", "_") in flame_names(fg)
    assert int(fg["total"]) == 5 * 10_000_000


def test_push_plain_raw_profile_and_series_labels(server, pb):
    raw = make_pprof(
        pb, [(["a", "b"], 2, {"thread_name": "T1", "span_id": SPAN, "trace_id": TRACE})]
    )
    body = push_request(
        pb, {"__name__": "process_cpu", "service_name": "lbl", "env": "prod"}, raw, False
    )
    code, resp, _ = server.request(
        "POST", "/push.v1.PusherService/Push", body, {"Content-Type": "application/proto"}
    )
    assert code == 200, resp
    names = server.connect_json("LabelNames", {"matchers": ['{service_name="lbl"}']})["names"]
    # Sample labels become series labels except the span identity labels.
    assert {"env", "thread_name", "service_name", "__profile_type__"} <= set(names)
    assert not {"span_id", "trace_id", "profile_id", "active_span_id"} & set(names)
    vals = server.connect_json("LabelValues", {"name": "__profile_type__"})["names"]
    assert CPU in vals


def test_missing_service_name_becomes_unknown_service(server, pb):
    raw = make_pprof(pb, [(["nosvc_fn"], 1, {})])
    body = push_request(pb, {"__name__": "process_cpu"}, raw)
    assert (
        server.request(
            "POST", "/push.v1.PusherService/Push", body, {"Content-Type": "application/proto"}
        )[0]
        == 200
    )
    assert "nosvc_fn" in flame_names(merge(server, '{service_name="unknown_service"}'))


def test_legacy_ingest_formats(server, pb):
    now = int(time.time())
    q = f"from={now - 10}&until={now}&sampleRate=100&spyName=pyspy&units=samples&aggregationType=sum"
    # folded text, default format
    code, body, _ = server.request(
        "POST", f"/ingest?name=legacy.cpu%7Benv%3Dprod%7D&{q}", b"main;fold_fn 7\nmain;other 1\n"
    )
    assert code == 200, body
    # lines
    code, body, _ = server.request(
        "POST", f"/pyroscope/ingest?name=legacy2&format=lines&{q}", b"main;line_fn\nmain;line_fn\n"
    )
    assert code == 200, body
    # raw pprof
    raw = make_pprof(pb, [(["main", "pprof_fn"], 3, {})])
    code, body, _ = server.request("POST", f"/ingest?name=legacy3.cpu&format=pprof&{q}", raw)
    assert code == 200, body
    # multipart: profile + sample_type_config
    boundary = "spanprofboundary"
    cfg = json.dumps({"cpu": {"units": "nanoseconds", "display-name": "cpu"}}).encode()
    raw2 = make_pprof(pb, [(["main", "multipart_fn"], 4, {})])
    parts = b""
    for name, data in (("profile", gzip.compress(raw2)), ("sample_type_config", cfg)):
        parts += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    parts += f"--{boundary}--\r\n".encode()
    code, body, _ = server.request(
        "POST",
        f"/ingest?name=legacy4.cpu&{q}",
        parts,
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert code == 200, body

    fg = merge(server, '{service_name="legacy", env="prod"}')
    assert "fold_fn" in flame_names(fg) and int(fg["total"]) == 8 * 10_000_000
    assert "pyroscope_spy" in server.connect_json("LabelNames", {})["names"]
    assert "line_fn" in flame_names(merge(server, '{service_name="legacy2"}'))
    assert "pprof_fn" in flame_names(merge(server, '{service_name="legacy3"}'))
    assert "multipart_fn" in flame_names(merge(server, '{service_name="legacy4"}'))


def test_legacy_ingest_errors(server):
    assert server.request("POST", "/ingest", b"a;b 1\n")[0] == 400  # no name
    assert server.request("POST", "/ingest?name=x&format=jfr", b"data")[0] == 422
    assert server.request("POST", "/ingest?name=x", b"a;b notanumber\n")[0] == 400
    assert server.request("POST", "/ingest?name=x&from=abc", b"a 1\n")[0] == 400


def test_otlp_profiles_links_kept_per_sample(server, pb):
    span = bytes.fromhex("00000000000000aa")
    trace = bytes.fromhex("000000000000000000000000000000bb")
    body = otlp_profiles_request(pb, "otlp-prof", "otlp_fn", span, trace)
    code, resp, _ = server.request(
        "POST", "/v1development/profiles", body, {"Content-Type": "application/x-protobuf"}
    )
    assert code == 200, resp
    fg = merge(server, '{service_name="otlp-prof"}')
    assert "otlp_fn" in flame_names(fg)
    # The link's span id is kept on the sample: a span selector finds it.
    fg = merge(server, '{service_name="otlp-prof"}', spanSelector=[span.hex()])
    assert int(fg["total"]) == 30_000_000
    fg = merge(server, '{service_name="otlp-prof"}', spanSelector=["00000000000000ab"])
    assert int(fg.get("total", 0)) == 0
    # On the OTLP listener too.
    code, _, _ = server.request(
        "POST",
        "/v1development/profiles",
        body,
        {"Content-Type": "application/x-protobuf"},
        base=server.otlp_url,
    )
    assert code == 200


@pytest.mark.parametrize("refs", [False, True])
def test_otlp_profiles_resource_attributes_are_series_labels(server, pb, refs):
    # refs=True is how the Collector's pdata re-encodes them: string-table references.
    service = f"otlp-res-{int(refs)}"
    body = otlp_profiles_request(
        pb,
        service,
        "res_fn",
        b"\x00" * 7 + b"\x01",
        b"\x00" * 15 + b"\x02",
        resource={"env": "ci", "deployment.environment": "prod"},
        refs=refs,
    )
    code, resp, _ = server.request(
        "POST", "/v1development/profiles", body, {"Content-Type": "application/x-protobuf"}
    )
    assert code == 200, resp
    fg = merge(server, f'{{service_name="{service}", env="ci", deployment.environment="prod"}}')
    assert "res_fn" in flame_names(fg)
    got = server.connect_json(
        "LabelValues", {"name": "env", "matchers": [f'{{service_name="{service}"}}']}
    )
    assert got["names"] == ["ci"]


def _otlp_json_trace(service: str, trace_hex: str) -> dict:
    now = time.time_ns()
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "manual", "version": "1"},
                        "spans": [
                            {
                                "traceId": trace_hex,
                                "spanId": "1111111111111111",
                                "name": "GET /json",
                                "kind": 2,
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 5_000_000),
                                "attributes": [
                                    {"key": "http.route", "value": {"stringValue": "/json"}}
                                ],
                                "status": {"code": 2, "message": "boom"},
                                "events": [{"name": "exception", "timeUnixNano": str(now + 1)}],
                            },
                            {
                                "traceId": trace_hex,
                                "spanId": "2222222222222222",
                                "parentSpanId": "1111111111111111",
                                "name": "child",
                                "kind": "SPAN_KIND_INTERNAL",
                                "startTimeUnixNano": str(now + 1000),
                                "endTimeUnixNano": str(now + 2_000_000),
                            },
                        ],
                    }
                ],
            }
        ]
    }


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("listener", ["api", "otlp"])
def test_otlp_traces_json_hex_ids(server, gz, listener):
    trace = os.urandom(16).hex()
    body = json.dumps(_otlp_json_trace("json-svc", trace)).encode()
    headers = {"Content-Type": "application/json"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    base = server.url if listener == "api" else server.otlp_url
    code, resp, _ = server.request("POST", "/v1/traces", body, headers, base=base)
    assert code == 200, resp
    t = server.get_json(f"/api/v1/traces/{trace}")
    by_name = {s["name"]: s for s in t["spans"]}
    root = by_name["GET /json"]
    assert root["span_id"] == "1111111111111111"
    assert root["kind"] == "SERVER"
    assert root["status"] == {"code": "ERROR", "message": "boom"}
    assert root["attributes"]["http.route"] == "/json"
    assert root["events"][0]["name"] == "exception"
    assert root["resource"]["service.name"] == "json-svc"
    assert root["scope"] == {"name": "manual", "version": "1"}
    assert by_name["child"]["parent_span_id"] == "1111111111111111"


def test_otel_sdk_exporter_spans_found_by_trace_api(server):
    """The OpenTelemetry Python SDK's OTLP/HTTP exporter (protobuf, gzip) against /v1/traces."""
    code = textwrap.dedent(
        f"""
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http import Compression
        tp = TracerProvider(resource=Resource.create({{"service.name": "otel-sdk-svc"}}))
        tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
            endpoint="{server.otlp_url}/v1/traces", compression=Compression.Gzip)))
        tr = tp.get_tracer("test")
        with tr.start_as_current_span("checkout", attributes={{"order.id": 42}}) as root:
            with tr.start_as_current_span("charge-card"):
                pass
            print(format(root.get_span_context().trace_id, "032x"))
        tp.shutdown()
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    trace_id = out.stdout.strip().splitlines()[-1]
    found = server.get_json("/api/v1/traces?service=otel-sdk-svc")["traces"]
    assert [t["trace_id"] for t in found] == [trace_id]
    assert found[0]["root_name"] == "checkout" and found[0]["span_count"] == 2
    t = server.get_json(f"/api/v1/traces/{trace_id}")
    names = {s["name"] for s in t["spans"]}
    assert names == {"checkout", "charge-card"}
    root = next(s for s in t["spans"] if s["name"] == "checkout")
    assert root["attributes"]["order.id"] == 42
    assert "otel-sdk-svc" in server.get_json("/api/v1/services")["services"]


PYROSCOPE_SCRIPT = """
import sys, time, pyroscope
pyroscope.configure(application_name="pyro-real", server_address=sys.argv[1],
                    sample_rate=100, tags={"region": "test"}, oncpu=True, gil_only=False)
def burn_cpu_for_pyroscope_test():
    t = time.time()
    x = 0
    while time.time() - t < 4:
        x += 1
    return x
burn_cpu_for_pyroscope_test()
pyroscope.shutdown()
"""


def test_pyroscope_io_client_push_found_by_select_merge(server, tmp_path):
    pytest.importorskip(
        "pyroscope", reason="pyroscope-io not installed (scripts/requirements-tools.txt)"
    )
    script = tmp_path / "pyro.py"
    script.write_text(PYROSCOPE_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), server.url], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    deadline = time.time() + 15
    fg: dict = {}
    while time.time() < deadline:
        fg = merge(server, '{service_name="pyro-real"}')
        if "burn_cpu_for_pyroscope_test" in " ".join(fg.get("names", [])):
            break
        time.sleep(0.5)
    assert any("burn_cpu_for_pyroscope_test" in n for n in fg.get("names", [])), (
        fg,
        server.log_text()[-3000:],
    )
    labels = server.connect_json(
        "LabelValues", {"name": "region", "matchers": ['{service_name="pyro-real"}']}
    )
    assert labels["names"] == ["test"]


def test_base64_id_in_json_push_roundtrip(server, pb):
    # A JSON push carries raw_profile as base64 (proto3 JSON bytes).
    raw = make_pprof(pb, [(["json_b64_fn"], 1, {})])
    body = {
        "series": [
            {
                "labels": [{"name": "service_name", "value": "b64"}],
                "samples": [{"rawProfile": base64.b64encode(raw).decode()}],
            }
        ]
    }
    code, resp, _ = server.request(
        "POST",
        "/push.v1.PusherService/Push",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    assert code == 200, resp
    assert json.loads(resp) == {}
    assert "json_b64_fn" in flame_names(merge(server, '{service_name="b64"}'))
