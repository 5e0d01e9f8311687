"""Query endpoints: every querier.v1 method in both Connect encodings, render, and /api/v1."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse

import pytest
from conftest import (
    CHILD_SPAN,
    CPU,
    ROOT_SPAN,
    TRACE,
    flame_names,
    push_big_svc_b,
    top_series_request,
)
from google.protobuf import json_format
from wire import make_pprof, push_request

NOW_MS = str(int(time.time() * 1000) + 3_600_000)
QUERIES = [
    (
        "ProfileTypes",
        "querier.v1.ProfileTypesRequest",
        "querier.v1.ProfileTypesResponse",
        {"start": "1", "end": NOW_MS},
    ),
    (
        "LabelNames",
        "types.v1.LabelNamesRequest",
        "types.v1.LabelNamesResponse",
        {"matchers": ['{service_name="svc-a"}']},
    ),
    (
        "LabelValues",
        "types.v1.LabelValuesRequest",
        "types.v1.LabelValuesResponse",
        {"name": "service_name"},
    ),
    (
        "Series",
        "querier.v1.SeriesRequest",
        "querier.v1.SeriesResponse",
        {"matchers": ["{}"], "labelNames": ["service_name"]},
    ),
    (
        "SelectMergeStacktraces",
        "querier.v1.SelectMergeStacktracesRequest",
        "querier.v1.SelectMergeStacktracesResponse",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="svc-a"}',
            "start": "0",
            "end": NOW_MS,
        },
    ),
    (
        "SelectMergeSpanProfile",
        "querier.v1.SelectMergeSpanProfileRequest",
        "querier.v1.SelectMergeSpanProfileResponse",
        {
            "profileTypeID": CPU,
            "labelSelector": "{}",
            "spanSelector": [ROOT_SPAN],
            "start": "0",
            "end": NOW_MS,
        },
    ),
    (
        "SelectSeries",
        "querier.v1.SelectSeriesRequest",
        "querier.v1.SelectSeriesResponse",
        {
            "profileTypeID": CPU,
            "labelSelector": "{}",
            "start": "0",
            "end": NOW_MS,
            "step": 60,
            "groupBy": ["service_name"],
        },
    ),
    (
        "SelectMergeProfile",
        "querier.v1.SelectMergeProfileRequest",
        "perftools.profiles.Profile",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="svc-b"}',
            "start": "0",
            "end": NOW_MS,
        },
    ),
]


def post_proto(server, pb, method, req_type, req):
    """A querier.v1 request (given as its JSON form) sent in binary proto, as Grafana sends it."""
    msg = json_format.ParseDict(req, pb.get(req_type)())
    return server.request(
        "POST",
        f"/querier.v1.QuerierService/{method}",
        msg.SerializeToString(),
        {"Content-Type": "application/proto"},
    )


@pytest.mark.parametrize("method,req_type,resp_type,req", QUERIES, ids=[q[0] for q in QUERIES])
def test_both_connect_encodings_agree(loaded, pb, method, req_type, resp_type, req):
    server = loaded
    as_json = server.connect_json(method, req)
    code, body, headers = post_proto(server, pb, method, req_type, req)
    assert code == 200, body
    assert headers["Content-Type"].startswith("application/proto")
    from_proto = json_format.MessageToDict(pb.get(resp_type).FromString(body))
    assert from_proto == as_json
    assert as_json, f"{method} returned an empty document"


def test_label_apis_honour_the_time_range(loaded):
    # Grafana's health check: ProfileTypes over a tiny range answers 200 (and finds nothing).
    assert loaded.connect_json("ProfileTypes", {"start": "1", "end": "2"}) == {}
    assert loaded.connect_json("LabelNames", {"start": "1", "end": "2"}) == {}
    names = loaded.connect_json("LabelNames", {"start": "1", "end": NOW_MS})["names"]
    assert "service_name" in names


def test_select_merge_results(loaded):
    s = loaded
    fg = s.connect_json(
        "SelectMergeStacktraces",
        {
            "profileTypeID": CPU,
            "labelSelector": '{env="prod", service_name=~"svc-.*"}',
            "start": "0",
            "end": NOW_MS,
        },
    )["flamegraph"]
    assert int(fg["total"]) == 20 * 10_000_000
    span = s.connect_json(
        "SelectMergeSpanProfile",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="svc-a"}',
            "spanSelector": [ROOT_SPAN],
            "start": "0",
            "end": NOW_MS,
        },
    )["flamegraph"]
    assert flame_names(span) >= {"root_only_fn", "child_fn"} and "idle" not in flame_names(span)
    assert int(span["total"]) == 5 * 10_000_000
    neg = s.connect_json(
        "SelectMergeStacktraces",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name!~"svc-a"}',
            "start": "0",
            "end": NOW_MS,
        },
    )["flamegraph"]
    assert flame_names(neg) == {"total", "main", "b_fn"}
    series = s.connect_json(
        "SelectSeries",
        {
            "profileTypeID": CPU,
            "labelSelector": "{}",
            "start": "0",
            "end": NOW_MS,
            "step": 60,
            "groupBy": ["service_name"],
        },
    )["series"]
    totals = {x["labels"][0]["value"]: sum(p["value"] for p in x["points"]) for x in series}
    assert totals == {"svc-a": 14 * 10_000_000, "svc-b": 6 * 10_000_000}


def test_max_nodes_folds_into_other(loaded):
    fg = loaded.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": "{}", "start": "0", "end": NOW_MS, "maxNodes": "2"},
    )["flamegraph"]
    assert "other" in fg["names"]
    assert int(fg["total"]) == 20 * 10_000_000
    assert len(fg["levels"]) <= 3


def test_bad_selector_is_400_with_connect_error(loaded):
    code, body, _ = loaded.request(
        "POST",
        "/querier.v1.QuerierService/SelectMergeStacktraces",
        json.dumps({"profileTypeID": CPU, "labelSelector": "{service_name=}"}).encode(),
        {"Content-Type": "application/json"},
    )
    assert code == 400
    err = json.loads(body)
    assert err["code"] == "invalid_argument" and "quoted value" in err["message"]


def test_render_flamebearer(loaded):
    q = urllib.parse.quote('svc-b.cpu{env="prod"}')
    doc = loaded.get_json(f"/pyroscope/render?query={q}&from=now-1h&until=now&format=json")
    fb = doc["flamebearer"]
    assert fb["numTicks"] == 6 * 10_000_000 and "b_fn" in fb["names"]
    q = urllib.parse.quote(CPU + '{service_name="svc-b"}')
    assert (
        loaded.get_json(f"/pyroscope/render?query={q}&from=0")["flamebearer"]["numTicks"]
        == 6 * 10_000_000
    )


def test_api_trace_with_span_sample_counts(loaded):
    s = loaded
    traces = s.get_json("/api/v1/traces?service=svc-a")["traces"]
    assert len(traces) == 1
    t = traces[0]
    assert t["trace_id"] == TRACE and t["root_name"] == "GET /a" and t["span_count"] == 2
    assert t["has_profile"] is True and t["sample_count"] == 5
    assert s.get_json("/api/v1/traces?has_profile=false")["traces"] == []
    assert s.get_json("/api/v1/traces?min_duration_ms=1000")["traces"] == []
    doc = s.get_json(f"/api/v1/traces/{TRACE}")
    spans = {x["span_id"]: x for x in doc["spans"]}
    assert spans[ROOT_SPAN]["self_samples"] == 2 and spans[ROOT_SPAN]["total_samples"] == 5
    assert spans[CHILD_SPAN]["self_samples"] == 3 and spans[CHILD_SPAN]["total_samples"] == 3
    assert doc["period_ns"] == 10_000_000


def test_api_flamegraphs(loaded):
    s = loaded
    own = s.get_json(f"/api/v1/flamegraph?trace_id={TRACE}&span_id={ROOT_SPAN}&mode=self")
    assert (
        own["sample_count"] == 2
        and "root_only_fn" in own["names"]
        and "child_fn" not in own["names"]
    )
    kids = s.get_json(f"/api/v1/flamegraph?trace_id={TRACE}&span_id={ROOT_SPAN}&mode=children")
    assert kids["sample_count"] == 5 and kids["period_ns"] == 10_000_000
    child = s.get_json(f"/api/v1/flamegraph?trace_id={TRACE}&span_id={CHILD_SPAN}")
    assert child["sample_count"] == 3 and "child_fn" in child["names"]
    by_name = s.get_json("/api/v1/flamegraph?service=svc-a&span_name=db.query")
    assert by_name["sample_count"] == 3
    # span name without stored spans: falls back to the span_name series label
    fallback = s.get_json("/api/v1/flamegraph?service=svc-a&span_name=GET%20/b")
    assert "other_span_fn" in fallback["names"]
    svc = s.get_json(
        "/api/v1/flamegraph?service=svc-a&selector=" + urllib.parse.quote('{env="prod"}')
    )
    assert svc["sample_count"] == 14 and svc["levels"][0] == [0, 14 * 10_000_000, 0, 0]
    tl = s.get_json("/api/v1/timeline?service=svc-a&step_ms=60000")
    assert tl["unit"] == "nanoseconds" and sum(v for _, v in tl["points"]) == 14 * 10_000_000
    left = urllib.parse.quote(f"trace_id={TRACE}&span_id={ROOT_SPAN}&mode=self")
    right = urllib.parse.quote(f"trace_id={TRACE}&span_id={CHILD_SPAN}&mode=self")
    diff = s.get_json(f"/api/v1/diff?left={left}&right={right}")
    assert diff["left_total"] == 2 * 10_000_000 and diff["right_total"] == 3 * 10_000_000
    assert all(len(level) % 7 == 0 for level in diff["levels"])
    assert set(s.get_json("/api/v1/services")["services"]) == {"svc-a", "svc-b"}


def test_api_errors(loaded):
    for path in (
        "/api/v1/traces/nothex",
        "/api/v1/flamegraph?span_id=zz",
        "/api/v1/flamegraph",
        "/api/v1/traces?limit=0",
        "/api/v1/traces?sort=size",
        "/api/v1/diff?left=x",
        "/api/v1/flamegraph?service=a&selector=%7Bbad",
    ):
        code, body, _ = loaded.request("GET", path)
        assert 400 <= code < 500, (path, code, body)
        assert set(json.loads(body)) == {"code", "message"}
    assert loaded.request("GET", "/api/v1/traces/" + "f" * 32)[0] == 404
    assert loaded.request("GET", "/api/v1/nope")[0] == 404


# ---- querier.v1 semantics as Pyroscope defines them, in binary proto as Grafana sends them ----


def connect_proto(server, pb, method, req_type, resp_type, req):
    """One Connect unary call in binary proto; (status, response message or error document)."""
    code, body, _ = post_proto(server, pb, method, req_type, req)
    if code != 200:
        return code, json.loads(body)
    return code, pb.get(resp_type).FromString(body)


def merge_stacktraces(server, pb, **fields):
    req = {"profileTypeID": CPU, "labelSelector": "{}", "start": "0", "end": NOW_MS, **fields}
    return connect_proto(
        server,
        pb,
        "SelectMergeStacktraces",
        "querier.v1.SelectMergeStacktracesRequest",
        "querier.v1.SelectMergeStacktracesResponse",
        req,
    )


def decode_tree(b: bytes) -> dict[tuple[str, ...], int]:
    """Pyroscope's tree bytes (pkg/model/tree.go) → {root-first stack: self value}."""
    pos = 0

    def uvarint() -> int:
        nonlocal pos
        v = shift = 0
        while True:
            c = b[pos]
            pos += 1
            v |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return v

    out: dict[tuple[str, ...], int] = {}
    todo: list[tuple[str, ...]] = [()]
    first = True
    while todo:
        parent = todo.pop()
        n = uvarint()
        name = b[pos : pos + n].decode()
        pos += n
        self_value = uvarint()
        children = uvarint()
        path = () if first else (*parent, name)
        first = False
        if self_value:
            out[path] = out.get(path, 0) + self_value
        todo.extend([path] * children)
    assert pos == len(b)
    return out


