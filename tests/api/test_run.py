"""`spanprof run -- python app.py`: profiling, span linking and export with no change to the
program, configured from options and SPANPROF_*/PYROSCOPE_*/OTEL_* variables, in every child."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support import SRC, free_port, run_python, samples_with

VENV_BIN = Path(sys.executable).parent


def venv_tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.skip(f"{name} is installed in the tooling venv only")
    return str(path)


APP = textwrap.dedent(
    """
    # An ordinary OpenTelemetry program: it never mentions spanprof.
    import json, os, subprocess, sys, time
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    tracer = trace.get_tracer("app")

    def run_app_work(seconds):
        end = time.thread_time() + seconds
        x = 0
        while time.thread_time() < end:
            x += sum(i * i for i in range(500))
        return x

    with tracer.start_as_current_span("handle") as span:
        run_app_work(0.5)
    child = None
    if len(sys.argv) > 1 and sys.argv[1] == "--spawn":
        code = "import time\\ndef spawned_child_work():\\n    end = time.thread_time() + 0.5\\n    while time.thread_time() < end: pass\\nspawned_child_work()\\n"
        child = subprocess.run([sys.executable, "-c", code]).returncode
    print(json.dumps({
        "span_id": format(span.get_span_context().span_id, "016x"),
        "attributes": dict(exporter.get_finished_spans()[0].attributes),
        "pid": os.getpid(),
        "child": child,
        "sitecustomize_marker": os.environ.get("CHAINED_SITECUSTOMIZE_RAN"),
        "otel_auto_instrumentation": "opentelemetry.instrumentation.auto_instrumentation" in sys.modules,
    }))
    """
)


def write_app(tmp_path: Path) -> Path:
    app = tmp_path / "app.py"
    app.write_text(APP)
    return app


def spanprof_run(options, command, env):
    return run_python(
        "", env, argv=[sys.executable, "-m", "spanprof", "run", *options, "--", *command]
    )


def test_run_profiles_and_links_spans_without_code_change(tmp_path, receiver):
    app = write_app(tmp_path)
    out = spanprof_run(
        ["-n", "zero-code", "-s", receiver.url, "--upload-interval", "0.5", "-t", "team=core"],
        [sys.executable, str(app)],
        {},
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # the TracerProvider the program made got the processor: root spans carry the profile id
    assert result["attributes"]["pyroscope.profile.id"] == result["span_id"]
    series = receiver.series()
    assert {s.labels["service_name"] for s in series} == {"zero-code"}
    assert all(s.labels.get("team") == "core" for s in series)
    work = samples_with(series, "run_app_work")
    assert work and all(s.labels.get("span_id") == result["span_id"] for s in work)


def test_run_reads_pyroscope_and_otel_environment_and_profiles_children(tmp_path, receiver):
    app = write_app(tmp_path)
    env = {
        "PYROSCOPE_SERVER_ADDRESS": receiver.url,
        "OTEL_SERVICE_NAME": "from-otel",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
        "PYROSCOPE_SAMPLE_RATE": "200",
        "SPANPROF_REPORT_PID": "true",
    }
    out = spanprof_run([], [sys.executable, str(app), "--spawn"], env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["child"] == 0
    series = receiver.series()
    assert {s.labels["service_name"] for s in series} == {"from-otel"}
    assert all(s.labels.get("deployment.environment") == "test" for s in series)
    app_pids = {s.labels.get("pid") for s in samples_with(series, "run_app_work")}
    child_pids = {s.labels.get("pid") for s in samples_with(series, "spawned_child_work")}
    assert app_pids == {str(result["pid"])}
    assert len(child_pids) == 1 and child_pids != app_pids


def test_run_chains_an_existing_sitecustomize(tmp_path):
    app = write_app(tmp_path)
    theirs = tmp_path / "their_site"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text(
        "import os\nos.environ['CHAINED_SITECUSTOMIZE_RAN'] = 'yes'\n"
    )
    out_dir = tmp_path / "profiles"
    env = {"PYTHONPATH": str(theirs) + ":" + str(SRC)}
    out = spanprof_run(["-s", f"file://{out_dir}"], [sys.executable, str(app)], env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["sitecustomize_marker"] == "yes"
    assert list(out_dir.glob("*.pb.gz"))


def test_run_rejects_bad_configuration_before_starting_the_program(tmp_path):
    marker = tmp_path / "ran"
    out = spanprof_run(
        ["-s", "htp://nowhere"], [sys.executable, "-c", f"open({str(marker)!r}, 'w')"], {}
    )
    assert out.returncode == 2
    assert "server_address" in out.stderr
    assert not marker.exists()
    out = spanprof_run([], [sys.executable, "-c", "pass"], {"PYROSCOPE_SAMPLE_RATE": "lots"})
    assert out.returncode == 2 and "PYROSCOPE_SAMPLE_RATE" in out.stderr


def test_run_without_command_is_a_usage_error():
    out = spanprof_run([], [], {})
    assert out.returncode == 2


def test_run_with_opentelemetry_instrument_links_spans(tmp_path, receiver):
    tool = venv_tool("opentelemetry-instrument")
    app = write_app(tmp_path)
    env = {
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    out = spanprof_run(
        ["-n", "otel-instrumented", "-s", receiver.url],
        [tool, "--service_name", "ignored-by-spanprof-option", sys.executable, str(app)],
        env,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert (
        result["otel_auto_instrumentation"] is True
    )  # opentelemetry-instrument's bootstrap ran too
    # Without a distro opentelemetry-instrument records nothing by itself: one line says so.
    from importlib.metadata import entry_points

    no_distro = "opentelemetry-instrument alone records no traces here"
    has_distro = any(True for _ in entry_points(group="opentelemetry_distro"))
    assert (no_distro in out.stderr) != has_distro, out.stderr
    assert result["attributes"]["pyroscope.profile.id"] == result["span_id"]
    work = samples_with(receiver.series(), "run_app_work")
    assert work and all(s.labels.get("span_id") == result["span_id"] for s in work)


WSGI_APP = """
import os, time

