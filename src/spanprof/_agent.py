"""The running agent: starts the native sampler, cuts the aggregate into upload windows and hands
them to an exporter on background threads, keeps thread tags, survives fork, flushes at exit.

Threads (both daemons, so a wedged upload can never hold the interpreter open):
- ``spanprof-collect`` wakes every ``upload_interval`` seconds and moves ``_native.collect()`` into
  a bounded queue. It never does I/O, so windows keep their boundaries while the server is down.
- ``spanprof-upload`` sends the queue's windows one by one, retrying with exponential backoff and
  jitter on connection errors, timeouts, 429 and 5xx; a window that another 4xx rejects is counted
  as failed and not retried. When the queue is full the oldest window is dropped and counted.
Application threads only ever take a lock for a dict update or a deque append.
"""

from __future__ import annotations

import atexit
import collections
import importlib
import logging
import os
import random
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional

from spanprof._config import Config, LineNo
from spanprof._export import Exporter, SendResult, make_exporter

LOG = logging.getLogger("spanprof")

QUEUE_MAX_WINDOWS = 32  # ~5 minutes of outage at the default 10 s interval
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 10.0
SHUTDOWN_TIMEOUT_S = 10.0  # shutdown(): longest wait for the final upload
EXIT_TIMEOUT_S = 3.0  # interpreter exit: never hold a process hostage for a dead server


def _native() -> Any:
    return importlib.import_module("spanprof._native")


class _Window:
    __slots__ = ("abandoned", "attempts", "profile")

    def __init__(self, profile: Any) -> None:
        self.profile = profile
        self.attempts = 0
        self.abandoned = False  # dropped from a full queue while being sent


def backoff_delay(attempt: int, retry_after: Optional[float] = None) -> float:
    """Exponential backoff with jitter (50-100% of the step), at least the server's Retry-After
    (capped, so one bad header cannot stall uploads for hours)."""
    step = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * (2 ** max(0, attempt - 1)))
    delay = step * random.uniform(0.5, 1.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 6 * BACKOFF_MAX_S))
    return delay


class Uploader:
    def __init__(self, exporter: Exporter, interval: float, collect: Callable[[], Any]) -> None:
        self.exporter = exporter
        self.interval = interval
        self._collect = collect
        self._cond = threading.Condition(threading.Lock())
        self._queue: Deque[_Window] = collections.deque()
        self._in_flight: Optional[_Window] = None
        self._stop_collect = threading.Event()
        self._closing = False
        self._deadline = 0.0
        self._collector: Optional[threading.Thread] = None
        self._sender: Optional[threading.Thread] = None
        self._logged: set = set()
        self.sent = self.failed = self.dropped = self.retries = self.collected = 0
        self.last_error: Optional[str] = None
        self.last_ok: Optional[bool] = None

    def start(self) -> None:
        self._collector = threading.Thread(
            target=self._collect_loop, name="spanprof-collect", daemon=True
        )
        self._sender = threading.Thread(target=self._send_loop, name="spanprof-upload", daemon=True)
        self._collector.start()
        self._sender.start()

    # -- collecting ------------------------------------------------------------------------
    def _collect_loop(self) -> None:
        next_at = time.monotonic() + self.interval
        while not self._stop_collect.wait(max(0.0, next_at - time.monotonic())):
            next_at += self.interval
            if next_at < time.monotonic():  # the process was suspended: no catch-up burst
                next_at = time.monotonic() + self.interval
            self.collect_now()

    def collect_now(self) -> None:
        try:
            profile = self._collect()
        except Exception as e:  # the native side reports, we keep running
            self._note_error(f"collect: {e!r}", key="collect")
            return
        if profile is None:
            return
        wall = getattr(profile, "wall", None)
        if profile.sample_count > 0 or (wall is not None and wall.sample_count > 0):
            self.enqueue(profile)

    def enqueue(self, profile: Any) -> None:
        with self._cond:
            self.collected += 1
            if len(self._queue) + (self._in_flight is not None) >= QUEUE_MAX_WINDOWS:
                if self._in_flight is not None and not self._in_flight.abandoned:
                    self._in_flight.abandoned = True  # counted by the sender when it lets go
                elif self._queue:
                    self._queue.popleft()
                    self.dropped += 1
            self._queue.append(_Window(profile))
            self._cond.notify_all()

    # -- sending ---------------------------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                window = self._in_flight = self._queue.popleft()
            try:
                self._deliver(window)
            finally:
                with self._cond:
                    self._in_flight = None
                    self._cond.notify_all()

    def _send_once(self, window: _Window) -> SendResult:
        window.attempts += 1
        try:
            return self.exporter.send(window.profile)
        except Exception as e:  # an encoder bug must not kill the uploader
            return SendResult(False, False, f"{self.exporter.name}: {e!r}")

    def _deliver(self, window: _Window) -> None:
        while True:
            result = self._send_once(window)
            with self._cond:
                self.last_ok = result.ok
                if result.ok:
                    self.sent += 1
                    return
                self.last_error = result.error
            if not result.retryable:
                self._note_error(result.error, key=("status", result.status))
                with self._cond:
                    self.failed += 1
                return
            self._note_error(result.error, key="retryable")
            end = time.monotonic() + backoff_delay(window.attempts, result.retry_after)
            with self._cond:
                while True:
                    if window.abandoned:
                        self.dropped += 1
                        return
                    now = time.monotonic()
                    if self._closing and end > self._deadline:
                        self.failed += 1  # no time left before shutdown's deadline
                        return
                    if now >= end:
                        break
                    self._cond.wait(end - now)
                self.retries += 1

    def _note_error(self, message: str, key: Any) -> None:
        """Logs each kind of failure once (the details stay in stats()['last_error'])."""
        self.last_error = message
        if key in self._logged:
            return
        self._logged.add(key)
        LOG.warning("spanprof upload problem (reported once; see spanprof.stats()): %s", message)

    # -- stopping --------------------------------------------------------------------------
    def stop_collecting(self) -> None:
        self._stop_collect.set()
        if self._collector is not None and self._collector is not threading.current_thread():
            self._collector.join(timeout=5.0)

    def close(self, timeout: float) -> bool:
        """Sends what is queued until ``timeout`` seconds pass. True when everything was
        delivered and the last upload worked."""
        self.stop_collecting()
        with self._cond:
            self._closing = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        if self._sender is not None:
            self._sender.join(timeout=max(0.0, timeout))
        with self._cond:
            pending = len(self._queue) + (self._in_flight is not None)
            return pending == 0 and self.last_ok is not False

    def stats(self) -> Dict[str, Any]:
        with self._cond:
            return {
                "windows_collected": self.collected,
                "windows_queued": len(self._queue) + (self._in_flight is not None),
                "windows_sent": self.sent,
                "windows_failed": self.failed,
                "windows_dropped": self.dropped,
                "upload_retries": self.retries,
                "last_error": self.last_error,
                "last_upload_ok": self.last_ok,
                "exporter": self.exporter.name,
            }


