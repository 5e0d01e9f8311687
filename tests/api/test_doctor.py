"""`spanprof doctor` on every interpreter: its sections, a sampler that really takes samples here,
the free-threaded line where it applies, and the server check against a real HTTP endpoint that
answers like a spanprof server, and against a closed port."""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig

from support import SRC, free_port


def doctor(*args: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "spanprof", "doctor", *args],
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_doctor_reports_each_section_and_a_working_sampler(receiver):
    receiver.spanprof = True
    out = doctor("-s", receiver.url)
    titles = [line for line in out.splitlines() if line and not line.startswith(" ")]
    assert titles == ["Python", "Agent", "Sampling", "Installed", "Server"], out
    assert re.search(r"^  sampler\s+working$", out, re.M), out
    assert re.search(r"^  samples\s+[1-9]\d* in ", out, re.M), out
    free = "yes" if sysconfig.get_config_var("Py_GIL_DISABLED") else "no"
    assert re.search(rf"^  free-threaded build\s+{free}$", out, re.M), out
    assert re.search(r"^  answers\s+yes, spanprof server test$", out, re.M), out
    assert not re.search(r"^  error\s", out, re.M), out


def test_doctor_says_when_the_server_does_not_answer():
    out = doctor("-s", f"http://127.0.0.1:{free_port()}")
    assert re.search(r"^  answers\s+no: .*spanprof serve", out, re.M), out


def test_doctor_shows_the_agents_capabilities_and_a_working_wall_clock_probe():
    out = doctor("-s", f"http://127.0.0.1:{free_port()}")
    assert re.search(r"^  wall-clock threads\s+yes", out, re.M), out
    assert re.search(r"^  asyncio tasks\s+yes", out, re.M), out
    assert re.search(r"^  wall-clock\s+working \(\d+ ms of a 200 ms sleep seen\)$", out, re.M), out
