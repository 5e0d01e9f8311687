"""The built UI in a real browser against the JSON fixtures (ui/tests/fixtures, pinned clock),
served by `vite preview` with the dev-only fixture API: empty-span explanations, the merged
profile, keyboard navigation, shared links, the top table and error states (ui_fixture_flow.mjs).
Needs no server; skips only when chromium is missing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from conftest import run_check_flow

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "ui"
ARTIFACTS = ROOT / "test-artifacts" / "e2e"

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="chromium is not installed (scripts/setup installs Debian's chromium)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def preview() -> Iterator[str]:
    assert (UI / "dist" / "index.html").is_file(), "ui/dist is not built: run scripts/build"
    assert (UI / "node_modules" / ".bin" / "vite").exists(), (
        "ui/node_modules missing: run scripts/setup"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            str(UI / "node_modules" / ".bin" / "vite"),
            "preview",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--strictPort",
        ],
        cwd=UI,
        env=dict(os.environ, SPANPROF_UI_FIXTURES="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/services", timeout=2) as r:
                    assert json.loads(r.read())["services"]
                break
            except OSError:
                assert proc.poll() is None, "vite preview exited"
                assert time.monotonic() < deadline, "vite preview did not start"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_fixture_flows(preview: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "fixture-failure.png").unlink(missing_ok=True)  # only this run's failure, if any
    result = run_check_flow(
        "ui_fixture_flow.mjs", preview, str(ARTIFACTS), record="fixture-flow.json"
    )
    assert len(result["checks"]) >= 14 and all(c["ok"] for c in result["checks"])
