"""Bad input, limits, auth, tenants, shutdown and the UI's static files."""

from __future__ import annotations

import base64
import gzip
import json
import signal
import time
import urllib.parse

from conftest import CPU, flame_names, make_pprof, push_request

PROTO = {"Content-Type": "application/proto"}
JSON = {"Content-Type": "application/json"}
XPB = {"Content-Type": "application/x-protobuf"}


def malformed_corpus(pb) -> list[tuple[str, str, bytes, dict[str, str]]]:
    good_pprof = make_pprof(pb, [(["a", "b"], 1, {})])
    P = pb.get("perftools.profiles.Profile")
    bad_loc = P.FromString(good_pprof)
    bad_loc.sample[0].location_id.append(999)
    bad_str = P.FromString(good_pprof)
    bad_str.function[0].name = 999
    no_types = P.FromString(good_pprof)
    del no_types.sample_type[:]
    return [
        ("push: not protobuf", "/push.v1.PusherService/Push", b"\xff\xff\xff\xff", PROTO),
        ("push: bad json", "/push.v1.PusherService/Push", b"{not json", JSON),
        ("push: json wrong type", "/push.v1.PusherService/Push", b'{"series": 5}', JSON),
        (
            "push: raw_profile garbage",
            "/push.v1.PusherService/Push",
            push_request(pb, {"service_name": "x"}, b"\x0a\xff\xff", False),
            PROTO,
        ),
        (
            "push: truncated gzip raw",
            "/push.v1.PusherService/Push",
            push_request(pb, {"service_name": "x"}, b"\x1f\x8b\x08\x00abc", False),
            PROTO,
        ),
        (
            "push: unknown location",
            "/push.v1.PusherService/Push",
            push_request(pb, {"service_name": "x"}, bad_loc.SerializeToString()),
            PROTO,
        ),
        (
            "push: string index",
            "/push.v1.PusherService/Push",
            push_request(pb, {"service_name": "x"}, bad_str.SerializeToString()),
            PROTO,
        ),
        (
            "push: no sample types",
            "/push.v1.PusherService/Push",
            push_request(pb, {"service_name": "x"}, no_types.SerializeToString()),
            PROTO,
        ),
        (
            "push: bad label name",
            "/push.v1.PusherService/Push",
            push_request(pb, {"bad name!": "x"}, good_pprof),
            PROTO,
        ),
        (
            "push: empty label name",
            "/push.v1.PusherService/Push",
            push_request(pb, {"": "x"}, good_pprof),
            PROTO,
        ),
        (
            "push: streaming connect",
            "/push.v1.PusherService/Push",
            b"\x00\x00\x00\x00\x00",
            {"Content-Type": "application/connect+proto"},
        ),
        (
            "push: body gzip header lies",
            "/push.v1.PusherService/Push",
            b"not gzip at all",
            {**PROTO, "Content-Encoding": "gzip"},
        ),
        ("ingest: no name", "/ingest", b"a;b 1", {}),
        ("ingest: bad count", "/ingest?name=x", b"a;b 1x", {}),
        ("ingest: bad tags", "/ingest?name=x%7Bnoequals%7D", b"a 1", {}),
        ("ingest: pprof garbage", "/ingest?name=x&format=pprof", b"\xff\xfe", {}),
        ("ingest: trie unsupported", "/ingest?name=x&format=trie", b"\x00", {}),
        (
            "ingest: multipart without profile",
            "/ingest?name=x",
            b'--b\r\nContent-Disposition: form-data; name="other"\r\n\r\nx\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
        ),
        (
            "ingest: bad sample_type_config",
            "/ingest?name=x",
            b'--b\r\nContent-Disposition: form-data; name="profile"\r\n\r\n'
            + good_pprof
            + b'\r\n--b\r\nContent-Disposition: form-data; name="sample_type_config"\r\n\r\n[1,2\r\n--b--\r\n',
            {"Content-Type": "multipart/form-data; boundary=b"},
        ),
        ("ingest: zero sampleRate", "/ingest?name=x&sampleRate=0", b"a 1", {}),
        *_malformed_legacy_params(),
        *_malformed_multipart(good_pprof),
        ("traces: garbage proto", "/v1/traces", b"\xff\xff\xff", XPB),
        ("traces: bad json", "/v1/traces", b"[[[", JSON),
        (
            "traces: short trace id",
            "/v1/traces",
            json.dumps(
                {
                    "resourceSpans": [
                        {
                            "scopeSpans": [
                                {"spans": [{"traceId": "abcd", "spanId": "1111111111111111"}]}
                            ]
                        }
                    ]
                }
            ).encode(),
            JSON,
        ),
        (
            "traces: zero span id",
            "/v1/traces",
            json.dumps(
                {
                    "resourceSpans": [
                        {"scopeSpans": [{"spans": [{"traceId": "1" * 32, "spanId": "0" * 16}]}]}
                    ]
                }
            ).encode(),
            JSON,
        ),
        ("profiles: garbage", "/v1development/profiles", b"\xff\xff\xff", XPB),
        ("profiles: stack index", "/v1development/profiles", _otlp_bad_stack(pb), XPB),
        (
            "query: bad proto",
            "/querier.v1.QuerierService/SelectMergeStacktraces",
            b"\xff\xff",
            PROTO,
        ),
        ("query: bad json", "/querier.v1.QuerierService/LabelNames", b"{", JSON),
        (
            "query: bad selector",
            "/querier.v1.QuerierService/Series",
            json.dumps({"matchers": ['{a=~"("}']}).encode(),
            JSON,
        ),
        (
            "query: bad span selector",
            "/querier.v1.QuerierService/SelectMergeSpanProfile",
            json.dumps({"spanSelector": ["xyz"]}).encode(),
            JSON,
        ),
        (
            "tenant: invalid",
            "/push.v1.PusherService/Push",
            push_request(pb, {"service_name": "x"}, good_pprof),
            {**PROTO, "X-Scope-OrgID": "a/b"},
        ),
    ]


