"""After fork() the child profiles itself and reports under its own pid, with no user hook:
os.fork, multiprocessing (fork start method) and a pre-fork server's workers."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
from support import run_python, samples_with

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork semantics tested on Linux")

PRELUDE = textwrap.dedent(
    """
    import json, os, sys, time
    sys.path.insert(0, os.path.join(os.getcwd(), "tests", "api"))
    from support import burn
    import spanprof

    spanprof.configure(application_name="forky", server_address=os.environ["URL"],
                       report_pid=True, sample_rate=200, upload_interval=0.5)

    def parent_work(s):
        return burn(s)

    def child_work(s):
        return burn(s)
    """
)


def pids_of(series, fn):
    return {s.labels.get("pid") for s in samples_with(series, fn)}


def test_os_fork_child_reports_under_its_own_pid(receiver):
    code = PRELUDE + textwrap.dedent(
        """
        parent_work(0.3)
        pid = os.fork()
        if pid == 0:
            child_work(0.6)
            sys.exit(0)          # a normal exit: the child's last window is flushed at exit
        parent_work(0.3)
        os.waitpid(pid, 0)
        print(json.dumps({"parent": os.getpid(), "child": pid}))
        spanprof.shutdown()
        """
    )
    out = run_python(code, {"URL": receiver.url})
    assert out.returncode == 0, out.stderr
    pids = json.loads(out.stdout.strip().splitlines()[-1])
    series = receiver.series()
    assert pids_of(series, "child_work") == {str(pids["child"])}
    assert pids_of(series, "parent_work") == {str(pids["parent"])}
    # the child re-armed its own timers: it has as many samples as its CPU time says
    child = samples_with(series, "child_work")
    assert sum(s.values[0] for s in child) // 5_000_000 >= 30


def test_multiprocessing_fork_children_each_report(receiver):
    code = PRELUDE + textwrap.dedent(
        """
        import multiprocessing as mp

        def job(seconds):
            child_work(seconds)

        if __name__ == "__main__":
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=job, args=(0.5,)) for _ in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            print(json.dumps({"children": [p.pid for p in procs], "codes": [p.exitcode for p in procs]}))
            spanprof.shutdown()
        """
    )
    out = run_python(code, {"URL": receiver.url})
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["codes"] == [0, 0, 0]
    assert pids_of(receiver.series(), "child_work") == {str(p) for p in info["children"]}


def test_prefork_workers_each_report(receiver):
    # A pre-fork server in miniature (what gunicorn does): the master configures, forks workers
    # that serve and exit normally; nobody calls anything in the workers.
    code = PRELUDE + textwrap.dedent(
        """
        workers = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                for _ in range(5):
                    child_work(0.1)
                    time.sleep(0.05)
                sys.exit(0)
            workers.append(pid)
        for pid in workers:
            os.waitpid(pid, 0)
        print(json.dumps(workers))
        spanprof.shutdown()
        """
    )
    out = run_python(code, {"URL": receiver.url})
    assert out.returncode == 0, out.stderr
    workers = json.loads(out.stdout.strip().splitlines()[-1])
    assert pids_of(receiver.series(), "child_work") == {str(p) for p in workers}


def test_fork_while_the_uploader_waits_on_the_server():
    # The parent's uploader is inside its slow GET /api/v1/info when the program forks: the child's
    # uploader must not wait on anything that thread held (it once blocked for good on the probe's
    # lock, and the child's windows were never sent).
    code = textwrap.dedent(
        """
        import http.server, json, os, sys, threading, time
        probing = threading.Event()

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                probing.set()
                time.sleep(1.5)
                self.send_response(404); self.end_headers()
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        import spanprof
        spanprof.configure(application_name="forky", upload_interval=0.2,
                           server_address=f"http://127.0.0.1:{srv.server_address[1]}")
        t = time.thread_time()
        while not probing.is_set() and time.thread_time() - t < 5:
            sum(range(200))
        assert probing.wait(10)
        pid = os.fork()
        if pid == 0:
            t = time.thread_time()
            while time.thread_time() - t < 0.3:
                sum(range(200))
            ok = spanprof.shutdown(timeout=8)
            os._exit(0 if ok and spanprof.stats()["windows_sent"] > 0 else 3)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"child_exit": os.waitstatus_to_exitcode(status)}))
        """
    )
    out = run_python(code, {})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"child_exit": 0}
