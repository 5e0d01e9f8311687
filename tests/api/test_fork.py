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