class Agent:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.exporter = make_exporter(cfg)
        self.uploader = Uploader(self.exporter, cfg.upload_interval, _native().collect)
        self.sampling = False
        self.closed = False

    def start(self) -> None:
        if self.cfg.cpu_enabled:
            # A previous agent's shutdown() already took its last window; what is left (nothing,
            # or samples from before a stop()) must not open this agent's first window early.
            _native().collect()
            _start_sampler(self.cfg)
            self.sampling = True
        self.uploader.start()

    def shutdown(self, timeout: float) -> bool:
        if self.closed:
            return self.uploader.last_ok is not False
        self.closed = True
        self.uploader.stop_collecting()
        if self.sampling:
            _native().stop()
            self.sampling = False
        self.uploader.collect_now()  # the last, partial window
        return self.uploader.close(timeout)

    def after_fork_child(self) -> None:
        """The parent's threads and queued windows stay with the parent; the child gets a fresh
        uploader and a re-armed sampler, so it reports its own samples under its own pid."""
        self.uploader = Uploader(self.exporter, self.cfg.upload_interval, _native().collect)
        if self.closed:
            return
        if self.sampling:
            _native().after_fork_child()
        self.uploader.start()


def _start_sampler(cfg: Config) -> None:
    native = _native()
    args = (
        cfg.sample_rate,
        cfg.gil_only,
        cfg.report_pid,
        cfg.report_thread_id,
        cfg.report_thread_name,
    )
    kinds = {"cpu": "cpu" in cfg.profile_types, "wall": "wall" in cfg.profile_types}
    if cfg.line_no == LineNo.LastInstruction:
        native.start(*args, **kinds)
        return
    try:
        native.start(*args, line_no=int(cfg.line_no), **kinds)
    except TypeError:
        import warnings

        warnings.warn(
            f"line_no={cfg.line_no.name} is not supported by this build of spanprof; using the current line",
            RuntimeWarning,
            stacklevel=4,
        )
        native.start(*args)


# ---- process-wide state --------------------------------------------------------------------

