"""Shared by the browser tests: one real `spanprof demo` (the real server fed by the real
instrumented service) for the whole session, and helpers that wait on its data."""

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
CHROMIUM = shutil.which("chromium")
SERVER = find_server_binary()


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="session")
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


def run_check_flow(script: str, *args: str, record: str) -> Dict[str, Any]:
    """Runs a browser flow built on browser.mjs (node <script> <args>), saves its JSON result as
    test-artifacts/e2e/<record> and fails with the step that failed; returns the result."""
    node = shutil.which("node")
    assert node, "node is not installed (scripts/setup installs it)"
    r = subprocess.run(
        [node, str(ROOT / "tests" / "e2e" / script), *args],
        capture_output=True,
        text=True,
        timeout=180,
    )
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "{}"
    result = json.loads(last)
    (ARTIFACTS / record).write_text(json.dumps(result, indent=2))
    assert r.returncode == 0 and result.get("ok"), (
        f"failed at {result.get('failed_step')!r}: {result.get('error')}\n{r.stderr[-2000:]}"
    )
    assert all(c["ok"] for c in result["checks"])
    return result
