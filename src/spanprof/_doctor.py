"""``spanprof doctor``: one readable report of what spanprof can do here.

Each section is one function returning its lines as (name, value) pairs; SECTIONS lists them in
report order, so a new capability is a new line in its section's function (or a new section).
A section that raises is reported as such and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Tuple

from spanprof import __version__, _config, _install

Line = Tuple[str, str]
# Sampler probe: CPU burnt while sampling; enough for a few samples at the probe's rate.
_PROBE_RATE_HZ = 250
_PROBE_CPU_S = 0.2


def section_python() -> List[Line]:
    free = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    lines = [
        ("version", sys.version.split()[0] + f" ({platform.python_implementation()})"),
        ("executable", sys.executable),
        (
            "platform",
            f"{platform.system()} {platform.machine()}, libc {' '.join(platform.libc_ver())}",
        ),
        ("free-threaded build", "yes" if free else "no"),
    ]
    if free:
        gil = getattr(sys, "_is_gil_enabled", lambda: True)()
        lines.append(("GIL at run time", "enabled" if gil else "disabled"))
    return lines


def _native() -> Any:
    import importlib

    return importlib.import_module("spanprof._native")


def section_agent() -> List[Line]:
    lines: List[Line] = [("spanprof", __version__)]
    try:
        native = _native()
    except ImportError as e:
        return [*lines, ("native core", f"does not load: {e}")]
    lines.append(("native core", native.__file__))
    capabilities = getattr(native, "capabilities", None)
    if callable(capabilities):
        for key, value in sorted(dict(capabilities()).items()):
            lines.append((str(key), _text(value)))
    else:
        lines.append(("wall-clock mode", "not in this agent (CPU time only)"))
    return lines


def _burn(seconds: float) -> None:
    end = time.process_time() + seconds
    x = 0
    while time.process_time() < end:
        x = (x * 31 + 7) % 1000003


def section_sampling() -> List[Line]:
    """Starts the sampler in this process for a moment: per-thread CPU timers and the signal."""
    native = _native()
    if native.is_running():
        return [("probe", "skipped: the sampler is already running in this process")]
    before = native.stats()
    try:
        native.start(_PROBE_RATE_HZ, True, False, False, False)
    except RuntimeError as e:
        return [("sampler", f"does not start: {e}")]
    try:
        _burn(_PROBE_CPU_S)
    finally:
        native.stop()
        native.collect()
    after = native.stats()

    def grew(key: str) -> int:
        return int(after.get(key, 0)) - int(before.get(key, 0))

    taken = grew("samples_taken")
    expected = int(_PROBE_RATE_HZ * _PROBE_CPU_S)
    lines = [
        (
            "CPU-time timers",
            f"{grew('timers_created')} created, {grew('timer_create_failed')} failed",
        ),
        ("signal", "unavailable" if grew("signal_unavailable") else "delivered"),
        (
            "samples",
            f"{taken} in {_PROBE_CPU_S:g} s of CPU at {_PROBE_RATE_HZ} Hz (about {expected} expected)",
        ),
    ]
    lines.append(("sampler", "working" if taken > 0 else "took no samples: see the lines above"))
    lines.append(("wall-clock", _wall_probe(native)))
    return lines


def _wall_probe(native: Any) -> str:
    """A thread sleeps 0.2 s with wall-clock sampling on: how much of it the wall profile saw."""
    import threading

    try:
        native.start(_PROBE_RATE_HZ, True, False, False, False, wall=True)
    except (RuntimeError, TypeError) as e:
        return f"does not start: {e}"
    try:
        t = threading.Thread(target=time.sleep, args=(0.2,))
        t.start()
        t.join()
    finally:
        native.stop()
        profile = native.collect()
    wall = getattr(profile, "wall", None)
    if wall is None:
        return "not in this agent (CPU time only)"
    # The sleeping thread's samples (it runs Thread.run); the joining thread waits in join().
    seen = sum(
        v
        for frames, labels, v in wall.samples()
        if labels.get("thread_state") == "blocked"
        and any(f[0] in ("run", "Thread.run") and f[1].endswith("threading.py") for f in frames)
    )
    ms = seen / 1e6
    return (
        f"working ({ms:.0f} ms of a 200 ms sleep seen)"
        if ms >= 100
        else f"saw {ms:.0f} ms of a 200 ms sleep"
    )


def section_install() -> List[Line]:
    binary = _install.find_server_binary()
    ui_dir = _install.find_ui_dir()
    server = _install.server_version(binary)
    lines = [
        ("server binary", binary or "not installed"),
        ("server version", server or ("does not run" if binary else "-")),
        ("web UI", ui_dir or "not installed"),
        ("UI version", _install.ui_version(ui_dir) or "-"),
    ]
    try:
        from opentelemetry.sdk.version import __version__ as sdk_version  # type: ignore

        lines.append(("OpenTelemetry SDK", str(sdk_version)))
    except ImportError:
        lines.append(("OpenTelemetry SDK", "not installed (pip install 'spanprof[otel]')"))
    return lines


def server_address() -> str:
    """The address `spanprof run` or configure() would send to, from the same environment."""
    kw = _config.from_env(os.environ)
    return str(kw.get("server_address") or _config.Config().server_address)


def section_server(address: Optional[str] = None) -> List[Line]:
    address = address or server_address()
    lines: List[Line] = [("address", address)]
    if address.startswith("file://"):
        path = address[len("file://") :]
        ok = os.path.isdir(path) and os.access(path, os.W_OK)
        return [*lines, ("directory", "writable" if ok else "missing or not writable")]
    base = address.split("+", 1)[1] if address.startswith("otlp+") else address
    url = base.rstrip("/") + "/api/v1/info"
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            body = r.read(65536)
    except urllib.error.HTTPError as e:
        return [*lines, ("answers", f"HTTP {e.code} on {url} (not a spanprof server?)")]
    except (OSError, urllib.error.URLError) as e:
        reason = getattr(e, "reason", e)
        return [*lines, ("answers", f"no: {reason} (start one with `spanprof serve`)")]
    try:
        info = json.loads(body)
    except ValueError:
        info = {}
    version = info.get("version") if isinstance(info, dict) else None
    return [*lines, ("answers", f"yes, spanprof server {version}" if version else "yes")]


SECTIONS: List[Tuple[str, Callable[[], List[Line]]]] = [
    ("Python", section_python),
    ("Agent", section_agent),
    ("Sampling", section_sampling),
    ("Installed", section_install),
    ("Server", section_server),
]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def report(sections: Optional[List[Tuple[str, Callable[[], List[Line]]]]] = None) -> str:
    out: List[str] = []
    for title, fn in sections or SECTIONS:
        try:
            lines = fn()
        except Exception as e:  # one broken section must not hide the others
            lines = [("error", f"{type(e).__name__}: {e}")]
        out.append(title)
        width = max((len(k) for k, _ in lines), default=0)
        out += [f"  {k.ljust(width)}  {v}" for k, v in lines]
    return "\n".join(out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-s",
        "--server-address",
        help="server to check (default: $SPANPROF_SERVER_ADDRESS, $PYROSCOPE_SERVER_ADDRESS, "
        "http://localhost:4040)",
    )


def main(args: argparse.Namespace) -> int:
    sections: Dict[str, Callable[[], List[Line]]] = dict(SECTIONS)
    if args.server_address:
        address = args.server_address
        sections["Server"] = lambda: section_server(address)
    print(report(list(sections.items())))
    return 0
