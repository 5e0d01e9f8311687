"""`pip install` of a clean copy of the checkout builds the agent on this interpreter and the
installed package loads its native core (run by scripts/test once per interpreter it provisions)."""

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Generous: it includes downloading the build backend from PyPI and compiling the agent on a
# shared 2-core machine. A bound, not a timing assertion.
INSTALL_TIMEOUT_S = 1200


def clean_copy(dest: Path) -> Path:
    """The checkout as a fresh clone would have it plus uncommitted work: tracked and untracked,
    not ignored, files. scripts/test makes it on the host (where git is) for interpreters in the
    sid root, which has no git, and passes it in SPANPROF_CLEAN_COPY."""
    given = os.environ.get("SPANPROF_CLEAN_COPY")
    if given:
        return Path(given)
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = ROOT / os.fsdecode(name)
        if src.is_file():
            (dest / os.fsdecode(name)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / os.fsdecode(name))
    return dest


def test_pip_install_of_a_clean_copy_builds_and_loads(tmp_path: Path) -> None:
    src = clean_copy(tmp_path / "src")
    assert (src / "pyproject.toml").is_file(), f"no checkout copy at {src}"
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        # The agent only: the server's build from source is tests/wheel/test_sdist.py's (once,
        # not once per interpreter here).
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            str(src),
            "-C",
            "cmake.define.SPANPROF_SERVER=OFF",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    if install.returncode != 0:
        pytest.fail(
            f"pip install failed on {sys.version}:\n{install.stdout[-6000:]}\n{install.stderr[-6000:]}"
        )
    # From an empty directory, so the import can only find the installed copy.
    probe = subprocess.run(
        [str(python), "-c", "import spanprof._native as n, sys; print(n.__file__, sys.version)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert str(env_dir) in probe.stdout, probe.stdout
