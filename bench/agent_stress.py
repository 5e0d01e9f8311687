"""Stress load for the agent core's symbolisation and thread handling (issue #14).

While the sampler runs at a high rate:
- `--burners` threads burn CPU in parallel (on a free-threaded build they really do run at once);
- one thread compiles and runs short-lived functions with `exec` in a loop and drops them, so their
  code objects die seconds (or microseconds) after being sampled, and their addresses are reused;
- one thread starts and joins threads that do a little work each (thread churn);
- one thread imports fresh modules (module code dies right after import).

Every generated function has a unique name *and* a unique file name, so a frame symbolised from the
wrong code object (a reused address) is visible: `gen_N` must come with `<gen-N>`. Prints one JSON
line with the counters; exits non-zero on a wrong frame. Used by tests/agent/test_symbols.py (a few
seconds) and run for 20 s per interpreter for ARCHITECTURE.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import threading
import time

from spanprof import _native


def burn(seconds: float) -> None:
    t = time.thread_time()
    while time.thread_time() - t < seconds:
        sum(range(300))


def burner(stop: threading.Event) -> None:
    while not stop.is_set():
        burn(0.05)


def exec_churn(stop: threading.Event, made: list[int]) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        src = (
            f"def gen_{i}(n):\n"
            f"    t = 0\n"
            f"    for k in range(n):\n"
            f"        t += k * {i}\n"
            f"    return t\n"
        )
        ns: dict = {}
        exec(compile(src, f"<gen-{i}>", "exec"), ns)
        ns[f"gen_{i}"](20_000)
        del ns  # the function and its code object die here
        made[0] = i


def thread_churn(stop: threading.Event, started: list[int]) -> None:
    while not stop.is_set():
        ts = [threading.Thread(target=burn, args=(0.002,)) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        started[0] += len(ts)


def import_churn(stop: threading.Event, imported: list[int], folder: str) -> None:
    i = 0
    while not stop.is_set():
        i += 1
        path = os.path.join(folder, f"stress_mod_{i}.py")
        with open(path, "w") as f:
            f.write(f"X = sum(k * k for k in range(20000))\ndef f_{i}():\n    return X\n")
        spec = importlib.util.spec_from_file_location(f"stress_mod_{i}", path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)  # the module's code object dies after this
        os.unlink(path)
        imported[0] = i


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--burners", type=int, default=8)
    ap.add_argument(
        "--min-each",
        type=int,
        default=0,
        help="keep going past --seconds (up to 4x) until each churner did this many rounds",
    )
    args = ap.parse_args()

    stop = threading.Event()
    made, started, imported = [0], [0], [0]
    with tempfile.TemporaryDirectory() as folder:
        _native.start(args.rate, True, False, False, False)
        workers = [threading.Thread(target=burner, args=(stop,)) for _ in range(args.burners)]
        workers += [
            threading.Thread(target=exec_churn, args=(stop, made)),
            threading.Thread(target=thread_churn, args=(stop, started)),
            threading.Thread(target=import_churn, args=(stop, imported, folder)),
        ]
        for w in workers:
            w.start()
        wrong: list[str] = []
        gen_samples = 0
        start = time.monotonic()

        def more() -> bool:
            elapsed = time.monotonic() - start
            if elapsed < args.seconds:
                return True
            short = min(made[0], started[0], imported[0]) < args.min_each
            return short and elapsed < 4 * args.seconds

        while more():
            time.sleep(0.5)
            for frames, _labels, count in _native.collect().samples():
                for fn, file, line in frames:
                    if fn.startswith("gen_"):
                        gen_samples += count
                        if file != f"<gen-{fn[4:]}>" or not (1 <= line <= 5):
                            wrong.append(f"{fn} {file}:{line}")
        stop.set()
        for w in workers:
            w.join()
        _native.stop()
        for frames, _labels, _count in _native.collect().samples():
            for fn, file, _line in frames:
                if fn.startswith("gen_") and file != f"<gen-{fn[4:]}>":
                    wrong.append(f"{fn} {file}")
    s = _native.stats()
    out = {
        "python": sys.version.split()[0],
        "free_threaded": bool(getattr(_native, "FREE_THREADED", 0)),
        "seconds": args.seconds,
        "rate": args.rate,
        "functions_execed": made[0],
        "threads_started": started[0],
        "modules_imported": imported[0],
        "gen_samples": gen_samples,
        "wrong_frames": len(wrong),
        "wrong_examples": wrong[:5],
        **{
            k: s.get(k, 0)
            for k in (
                "samples_taken",
                "samples_aggregated",
                "frames_invalid",
                "frames_invalid_drain",
                "frames_code_lost",
                "code_deaths_lost",
                "samples_dropped_fault",
                "samples_dropped_unsettled",
                "timers_created",
                "timers_deleted",
            )
        },
    }
    print(json.dumps(out))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
