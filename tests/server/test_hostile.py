"""Issue #18: hostile input that crashed the server, answered 500, left a connection in an unknown
state or crossed tenants. Each test failed on the server before the fix."""

from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import subprocess
import time
import urllib.parse

import pytest
from conftest import make_pprof, push_request

PROTO = {"Content-Type": "application/proto"}
JSON = {"Content-Type": "application/json"}
GZ_JSON = {**JSON, "Content-Encoding": "gzip"}

# Every route that parses a JSON body.
JSON_ROUTES = [
    "/v1/traces",
    "/v1development/profiles",
    "/push.v1.PusherService/Push",
    "/querier.v1.QuerierService/ProfileTypes",
    "/querier.v1.QuerierService/LabelNames",
    "/querier.v1.QuerierService/SelectMergeStacktraces",
    "/querier.v1.QuerierService/SelectSeries",
]


def raw_exchange(url: str, data: bytes, timeout: float = 30) -> bytes:
    """Sends `data` on one TCP connection and returns everything the server sends until it
    closes the connection (or `timeout`)."""
    host, port = urllib.parse.urlsplit(url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            out += chunk
        return out


def test_deeply_nested_json_is_refused_on_every_json_route(make_server):
    s = make_server("--otlp-listen", "127.0.0.1:0")
    bomb = gzip.compress(b"[" * 100_000)  # a few hundred bytes on the wire
    objs = b'{"a":' * 100_000
    for base in (s.url, s.otlp_url):
        for path in JSON_ROUTES:
            for body, headers in ((bomb, GZ_JSON), (objs, JSON)):
                code, resp, _ = s.request("POST", path, body, headers, base=base)
                assert code == 400, (path, code, resp)
                assert "max-json-depth" in json.loads(resp)["message"], (path, resp)
                assert s.alive(), path
    # Nesting inside the limit is still parsed: an OTLP/JSON span with hex ids and nested values.
    span = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "nest"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0af7651916cd43dd8448eb211c80319c",
                                "spanId": "b7ad6b7169203331",
                                "name": "nested_ok",
                                "startTimeUnixNano": "1",
                                "endTimeUnixNano": "2",
                                "attributes": [
                                    {
                                        "key": "deep",
                                        "value": {
                                            "arrayValue": {
                                                "values": [{"arrayValue": {"values": []}}]
                                            }
                                        },
                                    }
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    code, resp, _ = s.request("POST", "/v1/traces", json.dumps(span).encode(), JSON)
    assert code == 200, resp
    tr = s.get_json("/api/v1/traces/0af7651916cd43dd8448eb211c80319c")
    assert "nested_ok" in json.dumps(tr)


def test_json_depth_limit_is_configurable(make_server):
    s = make_server("--max-json-depth", "3")
    code, resp, _ = s.request("POST", "/querier.v1.QuerierService/ProfileTypes", b"[[[[]]]]", JSON)
    assert code == 400 and b"limit of 3" in resp, resp
    code, resp, _ = s.request("POST", "/querier.v1.QuerierService/ProfileTypes", b"{}", JSON)
    assert code == 200, resp


def test_error_messages_quoting_invalid_utf8_are_valid_json(server, pb):
    bad = "%FF%FE%C0%80"
    paths = [
        f"/pyroscope/render?query={bad}",
        f"/pyroscope/render?query=process_cpu:cpu:nanoseconds:cpu:nanoseconds%7Ba%3D%22{bad}",
        f"/api/v1/flamegraph?query={bad}",
        f"/api/v1/timeline?query={bad}",
        f"/api/v1/traces?min_duration={bad}",
        f"/api/v1/traces/{bad}",
        f"/api/v1/diff?left={bad}&right={bad}",
        f"/ingest?name={bad}&from={bad}",
        f"/ingest?name=a%7Bx%3D%22{bad}%22%7D",
        f"/ingest?name=a%7B{bad}%3Db%7D",  # the label-name error quotes the name: was a 500
        f"/ingest?name=a%7Bx{bad}y%3Db%2C{bad}%3Dc%7D",
        f"/ingest?name=a&format={bad}",
        f"/ingest?name=a&spyName={bad}&units={bad}&aggregation={bad}",
    ]
    for p in paths:
        method = "POST" if p.startswith("/ingest") else "GET"
        code, resp, _ = server.request(method, p, b"a;b 1\n" if method == "POST" else None)
        assert code < 500, (p, code, resp)
        if code >= 400 or resp:
            doc = json.loads(resp.decode("utf-8"))  # strict: the body is valid UTF-8
            assert code < 400 or doc["message"], p
    # Connect with a proto request whose string field is not UTF-8.
    sel = bytes([0x12, 4]) + b"\xff\xfe{}"  # field 2 (label_selector) of SelectMergeStacktraces
    code, resp, _ = server.request(
        "POST", "/querier.v1.QuerierService/SelectMergeStacktraces", sel, PROTO
    )
    assert 400 <= code < 500, (code, resp)
    json.loads(resp.decode("utf-8"))
    assert server.alive()


def test_body_too_large_in_chunked_encoding_closes_the_connection(make_server):
    s = make_server("--max-decompressed-bytes", "10000", "--max-body-bytes", "20000")
    smuggled = b"GET /api/v1/info HTTP/1.1\r\nHost: x\r\n\r\n"
    payload = b"a;b 1\n" * 4000 + smuggled  # past the limit, then what looks like a request
    chunks = b""
    for i in range(0, len(payload), 1000):
        part = payload[i : i + 1000]
        chunks += b"%x\r\n" % len(part) + part + b"\r\n"
    req = (
        b"POST /ingest?name=chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    out = raw_exchange(s.url, req)
    assert out.startswith(b"HTTP/1.1 413"), out[:200]
    assert out.count(b"HTTP/1.1 ") == 1, out  # nothing after the 413 was served
    assert b"spanprof" not in out.split(b"\r\n\r\n", 1)[1]
    assert b"connection: close" in out.lower()
    assert s.alive()


def test_tenant_ids_with_control_characters_are_refused(server):
    for tenant in (b"acme\x00other", b"acme\x01", b"ac\tme"):
        req = (
            b"GET /api/v1/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"X-Scope-OrgID: " + tenant + b"\r\n\r\n"
        )
        out = raw_exchange(server.url, req)
        assert out.startswith(b"HTTP/1.1 400"), (tenant, out[:300])
    code, _, _ = server.request("GET", "/api/v1/services", headers={"X-Scope-OrgID": "acme"})
    assert code == 200


def test_tenant_ids_follow_pyroscopes_rule_on_http_and_connect(server, pb):
    """dskit's ValidTenantID: A-Z a-z 0-9 ! - _ . * ' ( ), at most 150, not "." or ".."."""
    odd = "Team-1_(prod)*!'.x"
    body = push_request(pb, {"service_name": "odd"}, make_pprof(pb, [(["main"], 3, {})]))
    push = {"Content-Type": "application/proto", "X-Scope-OrgID": odd}
    assert server.request("POST", "/push.v1.PusherService/Push", body, push)[0] == 200
    services = server.get_json("/api/v1/services", headers={"X-Scope-OrgID": odd})
    assert services["services"] == ["odd"]
    names = server.connect_json("LabelValues", {"name": "service_name"}, {"X-Scope-OrgID": odd})
    assert names["names"] == ["odd"]
    assert server.get_json("/api/v1/services", headers={"X-Scope-OrgID": "x" * 150})
    for bad in (".", "..", "x" * 151, "a/b", "a|b", "a:b", "a b", "ü"):
        h = {"X-Scope-OrgID": bad}
        code, body, _ = server.request("GET", "/api/v1/services", headers=h)
        assert code == 400 and "Pyroscope's tenant id rules" in json.loads(body)["message"], bad
        code, body, _ = server.request(
            "POST",
            "/querier.v1.QuerierService/LabelValues",
            b'{"name": "service_name"}',
            {"Content-Type": "application/json", **h},
        )
        err = json.loads(body)
        assert code == 400 and err["code"] == "invalid_argument", bad
        assert "X-Scope-OrgID" in err["message"]


def test_auth_scheme_is_case_insensitive_and_credentials_exact(make_server):
    s = make_server("--auth-token", "s3cret")
    for h in ("bearer s3cret", "BEARER s3cret", "Bearer s3cret"):
        assert s.request("GET", "/api/v1/info", headers={"Authorization": h})[0] == 200, h
    basic = base64.b64encode(b"u:s3cret").decode()
    assert s.request("GET", "/api/v1/info", headers={"Authorization": f"basic {basic}"})[0] == 200
    for h in ("Bearer s3cre", "Bearers3cret", "Token s3cret", "bearer s3cret2"):
        assert s.request("GET", "/api/v1/info", headers={"Authorization": h})[0] == 401, h
    # A token followed by a NUL and more is not the token.
    req = (
        b"GET /api/v1/info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer s3cret\x00junk\r\n\r\n"
    )
    out = raw_exchange(s.url, req)
    assert not out.startswith(b"HTTP/1.1 200"), out[:200]


def test_stats_show_only_the_callers_tenant(make_server, pb):
    s = make_server("--admin-tenant", "ops")
    body = push_request(pb, {"service_name": "a"}, make_pprof(pb, [(["f"], 1, {})]))
    for _ in range(3):
        code, _, _ = s.request(
            "POST", "/push.v1.PusherService/Push", body, {**PROTO, "X-Scope-OrgID": "alpha"}
        )
        assert code == 200
    alpha = s.get_json("/api/v1/stats", headers={"X-Scope-OrgID": "alpha"})
    beta = s.get_json("/api/v1/stats", headers={"X-Scope-OrgID": "beta"})
    assert alpha["tenant"] == "alpha" and alpha["profiles"] == 3 and alpha["series"] == 1
    assert beta == {
        "tenant": "beta",
        "series": 0,
        "profiles": 0,
        "sample_rows": 0,
        "writes_refused": False,
    }
    assert "server" not in alpha and "db_bytes" not in json.dumps(alpha)
    ops = s.get_json("/api/v1/stats", headers={"X-Scope-OrgID": "ops"})
    assert ops["server"]["profiles"] == 3 and ops["server"]["db_bytes"] > 0


@pytest.fixture()
def small_disk(tmp_path):
    """A 3 MB tmpfs: a real full disk (needs root to mount; skipped otherwise)."""
    d = tmp_path / "small"
    d.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(d)], capture_output=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode(errors='replace')}")
    yield str(d)
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_disk_full_answers_507_with_retry_after(make_server, pb, small_disk):
    s = make_server("--retention", "0", data_dir=small_disk)
    statuses = []
    acked = []
    for i in range(400):
        stacks = [([f"fn_{i}_{k}_" + "x" * 200], 1, {}) for k in range(100)]  # unique strings
        body = push_request(pb, {"service_name": "full"}, make_pprof(pb, stacks))
        code, resp, headers = s.request("POST", "/push.v1.PusherService/Push", body, PROTO)
        statuses.append(code)
        if code == 200:
            acked.append(i)
            continue
        assert code == 507, (code, resp)
        assert int(headers["Retry-After"]) > 0
        assert "disk" in json.loads(resp)["message"]
        break
    assert 507 in statuses, statuses[-5:]
    assert s.alive()
    # What was acknowledged before the disk filled is still there.
    fg = s.connect_json(
        "SelectMergeStacktraces",
        {
            "profileTypeID": "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
            "labelSelector": '{service_name="full"}',
            "start": 0,
            "end": int(time.time() * 1000) + 60_000,
        },
    )
    names = set(fg["flamegraph"]["names"])
    assert all(f"fn_{i}_0_" + "x" * 200 in names for i in acked[:5])
    # The agent retries after Retry-After: nothing else but a full disk keeps it from storing.
    assert os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize < 2**20


def test_idle_and_slow_connections_do_not_starve_requests(make_server, pb):
    # Each of these held one of 32 worker threads before: 33 of them starved every request.
    s = make_server("--threads", "4", "--header-timeout", "60")
    host, port = urllib.parse.urlsplit(s.url).netloc.split(":")
    held = []
    try:
        for _ in range(200):  # idle keep-alive connections that made one request
            c = socket.create_connection((host, int(port)), timeout=30)
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
            held.append(c)
        for i in range(50):  # slow clients: headers begun, never finished
            c = socket.create_connection((host, int(port)), timeout=30)
            c.sendall(b"POST /ingest?name=slow HTTP/1.1\r\nHost: x\r\nX-Slow-%d: " % i)
            held.append(c)
        for _ in range(20):  # bodies announced, never sent
            c = socket.create_connection((host, int(port)), timeout=30)
            c.sendall(b"POST /ingest?name=slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            held.append(c)
        body = push_request(pb, {"service_name": "busy"}, make_pprof(pb, [(["under_load"], 1, {})]))
        for _ in range(10):
            assert s.request("POST", "/push.v1.PusherService/Push", body, PROTO)[0] == 200
            assert s.request("GET", "/api/v1/services")[0] == 200
        # The idle connections still work.
        for c in held[:10]:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for c in held:
            c.close()
    assert s.alive()


def test_slow_headers_time_out(make_server):
    s = make_server("--header-timeout", "1")
    host, port = urllib.parse.urlsplit(s.url).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as c:
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        t0 = time.time()
        assert c.recv(4096) == b""  # closed by the server, not by our 30 s timeout
        assert time.time() - t0 < 25


def test_connections_per_client_are_limited(make_server):
    s = make_server("--max-connections-per-client", "5")
    host, port = urllib.parse.urlsplit(s.url).netloc.split(":")
    held = [socket.create_connection((host, int(port)), timeout=30) for _ in range(5)]
    try:
        extra = socket.create_connection((host, int(port)), timeout=30)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = extra.recv(4096)
        except ConnectionResetError:
            got = b""
        assert got == b"", got
        extra.close()
    finally:
        for c in held:
            c.close()
    time.sleep(0.5)
    assert s.request("GET", "/healthz")[0] == 200  # freed slots are reusable


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _amplifying_pprof(samples: int, types: int, extra_strings: int = 0) -> bytes:
    """A pprof written by hand (the generated classes take minutes for a million samples):
    `samples` identical samples with `types` values each, one location, one function."""
    sample = _field(2, _field(1, b"\x01") + _field(2, b"\x01" * types))
    head = b"".join(_field(1, b"\x08\x01\x10\x02") for _ in range(types))
    head += _field(4, b"\x08\x01" + _field(4, b"\x08\x01"))  # Location {id 1, Line {function 1}}
    head += _field(5, b"\x08\x01\x10\x03")  # Function {id 1, name 3}
    head += _field(6, b"") + _field(6, b"cpu") + _field(6, b"nanoseconds") + _field(6, b"fn")
    return head + sample * samples + b"\x32\x00" * extra_strings


def _peak_rss(s) -> int:
    status = open(f"/proc/{s.proc.pid}/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) * 1024


def test_sample_rows_per_request_bound_memory(make_server, pb):
    s = make_server()
    raw = gzip.compress(_amplifying_pprof(1_000_000, 40))  # ~100 KiB: 3.9 GB decoded before
    body = push_request(pb, {"service_name": "amp"}, raw, gzipped=False)
    code, resp, _ = s.request("POST", "/push.v1.PusherService/Push", body, PROTO)
    assert code == 413 and b"--max-sample-rows" in resp, (code, resp[:300])
    # Many such profiles in one push: refused as a whole, still bounded.
    body = push_request(
        pb, {"service_name": "amp"}, gzip.compress(_amplifying_pprof(60_000, 40)), gzipped=False
    )
    many = body * 20  # 20 series of one profile each, concatenated PushRequest fields
    code, resp, _ = s.request("POST", "/push.v1.PusherService/Push", many, PROTO)
    assert code == 413 and b"--max-sample-rows" in resp, (code, resp[:300])
    assert _peak_rss(s) < 1 << 30, _peak_rss(s)
    ok = push_request(pb, {"service_name": "amp"}, make_pprof(pb, [(["fine"], 1, {})]))
    assert s.request("POST", "/push.v1.PusherService/Push", ok, PROTO)[0] == 200


def test_string_table_and_profiles_per_push_are_limited(make_server, pb):
    s = make_server()
    raw = gzip.compress(_amplifying_pprof(1, 1, extra_strings=20_000_000))  # 1.2 GB before
    body = push_request(pb, {"service_name": "str"}, raw, gzipped=False)
    code, resp, _ = s.request("POST", "/push.v1.PusherService/Push", body, PROTO)
    assert code == 413 and b"--max-strings-per-profile" in resp, (code, resp[:300])
    assert _peak_rss(s) < 1 << 30, _peak_rss(s)
    one = push_request(pb, {"service_name": "p"}, make_pprof(pb, [(["f"], 1, {})]))
    code, resp, _ = s.request("POST", "/push.v1.PusherService/Push", one * 300, PROTO)
    assert code == 413 and b"--max-profiles-per-push" in resp, (code, resp[:300])
    code, resp, _ = s.request("POST", "/push.v1.PusherService/Push", one * 30, PROTO)
    assert code == 200, resp


def test_otlp_string_table_is_limited_before_parsing(make_server, pb):
    s = make_server()
    # ExportProfilesServiceRequest{dictionary: {string_table: 20M empty strings}}: 40 MB that
    # parse into over a gigabyte of strings. Sent gzipped (~40 kB).
    table = b"\x2a\x00" * 20_000_000
    body = _field(2, table)
    code, resp, _ = s.request(
        "POST",
        "/v1development/profiles",
        gzip.compress(body),
        {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
    )
    assert code == 413 and b"--max-strings-per-profile" in resp, (code, resp[:300])
    assert _peak_rss(s) < 400 << 20, _peak_rss(s)


def test_series_per_tenant_are_limited(make_server, pb):
    s = make_server("--max-series-per-tenant", "5")

    def push(tenant: str, svc: str) -> tuple[int, bytes, dict]:
        body = push_request(pb, {"service_name": svc}, make_pprof(pb, [(["f"], 1, {})]))
        return s.request(
            "POST", "/push.v1.PusherService/Push", body, {**PROTO, "X-Scope-OrgID": tenant}
        )

    for i in range(5):
        assert push("flood", f"svc{i}")[0] == 200
    code, resp, headers = push("flood", "svc5")
    assert code == 429 and b"--max-series-per-tenant" in resp, (code, resp)
    assert int(headers["Retry-After"]) > 0
    assert push("flood", "svc0")[0] == 200  # existing series still take profiles
    assert push("other", "svc5")[0] == 200  # other tenants are not affected
    assert s.get_json("/api/v1/stats", headers={"X-Scope-OrgID": "flood"})["series"] == 5


def test_ingest_rate_per_tenant_answers_429_with_retry_after(make_server, pb):
    s = make_server("--max-ingest-rate", "20000")  # bytes/s; a burst of 80 kB
    big = push_request(
        pb,
        {"service_name": "r"},
        make_pprof(pb, [([f"f{i}_" + "y" * 60], 1, {}) for i in range(300)]),
    )
    codes = []
    for _ in range(40):
        code, resp, headers = s.request(
            "POST", "/push.v1.PusherService/Push", big, {**PROTO, "X-Scope-OrgID": "greedy"}
        )
        codes.append(code)
        if code == 429:
            assert b"--max-ingest-rate" in resp and int(headers["Retry-After"]) >= 1
            break
    assert codes[0] == 200 and codes[-1] == 429, codes
    # Another tenant has its own budget.
    code, _, _ = s.request(
        "POST", "/push.v1.PusherService/Push", big, {**PROTO, "X-Scope-OrgID": "modest"}
    )
    assert code == 200
