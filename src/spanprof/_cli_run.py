"""``spanprof run [options] -- command ...``: runs a Python program (``python app.py``,
``gunicorn ...``, ``uvicorn ...``) with profiling and span linking and no change to its code.

Options become SPANPROF_* environment variables, the bootstrap directory goes first on
PYTHONPATH, and the command replaces this process (exec). Inside the program the bootstrap's
``sitecustomize`` reads SPANPROF_*, then PYROSCOPE_*, then OTEL_SERVICE_NAME /
OTEL_RESOURCE_ATTRIBUTES, and starts the agent before the program's first line. Children inherit
the environment, so every Python process the program spawns is profiled too.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Dict, List

from spanprof import _config

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")

# option dest -> environment variable
_OPTIONS = {
    "application_name": "SPANPROF_APPLICATION_NAME",
    "server_address": "SPANPROF_SERVER_ADDRESS",
    "exporter": "SPANPROF_EXPORTER",
    "sample_rate": "SPANPROF_SAMPLE_RATE",
    "upload_interval": "SPANPROF_UPLOAD_INTERVAL",
    "tags": "SPANPROF_TAGS",
    "tenant_id": "SPANPROF_TENANT_ID",
    "basic_auth_username": "SPANPROF_BASIC_AUTH_USERNAME",
    "basic_auth_password": "SPANPROF_BASIC_AUTH_PASSWORD",
    "auth_token": "SPANPROF_AUTH_TOKEN",
    "http_headers": "SPANPROF_HTTP_HEADERS",
    "profile_types": "SPANPROF_PROFILE_TYPES",
}
_FLAGS = {
    "report_pid": "SPANPROF_REPORT_PID",
    "report_thread_id": "SPANPROF_REPORT_THREAD_ID",
    "report_thread_name": "SPANPROF_REPORT_THREAD_NAME",
    "enable_logging": "SPANPROF_ENABLE_LOGGING",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.usage = "spanprof run [options] -- command [args ...]"
    p.epilog = (
        "Environment: SPANPROF_<OPTION> (e.g. SPANPROF_SERVER_ADDRESS), the PYROSCOPE_* names "
        "(PYROSCOPE_SERVER_ADDRESS, PYROSCOPE_APPLICATION_NAME, PYROSCOPE_SAMPLE_RATE, ...), "
        "OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES. Options win over the environment."
    )
    p.add_argument(
        "-n",
        "--application-name",
        help="service name (default: $OTEL_SERVICE_NAME or the program name)",
    )
    p.add_argument(
        "-s",
        "--server-address",
        help="http(s)://host:port (Pyroscope push), otlp+http://host:4318 or file:///dir",
    )
    p.add_argument(
        "--exporter",
        choices=_config.EXPORTERS,
        help="force an exporter (default: from --server-address)",
    )
    p.add_argument(
        "-r", "--sample-rate", type=int, help="samples per second of CPU time (default 100)"
    )
    p.add_argument(
        "--profile-types",
        help="cpu, wall or cpu,wall (default: cpu,wall; wall = wall-clock time of every thread "
        "and suspended asyncio task)",
    )
    p.add_argument("--upload-interval", type=float, help="seconds between uploads (default 10)")
    p.add_argument("-t", "--tags", help="global tags: key=value,key2=value2")
    p.add_argument("--tenant-id", help="X-Scope-OrgID")
    p.add_argument("--basic-auth-username")
    p.add_argument("--basic-auth-password")
    p.add_argument("--auth-token", help="sent as 'Authorization: Bearer'")
    p.add_argument("--http-headers", help="extra headers: Name=value,Name2=value2")
    for dest in _FLAGS:
        p.add_argument("--" + dest.replace("_", "-"), action="store_true", default=None)
    p.add_argument(
        "--no-gil-only",
        dest="gil_only",
        action="store_false",
        default=None,
        help="also sample threads running without the GIL",
    )
    p.add_argument(
        "--no-span-linking",
        action="store_true",
        help="do not add the span processor to OpenTelemetry TracerProviders",
    )
    p.add_argument(
        "--no-otel-setup",
        action="store_true",
        help="do not set OpenTelemetry up for a program that has not (SDK, OTLP exporter to the "
        "server, the installed instrumentations)",
    )
    p.add_argument("command", nargs=argparse.REMAINDER, help="the program to run, after --")


def build_env(args: argparse.Namespace, base: Dict[str, str]) -> Dict[str, str]:
    env = dict(base)
    for dest, name in _OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            env[name] = str(value)
    for dest, name in _FLAGS.items():
        if getattr(args, dest, None):
            env[name] = "true"
    # spanprof's own mode: CPU and wall-clock profiles, unless the user chose (also through
    # PYROSCOPE_ONCPU=false, pyroscope-io's wall mode).
    if not any(k in env for k in ("SPANPROF_PROFILE_TYPES", "SPANPROF_ONCPU", "PYROSCOPE_ONCPU")):
        env["SPANPROF_PROFILE_TYPES"] = "cpu,wall"
    if getattr(args, "gil_only", None) is False:
        env["SPANPROF_GIL_ONLY"] = "false"
    if getattr(args, "no_span_linking", False):
        env["SPANPROF_LINK_SPANS"] = "0"
    if getattr(args, "no_otel_setup", False):
        env["SPANPROF_OTEL_SETUP"] = "0"
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *paths])
    return env


def _split_opentelemetry_instrument(command: List[str]) -> List[str]:
    """``opentelemetry-instrument [--opt value ...] prog args`` puts its own sitecustomize first
    and does not chain, so run it outside: it then starts ``spanprof run -- prog args``, whose
    bootstrap goes first and chains to opentelemetry-instrument's."""
    i = 1
    while i < len(command) and command[i].startswith("--"):
        i += 1 if "=" in command[i] or command[i] == "--version" else 2
    return [*command[:i], sys.executable, "-m", "spanprof", "run", "--", *command[i:]]


