"""The README's user path on the tooling CPython: `pip install spanprof[demo]` from the wheel into a
fresh venv in a temporary folder, then `spanprof --version`, `spanprof serve` (querier API and
UI), `spanprof doctor` against it, and `spanprof demo --duration 30` producing traces whose spans
have profiles."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from conftest import (
    SERVER_VERSION,
    TOOL_LABEL,
    UI_VERSION,
    VERSION,
    Venv,
    check_serving,
    free_port,
    http,
    wait_http,
    wheel_for,
)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("user")
    v = Venv(TOOL_LABEL, tmp / "venv", tmp / "work")
    v.pip_install(f"{wheel_for(TOOL_LABEL)}[demo]")
    return v


def site_packages(v: Venv) -> Path:
    return Path(
        v.run(
            [
                v.bin("python"),
                "-c",
                "import spanprof, os; print(os.path.dirname(spanprof.__file__))",
            ]
        ).strip()
    )


def test_version(venv):
    lines = venv.run([venv.bin("spanprof"), "--version"]).splitlines()
    pkg = site_packages(venv)
    assert lines[0] == f"spanprof {VERSION}", lines
    assert lines[1] == f"server {SERVER_VERSION} ({pkg}/bin/spanprof-server)", lines
    assert lines[2] == f"ui {UI_VERSION} ({pkg}/_ui)", lines


def test_serve_and_doctor(venv, stop_later):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = venv.cwd / "data"
    server = venv.popen(
        [venv.bin("spanprof"), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stop_later(server)
    wait_http(f"{url}/api/v1/info", server)
    check_serving(url, site_packages(venv) / "_ui" / "index.html")

    report = venv.run([venv.bin("spanprof"), "doctor", "-s", url])
    assert "sampler          working" in report, report
    assert f"server binary      {site_packages(venv)}/bin/spanprof-server" in report, report
    assert f"answers  yes, spanprof server {SERVER_VERSION}" in report, report
    server.send_signal(signal.SIGTERM)
    assert server.wait(30) == 0, server.stderr.read() if server.stderr else ""

    report = venv.run([venv.bin("spanprof"), "doctor", "-s", url])
    assert "answers  no:" in report, report


def test_demo_produces_traces_with_span_profiles(venv, stop_later):
    demo = venv.popen(
        [venv.bin("spanprof"), "demo", "--duration", "30", "--port", "0", "--otlp-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    stop_later(demo)
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 90
    url = None
    while url is None and time.monotonic() < deadline and demo.poll() is None:
        for line in list(lines):
            if "UI at http://" in line:
                url = line.split("UI at ", 1)[1].split()[0].rstrip("/")
        time.sleep(0.2)
    assert url, "".join(lines)
    check_serving(url)

    # Traces come within seconds, their profiles with the service's first upload (every 5 s).
    t0 = int(time.time() * 1000) - 120_000
    found = []
    while not found and demo.poll() is None:
        q = urllib.parse.urlencode({"service": "spanprof-demo", "from": t0, "to": t0 + 600_000})
        traces = json.loads(http(f"{url}/api/v1/traces?{q}"))["traces"]
        found = [t for t in traces if t["has_profile"] and t["sample_count"] > 0]
        time.sleep(1)
    assert found, "".join(lines)
    trace = json.loads(http(f"{url}/api/v1/traces/{found[0]['trace_id']}"))
    (root,) = [s for s in trace["spans"] if not s["parent_span_id"]]
    q = urllib.parse.urlencode(
        {"trace_id": trace["trace_id"], "span_id": root["span_id"], "mode": "children"}
    )
    fg = json.loads(http(f"{url}/api/v1/flamegraph?{q}"))
    assert len(fg["names"]) > 1 and fg["sample_count"] > 0, fg
    assert demo.wait(120) == 0, "".join(lines)
    reader.join(10)
