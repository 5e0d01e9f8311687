"""spanprof: span profiles for Python.

A drop-in for pyroscope-io: ``import spanprof as pyroscope`` and keep calling
``pyroscope.configure(...)``, ``tag_wrapper``, ``add_thread_tag``, ``remove_thread_tag`` and
``shutdown``. The OpenTelemetry span processor lives in ``spanprof.otel``.
"""

from __future__ import annotations

import logging
import sys
import threading
import warnings
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Sequence, Union

__version__ = "0.1.0"

from spanprof._config import LineNo, ProfilerImplementation

# pyroscope-io's module logger is `LOGGER`; spanprof logs upload problems through "spanprof".
LOGGER = logging.getLogger("spanprof")

__all__ = [
    "LOGGER",
    "LineNo",
    "ProfilerImplementation",
    "__version__",
    "add_thread_tag",
    "configure",
    "configure_experimental_stack_profiler",
    "remove_thread_tag",
    "runtime_name",
    "runtime_version",
    "shutdown",
    "stats",
    "tag_wrapper",
]


def configure(
    app_name: Optional[str] = None,
    application_name: Optional[str] = None,
    server_address: str = "http://localhost:4040",
    basic_auth_username: str = "",
    basic_auth_password: str = "",
    enable_logging: bool = False,
    sample_rate: int = 100,
    oncpu: bool = True,
    native: Any = None,
    gil_only: bool = True,
    report_pid: bool = False,
    report_thread_id: bool = False,
    report_thread_name: bool = False,
    tags: Optional[Dict[str, str]] = None,
    tenant_id: str = "",
    http_headers: Optional[Dict[str, str]] = None,
    line_no: LineNo = LineNo.LastInstruction,
    upload_interval: float = 10,
    mem_enabled: bool = False,
    mem_max_nframe: int = 128,
    mem_heap_sample_size: int = 512 * 1024,
    mem_enable_mem_domain: bool = True,
    cpu_enabled: bool = True,
    cpu_implementation: ProfilerImplementation = ProfilerImplementation.PySpy,
    *,
    exporter: Optional[str] = None,
    auth_token: Optional[str] = None,
    detect_subprocesses: Optional[bool] = None,
    profile_types: Optional[Union[str, Sequence[str]]] = None,
) -> bool:
    """Starts (or restarts with new settings) profiling and uploading.

    The parameters, their order (positional calls work) and defaults are pyroscope-io 1.4's;
    app_name and native are deprecated there and here. Keyword-only spanprof additions:
    ``exporter`` = "pyroscope" (push, the default), "ingest" (legacy /ingest), "otlp" (OTLP
    profiles; also chosen by server_address="otlp+http://host:4318") or "file" (chosen by
    server_address="file:///dir": one gzipped pprof per window); the deprecated ``auth_token``
    (sent as a Bearer token) and ``detect_subprocesses``.

    ``profile_types`` (spanprof): "cpu" (the default) and/or "wall": wall-clock time of every
    thread and of every asyncio task suspended on an await, idle included, sent as a second
    profile (``wall``, nanoseconds) labelled ``thread_state`` (running, gil_wait, blocked,
    awaiting) and ``task_name``. ``oncpu=False`` is pyroscope-io's wall mode: wall-clock samples
    sent as its CPU profile type, as pyroscope-io does. ``mem_enabled=True`` is refused (no memory profiling). A bad value raises ValueError
    naming the parameter.
    """
    from spanprof import _agent, _config

    kwargs: Dict[str, Any] = {
        "app_name": app_name,
        "application_name": application_name,
        "server_address": server_address,
        "basic_auth_username": basic_auth_username,
        "basic_auth_password": basic_auth_password,
        "enable_logging": enable_logging,
        "sample_rate": sample_rate,
        "oncpu": oncpu,
        "native": native,
        "gil_only": gil_only,
        "report_pid": report_pid,
        "report_thread_id": report_thread_id,
        "report_thread_name": report_thread_name,
        "tags": tags,
        "tenant_id": tenant_id,
        "http_headers": http_headers,
        "line_no": line_no,
        "upload_interval": upload_interval,
        "mem_enabled": mem_enabled,
        "mem_max_nframe": mem_max_nframe,
        "mem_heap_sample_size": mem_heap_sample_size,
        "mem_enable_mem_domain": mem_enable_mem_domain,
        "cpu_enabled": cpu_enabled,
        "cpu_implementation": cpu_implementation,
    }
    for key, value in (
        ("exporter", exporter),
        ("auth_token", auth_token),
        ("detect_subprocesses", detect_subprocesses),
        ("profile_types", profile_types),
    ):
        if value is not None:
            kwargs[key] = value
    cfg = _config.build(kwargs)
    _agent.configure(cfg)
    return True


