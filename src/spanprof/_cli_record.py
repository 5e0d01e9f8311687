"""`spanprof record`: run a Python program under the native sampler and write its profile to a file.

    spanprof record -o FILE [--format pprof|collapsed|speedscope] [--rate N] [--duration S]
                    [--gil-only/--no-gil-only] [--threads] -- python script.py args...

The program runs in a child interpreter started as ``python -c <bootstrap> script.py args...``: the
bootstrap starts ``spanprof._native`` before the script's first line, runs the script with runpy as
``__main__`` and writes the file at exit, on Ctrl-C, or after ``--duration`` seconds (then it
interrupts the program's main thread). The parent prints a one-line summary.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

FORMATS = ("pprof", "collapsed", "speedscope")
CONFIG_ENV = "SPANPROF_RECORD_CONFIG"

# Runs inside the profiled interpreter; kept free of spanprof imports other than _native so that it
# starts the sampler before anything else of the program is imported.
BOOTSTRAP = r"""
def __spanprof_setup__():
    import atexit, gzip, json, os, sys, threading, time
    cfg = json.loads(os.environ.pop("SPANPROF_RECORD_CONFIG"))
    sys.path[:0] = cfg["sys_path"]
    from spanprof import _native
    pid, lock, done, t0 = os.getpid(), threading.Lock(), [], time.monotonic()

    def write(reason):
        with lock:
            if done or os.getpid() != pid:  # once, and never from a forked child
                return
            done.append(reason)
        _native.stop()
        p = _native.collect()
        if cfg["wall"]:
            p = p.wall
        s = _native.stats()
        fmt, out = cfg["format"], cfg["output"]
        if fmt == "pprof":
            data = gzip.compress(p.to_pprof())
        elif fmt == "collapsed":
            data = p.to_collapsed().encode()
        else:
            data = p.to_speedscope(os.path.basename(cfg["argv"][-1 if cfg["argv"][0] == "-m" else 0])).encode()
        with open(out + ".tmp", "wb") as f:
            f.write(data)
        os.replace(out + ".tmp", out)
        with open(cfg["summary"], "w") as f:
            json.dump({"samples": p.sample_count, "duration_s": time.monotonic() - t0,
                       "dropped": s["samples_dropped"], "reason": reason, "signal": s["signal"]}, f)

    def interrupted():
        if not done:
            write("interrupted")

    _native.start(cfg["rate"], cfg["gil_only"], False, cfg["threads"], cfg["threads"],
                  wall=cfg["wall"], cpu=not cfg["wall"])
    atexit.register(write, "exit")
    if cfg["duration"]:
        import _thread

        def stop_after():
            write("duration")
            _thread.interrupt_main()

        timer = threading.Timer(cfg["duration"], stop_after)
        timer.daemon = True
        timer.start()
    argv = cfg["argv"]
    if argv[0] != "-m" and os.path.isfile(argv[0]):
        # A plain script runs at this module level as __main__ (runpy would add three frames to
        # every stack); only the bootstrap's own <module> frame stays below it.
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        with open(argv[0], "rb") as f:
            return compile(f.read(), argv[0], "exec"), None, interrupted
    import runpy

    def run():
        if argv[0] == "-m":
            sys.argv = argv[1:]
            runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        else:  # a directory or zip with __main__.py
            sys.argv = argv
            runpy.run_path(argv[0], run_name="__main__")

    return None, run, interrupted

__spanprof_code__, __spanprof_run__, __spanprof_interrupted__ = __spanprof_setup__()
del __spanprof_setup__
__file__ = __import__("sys").argv[0]
try:
    if __spanprof_code__ is not None:
        exec(__spanprof_code__)
    else:
        __spanprof_run__()
except KeyboardInterrupt:
    __spanprof_interrupted__()
    raise
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, help="file to write")
    parser.add_argument(
        "--format", choices=FORMATS, default="pprof", help="output format (default pprof, gzipped)"
    )
    parser.add_argument(
        "--rate", type=int, default=100, help="samples per second of CPU per thread (default 100)"
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after S seconds (the program is interrupted)",
    )
    parser.add_argument(
        "--gil-only",
        dest="gil_only",
        action=argparse.BooleanOptionalAction
        if hasattr(argparse, "BooleanOptionalAction")
        else "store_true",
        default=True,
        help="only count samples taken while the thread holds the GIL (default on)",
    )
    parser.add_argument(
        "--threads", action="store_true", help="label samples with thread_id and thread_name"
    )
    parser.add_argument(
        "--wall",
        action="store_true",
        help="record wall-clock time (every thread and suspended asyncio task, waiting included; "
        "samples labelled thread_state) instead of CPU time",
    )
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="-- python script.py args... (or -- script.py args...)",
    )


def _program_argv(command: List[str]) -> Optional[tuple]:
    """(python executable, argv for the bootstrap) from `python script.py args`, `script.py args`
    or `-m module args` (the last two with this interpreter)."""
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return None
    first = os.path.basename(command[0])
    if first.startswith("python"):
        rest = command[1:]
        if not rest:
            return None
        return command[0], rest
    if command[0].endswith(".py") or (command[0] == "-m" and len(command) > 1):
        return sys.executable, command
    return None


def main(args: argparse.Namespace) -> int:
    parsed = _program_argv(list(args.command))
    if parsed is None:
        print(
            "spanprof record: give the program after --, e.g. `spanprof record -o out.pprof -- python app.py`",
            file=sys.stderr,
        )
        return 2
    python, argv = parsed
    if not 1 <= args.rate <= 1000:
        print("spanprof record: --rate must be between 1 and 1000", file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        print("spanprof record: --duration must be positive", file=sys.stderr)
        return 2
    output = str(Path(args.output).resolve())
    package_parent = str(Path(__file__).resolve().parent.parent)
    fd, summary_path = tempfile.mkstemp(prefix="spanprof-record-", suffix=".json")
    os.close(fd)
    cfg = {
        "output": output,
        "format": args.format,
        "rate": args.rate,
        "duration": args.duration,
        "gil_only": bool(args.gil_only),
        "threads": bool(args.threads),
        "wall": bool(args.wall),
        "argv": argv,
        "summary": summary_path,
        "sys_path": [package_parent],
    }
    env = dict(os.environ)
    env[CONFIG_ENV] = json.dumps(cfg)
    # Ctrl-C reaches the child through the terminal's process group; the parent waits for it to
    # write the profile and then reports.
    # (a no-op handler, not SIG_IGN: an ignored SIGINT would be inherited across exec)
    old = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        proc = subprocess.run([python, "-c", BOOTSTRAP, *argv], env=env)
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        with open(summary_path) as f:
            summary = json.load(f)
    except (OSError, ValueError):
        summary = None
    finally:
        os.unlink(summary_path)
    if summary is None:
        print(
            f"spanprof record: the program exited ({proc.returncode}) without writing a profile",
            file=sys.stderr,
        )
        return proc.returncode or 1
    print(
        f"spanprof record: {summary['samples']} samples over {summary['duration_s']:.1f} s, "
        f"{summary['dropped']} dropped -> {args.output} ({args.format})",
        file=sys.stderr,
    )
    if summary["reason"] == "duration":
        return 0
    return proc.returncode
