"""`spanprof run -- python app.py`: profiling, span linking and export with no change to the
program, configured from options and SPANPROF_*/PYROSCOPE_*/OTEL_* variables, in every child."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from support import run_python, samples_with

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
    env = {"PYTHONPATH": str(theirs) + ":" + str(Path(__file__).resolve().parents[2] / "src")}
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