MP = {"Content-Type": "multipart/form-data; boundary=b"}


def _mp(parts: list[tuple[str, bytes]], boundary: str = "b", close: bool = True) -> bytes:
    """A multipart/form-data body; a part name of "" leaves out Content-Disposition's name."""
    out = b""
    for name, data in parts:
        disp = f'form-data; name="{name}"' if name else "form-data"
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


def _malformed_multipart(good_pprof: bytes) -> list[tuple[str, str, bytes, dict[str, str]]]:
    ok = [("profile", good_pprof)]
    return [
        (
            "multipart: no boundary in Content-Type",
            "/ingest?name=x",
            _mp(ok),
            {"Content-Type": "multipart/form-data"},
        ),
        ("multipart: body uses another boundary", "/ingest?name=x", _mp(ok, "zzz"), MP),
        ("multipart: no closing boundary", "/ingest?name=x", _mp(ok, close=False), MP),
        ("multipart: empty body", "/ingest?name=x", b"", MP),
        ("multipart: not multipart at all", "/ingest?name=x", b"a;b 1\n", MP),
        (
            "multipart: part without headers",
            "/ingest?name=x",
            b"--b\r\n\r\n" + good_pprof + b"\r\n--b--\r\n",
            MP,
        ),
        ("multipart: part without a name", "/ingest?name=x", _mp([("", good_pprof)]), MP),
        ("multipart: profile is not pprof", "/ingest?name=x", _mp([("profile", b"\xff" * 9)]), MP),
        (
            "multipart: profile is truncated gzip",
            "/ingest?name=x",
            _mp([("profile", gzip.compress(good_pprof)[:20])]),
            MP,
        ),
        (
            "multipart: sample_type_config not an object",
            "/ingest?name=x",
            _mp([*ok, ("sample_type_config", b"[1, 2]")]),
            MP,
        ),
        ("multipart: 65 parts", "/ingest?name=x", _mp([("junk", b"")] * 64 + ok), MP),
        ("multipart: bad name parameter", "/ingest?name=x%7Ba", _mp(ok), MP),
        ("multipart: bad from parameter", "/ingest?name=x&from=soon", _mp(ok), MP),
    ]


