"""Wall-clock profiles (issue #15): the agent's second series per upload (`__name__=wall`, sample
type wall/nanoseconds, `thread_state` and `task_name` sample labels) pushed over real HTTP next to
the CPU series, then read back through every query API: Pyroscope's querier and render, and the
/api/v1 documents the UI uses (trace breakdown, span flame graphs filtered by thread_state, trace
search, traces through a function, timeline, diff, export)."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
from conftest import CPU, flame_names, make_pprof, otlp_profiles_request, push_series

WALL = "wall:wall:nanoseconds:wall:nanoseconds"
TRACE = "0000000000000000000000000000f00d"
ROOT = "00000000000000e1"  # GET /slow, 400 ms
CHILD = "00000000000000e2"  # charge_card, 120 ms, an active span inside the root
WAIT_TRACE = "0000000000000000000000000000f00e"
WAIT_ROOT = "00000000000000e3"  # a trace that only waited: wall samples, no CPU sample
MS = 1_000_000
SVC = "shop"


def span_labels(root: str, active: str, trace: str, name: str, **extra: str) -> dict[str, str]:
    return {
        "span_id": root,
        "active_span_id": active,
        "trace_id": trace,
        "span_name": name,
        **extra,
    }


def wall_stacks() -> list:
    handle = ("handle_slow", "service.py", 80)
    awaiting = [
        "main",
        handle,
        ("wait_for_inventory", "service.py", 88),
        ("sleep", "/usr/lib/python3.11/asyncio/tasks.py", 665),
        ("<await Future>", "", 0),
    ]
    charge = ["main", handle, ("charge_card", "service.py", 120), ("<sleep>", "", 0)]
    return [
        (
            awaiting,
            28,
            span_labels(
                ROOT, ROOT, TRACE, "GET /slow", thread_state="awaiting", task_name="Task-7"
            ),
        ),
        (
            ["main", handle, ("build_response", "service.py", 95)],
            2,
            span_labels(ROOT, ROOT, TRACE, "GET /slow", thread_state="running", task_name="Task-7"),
        ),
        (charge, 11, span_labels(ROOT, CHILD, TRACE, "GET /slow", thread_state="blocked")),
        (
            ["main", handle, ("charge_card", "service.py", 118)],
            1,
            span_labels(ROOT, CHILD, TRACE, "GET /slow", thread_state="gil_wait"),
        ),
        (
            ["main", ("poll", "service.py", 200), ("<select/poll>", "", 0)],
            9,
            span_labels(WAIT_ROOT, WAIT_ROOT, WAIT_TRACE, "GET /poll", thread_state="blocked"),
        ),
    ]


def cpu_stacks() -> list:
    return [
        (
            ["main", ("handle_slow", "service.py", 80), ("build_response", "service.py", 95)],
            2,
            span_labels(ROOT, ROOT, TRACE, "GET /slow"),
        ),
    ]


def otlp_span(trace: str, span: str, parent: str, name: str, start: int, end: int) -> dict:
    out = {
        "traceId": trace,
        "spanId": span,
        "name": name,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
    }
    if parent:
        out["parentSpanId"] = parent
    return out


@pytest.fixture()
def walled(server, pb):
    now = time.time_ns()
    series = {"service_name": SVC, "env": "prod"}
    body = push_series(
        pb,
        [
            ({"__name__": "process_cpu", **series}, make_pprof(pb, cpu_stacks(), time_ns=now)),
            (
                {"__name__": "wall", **series},
                make_pprof(pb, wall_stacks(), time_ns=now, sample_type="wall"),
            ),
        ],
    )
    code, resp, _ = server.request(
        "POST", "/push.v1.PusherService/Push", body, {"Content-Type": "application/proto"}
    )
    assert code == 200, resp
    spans = [
        otlp_span(TRACE, ROOT, "", "GET /slow", now - 400 * MS, now),
        otlp_span(TRACE, CHILD, ROOT, "charge_card", now - 150 * MS, now - 30 * MS),
        otlp_span(WAIT_TRACE, WAIT_ROOT, "", "GET /poll", now - 100 * MS, now),
    ]
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": SVC}}]
                },
                "scopeSpans": [{"spans": spans}],
            }
        ]
    }
    code, resp, _ = server.request(
        "POST", "/v1/traces", json.dumps(doc).encode(), {"Content-Type": "application/json"}
    )
    assert code == 200, resp
    return server


END = str(int(time.time() * 1000) + 3_600_000)


def api(server, path: str, **params) -> dict:
    return server.get_json(f"{path}?{urllib.parse.urlencode(params)}")


def test_wall_profile_type_and_series_labels(walled):
    types = walled.connect_json("ProfileTypes", {"start": "1", "end": END})["profileTypes"]
    assert {t["ID"] for t in types} >= {CPU, WALL}
    sel = f'{{__profile_type__="{WALL}",service_name="{SVC}"}}'
    names = walled.connect_json("LabelNames", {"matchers": [sel]})["names"]
    assert {"thread_state", "task_name", "span_name", "env"} <= set(names)
    # Span and trace ids stay off the series labels, for wall as for CPU.
    assert not {"span_id", "active_span_id", "trace_id"} & set(names)
    states = walled.connect_json("LabelValues", {"name": "thread_state", "matchers": [sel]})[
        "names"
    ]
    assert states == ["awaiting", "blocked", "gil_wait", "running"]
    tasks = walled.connect_json("LabelValues", {"name": "task_name", "matchers": [sel]})["names"]
    assert tasks == ["Task-7"]
    # The CPU series carry no thread_state.
    cpu_sel = f'{{__profile_type__="{CPU}",service_name="{SVC}"}}'
    assert "thread_state" not in walled.connect_json("LabelNames", {"matchers": [cpu_sel]})["names"]


def test_select_merge_and_series_by_thread_state(walled):
    req = {
        "profileTypeID": WALL,
        "labelSelector": f'{{service_name="{SVC}",thread_state="awaiting"}}',
        "start": "0",
        "end": END,
    }
    fg = walled.connect_json("SelectMergeStacktraces", req)["flamegraph"]
    assert int(fg["total"]) == 28 * 10 * MS
    assert {"wait_for_inventory", "sleep", "<await Future>"} <= flame_names(fg)
    assert "charge_card" not in flame_names(fg)
    series = walled.connect_json(
        "SelectSeries",
        {
            "profileTypeID": WALL,
            "labelSelector": f'{{service_name="{SVC}"}}',
            "start": "0",
            "end": END,
            "step": 60,
            "groupBy": ["thread_state"],
        },
    )["series"]
    by_state = {s["labels"][0]["value"]: sum(p["value"] for p in s["points"]) for s in series}
    assert by_state == {
        "awaiting": 280 * MS,
        "running": 20 * MS,
        "blocked": 200 * MS,
        "gil_wait": 10 * MS,
    }
    span = walled.connect_json(
        "SelectMergeSpanProfile",
        {
            "profileTypeID": WALL,
            "labelSelector": "{}",
            "spanSelector": [ROOT],
            "start": "0",
            "end": END,
        },
    )["flamegraph"]
    assert int(span["total"]) == (28 + 2 + 11 + 1) * 10 * MS
    # CPU is untouched by the wall series.
    cpu = walled.connect_json(
        "SelectMergeStacktraces",
        {**req, "profileTypeID": CPU, "labelSelector": f'{{service_name="{SVC}"}}'},
    )["flamegraph"]
    assert int(cpu["total"]) == 2 * 10 * MS


def test_render_wall(walled):
    q = urllib.parse.urlencode(
        {
            "query": f'{WALL}{{service_name="{SVC}",thread_state="blocked"}}',
            "from": "now-1h",
            "until": "now",
        }
    )
    fb = walled.get_json(f"/pyroscope/render?{q}")
    assert fb["flamebearer"]["numTicks"] == 200 * MS
    assert "charge_card" in fb["flamebearer"]["names"] and "poll" in fb["flamebearer"]["names"]


def test_trace_api_wall_breakdown(walled):
    t = walled.get_json(f"/api/v1/traces/{TRACE}")
    assert t["wall_profile_type"] == WALL
    assert t["wall_period_ns"] == 10 * MS and t["period_ns"] == 10 * MS
    spans = {s["span_id"]: s for s in t["spans"]}
    root, child = spans[ROOT], spans[CHILD]
    assert root["self_samples"] == 2 and root["self_cpu_ns"] == 20 * MS
    assert root["wall_ns"]["self"] == {
        "running": 20 * MS,
        "gil_wait": 0,
        "blocked": 0,
        "awaiting": 280 * MS,
        "other": 0,
    }
    # The child is an active span: its wall time is its own, and the root's with children.
    assert child["wall_ns"]["self"] == {
        "running": 0,
        "gil_wait": 10 * MS,
        "blocked": 110 * MS,
        "awaiting": 0,
        "other": 0,
    }
    assert (
        root["wall_ns"]["total"]["blocked"] == 110 * MS
        and root["wall_ns"]["total"]["awaiting"] == 280 * MS
    )
    assert child["self_samples"] == 0 and child["total_cpu_ns"] == 0
    # Another trace's wall samples (same local-root label set) do not leak in.
    assert sum(root["wall_ns"]["total"].values()) == 420 * MS


def test_span_flamegraph_wall_by_state_and_line(walled):
    base = {"trace_id": TRACE, "span_id": ROOT, "profile_type": WALL, "frames": "line"}
    fg = api(walled, "/api/v1/flamegraph", **base)
    assert fg["total"] == 300 * MS and fg["period_ns"] == 10 * MS
    at = [
        (n, f, ln)
        for n, f, ln in zip(fg["names"], fg["files"], fg["lines"])
        if n == "wait_for_inventory"
    ]
    assert at == [("wait_for_inventory", "service.py", 88)]
    running = api(walled, "/api/v1/flamegraph", **base, selector='{thread_state="running"}')
    assert running["total"] == 20 * MS and "wait_for_inventory" not in running["names"]
    with_children = api(
        walled,
        "/api/v1/flamegraph",
        **base,
        mode="children",
        selector='{thread_state=~"blocked|gil_wait"}',
    )
    assert with_children["total"] == 120 * MS and "<sleep>" in with_children["names"]
    # Default profile type stays CPU.
    cpu = api(walled, "/api/v1/flamegraph", trace_id=TRACE, span_id=ROOT)
    assert cpu["total"] == 20 * MS and "wait_for_inventory" not in cpu["names"]
    # All spans of a name, wall.
    named = api(
        walled,
        "/api/v1/flamegraph",
        service=SVC,
        span_name="charge_card",
        profile_type=WALL,
        **{"from": "0", "to": END},
    )
    assert named["total"] == 120 * MS
    bad = walled.request(
        "GET",
        "/api/v1/flamegraph?" + urllib.parse.urlencode({**base, "selector": "{thread_state="}),
    )
    assert bad[0] == 400


def test_trace_search_counts_wall_only_traces_as_profiled(walled):
    out = api(
        walled,
        "/api/v1/traces",
        service=SVC,
        has_profile="true",
        limit="10",
        **{"from": "0", "to": END},
    )
    by_id = {t["trace_id"]: t for t in out["traces"]}
    assert set(by_id) == {TRACE, WAIT_TRACE}
    assert by_id[WAIT_TRACE]["sample_count"] == 0 and by_id[WAIT_TRACE]["wall_ns"] == 90 * MS
    assert by_id[TRACE]["sample_count"] == 2 and by_id[TRACE]["wall_ns"] == 420 * MS
    none = api(
        walled, "/api/v1/traces", service=SVC, has_profile="false", **{"from": "0", "to": END}
    )
    assert none["traces"] == []


def test_traces_through_a_function_timeline_diff_export_wall(walled):
    through = api(
        walled,
        "/api/v1/profile/traces",
        service=SVC,
        profile_type=WALL,
        function="wait_for_inventory",
        **{"from": "0", "to": END},
    )
    assert [t["trace_id"] for t in through["traces"]] == [TRACE]
    assert through["traces"][0]["value"] == 280 * MS
    tl = api(
        walled,
        "/api/v1/timeline",
        service=SVC,
        profile_type=WALL,
        selector='{thread_state="awaiting"}',
        **{"from": "0", "to": END},
    )
    assert sum(v for _, v in tl["points"]) == 280 * MS and tl["unit"] == "nanoseconds"
    left = urllib.parse.urlencode({"trace_id": TRACE, "span_id": ROOT})
    right = urllib.parse.urlencode({"trace_id": TRACE, "span_id": ROOT, "profile_type": WALL})
    d = api(walled, "/api/v1/diff", left=left, right=right)
    assert d["left_total"] == 20 * MS and d["right_total"] == 300 * MS
    code, body, _ = walled.request(
        "GET",
        "/api/v1/export?"
        + urllib.parse.urlencode(
            {"format": "pprof", "trace_id": TRACE, "span_id": ROOT, "profile_type": WALL}
        ),
    )
    assert code == 200
    raw = body
    if raw[:2] == b"\x1f\x8b":
        import gzip

        raw = gzip.decompress(raw)
    from conftest import load_protos

    prof = load_protos().get("perftools.profiles.Profile").FromString(raw)
    st = prof.sample_type[0]
    assert (prof.string_table[st.type], prof.string_table[st.unit]) == ("wall", "nanoseconds")
    assert sum(s.value[0] for s in prof.sample) == 300 * MS


def test_otlp_wall_profile_queryable(server, pb):
    span, trace = (
        bytes.fromhex("00000000000000c1"),
        bytes.fromhex("000000000000000000000000000000c2"),
    )
    body = otlp_profiles_request(
        pb,
        "otlp-wall",
        "otlp_wait",
        span,
        trace,
        sample_type="wall",
        attrs={"thread_state": "blocked"},
    )
    code, resp, _ = server.request(
        "POST", "/v1development/profiles", body, {"Content-Type": "application/x-protobuf"}
    )
    assert code == 200, resp
    types = {
        t["ID"]
        for t in server.connect_json("ProfileTypes", {"start": "1", "end": END})["profileTypes"]
    }
    assert WALL in types
    fg = server.connect_json(
        "SelectMergeStacktraces",
        {
            "profileTypeID": WALL,
            "labelSelector": '{service_name="otlp-wall",thread_state="blocked"}',
            "start": "0",
            "end": END,
        },
    )["flamegraph"]
    assert int(fg["total"]) == 30 * MS and "otlp_wait" in flame_names(fg)
