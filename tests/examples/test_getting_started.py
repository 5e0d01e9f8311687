"""docs/getting-started.md's `spanprof run` walk-through, run as written: its app.py, its command
with the file exporter, and its pprof command on the files that come out."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

from harness import ROOT, check_labels_hex
from pprof_reader import read_file

DOC = (ROOT / "docs" / "getting-started.md").read_text()
PPROF = ROOT / "build" / "tools" / "pprof"


def code_block(first_line: str) -> str:
    for block in re.findall(r"```(?:python|bash)\n(.*?)```", DOC, re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no code block starting with {first_line!r} in getting-started.md")


def test_spanprof_run_to_files(tmp_path):
    (tmp_path / "app.py").write_text(code_block("# app.py"))
    commands = code_block("spanprof run -n my-app -s file://").splitlines()
    run = shlex.split(commands[0])
    assert run[:2] == ["spanprof", "run"] and run[-2:] == ["python", "app.py"]
    out_dir = tmp_path / "profiles"
    argv = [sys.executable, "-m", "spanprof", *run[1:-2], sys.executable, "app.py"]
    argv = [a.replace("file:///tmp/profiles", f"file://{out_dir}") for a in argv]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    subprocess.run(argv, cwd=tmp_path, env=env, check=True, timeout=120)

    files = sorted(out_dir.glob("my-app-*.pb.gz"))
    assert files, "no profile written"
    samples = [s for f in files for s in read_file(f).samples if "crunch" in s.functions]
    assert samples, "no sample in crunch()"
    for s in samples:
        assert s.labels.get("span_name") == "job"
        check_labels_hex(s.labels)
    assert len({s.labels["span_id"] for s in samples}) >= 2  # five job spans

    # The doc's pprof command, with Google's pprof in place of `go tool pprof`.
    pprof_line = next(c for c in commands if "pprof" in c)
    args = shlex.split(pprof_line.split("pprof", 1)[1].replace("/tmp/profiles/my-app-*.pb.gz", ""))
    out = subprocess.run(
        [str(PPROF), *args, *map(str, files)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "crunch" in out, out


def test_spanprof_record(tmp_path):
    (tmp_path / "app.py").write_text(code_block("# app.py"))
    record, show = code_block("spanprof record -o out.pprof").splitlines()[:2]
    run = shlex.split(record)
    assert run[:2] == ["spanprof", "record"] and run[-2:] == ["python", "app.py"]
    argv = [sys.executable, "-m", "spanprof", *run[1:-2], sys.executable, "app.py"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    subprocess.run(argv, cwd=tmp_path, env=env, check=True, timeout=120)

    profile = read_file(tmp_path / "out.pprof")
    assert any("crunch" in s.functions for s in profile.samples)
    args = shlex.split(show.split("#")[0])[1:]
    out = subprocess.run(
        [str(PPROF), *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "crunch" in out, out