def test_selectors_filter_samples(loaded, pb):
    code, r = merge_stacktraces(loaded, pb, traceIdSelector=[TRACE])
    assert code == 200 and r.flamegraph.total == 5 * 10_000_000
    assert "idle" not in r.flamegraph.names
    code, r = merge_stacktraces(
        loaded, pb, stackTraceSelector={"callSite": [{"name": "main"}, {"name": "handle"}]}
    )
    assert code == 200 and r.flamegraph.total == 5 * 10_000_000
    code, r = merge_stacktraces(loaded, pb, stackTraceSelector={"callSite": [{"name": "handle"}]})
    assert code == 200 and r.flamegraph.total == 0
    code, err = merge_stacktraces(loaded, pb, traceIdSelector=[TRACE], spanSelector=[ROOT_SPAN])
    assert code == 400 and err["code"] == "invalid_argument"
    code, err = merge_stacktraces(loaded, pb, profileIdSelector=["nope"])
    assert code == 400 and err["code"] == "invalid_argument"


def test_formats_tree_pprof_and_dot_answer(loaded, pb):
    code, r = merge_stacktraces(loaded, pb, labelSelector='{service_name="svc-a"}', format=2)
    assert code == 200 and not r.HasField("flamegraph")
    assert decode_tree(r.tree) == {
        ("main", "handle", "root_only_fn"): 2 * 10_000_000,
        ("main", "handle", "child_fn"): 3 * 10_000_000,
        ("main", "idle"): 4 * 10_000_000,
        ("main", "other_span_fn"): 5 * 10_000_000,
    }
    code, r = merge_stacktraces(loaded, pb, format="PROFILE_FORMAT_PPROF")
    assert code == 200 and sum(s.value[0] for s in r.pprof.profile.sample) == 20 * 10_000_000
    code, r = merge_stacktraces(loaded, pb, format="PROFILE_FORMAT_DOT")
    assert code == 200 and r.dot.startswith('digraph "unnamed" {') and not r.HasField("flamegraph")
    code, err = merge_stacktraces(loaded, pb, format=7)
    assert code == 400 and err["code"] == "invalid_argument"


