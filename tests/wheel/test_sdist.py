"""The sdist on a second CPython: `pip install` builds the agent and the server from source (the
UI comes prebuilt inside it) in a fresh venv outside the checkout, and the result serves."""

from __future__ import annotations

import subprocess

import pytest
from conftest import (
    SDIST_TIMEOUT_S,
    SERVER_VERSION,
    TOOL_LABEL,
    UI_VERSION,
    Venv,
    check_serving,
    free_port,
    in_sid,
    sdist,
    venv_labels,
    wait_http,
)

OTHERS = [v for v in venv_labels() if v != TOOL_LABEL and not v.endswith("t") and not in_sid(v)]


@pytest.mark.skipif(not OTHERS, reason="no second host CPython venv")
def test_sdist_builds_and_serves(tmp_path, stop_later):
    label = "3.12" if "3.12" in OTHERS else OTHERS[-1]
    v = Venv(label, tmp_path / "venv", tmp_path / "work")
    v.pip_install("--no-cache-dir", str(sdist()), timeout=SDIST_TIMEOUT_S)
    lines = v.run([v.bin("spanprof"), "--version"]).splitlines()
    assert lines[1].startswith(f"server {SERVER_VERSION} ("), lines
    assert lines[2].startswith(f"ui {UI_VERSION} ("), lines

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = v.popen(
        [
            v.bin("spanprof"),
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(v.cwd / "d"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop_later(server)
    wait_http(f"{url}/api/v1/info", server)
    check_serving(url)
