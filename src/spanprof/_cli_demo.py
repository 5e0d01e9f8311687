"""``spanprof demo``: the server on a fresh data directory, the instrumented demo service
(spanprof.demo.service, its own process) and a bounded load against it; prints the URL to open and
runs until Ctrl-C (or ``--duration`` seconds)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import List, Optional

from spanprof._install import (
    find_server_binary,
    find_ui_dir,
    server_missing_message,
    ui_missing_message,
)

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=4040, help="UI and API port (0: any free port)")
    p.add_argument("--otlp-port", type=int, default=4318, help="OTLP/HTTP port (0: any free port)")
    p.add_argument("--data-dir", help="server data directory (default: a fresh temporary one)")
    p.add_argument("--keep-data", action="store_true", help="keep the temporary data directory")
    p.add_argument(
        "--duration",
        type=float,
        default=0,
        help="stop after this many seconds (0: run until Ctrl-C)",
    )
    p.add_argument(
        "--rate", type=float, default=4.0, help="requests per second sent to the demo service"
    )
    p.add_argument("--work-scale", type=float, default=1.0, help="multiplies the demo's CPU work")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_http(url: str, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} {_exit_text(proc.returncode)} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                r.read()
                return
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s ({last})")


def _stop(proc: Optional[subprocess.Popen], sig: int, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _tail(path: str, n: int = 20) -> str:
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:])
    return ""


def main(args: argparse.Namespace) -> int:
    from spanprof.demo.load import LoadDriver

    binary = find_server_binary()
    if not binary:
        print(server_missing_message("spanprof demo"), file=sys.stderr)
        return 2
    for name, port in (("--port", args.port), ("--otlp-port", args.otlp_port)):
        if port and port_in_use(port):
            print(
                f"spanprof demo: port {port} is in use; pick another with {name} (0 = any free port)",
                file=sys.stderr,
            )
            return 2
    port = args.port or free_port()
    otlp_port = args.otlp_port or free_port()
    own_dir = args.data_dir is None
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="spanprof-demo-")
    os.makedirs(data_dir, exist_ok=True)
    server_log = os.path.join(data_dir, "server.log")
    url = f"http://127.0.0.1:{port}"
    server: Optional[subprocess.Popen] = None
    service: Optional[subprocess.Popen] = None
    driver: Optional[LoadDriver] = None

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Both explicitly: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    old_term = signal.signal(signal.SIGTERM, on_term)
    old_int = signal.signal(signal.SIGINT, on_term)
    try:
        cmd: List[str] = [
            binary,
            "--data-dir",
            data_dir,
            "--listen",
            f"127.0.0.1:{port}",
            "--otlp-listen",
            f"127.0.0.1:{otlp_port}",
        ]
        ui_dir = find_ui_dir()
        if ui_dir:
            cmd += ["--ui-dir", ui_dir]
        else:
            print(ui_missing_message("spanprof demo"), file=sys.stderr)
        with open(server_log, "ab") as log:
            # Own session: Ctrl-C reaches only this process, which then stops the children in order.
            server = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_http(f"{url}/api/v1/info", server, 30, "the server")
        except RuntimeError as e:
            print(f"spanprof demo: {e}\n{_tail(server_log)}", file=sys.stderr)
            return 1

        svc_port = free_port()
        env = dict(os.environ)
        pkg_parent = os.path.dirname(_PKG_DIR)
        env["PYTHONPATH"] = pkg_parent + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spanprof.demo.service",
                "--port",
                str(svc_port),
                "--server",
                url,
                "--otlp",
                f"http://127.0.0.1:{otlp_port}",
                "--work-scale",
                str(args.work_scale),
            ],
            env=env,
            start_new_session=True,
        )
        svc_url = f"http://127.0.0.1:{svc_port}"
        try:
            wait_http(f"{svc_url}/openapi.json", service, 60, "the demo service")
        except RuntimeError as e:
            print(f"spanprof demo: {e}", file=sys.stderr)
            return 1
        driver = LoadDriver(svc_url, rate=args.rate)
        driver.start()
        print(f"spanprof demo: UI at {url}/ (open {url}/#/traces)", flush=True)
        print(
            f"spanprof demo: service {svc_url} under load (fast, slow, CPU-heavy requests); OTLP at "
            f"http://127.0.0.1:{otlp_port}; data in {data_dir}. Traces show up within seconds, their "
            "flame graphs after the first profile upload (every 5 s). Ctrl-C stops.",
            flush=True,
        )
        started = time.monotonic()
        next_report = started + 15
        while not args.duration or time.monotonic() - started < args.duration:
            time.sleep(0.5)
            for name, proc in (("server", server), ("demo service", service)):
                if proc.poll() is not None:
                    print(
                        f"spanprof demo: the {name} {_exit_text(proc.returncode)}",
                        file=sys.stderr,
                    )
                    if proc is server:
                        print(_tail(server_log), file=sys.stderr)
                    return 1
            if time.monotonic() >= next_report:
                next_report += 15
                err = f", {driver.errors} failed ({driver.last_error})" if driver.errors else ""
                print(f"spanprof demo: {driver.total()} requests sent{err}", flush=True)
        return 0
    except KeyboardInterrupt:
        print("\nspanprof demo: stopping", file=sys.stderr)
        return 0
    finally:
        signal.signal(signal.SIGTERM, old_term)
        signal.signal(signal.SIGINT, old_int)
        if driver:
            driver.stop()
        # The service flushes its last spans and profile window on SIGINT; then the server.
        _stop(service, signal.SIGINT, 20)
        _stop(server, signal.SIGTERM, 20)
        if own_dir and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