def test_select_series_top_n_stamps_and_exemplars(loaded, pb):
    s = loaded
    start, req = top_series_request(push_big_svc_b(s, pb), NOW_MS)
    code, r = connect_proto(
        s,
        pb,
        "SelectSeries",
        "querier.v1.SelectSeriesRequest",
        "querier.v1.SelectSeriesResponse",
        req,
    )
    assert code == 200
    # svc-b (36 samples) outranks svc-a (14) though svc-a comes first by label.
    assert [x.labels[0].value for x in r.series] == ["svc-b"]
    (point,) = r.series[0].points
    assert point.value == 36 * 10_000_000
    # Stamped at the end of its step, (start + 60 min, start + 61 min].
    assert point.timestamp == start + 61 * 60_000
    (ex,) = point.exemplars  # the larger of the two profiles
    assert ex.value == 30 * 10_000_000
    code, one = merge_stacktraces(s, pb, profileIdSelector=[ex.profile_id])
    assert code == 200 and one.flamegraph.total == 30 * 10_000_000
    code, err = connect_proto(
        s,
        pb,
        "SelectSeries",
        "querier.v1.SelectSeriesRequest",
        "querier.v1.SelectSeriesResponse",
        {**req, "exemplarType": "EXEMPLAR_TYPE_SPAN"},
    )
    assert code == 501 and err["code"] == "unimplemented"