_NO_DISTRO = (
    "spanprof run: opentelemetry-instrument alone records no traces here: no OpenTelemetry "
    "distro is installed (pip install opentelemetry-distro opentelemetry-exporter-otlp)"
)


def _has_otel_distro() -> bool:
    """opentelemetry-instrument configures the SDK only through an installed distro or
    configurator; without one it instruments libraries whose spans go nowhere."""
    from importlib.metadata import entry_points

    return any(
        True
        for g in ("opentelemetry_distro", "opentelemetry_configurator")
        for _ in entry_points(group=g)
    )


def main(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        sys.stderr.write(
            "spanprof run: no command given (spanprof run [options] -- python app.py)\n"
        )
        return 2
    env = build_env(args, dict(os.environ))
    try:
        _config.build(_config.from_env(env))
    except ValueError as e:
        sys.stderr.write(f"spanprof run: {e}\n")
        return 2
    if os.path.basename(command[0]) == "opentelemetry-instrument" and len(command) > 1:
        command = _split_opentelemetry_instrument(command)
        if _has_otel_distro():
            env["SPANPROF_OTEL_SETUP"] = "0"  # opentelemetry-instrument sets it up
        elif env.get("SPANPROF_OTEL_SETUP", "1").strip().lower() in ("0", "false", "no", "off"):
            sys.stderr.write(_NO_DISTRO + "\n")
        else:
            # opentelemetry-instrument switches the instrumentations on; spanprof adds the provider.
            env["SPANPROF_OTEL_SETUP"] = "provider"
            sys.stderr.write(_NO_DISTRO + "; spanprof run sets OpenTelemetry up instead\n")
    exe = shutil.which(command[0], path=env.get("PATH"))
    if exe is None:
        sys.stderr.write(f"spanprof run: command not found: {command[0]}\n")
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(exe, command, env)
    return 0  # not reached
