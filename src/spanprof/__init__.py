"""spanprof: span profiles for Python.

A drop-in for pyroscope-io: ``import spanprof as pyroscope`` and keep calling
``pyroscope.configure(...)``, ``tag_wrapper``, ``add_thread_tag``, ``remove_thread_tag`` and
``shutdown``. The OpenTelemetry span processor lives in ``spanprof.otel``.
"""

from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager
from typing import Any, Dict, Iterator

__version__ = "0.1.0"

from spanprof._config import LineNo, ProfilerImplementation

__all__ = [
    "LineNo",
    "ProfilerImplementation",
    "__version__",
    "add_thread_tag",
    "configure",
    "remove_thread_tag",
    "shutdown",
    "stats",
    "tag_wrapper",
]


def configure(**kwargs: Any) -> bool:
    """Starts (or restarts with new settings) profiling and uploading.

    Takes every keyword of ``pyroscope.configure`` from pyroscope-io 1.x with the same defaults:
    application_name, server_address="http://localhost:4040", basic_auth_username,
    basic_auth_password, enable_logging=False, sample_rate=100, oncpu=True, gil_only=True,
    report_pid=False, report_thread_id=False, report_thread_name=False, tags, tenant_id,
    http_headers, line_no, upload_interval=10, and the deprecated app_name, auth_token (sent as a
    Bearer token), detect_subprocesses and native.

    spanprof additions: ``exporter`` = "pyroscope" (push, the default), "ingest" (legacy
    /ingest), "otlp" (OTLP profiles; also chosen by server_address="otlp+http://host:4318") or
    "file" (chosen by server_address="file:///dir": one gzipped pprof per window).

    ``oncpu=False`` is refused: the sampler runs on each thread's CPU clock and measures CPU time
    only. An unknown keyword or a bad value raises ValueError naming it.
    """
    from spanprof import _agent, _config

    cfg = _config.build(kwargs)
    _agent.configure(cfg)
    return True


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