def test_select_merge_profile_max_nodes_and_time(loaded, pb):
    req = {
        "profileTypeID": CPU,
        "labelSelector": '{service_name="svc-a"}',
        "start": "1000",
        "end": NOW_MS,
    }
    code, p = connect_proto(
        loaded,
        pb,
        "SelectMergeProfile",
        "querier.v1.SelectMergeProfileRequest",
        "perftools.profiles.Profile",
        {**req, "maxNodes": "1"},
    )
    assert code == 200
    assert p.time_nanos == int(NOW_MS) * 1_000_000
    assert p.duration_nanos == (int(NOW_MS) - 1000) * 1_000_000
    assert sum(s.value[0] for s in p.sample) == 14 * 10_000_000
    assert "other" in p.string_table and len(p.sample) == 1  # main→other


def test_profile_stats_diff_and_settings(loaded, pb):
    s = loaded
    code, st = connect_proto(
        s,
        pb,
        "GetProfileStats",
        "types.v1.GetProfileStatsRequest",
        "types.v1.GetProfileStatsResponse",
        {},
    )
    assert code == 200 and st.data_ingested
    assert 0 < st.oldest_profile_time <= st.newest_profile_time <= int(time.time() * 1000)
    side = {"profileTypeID": CPU, "start": "0", "end": NOW_MS}
    code, d = connect_proto(
        s,
        pb,
        "Diff",
        "querier.v1.DiffRequest",
        "querier.v1.DiffResponse",
        {
            "left": {**side, "labelSelector": '{service_name="svc-a"}'},
            "right": {**side, "labelSelector": '{service_name="svc-b"}'},
        },
    )
    assert code == 200
    assert (d.flamegraph.leftTicks, d.flamegraph.rightTicks) == (14 * 10_000_000, 6 * 10_000_000)
    code, body, _ = s.request(
        "POST", "/settings.v1.SettingsService/Get", b"{}", {"Content-Type": "application/json"}
    )
    assert code == 200 and json.loads(body) == {}


