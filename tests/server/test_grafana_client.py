"""querier.v1 through a real Connect client: connect-go's client generated from server/proto
(tests/server/grafana_client, built by scripts/setup), Connect protocol, binary proto, as
Grafana's Pyroscope data source speaks it, asserting Pyroscope's semantics."""

from __future__ import annotations

import base64
import json
import subprocess
import time

import pytest
from conftest import CPU, ROOT, ROOT_SPAN, TRACE, push_big_svc_b, top_series_request

CLIENT = ROOT / "build" / "tools" / "spanprof-grafana-client"
END_MS = str(int(time.time() * 1000) + 3_600_000)


@pytest.fixture(scope="module")
def client():
    if not CLIENT.exists():
        pytest.skip(f"{CLIENT} not built (run scripts/setup)")
    return CLIENT


def call(server, client, method: str, req: dict) -> tuple[bool, dict]:
    """(ok, response as protojson) or (False, {"code", "message"} as connect-go read them)."""
    p = subprocess.run(
        [str(client), server.url, method, json.dumps(req)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode in (0, 3), p.stderr
    return p.returncode == 0, json.loads(p.stdout)


def merge(server, client, **fields) -> tuple[bool, dict]:
    req = {"profileTypeID": CPU, "labelSelector": "{}", "start": "0", "end": END_MS, **fields}
    return call(server, client, "SelectMergeStacktraces", req)


def test_selectors_and_formats(loaded, client):
    s = loaded
    ok, r = merge(s, client, traceIdSelector=[TRACE])
    assert ok and int(r["flamegraph"]["total"]) == 5 * 10_000_000
    ok, r = merge(s, client, stackTraceSelector={"callSite": [{"name": "main"}, {"name": "idle"}]})
    assert ok and int(r["flamegraph"]["total"]) == 4 * 10_000_000
    ok, err = merge(s, client, traceIdSelector=[TRACE], spanSelector=[ROOT_SPAN])
    assert not ok and err["code"] == "invalid_argument"
    ok, r = merge(s, client, labelSelector='{service_name="svc-b"}', format="PROFILE_FORMAT_TREE")
    # virtual root, then main with one child: the bytes start 00 00 01 04 "main" 00 01.
    assert ok and "flamegraph" not in r
    assert base64.b64decode(r["tree"])[:10] == b"\x00\x00\x01\x04main\x00\x01"
    ok, r = merge(s, client, format="PROFILE_FORMAT_PPROF")
    assert ok and sum(int(x["value"][0]) for x in r["pprof"]["profile"]["sample"]) == 20 * 10**7
    ok, r = merge(s, client, format="PROFILE_FORMAT_DOT")
    assert ok and r["dot"].startswith('digraph "unnamed" {') and "flamegraph" not in r
    ok, err = merge(s, client, format=7)
    assert not ok and err["code"] == "invalid_argument"


def test_series_top_n_exemplars_and_profile_ids(loaded, pb, client):
    s = loaded
    start, req = top_series_request(push_big_svc_b(s, pb), END_MS)
    ok, r = call(s, client, "SelectSeries", req)
    assert ok
    (series,) = r["series"]  # the top one by value: svc-b (36 samples) over svc-a (14)
    assert series["labels"] == [{"name": "service_name", "value": "svc-b"}]
    (point,) = series["points"]
    assert point["value"] == 36 * 10_000_000
    assert int(point["timestamp"]) == start + 61 * 60_000  # the end of its step
    (ex,) = point["exemplars"]
    assert int(ex["value"]) == 30 * 10_000_000
    ok, p = call(
        s,
        client,
        "SelectMergeProfile",
        {
            "profileTypeID": CPU,
            "labelSelector": "{}",
            "start": "0",
            "end": END_MS,
            "profileIdSelector": [ex["profileId"]],
        },
    )
    assert ok and sum(int(x["value"][0]) for x in p["sample"]) == 30 * 10_000_000
    assert int(p["timeNanos"]) == int(END_MS) * 1_000_000
    ok, p = call(
        s,
        client,
        "SelectMergeProfile",
        {
            "profileTypeID": CPU,
            "labelSelector": '{service_name="svc-a"}',
            "start": "0",
            "end": END_MS,
            "maxNodes": "1",
        },
    )
    # One node: main; everything under it is cut to one "other" frame.
    assert ok and len(p["sample"]) == 1 and "other" in p["stringTable"]
    assert int(p["sample"][0]["value"][0]) == 14 * 10_000_000
    ok, err = call(s, client, "SelectSeries", {**req, "exemplarType": "EXEMPLAR_TYPE_SPAN"})
    assert not ok and err["code"] == "unimplemented"


def test_profile_stats_and_diff(loaded, client):
    s = loaded
    ok, st = call(s, client, "GetProfileStats", {})
    assert ok and st["dataIngested"] is True
    side = {"profileTypeID": CPU, "start": "0", "end": END_MS}
    ok, d = call(
        s,
        client,
        "Diff",
        {
            "left": {**side, "labelSelector": '{service_name="svc-a"}'},
            "right": {**side, "labelSelector": '{service_name="svc-b"}'},
        },
    )
    assert ok
    assert int(d["flamegraph"]["leftTicks"]) == 14 * 10_000_000
    assert int(d["flamegraph"]["rightTicks"]) == 6 * 10_000_000