_lock = threading.RLock()  # configure/shutdown; held while an old agent flushes
_tags_lock = threading.RLock()  # thread tags only: application threads never wait for a flush
_agent: Optional[Agent] = None
_last_agent: Optional[Agent] = None  # stats() after shutdown() still tells how the last flush went
_thread_tags: Dict[int, Dict[str, str]] = {}
_exit_hook_installed = False


def configure(cfg: Config) -> None:
    global _agent
    with _lock:
        if _agent is not None:
            _agent.shutdown(SHUTDOWN_TIMEOUT_S)
            _agent = None
        LOG.disabled = not cfg.enable_logging
        agent = Agent(cfg)
        agent.start()
        _agent = agent
        with _tags_lock:
            _push_all_thread_tags()
        _install_exit_hook()


def shutdown(timeout: float = SHUTDOWN_TIMEOUT_S) -> bool:
    global _agent, _last_agent
    with _lock:
        agent, _agent = _agent, None
        if agent is not None:
            _last_agent = agent
    return True if agent is None else agent.shutdown(timeout)


def is_configured() -> bool:
    return _agent is not None


def current_config() -> Optional[Config]:
    agent = _agent
    return agent.cfg if agent is not None else None


def stats() -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    try:
        out.update(_native().stats())
    except ImportError:
        pass
    agent = _agent or _last_agent
    if agent is not None:
        out.update(agent.uploader.stats())
    out["running"] = _agent is not None and _agent.sampling
    return out


# Thread tags: kept here (not only in the sampler) so they survive configure()/shutdown().
class _TagsOwner:
    """Lives in a thread-local of a thread that has tags; when the thread ends, its tags go too
    (a later thread can get the same ident and must not inherit them)."""

    def __init__(self, ident: int) -> None:
        self.ident = ident

    def __del__(self) -> None:
        try:
            with _tags_lock:
                if _thread_tags.pop(self.ident, None) is not None:
                    _push_thread_tags(self.ident, None)
        except Exception:  # interpreter shutdown: nothing left to label
            pass


_thread_local = threading.local()


def set_thread_tag(ident: int, key: str, value: str) -> None:
    if ident == threading.get_ident() and getattr(_thread_local, "owner", None) is None:
        _thread_local.owner = _TagsOwner(ident)
    with _tags_lock:
        tags = dict(_thread_tags.get(ident, {}))
        tags[key] = value
        _thread_tags[ident] = tags
        _push_thread_tags(ident, tags)


def remove_thread_tag(ident: int, key: str, value: str) -> None:
    with _tags_lock:
        tags = dict(_thread_tags.get(ident, {}))
        if tags.get(key) != value:
            return
        del tags[key]
        if tags:
            _thread_tags[ident] = tags
        else:
            _thread_tags.pop(ident, None)
        _push_thread_tags(ident, tags or None)


def thread_tags(ident: int) -> Dict[str, str]:
    return dict(_thread_tags.get(ident, {}))


def _push_thread_tags(ident: int, tags: Optional[Dict[str, str]]) -> None:
    try:
        _native().set_thread_tags(ident, tags)
    except ImportError:
        pass


def _push_all_thread_tags() -> None:
    for ident, tags in _thread_tags.items():
        _push_thread_tags(ident, tags)


def _exit_flush() -> None:
    try:
        shutdown(EXIT_TIMEOUT_S)
    except Exception as e:  # never turn a clean exit into a traceback
        LOG.warning("spanprof: final flush failed: %r", e)


def _install_exit_hook() -> None:
    global _exit_hook_installed
    if not _exit_hook_installed:
        _exit_hook_installed = True
        atexit.register(_exit_flush)


def _after_fork_child() -> None:
    global _lock, _tags_lock
    # Another parent thread may have held a lock at fork(): it does not exist here.
    _lock = threading.RLock()
    _tags_lock = threading.RLock()
    me = threading.get_ident()
    for ident in [i for i in _thread_tags if i != me]:
        del _thread_tags[ident]
        _push_thread_tags(ident, None)
    # CPython 3.9/3.10 keep the parent's native thread id on the forking thread's Thread object;
    # the sampler reads it there to aim this thread's CPU timer.
    current = threading.current_thread()
    if hasattr(current, "_set_native_id"):
        try:
            current._set_native_id()
        except Exception:
            pass
    agent = _agent
    if agent is None:
        return
    try:
        agent.after_fork_child()
    except Exception as e:
        LOG.warning("spanprof: could not restart profiling in the forked child: %r", e)
        return
    # A multiprocessing child leaves through os._exit() after threading._shutdown(): that is
    # its last chance to flush (atexit never runs there).
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_exit_flush)
        except RuntimeError:
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_child)