def gunicorn_handler_work(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        x += sum(i * i for i in range(500))
    return x

def app(environ, start_response):
    gunicorn_handler_work(0.3)
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Worker-Pid", str(os.getpid()))])
    return [b"ok"]
"""


def serve_under_spanprof_run(name, receiver, server_argv, port, requests, wait_tries):
    """Run a pre-fork/multi-worker server under `spanprof run`, wait until it answers, send
    batches of `requests` concurrent requests until two workers have answered (which worker
    accepts a connection is the kernel's choice), stop it with SIGTERM; returns (its pid, its
    stderr, the pids of the workers that answered)."""
    env = dict(os.environ, PYTHONPATH=str(SRC))
    cmd = [sys.executable, "-m", "spanprof", "run", "-n", name, "-s", receiver.url, "--report-pid",
           "--upload-interval", "0.5", "--", *server_argv]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    served = set()

    def get(_):
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.read(), r.headers.get("x-worker-pid")

    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(wait_tries):
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        with ThreadPoolExecutor(6) as pool:
            for _ in range(10):
                answers = list(pool.map(get, range(requests)))
                assert [body for body, _ in answers] == [b"ok"] * requests
                served |= {pid for _, pid in answers}
                if len(served) >= 2:
                    break
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    return proc.pid, err, served


def test_run_gunicorn_prefork_workers_each_report_their_pid(tmp_path, receiver):
    gunicorn = venv_tool("gunicorn")
    (tmp_path / "wsgi_app.py").write_text(WSGI_APP)
    port = free_port()
    master_pid, err, served = serve_under_spanprof_run(
        "gunicorn-app", receiver,
        [gunicorn, "-w", "2", "-b", f"127.0.0.1:{port}", "--chdir", str(tmp_path), "wsgi_app:app"],
        port, requests=12, wait_tries=200,
    )  # fmt: skip
    pids = {s.labels.get("pid") for s in samples_with(receiver.series(), "gunicorn_handler_work")}
    assert str(master_pid) not in pids  # the master serves nothing
    assert len(served) == 2, (served, err[-2000:])
    assert pids == served, (pids, served, err[-2000:])  # each worker profiles itself


ASGI_APP = """
import os, time

def uvicorn_handler_work(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        x += sum(i * i for i in range(500))
    return x

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    uvicorn_handler_work(0.3)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"x-worker-pid", str(os.getpid()).encode())]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def test_run_uvicorn_spawned_workers_each_report_their_pid(tmp_path, receiver):
    uvicorn = venv_tool("uvicorn")
    (tmp_path / "asgi_app.py").write_text(ASGI_APP)
    port = free_port()
    server_pid, err, served = serve_under_spanprof_run(
        "uvicorn-app", receiver,
        [uvicorn, "--workers", "2", "--port", str(port), "--host", "127.0.0.1", "--app-dir",
         str(tmp_path), "--log-level", "warning", "asgi_app:app"],
        port, requests=16, wait_tries=300,
    )  # fmt: skip
    pids = {s.labels.get("pid") for s in samples_with(receiver.series(), "uvicorn_handler_work")}
    assert str(server_pid) not in pids  # the supervisor serves nothing
    assert len(served) == 2, (served, err[-2000:])
    assert pids == served, (pids, served, err[-2000:])  # each spawned worker profiles itself


