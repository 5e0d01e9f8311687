"""One manylinux wheel per supported CPython (free-threaded included), each installing alone into a
fresh venv of its interpreter, loading its native core and finding its packaged server and UI."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import DIST, TOOL_LABEL, Venv, user_env, venv_labels, wheel_for, wheel_tag


@pytest.mark.parametrize("label", venv_labels())
def test_wheel_installs_and_runs(label, tmp_path):
    porting = os.environ.get("SPANPROF_PORTING", "").split()  # scripts/common.sh's PORTING_PYTHONS
    if label in porting and not list(DIST.glob(f"spanprof-*-{wheel_tag(label)}-*.whl")):
        pytest.skip(f"{label} is being ported (issue #14) and has no wheel")
    wheel = wheel_for(label)
    assert re.search(r"-manylinux_2_\d+_x86_64\.whl$", wheel.name), wheel.name
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "spanprof/bin/spanprof-server" in names
    assert "spanprof/_ui/index.html" in names
    assert not [n for n in names if n.endswith((".cc", ".h"))], "C++ sources in the wheel"

    v = Venv(label, tmp_path / "venv", tmp_path / "work")
    v.pip_install("--no-deps", str(wheel))
    out = v.run([v.bin("python"), "-c", "import spanprof._native as n; print(n.__file__)"])
    assert out.startswith(str(v.path)), out
    version = v.run([v.bin("spanprof"), "--version"]).splitlines()
    assert version[0].startswith("spanprof "), version
    # The packaged server runs here (its --version) and the packaged UI is found.
    assert re.match(rf"server \d+\.\d+\S* \({re.escape(str(v.path))}/", version[1]), version
    assert re.match(rf"ui \d+\.\d+\S* \({re.escape(str(v.path))}/", version[2]), version


def test_missing_parts_are_named_with_what_to_install(tmp_path):
    """An installation without the server or the UI (an sdist built without the server's
    build dependencies) says what to install, never a script of the checkout."""
    v = Venv(TOOL_LABEL, tmp_path / "venv", tmp_path / "work")
    v.pip_install("--no-deps", str(wheel_for(TOOL_LABEL)))
    pkg = v.run(
        [v.bin("python"), "-c", "import spanprof, os; print(os.path.dirname(spanprof.__file__))"]
    )
    pkg_dir = Path(pkg.strip())
    shutil.rmtree(pkg_dir / "bin")
    shutil.rmtree(pkg_dir / "_ui")
    for command in ("serve", "demo"):
        r = subprocess.run(
            v.argv([v.bin("spanprof"), command]),
            cwd=v.cwd,
            env=user_env(v.path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode != 0, r
        assert "no server binary" in r.stderr and "pip install" in r.stderr, r.stderr
        assert "scripts/" not in r.stderr, r.stderr
    version = v.run([v.bin("spanprof"), "--version"]).splitlines()
    assert version[1:] == ["server not installed", "ui not installed"], version