def configure_experimental_stack_profiler(*_args: Any, **_kwargs: Any) -> bool:
    """pyroscope-io 1.4's options for its experimental in-process stack sampler. spanprof's own
    sampler already works that way (per-thread CPU-clock timers, the stack read by a signal handler
    on the thread itself, a fault guard, no adaptive interval), so the options do not apply: the
    call is refused and returns False, as pyroscope-io does for a refused call."""
    warnings.warn(
        "spanprof.configure_experimental_stack_profiler: spanprof always samples in process with "
        "per-thread CPU timers; these options do not apply and are ignored (returns False)",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


def runtime_name() -> str:
    """The Python implementation's name, as pyroscope-io reports it ("cpython")."""
    return sys.implementation.name


def runtime_version() -> str:
    """The implementation's version as pyroscope-io reports it: "3.12.1", "3.13.0rc1"."""
    v = sys.implementation.version
    parts = list(v[:3]) if v.releaselevel == "final" and not v.serial else list(v)
    return ".".join(map(str, parts))


def shutdown(timeout: float = 10.0) -> bool:
    """Stops profiling, uploads the last window (waiting at most ``timeout`` seconds) and
    returns whether every upload, the last one included, succeeded."""
    from spanprof import _agent

    return _agent.shutdown(timeout)


def stats() -> Dict[str, Any]:
    """The sampler's counters merged with the uploader's: windows_collected, windows_queued,
    windows_sent, windows_failed, windows_dropped, upload_retries, last_error, last_upload_ok."""
    from spanprof import _agent

    return _agent.stats()


def _tag_args(name: str, args: tuple) -> tuple:
    if len(args) == 3:  # pyroscope-io 0.x form: (thread_id, key, value)
        ident, key, value = args
    elif len(args) == 2:
        ident, (key, value) = threading.get_ident(), args
    else:
        raise TypeError(f"{name}() takes (key, value) or (thread_id, key, value)")
    if not isinstance(ident, int) or not isinstance(key, str) or not isinstance(value, str):
        raise TypeError(f"{name}(): thread_id must be an int, key and value strings")
    return ident, key, value


def add_thread_tag(*args: Any) -> None:
    """Labels the samples of the calling thread (or of ``thread_id``) with key=value."""
    from spanprof import _agent, _config

    ident, key, value = _tag_args("add_thread_tag", args)
    _config.check_label_name("add_thread_tag", key, reserved=False)
    _agent.set_thread_tag(ident, key, value)


def remove_thread_tag(*args: Any) -> None:
    """Removes a tag set by add_thread_tag (only if it still has that value)."""
    from spanprof import _agent

    ident, key, value = _tag_args("remove_thread_tag", args)
    _agent.remove_thread_tag(ident, key, value)


@contextmanager
def tag_wrapper(tags: Dict[str, str]) -> Iterator[None]:
    """Labels the calling thread's samples with ``tags`` inside the block; restores the tags
    the thread had before when it leaves."""
    from spanprof import _agent, _config

    ident = threading.get_ident()
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("tag_wrapper: keys and values must be strings")
        _config.check_label_name("tag_wrapper", key, reserved=False)
    before = _agent.thread_tags(ident)
    for key, value in tags.items():
        _agent.set_thread_tag(ident, key, value)
    try:
        yield
    finally:
        for key, value in tags.items():
            if key in before:
                _agent.set_thread_tag(ident, key, before[key])
            else:
                _agent.remove_thread_tag(ident, key, value)


def _deprecated(name: str) -> Any:
    def f(*_args: Any, **_kwargs: Any) -> None:
        warnings.warn(
            f"spanprof.{name} is deprecated and does nothing (as in pyroscope-io)",
            DeprecationWarning,
            stacklevel=2,
        )

    f.__name__ = name
    return f


# pyroscope-io keeps these deprecated no-ops; so do we, so old programs still import them.
stop = _deprecated("stop")
change_name = _deprecated("change_name")
tag = _deprecated("tag")
remove_tags = _deprecated("remove_tags")
build_summary = _deprecated("build_summary")
test_logger = _deprecated("test_logger")