@pytest.mark.parametrize(
    "path",
    [
        "/settings.v1.SettingsService/Set",
        "/adhocprofiles.v1.AdHocProfileService/List",
    ],
)
def test_methods_not_implemented_answer_connect_unimplemented(loaded, path):
    code, body, headers = loaded.request("POST", path, b"{}", {"Content-Type": "application/json"})
    assert code == 501 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["code"] == "unimplemented"


def test_render_metadata_timeline_and_groups(loaded):
    q = urllib.parse.quote(CPU + '{env="prod"}')
    # Two hours ending an hour from now: the profiles are in a whole step (Pyroscope leaves out
    # the partial step at the end of a range).
    window = f"from={int(NOW_MS) - 7_200_000}&until={NOW_MS}"
    doc = loaded.get_json(f"/pyroscope/render?query={q}&{window}&groupBy=service_name")
    assert doc["metadata"] == {
        "format": "single",
        "spyName": "",
        "sampleRate": 1_000_000_000,
        "units": "samples",
        "name": "cpu",
    }
    tl = doc["timeline"]
    # 2 h / 1500 is below 15 s: 15 s steps, zero-filled, 480 slots. Grouped by service, the
    # overall timeline has no series of its own (as Pyroscope) and each service has its own.
    assert tl["durationDelta"] == 15 and len(tl["samples"]) == 480 and sum(tl["samples"]) == 0
    groups = doc["groups"]
    assert set(groups) == {"svc-a", "svc-b"}
    assert sum(groups["svc-a"]["samples"]) == 14 * 10_000_000
    assert all(len(g["samples"]) == 480 for g in groups.values())
    one = loaded.get_json(f"/pyroscope/render?query={q}&{window}")
    assert sum(one["timeline"]["samples"]) == 20 * 10_000_000 and one["groups"] is None
    code, body, _ = loaded.request("GET", f"/pyroscope/render?query={q}&format=svg")
    assert code == 400 and json.loads(body)["code"] == "invalid_argument"