def _malformed_legacy_params() -> list[tuple[str, str, bytes, dict[str, str]]]:
    return [
        (f"ingest params: {q}", f"/ingest?name=x&{q}", b"a;b 1", {})
        for q in (
            "from=yesterday",
            "from=12x",
            "from=-5",
            "from=99999999999",  # seconds past year 2262: the ns time would overflow
            "until=1e9",
            "until=99999999999999999999",  # beyond int64
            "sampleRate=abc",
            "sampleRate=-100",
            "sampleRate=1000000001",
            "format=jfr",
        )
    ] + [
        ("ingest params: empty name", "/ingest?name=", b"a 1", {}),
        # 999...9 samples x 10 ms in ns does not fit int64
        ("ingest: count x period overflows", "/ingest?name=x", b"a;b 999999999999999999", {}),
        (
            "ingest: counts add up past int64",
            "/ingest?name=x.alloc_objects&units=objects",
            b"a 900000000000000000\n" * 11,
            {},
        ),
    ]


def _otlp_bad_stack(pb) -> bytes:
    r = pb.get("opentelemetry.proto.profiles.v1development.ExportProfilesServiceRequest")()
    r.dictionary.string_table.append("")
    r.resource_profiles.add().scope_profiles.add().profiles.add().samples.add().stack_index = 7
    return r.SerializeToString()


def test_malformed_bodies_get_4xx_and_server_stays_up(server, pb):
    good = push_request(
        pb, {"service_name": "survivor"}, make_pprof(pb, [(["still_here_fn"], 1, {})])
    )
    assert server.request("POST", "/push.v1.PusherService/Push", good, PROTO)[0] == 200
    for name, path, body, headers in malformed_corpus(pb):
        code, resp, _ = server.request("POST", path, body, headers)
        assert 400 <= code < 500, (name, code, resp)
        err = json.loads(resp)
        assert set(err) == {"code", "message"} and err["message"], (name, err)
        assert server.alive(), name
    fg = server.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": '{service_name="survivor"}'},
    )
    assert "still_here_fn" in flame_names(fg["flamegraph"])  # nothing corrupted


def test_malformed_query_parameters_get_4xx_and_server_stays_up(server):
    code, body, _ = server.request("POST", "/ingest?name=paramsurvivor.cpu", b"kept_fn 5")
    assert code == 200, body
    bad = [
        "/pyroscope/render?query=",
        "/pyroscope/render?query=paramsurvivor.cpu%7B",  # selector not closed
        "/pyroscope/render?query=.cpu",
        "/pyroscope/render?query=paramsurvivor.cpu&from=yesterday",
        "/pyroscope/render?query=paramsurvivor.cpu&from=now-forever",
        "/pyroscope/render?query=paramsurvivor.cpu&until=now-99999999999999w",
        "/pyroscope/render?query=paramsurvivor.cpu&from=-1",
        "/pyroscope/render?query=paramsurvivor.cpu&maxNodes=-1",
        "/pyroscope/render?query=paramsurvivor.cpu&maxNodes=12abc",
        "/pyroscope/render?query=paramsurvivor.cpu%7Ba%3D~%22(%22%7D",  # bad regex
        "/pyroscope/render?query=paramsurvivor.cpu%7Ba%3D~%22x%7B99999999999%7D%22%7D",  # x{huge}
        "/pyroscope/render?query=paramsurvivor.cpu%7Ba%3D~%22(x)%5C%5C1%22%7D",  # backreference
        "/api/v1/traces?limit=abc",
        "/api/v1/traces?limit=0",
        "/api/v1/traces?sort=name",
        "/api/v1/traces?min_duration_ms=9223372036854775807",
        "/api/v1/traces?from=-9223372036854775808",
        "/api/v1/traces?to=99999999999999999999",
        "/api/v1/traces/xyz",
        "/api/v1/flamegraph?service=paramsurvivor&from=x",
        "/api/v1/flamegraph?service=paramsurvivor&mode=everything",
        "/api/v1/flamegraph?span_id=zz",
        "/api/v1/flamegraph?span_id=0123456789abcdef&trace_id=12",
        "/api/v1/flamegraph?service=paramsurvivor&selector=%7Ba%3D",
        "/api/v1/flamegraph?service=paramsurvivor&max_nodes=1.5",
        "/api/v1/flamegraph",
        "/api/v1/timeline?from=9223372036854775807&to=-9223372036854775808",
        "/api/v1/timeline?step_ms=-5",
        "/api/v1/timeline?to=9223372036855",  # ms past year 2262
        "/api/v1/timeline?selector=%7B",
        "/api/v1/diff?left=service%3Dparamsurvivor",
        "/api/v1/diff?left=service%3Dparamsurvivor&right=from%3Dx%26service%3Da",
    ]
    for path in bad:
        code, resp, _ = server.request("GET", path)
        assert 400 <= code < 500, (path, code, resp)
        err = json.loads(resp)
        assert set(err) == {"code", "message"} and err["message"], (path, err)
        assert server.alive(), path
    # 30 nested stars: libstdc++'s default backtracking matcher never returned on this one.
    nested = urllib.parse.quote("(" * 30 + "p*" + ")*" * 30 + "x")
    code, resp, _ = server.request(
        "GET", f"/pyroscope/render?query=paramsurvivor.cpu%7Bservice_name%3D~%22{nested}%22%7D"
    )
    assert code == 200 and json.loads(resp)["flamebearer"]["numTicks"] == 0, resp
    doc = server.get_json("/pyroscope/render?query=paramsurvivor.cpu&from=0&until=now")
    assert "kept_fn" in doc["flamebearer"]["names"]  # nothing corrupted