UNTRACED_APP = textwrap.dedent(
    """
    # Uses the OpenTelemetry API only: no TracerProvider, no exporter.
    import json, time
    from opentelemetry import trace

    tracer = trace.get_tracer("untraced")

    def untraced_app_work(seconds):
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            sum(i * i for i in range(500))

    with tracer.start_as_current_span("untraced-job") as span:
        untraced_app_work(0.5)
    print(json.dumps({
        "span_id": format(span.get_span_context().span_id, "016x"),
        "provider": type(trace.get_tracer_provider()).__module__,
    }))
    """
)


def trace_posts(receiver):
    return [r for r in receiver.requests if r.path == "/v1/traces" and r.method == "POST"]


def test_run_sets_up_opentelemetry_for_a_program_that_does_not(tmp_path, receiver):
    app = tmp_path / "untraced.py"
    app.write_text(UNTRACED_APP)
    out = spanprof_run(
        ["-n", "untraced", "-s", receiver.url, "--upload-interval", "0.5"],
        [sys.executable, str(app)],
        {},
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["provider"] == "opentelemetry.sdk.trace", result
    # The span went to the server as OTLP (flushed at exit) and labels the samples taken in it.
    assert receiver.wait_for(lambda: trace_posts(receiver), timeout=30)
    body = b"".join(r.body for r in trace_posts(receiver))
    assert bytes.fromhex(result["span_id"]) in body and b"untraced-job" in body
    work = samples_with(receiver.series(), "untraced_app_work")
    assert work and all(s.labels.get("span_id") == result["span_id"] for s in work)


def test_run_leaves_opentelemetry_alone_when_told_or_set_up_by_the_program(tmp_path, receiver):
    app = tmp_path / "untraced.py"
    app.write_text(UNTRACED_APP)
    out = spanprof_run(["-s", receiver.url, "--no-otel-setup"], [sys.executable, str(app)], {})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["provider"] == "opentelemetry.trace"
    # A program with its own provider (APP) keeps it: nothing is exported by spanprof's set-up.
    out = spanprof_run(["-s", receiver.url], [sys.executable, str(write_app(tmp_path))], {})
    assert out.returncode == 0, out.stderr
    assert receiver.wait_for(lambda: receiver.series(), timeout=30)
    assert not trace_posts(receiver)
