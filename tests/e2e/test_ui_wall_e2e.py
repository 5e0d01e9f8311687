"""Wall-clock profiles in the trace view (issue #15), in a real browser against a real
`spanprof-server` fed over real HTTP: a push.v1 request with the agent's CPU series and its wall
series (`__name__=wall`, `thread_state`/`task_name` sample labels, a synthetic `<await Future>`
leaf) plus the trace's spans as OTLP/HTTP JSON. ui_wall_flow.mjs then checks the CPU/Wall switch,
Wall as the default of the mostly waiting span and CPU of the busy one, the waterfall's
CPU/wait/await bars, the thread_state filter, and the explanation naming the waiting line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from conftest import run_check_flow

from spanprof._cli_serve import find_server_binary

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
sys.path.insert(0, str(ROOT / "tests" / "server"))
from wire import load_protos, make_pprof, push_series  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None or shutil.which("protoc") is None,
    reason="chromium and protoc are needed (scripts/setup installs both)",
)

TRACE = "5a11ce0000000000000000000000a001"
ROOT_SPAN = "5a11ce000000a001"  # GET /slow: no samples of its own, as in the demo
RENDER_SPAN = "5a11ce000000a002"  # render_page: busy on CPU
WAIT_SPAN = "5a11ce000000a003"  # wait_for_inventory: awaits asyncio.sleep
MS = 1_000_000
SERVICE = "/srv/shop/service.py"
TASKS = "/usr/lib/python3.11/asyncio/tasks.py"


def labels(active: str, **extra: str) -> dict[str, str]:
    return {
        "span_id": ROOT_SPAN,
        "active_span_id": active,
        "trace_id": TRACE,
        "span_name": "GET /slow",
        **extra,
    }


def push(url: str) -> None:
    pb = load_protos()
    now = time.time_ns()
    handle = ("handle_slow", SERVICE, 80)
    render = ["main", handle, ("render_page", SERVICE, 120), ("format_rows", SERVICE, 131)]
    wait = ["main", handle, ("wait_for_inventory", SERVICE, 88), ("sleep", TASKS, 665)]
    wall = [
        (
            [*wait, ("<await Future>", "", 0)],
            30,
            labels(WAIT_SPAN, thread_state="awaiting", task_name="Task"),
        ),
        (render, 8, labels(RENDER_SPAN, thread_state="running", task_name="Task")),
        (render[:3], 1, labels(RENDER_SPAN, thread_state="gil_wait", task_name="Task")),
    ]
    cpu = [(render, 8, labels(RENDER_SPAN))]
    series = {"service_name": "shop", "env": "e2e"}
    body = push_series(
        pb,
        [
            ({"__name__": "process_cpu", **series}, make_pprof(pb, cpu, time_ns=now)),
            ({"__name__": "wall", **series}, make_pprof(pb, wall, time_ns=now, sample_type="wall")),
        ],
    )
    post(f"{url}/push.v1.PusherService/Push", body, "application/proto")
    spans = [
        (ROOT_SPAN, "", "GET /slow", now - 420 * MS, now),
        (WAIT_SPAN, ROOT_SPAN, "wait_for_inventory", now - 415 * MS, now - 105 * MS),
        (RENDER_SPAN, ROOT_SPAN, "render_page", now - 100 * MS, now - 5 * MS),
    ]
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": sid,
                                **({"parentSpanId": parent} if parent else {}),
                                "name": name,
                                "startTimeUnixNano": str(start),
                                "endTimeUnixNano": str(end),
                            }
                            for sid, parent, name, start, end in spans
                        ]
                    }
                ],
            }
        ]
    }
    post(f"{url}/v1/traces", json.dumps(doc).encode(), "application/json")


def post(url: str, body: bytes, content_type: str) -> None:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200, r.read()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    binary = find_server_binary()
    assert binary, "spanprof-server is not built: run scripts/build"
    assert (ROOT / "ui" / "dist" / "index.html").is_file(), (
        "ui/dist is not built: run scripts/build"
    )
    with tempfile.TemporaryDirectory(prefix="spanprof-wall-e2e-") as d:
        log_path = os.path.join(d, "server.log")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    binary,
                    "--data-dir",
                    d,
                    "--listen",
                    "127.0.0.1:0",
                    "--ui-dir",
                    str(ROOT / "ui" / "dist"),
                ],
                stdout=log,
                stderr=log,
            )
            try:
                deadline = time.monotonic() + 30
                url = ""
                while not url:
                    text = Path(log_path).read_text(errors="replace")
                    found = [ln for ln in text.splitlines() if ln.startswith("LISTENING api ")]
                    if found:
                        url = "http://" + found[0].split()[-1]
                        break
                    assert proc.poll() is None, f"server exited early:\n{text}"
                    assert time.monotonic() < deadline, f"server did not start:\n{text}"
                    time.sleep(0.05)
                push(url)
                yield url
            finally:
                proc.terminate()
                proc.wait(30)


def test_wall_profiles_in_the_trace_view(server: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "wall-failure.png").unlink(missing_ok=True)
    result = run_check_flow(
        "ui_wall_flow.mjs", server, str(ARTIFACTS), TRACE, record="wall-flow.json"
    )
    assert len(result["checks"]) >= 10