def test_limits(make_server, pb):
    s = make_server(
        "--max-body-bytes",
        "200000",
        "--max-decompressed-bytes",
        "1000000",
        "--max-labels",
        "4",
        "--max-stack-depth",
        "50",
        "--max-label-length",
        "100",
    )
    big = b"a;b 1\n" * 50000
    code, body, _ = s.request("POST", "/ingest?name=big", big)
    assert code == 413, body
    bomb = gzip.compress(b"\0" * 20_000_000)  # ~20 KB on the wire
    code, body, _ = s.request(
        "POST", "/push.v1.PusherService/Push", bomb, {**PROTO, "Content-Encoding": "gzip"}
    )
    assert code == 413 and b"decompressed" in body, body
    inner_bomb = push_request(
        pb, {"service_name": "x"}, b"\0" * 5_000_000
    )  # gzipped inside raw_profile
    code, body, _ = s.request("POST", "/push.v1.PusherService/Push", inner_bomb, PROTO)
    assert code == 413, body
    many = {f"l{i}": "v" for i in range(6)} | {"service_name": "x"}
    code, body, _ = s.request(
        "POST",
        "/push.v1.PusherService/Push",
        push_request(pb, many, make_pprof(pb, [(["a"], 1, {})])),
        PROTO,
    )
    assert code == 400 and b"labels" in body, body
    long = {"service_name": "x" * 500}
    code, body, _ = s.request(
        "POST",
        "/push.v1.PusherService/Push",
        push_request(pb, long, make_pprof(pb, [(["a"], 1, {})])),
        PROTO,
    )
    assert code == 400 and b"longer than" in body, body
    deep = [f"f{i}" for i in range(60)]
    code, body, _ = s.request(
        "POST",
        "/push.v1.PusherService/Push",
        push_request(pb, {"service_name": "x"}, make_pprof(pb, [(deep, 1, {})])),
        PROTO,
    )
    assert code == 400 and b"stack depth" in body, body
    assert s.alive()


