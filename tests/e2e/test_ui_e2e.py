"""End to end in a real browser: `spanprof demo` (the real server fed by the real instrumented
service) and Debian's chromium driven by playwright-core (ui_flow.mjs): open Traces, open the
slowest GET /cpu trace, click its CPU-heavy span, find the expected function in the flame graph,
switch to span-and-children, open Compare, look at Profiles. Screenshots go to test-artifacts/e2e/.

Skips (saying why) only when chromium or the server binary is missing; anything else missing
(node, playwright-core, the built UI) is a failure, because scripts/setup installs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from spanprof._cli_serve import find_server_binary

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
EXPECTED_FUNCTION = "count_primes_slowly"
CHROMIUM = shutil.which("chromium")
SERVER = find_server_binary()

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (scripts/setup installs Debian's chromium)",
    ),
    pytest.mark.skipif(
        SERVER is None,
        reason="spanprof-server is not built ($SPANPROF_SERVER_BIN, build/server/spanprof-server, PATH)",
    ),
]


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    assert (ROOT / "ui" / "dist" / "index.html").is_file(), (
        "ui/dist is not built: run scripts/build"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spanprof",
            "demo",
            "--port",
            "0",
            "--otlp-port",
            "0",
            "--duration",
            "600",
            "--rate",
            "6",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: List[str] = []
    url = None
    try:
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"UI at (http://\S+?)/? ", line)
            if m:
                url = m.group(1)
                break
        assert url, "spanprof demo did not print its URL:\n" + "".join(lines)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        (ARTIFACTS).mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "demo.log").write_text("".join(lines) + (out or ""))


def wait_for_profiled_cpu_trace(url: str, timeout: float = 120) -> Dict[str, Any]:
    """Polls the API until a GET /cpu trace exists whose compute_report span has samples."""
    deadline = time.monotonic() + timeout
    seen = "no answer yet"
    while time.monotonic() < deadline:
        now = int(time.time() * 1000)
        q = urllib.parse.urlencode(
            {
                "service": "spanprof-demo",
                "name": "GET /cpu",
                "from": now - 900_000,
                "to": now,
                "sort": "duration",
                "limit": "50",
            }
        )
        traces = get_json(f"{url}/api/v1/traces?{q}")["traces"]
        seen = f"{len(traces)} GET /cpu traces, {sum(1 for t in traces if t['has_profile'])} with a profile"
        for t in traces:
            if not t["has_profile"]:
                continue
            full = get_json(f"{url}/api/v1/traces/{t['trace_id']}")
            for s in full["spans"]:
                if s["name"] == "compute_report" and s["self_samples"] > 0:
                    return t
        time.sleep(2)
    raise AssertionError(f"no profiled GET /cpu trace within {timeout:.0f} s ({seen})")


def test_browser_flow(demo: str) -> None:
    # GIVEN the demo running and at least one GET /cpu trace whose CPU-heavy span has samples
    wait_for_profiled_cpu_trace(demo)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)  # only this run's failure, if any
    node = shutil.which("node")
    assert node, "node is not installed (scripts/setup installs it)"
    assert (ROOT / "ui" / "node_modules" / "playwright-core").is_dir(), (
        "playwright-core missing: run scripts/setup (npm ci in ui/)"
    )
    # WHEN a real browser walks through the UI
    r = subprocess.run(
        [
            node,
            str(ROOT / "tests" / "e2e" / "ui_flow.mjs"),
            demo,
            str(ARTIFACTS),
            EXPECTED_FUNCTION,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "{}"
    result = json.loads(last)
    (ARTIFACTS / "flow.json").write_text(json.dumps(result, indent=2))
    # THEN every step passed and left a screenshot
    assert r.returncode == 0 and result.get("ok"), (
        f"browser flow failed at {result.get('failed_step')!r}: {result.get('error')}\n{r.stderr[-2000:]}"
    )
    steps = {s["step"]: s for s in result["steps"]}
    traces_step = steps["open Traces and search for the CPU-heavy endpoint"]
    assert traces_step["traces"] >= 1 and traces_step["sorted_desc"]
    assert {"compute_report", "fibonacci"} <= set(steps["open the slowest trace"]["spans"])
    assert not any(
        "fibonacci_recursive" in f
        for f in steps["click the CPU-heavy span (this span only)"]["frames"]
    )
    assert any(
        EXPECTED_FUNCTION in f for f in steps["click the CPU-heavy span (this span only)"]["frames"]
    )
    assert any(
        EXPECTED_FUNCTION in f for f in steps["switch to this span and its children"]["frames"]
    )
    assert EXPECTED_FUNCTION in steps["hover the expected frame and read its tooltip"]["tooltip"]
    for name in (
        "01-traces",
        "03-span-flamegraph",
        "06-span-and-children",
        "07-compare",
        "08-profiles",
    ):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000, name