def test_render_diff_is_a_double_flamebearer(loaded):
    a = urllib.parse.quote(CPU + '{service_name="svc-a"}')
    b = urllib.parse.quote(CPU + '{service_name="svc-b"}')
    doc = loaded.get_json(
        f"/pyroscope/render-diff?leftQuery={a}&leftFrom=now-1h&leftUntil=now"
        f"&rightQuery={b}&rightFrom=now-1h&rightUntil=now"
    )
    assert doc["metadata"]["format"] == "double"
    assert (doc["leftTicks"], doc["rightTicks"]) == (14 * 10_000_000, 6 * 10_000_000)
    assert all(len(level) % 7 == 0 for level in doc["flamebearer"]["levels"])
    code, body, _ = loaded.request("GET", f"/pyroscope/render-diff?leftQuery={a}")
    assert code == 400 and json.loads(body)["code"] == "invalid_argument"


DOT_UNITS = {"": 1, "ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def dot_value(text: str) -> float:
    m = re.fullmatch(r"(-?[0-9.]+)(ns|us|ms|s)?", text)
    assert m, text
    return float(m.group(1)) * DOT_UNITS[m.group(2) or ""]


def parse_dot(
    text: str,
) -> tuple[dict[str, tuple[float, float]], dict[tuple[str, str], float], str]:
    """The graph as Graphviz's own `dot` parses it: {function: (flat, cum)}, {(caller, callee):
    weight}, and the legend."""
    out = subprocess.run(["dot", "-Tjson"], input=text.encode(), capture_output=True, check=True)
    g = json.loads(out.stdout)
    nodes, names, legend = {}, {}, ""
    for o in g["objects"]:
        if "label" not in o:  # the legend's cluster
            continue
        parts = o["label"].split("\\n")
        if not o["name"].startswith("N"):
            legend = o["label"]
            continue
        rest = " ".join(parts[1:])
        flat = dot_value(rest.split(" ")[0])
        cum = dot_value(rest.split("of ")[1].split(" ")[0]) if "of " in rest else flat
        nodes[parts[0]] = (flat, cum)
        names[o["_gvid"]] = parts[0]
    edges = {
        (names[e["tail"]], names[e["head"]]): dot_value(e["label"].strip())
        for e in g.get("edges", [])
        if e["tail"] in names
    }
    return nodes, edges, legend


def flame_self(doc: dict) -> dict[str, int]:
    """Self value per function name of a flamebearer document."""
    fb, out = doc["flamebearer"], {}
    for level in fb["levels"]:
        for i in range(0, len(level), 4):
            name = fb["names"][level[i + 3]]
            out[name] = out.get(name, 0) + level[i + 2]
    return out


def test_render_dot_is_graphviz_with_the_flame_graphs_numbers(loaded):
    q = urllib.parse.quote(CPU + '{service_name="svc-a"}')
    window = f"from=0&until={NOW_MS}"
    flame = loaded.get_json(f"/pyroscope/render?query={q}&{window}")
    code, body, headers = loaded.request("GET", f"/pyroscope/render?query={q}&{window}&format=dot")
    assert code == 200 and headers["Content-Type"].startswith("text/plain"), body
    nodes, edges, legend = parse_dot(body.decode())
    total = flame["flamebearer"]["numTicks"]
    assert total == 14 * 10_000_000
    # Every function's flat value is its self value in the flame graph; main's cum is the total.
    self_by_name = {k: v for k, v in flame_self(flame).items() if k != "total"}
    assert {k: v[0] for k, v in nodes.items()} == self_by_name
    assert nodes["main"][1] == total and sum(v[0] for v in nodes.values()) == total
    assert edges[("main", "handle")] == 5 * 10_000_000
    assert edges[("handle", "child_fn")] == 3 * 10_000_000
    assert "of 140ms total" in legend
    # maxNodes keeps the largest nodes by cum (main, handle, other_span_fn, idle).
    code, body, _ = loaded.request(
        "GET", f"/pyroscope/render?query={q}&{window}&format=dot&maxNodes=4"
    )
    nodes, _, legend = parse_dot(body.decode())
    assert set(nodes) == {"main", "handle", "other_span_fn", "idle"}
    assert "Showing top 4 nodes out of 6" in legend and nodes["main"][1] == total
    # Nothing selected: an empty answer, as Pyroscope.
    none = urllib.parse.quote(CPU + '{service_name="none"}')
    code, body, _ = loaded.request("GET", f"/pyroscope/render?query={none}&format=dot")
    assert code == 200 and body == b""


def test_merge_stacktraces_dot_format(loaded):
    req = {
        "profileTypeID": CPU,
        "labelSelector": '{service_name="svc-a"}',
        "start": "0",
        "end": NOW_MS,
        "format": "PROFILE_FORMAT_DOT",
    }
    out = loaded.connect_json("SelectMergeStacktraces", req)
    nodes, _, _ = parse_dot(out["dot"])
    assert nodes["main"] == (0, 14 * 10_000_000) and nodes["idle"] == (4 * 10_000_000,) * 2
    # The span selector narrows the graph as it narrows the flame graph.
    out = loaded.connect_json("SelectMergeStacktraces", {**req, "spanSelector": [ROOT_SPAN]})
    nodes, _, _ = parse_dot(out["dot"])
    assert set(nodes) == {"main", "handle", "root_only_fn", "child_fn"}
    assert nodes["main"][1] == 5 * 10_000_000


def test_heatmap_and_analyze_query_over_connect_json(server, pb):
    """Tenant "heat": svc-a's profile of 14 periods and svc-b's of 6, one minute ago."""
    now_ns = time.time_ns() - 60_000_000_000
    tenant = {"X-Scope-OrgID": "heat"}
    for svc, n in (("svc-a", 14), ("svc-b", 6)):
        body = push_request(
            pb,
            {"__name__": "process_cpu", "service_name": svc},
            make_pprof(pb, [(["main", "work"], n, {})], time_ns=now_ns),
        )
        code, resp, _ = server.request(
            "POST",
            "/push.v1.PusherService/Push",
            body,
            {"Content-Type": "application/proto", **tenant},
        )
        assert code == 200, resp
    start = str(int(time.time() * 1000) - 600_000)
    req = {
        "profileTypeID": CPU,
        "labelSelector": "{}",
        "start": start,
        "end": NOW_MS,
        "step": 60,
        "groupBy": ["service_name"],
        "queryType": "HEATMAP_QUERY_TYPE_INDIVIDUAL",
    }
    h = server.connect_json("SelectHeatmap", req, tenant)
    by = {s["labels"][0]["value"]: s for s in h["series"]}
    assert set(by) == {"svc-a", "svc-b"}
    for s in by.values():
        (slot,) = s["slots"]
        assert len(slot["counts"]) == 20 and sum(slot["counts"]) == 1
    # svc-a's profile (140 ms) is the largest point: the top bucket; svc-b (60 ms) the lowest.
    assert by["svc-a"]["slots"][0]["counts"][19] == 1
    assert by["svc-b"]["slots"][0]["counts"][0] == 1
    code, body, _ = server.request(
        "POST",
        "/querier.v1.QuerierService/SelectHeatmap",
        json.dumps({**req, "step": 0}).encode(),
        {"Content-Type": "application/json", **tenant},
    )
    assert code == 400 and json.loads(body)["code"] == "invalid_argument"
    a = server.connect_json(
        "AnalyzeQuery",
        {"start": start, "end": NOW_MS, "query": CPU + '{service_name="svc-a"}'},
        tenant,
    )
    scope = a["queryScopes"][0]
    assert (scope["seriesCount"], scope["profileCount"], scope["sampleCount"]) == ("2", "2", "2")
    assert a["queryImpact"]["totalQueriedSeries"] == "1"
    assert a["queryScopes"][0]["componentType"] == "spanprof store"
