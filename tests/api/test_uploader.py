"""The uploader against misbehaving servers: errors, 429, timeouts, a dead server, a server
that comes back, a full queue. The application never waits for any of it."""

from __future__ import annotations

import textwrap
import threading
import time

import pytest
from support import Receiver, Server, burn, free_port, run_python

import spanprof
from spanprof import _agent
from spanprof._export import _http


@pytest.fixture
def fast_retries(monkeypatch):
    """Shorter backoff and HTTP timeout so the scenarios finish in seconds (the logic is the same)."""
    monkeypatch.setattr(_agent, "BACKOFF_FIRST_S", 0.05)
    monkeypatch.setattr(_agent, "BACKOFF_MAX_S", 0.5)
    monkeypatch.setattr(_http, "TIMEOUT_S", 1.0)


def configure_dead_server(name: str, interval: float) -> int:
    """An agent whose server address has nothing listening; returns the port."""
    port = free_port()
    spanprof.configure(
        application_name=name,
        server_address=f"http://127.0.0.1:{port}",
        upload_interval=interval,
        sample_rate=200,
    )
    return port


def wait_until(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def app_work(rounds: int) -> int:
    """The application: CPU work plus the API calls an app makes, in its own thread."""
    done = 0
    for i in range(rounds):
        spanprof.add_thread_tag("round", str(i % 3))
        burn(0.02)
        spanprof.remove_thread_tag("round", str(i % 3))
        done += 1
    return done


def test_errors_429_and_timeouts_are_retried_until_delivered(receiver, fast_retries):
    # GIVEN a server that answers 500, 503, 429 (Retry-After: 0), then hangs past the timeout, then 200
    script = iter(
        [(500, b"boom", {}), (503, b"", {}), (429, b"slow down", {"Retry-After": "0"}), None]
    )
    receiver.behaviour = lambda req: next(script, (200, b"", {}))
    spanprof.configure(
        application_name="svc.flaky",
        server_address=receiver.url,
        upload_interval=0.25,
        sample_rate=200,
    )
    # WHEN the application works through all of it
    assert app_work(40) == 40
    assert spanprof.shutdown(timeout=20) is True
    st = spanprof.stats()
    # THEN every collected window arrived, after 4 retries, none lost
    assert st["windows_sent"] == st["windows_collected"] >= 1
    assert st["windows_failed"] == 0 and st["windows_dropped"] == 0
    assert st["upload_retries"] >= 4
    assert st["windows_queued"] == 0
    ok_pushes = len(receiver.pushes()) - 4
    assert ok_pushes == st["windows_sent"]


def test_other_4xx_is_not_retried_and_keeps_the_server_message(receiver, fast_retries):
    receiver.behaviour = lambda req: (
        400,
        b'{"code": "invalid_argument", "message": "service_name is too long"}',
        {},
    )
    spanprof.configure(
        application_name="svc.rejected",
        server_address=receiver.url,
        upload_interval=0.25,
        sample_rate=200,
    )
    app_work(30)
    assert spanprof.shutdown(timeout=5) is False
    st = spanprof.stats()
    assert st["windows_failed"] == st["windows_collected"] == len(receiver.pushes()) >= 1
    assert st["upload_retries"] == 0
    assert "service_name is too long" in st["last_error"] and "400" in st["last_error"]


def test_dead_server_never_blocks_and_shutdown_reports_failure(fast_retries):
    configure_dead_server("svc.dead", 0.2)
    assert app_work(30) == 30
    assert spanprof.shutdown(timeout=1.0) is False
    st = spanprof.stats()
    assert st["windows_sent"] == 0
    assert st["upload_retries"] >= 1
    assert (
        st["windows_failed"] + st["windows_dropped"] + st["windows_queued"]
        == st["windows_collected"]
    )
    assert "127.0.0.1" in st["last_error"]


def test_a_server_that_comes_back_receives_the_queued_windows(fast_retries):
    # GIVEN an agent whose server is down
    port = configure_dead_server("svc.back", 0.2)
    app_work(25)
    assert wait_until(lambda: spanprof.stats()["upload_retries"] >= 1)
    # WHEN the server starts on that port
    rec = Receiver()
    server = Server.on_port(rec, port)
    try:
        app_work(10)
        assert spanprof.shutdown(timeout=20) is True
        # THEN nothing was lost: every window collected is on the server
        st = spanprof.stats()
        assert st["windows_dropped"] == 0 and st["windows_failed"] == 0
        assert st["windows_sent"] == st["windows_collected"] == len(rec.pushes())
        assert st["windows_collected"] >= 3
    finally:
        server.close()


def test_full_queue_drops_the_oldest_window_and_counts_it(monkeypatch, fast_retries):
    monkeypatch.setattr(_agent, "QUEUE_MAX_WINDOWS", 2)
    configure_dead_server("svc.full", 0.1)
    app_work(60)
    spanprof.shutdown(timeout=0.5)
    st = spanprof.stats()
    assert st["windows_dropped"] >= 1
    assert st["windows_sent"] == 0
    assert (
        st["windows_dropped"] + st["windows_failed"] + st["windows_queued"]
        == st["windows_collected"]
    )


def test_hanging_server_does_not_hold_application_threads(receiver, fast_retries):
    receiver.behaviour = lambda req: None  # never answers
    spanprof.configure(
        application_name="svc.hang",
        server_address=receiver.url,
        upload_interval=0.2,
        sample_rate=200,
    )
    results = []
    threads = [threading.Thread(target=lambda: results.append(app_work(15))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [15] * 4
    assert spanprof.shutdown(timeout=0.5) is False


def test_backoff_grows_and_is_capped():
    delays = [_agent.backoff_delay(n) for n in range(1, 12)]
    assert all(0 < d <= _agent.BACKOFF_MAX_S for d in delays)
    assert max(delays[8:]) > delays[0]
    assert _agent.backoff_delay(1, retry_after=7.0) >= 7.0
    assert delays[0] <= _agent.BACKOFF_FIRST_S


def test_exit_is_not_held_by_a_hanging_server(receiver):
    # GIVEN a program that never calls shutdown() and a server that never answers
    receiver.behaviour = lambda req: None
    code = textwrap.dedent(
        """
        import os, sys
        sys.path.insert(0, os.path.join(os.getcwd(), "tests", "api"))
        from support import burn
        import spanprof
        spanprof.configure(application_name="svc.exit", server_address=os.environ["URL"], sample_rate=200)
        burn(0.3)
        print("done")
        """
    )
    # WHEN it ends, THEN the exit flush gives up after its bound (EXIT_TIMEOUT_S) instead of
    # waiting out HTTP timeouts and retries: run_python's 60 s timeout would fail the test
    out = run_python(code, {"URL": receiver.url}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done"
    assert receiver.pushes()  # it did try to deliver the last window
