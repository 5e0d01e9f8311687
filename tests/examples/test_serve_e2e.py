"""docs/grafana.md's claim, end to end with a real `spanprof serve`: an example service sends its
profiles and traces to the server, and the query Grafana makes for "Profiles for this span"
(SelectMergeSpanProfile with the span's pyroscope.profile.id, the CPU profile type and
service_name from service.name) returns the slow endpoint's code. Also the UI's own route."""

from __future__ import annotations

import json
import signal
import time
import urllib.parse
import urllib.request

from harness import PYTHON, example_env, free_port, get, wait_http

PROFILE_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def post_json(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def poll(fetch, done, timeout: float = 30.0):
    """fetch() until done(result) or the deadline; returns the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.3)


def test_grafana_span_link_query_against_spanprof_serve(tmp_path, receiver, start_example):
    server_port, app_port = free_port(), free_port()
    server_url = f"http://127.0.0.1:{server_port}"
    server = start_example(
        [PYTHON, "-m", "spanprof", "serve", "--data-dir", str(tmp_path / "data"),
         "--listen", f"127.0.0.1:{server_port}"],
        example_env(receiver),
    )  # fmt: skip
    wait_http(f"{server_url}/api/v1/info", server)

    # The example as the docs describe it: profiles and OTLP traces both to spanprof serve.
    env = example_env(receiver, PORT=str(app_port))
    env["SPANPROF_SERVER_ADDRESS"] = env["OTEL_EXPORTER_OTLP_ENDPOINT"] = server_url
    t0 = int(time.time() * 1000)
    app = start_example([PYTHON, "examples/fastapi_service/app.py"], env)
    wait_http(f"http://127.0.0.1:{app_port}/fast", app)
    for _ in range(3):
        get(f"http://127.0.0.1:{app_port}/slow?n=60000")
    app.stop(signal.SIGINT)  # flushes the last spans and profile window
    t1 = int(time.time() * 1000) + 1000

    # The server commits writes in groups: wait until the three traces and their profiles are in.
    query = urllib.parse.urlencode({"service": "fastapi-example", "from": t0 - 60_000, "to": t1})
    slow = poll(
        lambda: [
            t
            for t in json.loads(get(f"{server_url}/api/v1/traces?{query}"))["traces"]
            if t["root_name"] == "GET /slow" and t["has_profile"]
        ],
        done=lambda found: len(found) == 3,
    )
    assert len(slow) == 3, slow
    slow.sort(key=lambda t: -t["sample_count"])
    trace = json.loads(get(f"{server_url}/api/v1/traces/{slow[0]['trace_id']}"))
    (root,) = [s for s in trace["spans"] if not s["parent_span_id"]]
    profile_id = root["attributes"]["pyroscope.profile.id"]
    assert profile_id == root["span_id"]

    # What Grafana's Tempo data source asks the Pyroscope data source (docs/grafana.md).
    request = {
        "profileTypeID": PROFILE_TYPE,
        "labelSelector": '{service_name="fastapi-example"}',
        "spanSelector": [profile_id],
        "start": str(t0 - 60_000),
        "end": str(t1 + 60_000),
    }
    url = f"{server_url}/querier.v1.QuerierService/SelectMergeSpanProfile"
    resp = poll(lambda: post_json(url, request), done=lambda r: len(r["flamegraph"]["names"]) > 1)
    names = resp["flamegraph"]["names"]
    assert "count_primes" in " ".join(names), names

    # The UI's routes: the root span with its children, and the child span alone.
    base = f"{server_url}/api/v1/flamegraph"
    root_fg = json.loads(
        get(f"{base}?trace_id={trace['trace_id']}&span_id={profile_id}&mode=children")
    )
    assert "count_primes" in root_fg["names"], root_fg["names"]
    (child,) = [s for s in trace["spans"] if s["name"] == "count_primes"]
    child_fg = json.loads(get(f"{base}?trace_id={trace['trace_id']}&span_id={child['span_id']}"))
    assert "count_primes" in child_fg["names"], child_fg["names"]

    # docs/concepts.md: aggregate all spans of one name over a time range.
    q = urllib.parse.urlencode(
        {"service": "fastapi-example", "span_name": "count_primes", "from": t0 - 60_000, "to": t1}
    )
    by_name = json.loads(get(f"{base}?{q}"))
    assert "count_primes" in by_name["names"]
    assert by_name["sample_count"] > 0
    server.stop(signal.SIGTERM)
