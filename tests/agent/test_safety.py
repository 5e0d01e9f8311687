"""The profiled program comes first: fork, a foreign owner of SIGPROF, EINTR, thread churn and
interpreter shutdown with the profiler running. Process-wide effects run in subprocesses."""

from __future__ import annotations

import os
import resource
import threading
import time
from pathlib import Path

from conftest import run_python


def test_fork_child_profiles_itself_without_parent_samples():
    r = run_python(
        """
        import os, sys, time, json
        from spanprof import _native
        def burn(sec):
            t = time.thread_time()
            while time.thread_time() - t < sec: sum(range(200))
        def parent_work(): burn(0.3)
        def child_work(): burn(0.3)
        _native.start(100, True, False, False, False)
        parent_work()               # not collected before the fork
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:
            child_work()
            _native.stop()
            p = _native.collect()
            names = sorted({f[0] for fr, _l, _c in p.samples() for f in fr})
            os.write(wr, json.dumps({"names": names, "running_after_fork": True,
                                     "samples": p.sample_count}).encode())
            os._exit(0)
        os.close(wr)
        data = b""
        while True:
            chunk = os.read(rd, 65536)
            if not chunk: break
            data += chunk
        _, status = os.waitpid(pid, 0)
        _native.stop()
        parent = {f[0] for fr, _l, _c in _native.collect().samples() for f in fr}
        print(json.dumps({"child": json.loads(data), "status": status, "parent": sorted(parent)}))
        """,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["status"] == 0
    assert "child_work" in out["child"]["names"]
    assert "parent_work" not in out["child"]["names"]
    assert out["child"]["samples"] >= 15
    assert "parent_work" in out["parent"] and "child_work" not in out["parent"]


def test_foreign_sigprof_owner_is_preserved_and_still_called():
    r = run_python(
        """
        import signal, time
        from spanprof import _native
        calls = []
        signal.signal(signal.SIGPROF, lambda s, f: calls.append(s))
        signal.setitimer(signal.ITIMER_PROF, 0.01, 0.01)
        _native.start(100, True, False, False, False)
        t = time.thread_time()
        while time.thread_time() - t < 0.5: sum(range(200))
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        _native.stop()
        p = _native.collect()
        s = _native.stats()
        print(len(calls), s["signal"], int(signal.SIGPROF), p.sample_count,
              signal.getsignal(signal.SIGPROF) is not signal.SIG_DFL)
        """
    )
    assert r.returncode == 0, r.stderr
    calls, used_signal, sigprof, samples, still_owned = r.stdout.split()
    # The user's handler kept firing (0.5 s of CPU at 10 ms: ~50 calls on a quiet machine; a
    # loaded one merges pending SIGPROFs with or without spanprof, hence the margin).
    assert int(calls) >= 20
    assert int(used_signal) != int(sigprof)  # we took a real-time signal instead
    assert int(samples) >= 20
    assert still_owned == "True"


def test_blocking_c_calls_never_see_eintr():
    r = run_python(
        """
        import ctypes, ctypes.util, errno, select, threading, time
        from spanprof import _native
        libc = ctypes.CDLL(None, use_errno=True)
        class Timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]
        class Timeval(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]
        epfd = libc.epoll_create1(0)
        events = (ctypes.c_char * 64)()
        failures = []
        calls = [0]
        def check(name, rc):
            calls[0] += 1
            if rc == -1:
                failures.append((name, ctypes.get_errno()))
        def burn(sec):
            t = time.thread_time()
            while time.thread_time() - t < sec: sum(range(200))
        def worker(deadline):
            while time.monotonic() < deadline:
                burn(0.003)
                check("poll", libc.poll(None, 0, 1))
                burn(0.003)
                check("nanosleep", libc.nanosleep(ctypes.byref(Timespec(0, 1000000)), None))
                burn(0.003)
                check("select", libc.select(0, None, None, None, ctypes.byref(Timeval(0, 1000))))
                burn(0.003)
                check("epoll_wait", libc.epoll_wait(epfd, events, 1, 1))
                for _ in range(200):  # busy, mostly in the kernel
                    check("epoll_wait0", libc.epoll_wait(epfd, events, 1, 0))
                    check("poll0", libc.poll(None, 0, 0))
        _native.start(250, False, False, False, False)
        deadline = time.monotonic() + 2.0
        ts = [threading.Thread(target=worker, args=(deadline,)) for _ in range(3)]
        for t in ts: t.start()
        worker(deadline)
        for t in ts: t.join()
        _native.stop()
        s = _native.stats()
        print(len(failures), calls[0], s["samples_taken"], failures[:5])
        """
    )
    assert r.returncode == 0, r.stderr
    nfail, ncalls, samples, rest = r.stdout.split(maxsplit=3)
    assert int(samples) > 50
    assert int(ncalls) > 10000
    assert int(nfail) == 0, rest


def count_posix_timers() -> int:
    with open(f"/proc/{os.getpid()}/timers") as f:
        return sum(1 for line in f if line.startswith("ID:"))


def test_thread_churn_leaks_no_timers_and_bounded_memory(native):
    native.start(100, True, False, False, False)

    def short_lived():
        t = time.thread_time()
        while time.thread_time() - t < 0.002:
            pass
        time.sleep(0.03)

    def wave(n):
        ts = [threading.Thread(target=short_lived) for _ in range(n)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    wave(200)  # warm up allocator and caches
    time.sleep(0.2)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    created_before = native.stats()["timers_created"]
    for _ in range(15):
        wave(200)
    time.sleep(0.3)  # a few scans: timers of exited threads are deleted
    s = native.stats()
    assert s["timers_created"] - created_before >= 300, s  # churned threads were really armed
    live = threading.active_count()
    assert s["timers_active"] <= live
    assert count_posix_timers() <= live
    assert s["timers_created"] - s["timers_deleted"] == s["timers_active"]
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert rss_after - rss_before < 64 * 1024, (rss_before, rss_after)  # KiB
    native.stop()
    assert count_posix_timers() == 0


def test_shutdown_with_profiler_running_exits_cleanly():
    for variant in ("plain", "daemon", "sys_exit"):
        r = run_python(
            f"""
            import sys, threading, time
            from spanprof import _native
            def spin():
                while True: sum(range(500))
            _native.start(250, False, False, False, False)
            if "{variant}" != "plain":
                for _ in range(4):
                    threading.Thread(target=spin, daemon=True).start()
            t = time.thread_time()
            while time.thread_time() - t < 0.2: sum(range(200))
            if "{variant}" == "sys_exit":
                sys.exit(0)
            """,
            timeout=60,
        )
        assert r.returncode == 0, (variant, r.returncode, r.stderr)


def test_stop_start_cycles_and_collect_while_running(native):
    for _ in range(20):
        native.start(250, True, False, False, False)
        t = time.thread_time()
        while time.thread_time() - t < 0.02:
            sum(range(100))
        native.collect()
        native.stop()
    assert not native.is_running()
    assert native.stats()["timers_active"] == 0


def test_signal_taken_while_running_moves_timers_and_keeps_sampling():
    r = run_python(
        """
        import signal, time
        from spanprof import _native
        def burn(sec):
            t = time.thread_time()
            while time.thread_time() - t < sec: sum(range(200))
        _native.start(100, True, False, False, False)
        sig = _native.stats()["signal"]
        calls = []
        signal.signal(sig, lambda s, f: calls.append(s))  # another library takes the signal over
        burn(0.5)
        before = _native.stats()["samples_taken"]
        burn(1.0)
        s = _native.stats()
        print(len(calls), sig, s["signal"], s["signal_moves"], s["timers_active"],
              s["samples_taken"] - before, s["sampling_gap_ns"])
        _native.stop()
        """
    )
    assert r.returncode == 0, r.stderr
    calls, old, new, moves, active, later, gap = map(int, r.stdout.split())
    assert moves == 1 and new != old and active >= 1
    # Only what was in flight before the drain's next check (every 100 ms) reached the new owner.
    assert calls <= 15
    assert later >= 70  # 1 s of CPU at 100 Hz after the move: sampling went on
    assert 0 < gap <= 2_000_000_000


def test_program_that_owns_sigprof_sees_only_its_own_signals_and_is_not_killed():
    # A library that installs a SIGPROF handler while spanprof runs and later puts SIG_DFL back
    # (signal.getsignal() cannot see a handler installed from C, so "restoring the old one" is
    # exactly that): with spanprof's timers on SIGPROF it received spanprof's signals too, and
    # the next expiry after SIG_DFL ended the process ("Profiling timer expired", 155).
    for rate in (100, 1000):
        r = run_python(
            f"""
            import signal, time
            from spanprof import _native
            def burn(sec):
                t = time.process_time()
                while time.process_time() - t < sec: sum(range(200))
            _native.start({rate}, True, False, False, False)
            calls = []
            signal.signal(signal.SIGPROF, lambda s, f: calls.append(s))
            signal.setitimer(signal.ITIMER_PROF, 0.05, 0.05)
            burn(1.0)
            signal.setitimer(signal.ITIMER_PROF, 0, 0)
            signal.signal(signal.SIGPROF, signal.SIG_DFL)
            def periods():  # records plus the expiries a busy machine merged into them
                s = _native.stats()
                return s["samples_taken"] + s["timer_overruns"]
            before = periods()
            burn(1.0)
            after = periods()
            _native.stop()
            print(len(calls), after - before, _native.stats()["signal"], int(signal.SIGPROF))
            """
        )
        assert r.returncode == 0, (rate, r.returncode, r.stderr)
        calls, later, used, sigprof = map(int, r.stdout.split())
        assert used != sigprof
        # 1 s of process CPU at 50 ms: 20 of its own signals (a loaded machine merges some), and
        # none of ours, which would add one per sampling period (100-1,000 more).
        assert 10 <= calls <= 26, calls
        # Sampling went on after SIG_DFL: 1 s of CPU is `rate` periods (at most one signal per
        # kernel tick, 250 Hz here; the rest arrive as overruns counted in the same record).
        assert later >= 0.7 * rate, (rate, later)


def test_stacks_stay_whole_while_frames_are_entered_and_left():
    # CPython 3.11/3.12 publish a new frame before it is linked (and 3.11 pops one before it
    # publishes the caller): a sample landing there once followed stack garbage into a SIGSEGV.
    # bench/agent_transitions.py runs many threads doing nothing but C->Python calls, generator
    # resumes and returns across data-stack chunks, sampled at the highest rate: the program
    # must finish, and every sample's stack must be a real one, rooted in the worker that made
    # the calls and in the thread's outermost frame.
    script = Path(__file__).resolve().parents[2] / "bench" / "agent_transitions.py"
    r = run_python(
        f"import runpy, sys; sys.argv = ['agent_transitions', '--seconds', '3']; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')",
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    import json

    st = json.loads(r.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    assert st["worker_samples"] >= 200, st
    assert st["unrooted_worker_samples"] == 0, st
    assert st["samples_dropped_unsettled"] <= st["samples_taken"] // 100, st


def test_fault_guard_catches_bad_reads_and_leaves_real_faults_to_their_owner():
    # The handler reads interpreter memory under a SIGSEGV/SIGBUS guard. A fault inside the guard
    # is caught; any other fault must reach whoever handled SIGSEGV before (here faulthandler),
    # while the profiler runs and after it stopped, and kill the process as it would have.
    for when in ("running", "stopped", "no_faulthandler"):
        r = run_python(
            f"""
            import ctypes, faulthandler, sys
            from spanprof import _native
            if "{when}" != "no_faulthandler":
                faulthandler.enable()
            _native.start(100, True, False, False, False)
            assert _native._fault_guard_selftest() == 3
            if "{when}" == "stopped":
                _native.stop()
            print("before-crash", flush=True)
            ctypes.string_at(0)
            print("survived", flush=True)
            """,
            timeout=60,
        )
        assert "before-crash" in r.stdout, (when, r.stderr)
        assert "survived" not in r.stdout, when
        if "libasan" in os.environ.get("LD_PRELOAD", ""):
            # The sanitizer's own SIGSEGV handler is the first owner: it reports and exits 1.
            assert r.returncode != 0 and "SEGV" in r.stderr, (when, r.returncode, r.stderr)
        else:
            assert r.returncode == -11, (when, r.returncode, r.stderr)
        if when != "no_faulthandler":
            assert "Segmentation fault" in r.stderr, (when, r.stderr)
