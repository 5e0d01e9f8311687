"""`spanprof serve` finds the binary, passes the flags and the UI directory, and execs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import BINARY, ROOT


def test_spanprof_serve_execs_the_server(server_binary, tmp_path):
    ui = tmp_path / "ui"
    ui.mkdir()
    (ui / "index.html").write_text("<html>cli-ui</html>")
    log = tmp_path / "out.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "SPANPROF_SERVER_BIN": str(BINARY),
        "SPANPROF_UI_DIR": str(ui),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spanprof",
                "serve",
                "--data-dir",
                str(tmp_path / "data"),
                "--listen",
                "127.0.0.1:0",
                "--retention",
                "2d",
                "--otlp-grpc",
                "127.0.0.1:0",
            ],
            stdout=out,
            stderr=out,
            env=env,
        )
    try:
        deadline = time.time() + 30
        addr = grpc_addr = ""
        while time.time() < deadline and not (addr and grpc_addr):
            for line in log.read_text(errors="replace").splitlines():
                if line.startswith("LISTENING api "):
                    addr = line.split()[-1]
                if line.startswith("LISTENING otlp-grpc "):
                    grpc_addr = line.split()[-1]
            time.sleep(0.05)
        assert addr and grpc_addr, log.read_text()
        with urllib.request.urlopen(f"http://{addr}/api/v1/info", timeout=10) as r:
            assert json.loads(r.read())["server"] == "spanprof"
        with urllib.request.urlopen(f"http://{addr}/some/client/route", timeout=10) as r:
            assert b"cli-ui" in r.read()
        # exec: the Python process became the server, so our signal reaches it directly.
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert "storage closed" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_spanprof_serve_reports_a_missing_binary(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "SPANPROF_SERVER_BIN": str(tmp_path / "nope"),
    }
    r = subprocess.run(
        [sys.executable, "-m", "spanprof", "serve"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 1, r.stderr
    assert f"SPANPROF_SERVER_BIN={tmp_path / 'nope'} is not an executable file" in r.stderr