def test_auth_bearer_and_basic(make_server, pb):
    s = make_server("--auth-token", "s3cret")
    assert s.request("GET", "/api/v1/info")[0] == 401
    assert s.request("GET", "/api/v1/info", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert s.request("GET", "/api/v1/info", headers={"Authorization": "Bearer s3cret"})[0] == 200
    basic = base64.b64encode(b"user:s3cret").decode()
    assert s.request("GET", "/api/v1/info", headers={"Authorization": f"Basic {basic}"})[0] == 200
    body = push_request(pb, {"service_name": "x"}, make_pprof(pb, [(["a"], 1, {})]))
    assert s.request("POST", "/push.v1.PusherService/Push", body, PROTO)[0] == 401
    assert (
        s.request(
            "POST",
            "/push.v1.PusherService/Push",
            body,
            {**PROTO, "Authorization": f"Basic {basic}"},
        )[0]
        == 200
    )
    assert s.request("POST", "/querier.v1.QuerierService/ProfileTypes", b"{}", JSON)[0] == 401
    assert s.request("GET", "/")[0] == 401
    assert s.request("GET", "/healthz")[0] == 200


def test_tenants_isolated(server, pb):
    body = push_request(
        pb,
        {"service_name": "tenant-svc"},
        make_pprof(pb, [(["secret_fn"], 3, {"span_id": "00000000000000f1"})]),
    )
    assert (
        server.request(
            "POST", "/push.v1.PusherService/Push", body, {**PROTO, "X-Scope-OrgID": "team-a"}
        )[0]
        == 200
    )
    req = {"profileTypeID": CPU, "labelSelector": "{}"}
    a = server.connect_json("SelectMergeStacktraces", req, {"X-Scope-OrgID": "team-a"})[
        "flamegraph"
    ]
    assert "secret_fn" in flame_names(a)
    for other in ({"X-Scope-OrgID": "team-b"}, {}):
        fg = server.connect_json("SelectMergeStacktraces", req, other)["flamegraph"]
        assert "secret_fn" not in flame_names(fg)
        span = server.connect_json(
            "SelectMergeSpanProfile", {**req, "spanSelector": ["00000000000000f1"]}, other
        )
        assert "secret_fn" not in flame_names(span["flamegraph"])
        assert (
            server.connect_json("LabelValues", {"name": "service_name"}, other).get("names", [])
            == []
        )
    trace = {
        "resourceSpans": [
            {"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "t"}]}]}
        ]
    }
    code, _, _ = server.request(
        "POST", "/v1/traces", json.dumps(trace).encode(), {**JSON, "X-Scope-OrgID": "team-a"}
    )
    assert code == 200
    assert (
        server.request("GET", "/api/v1/traces/" + "ab" * 16, headers={"X-Scope-OrgID": "team-a"})[0]
        == 200
    )
    assert server.request("GET", "/api/v1/traces/" + "ab" * 16)[0] == 404
    assert server.get_json("/api/v1/services", {"X-Scope-OrgID": "team-b"}) == {"services": []}


def test_sigterm_graceful_shutdown(make_server, pb):
    s = make_server()
    body = push_request(pb, {"service_name": "x"}, make_pprof(pb, [(["a"], 1, {})]))
    assert s.request("POST", "/push.v1.PusherService/Push", body, PROTO)[0] == 200
    assert s.stop(signal.SIGTERM) == 0
    log = s.log_text()
    assert "shutting down" in log and "storage closed" in log


def test_ui_static_files_and_client_route_fallback(make_server, tmp_path):
    ui = tmp_path / "ui"
    (ui / "assets").mkdir(parents=True)
    (ui / "index.html").write_text("<html>spanprof-ui-index</html>")
    (ui / "assets" / "app.js").write_text("console.log('app')")
    s = make_server("--ui-dir", str(ui))
    code, body, h = s.request("GET", "/")
    assert (
        code == 200 and b"spanprof-ui-index" in body and h["Content-Type"].startswith("text/html")
    )
    code, body, h = s.request("GET", "/assets/app.js")
    assert code == 200 and b"console.log" in body and "javascript" in h["Content-Type"]
    code, body, _ = s.request("GET", "/traces/0123/spans")  # client-side route
    assert code == 200 and b"spanprof-ui-index" in body
    code, body, _ = s.request("GET", "/../../etc/passwd")
    assert b"root:" not in body
    assert s.request("GET", "/api/v1/unknown")[0] == 404


def test_info_identifies_spanprof(server):
    info = server.get_json("/api/v1/info")
    assert info["server"] == "spanprof" and info["version"]
    time.sleep(0)  # keep the import used in every interpreter
