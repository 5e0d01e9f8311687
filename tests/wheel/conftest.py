"""What `pip install spanprof` gives a user: the wheels and the sdist that scripts/package put in
dist/, installed into fresh virtualenvs in temporary folders outside the checkout and run there
with an environment that knows nothing of the checkout (no PYTHONPATH, no SPANPROF_* variables,
PATH without the repository or its venvs). scripts/test runs scripts/package, then these tests."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("SPANPROF_DIST", ROOT / "dist"))
SID = ROOT / "scripts" / "sid"
SID_MARK = ".spanprof-sid"
# Bounds, not timing assertions: pip downloads from PyPI and builds on a shared 2-core machine.
PIP_TIMEOUT_S = 900
SDIST_TIMEOUT_S = 1800
# The versions each part declares where it is built: the package, the server, the UI.
_PYPROJECT = (ROOT / "pyproject.toml").read_text()
_SERVER_CMAKE = (ROOT / "server" / "CMakeLists.txt").read_text()
VERSION = re.search(r'^version = "(.+)"', _PYPROJECT, re.M)[1]  # type: ignore[index]
SERVER_VERSION = re.search(r'SPANPROF_SERVER_VERSION "(.+)"', _SERVER_CMAKE)[1]  # type: ignore[index]
UI_VERSION = json.loads((ROOT / "ui" / "package.json").read_text())["version"]
# The interpreter running these tests (the tooling CPython): its wheel is the one used end to end.
TOOL_LABEL = f"{sys.version_info[0]}.{sys.version_info[1]}"


def wheel_tag(label: str) -> str:
    """`3.13t` -> `cp313-cp313t`: the interpreter and ABI tags of that venv's wheel."""
    digits = label.rstrip("t").replace(".", "")
    return f"cp{digits}-cp{digits}{'t' if label.endswith('t') else ''}"


def wheel_for(label: str) -> Path:
    found = sorted(DIST.glob(f"spanprof-*-{wheel_tag(label)}-*.whl"))
    assert len(found) == 1, f"expected one wheel for {label} in {DIST}, found {found}"
    return found[0]


def sdist() -> Path:
    found = sorted(DIST.glob("spanprof-*.tar.gz"))
    assert len(found) == 1, f"expected one sdist in {DIST}, found {found}"
    return found[0]


def venv_labels() -> List[str]:
    return sorted(
        p.name
        for p in (ROOT / ".venvs").iterdir()
        if re.fullmatch(r"3\.1\d+t?", p.name) and (p / "bin" / "python").exists()
    )


def base_python(label: str) -> str:
    """The interpreter the checkout's venv for `label` was made from."""
    cfg = dict(
        line.split(" = ", 1)
        for line in (ROOT / ".venvs" / label / "pyvenv.cfg").read_text().splitlines()
        if " = " in line
    )
    if "executable" in cfg:
        return cfg["executable"]
    return str(Path(cfg["home"]) / f"python{label.rstrip('t')}")


def in_sid(label: str) -> bool:
    return (ROOT / ".venvs" / label / SID_MARK).exists()


def user_env(venv: Optional[Path] = None) -> Dict[str, str]:
    """A user's environment: the venv's bin/ first, then the system; what pip needs to reach the
    package index (proxy and index settings) is kept, nothing else of ours."""
    keep = ("HOME", "LANG", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("PIP_")}
    env.update({k: v for k, v in os.environ.items() if k.lower().endswith("_proxy")})
    paths = ["/usr/local/bin", "/usr/bin", "/bin"]
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *paths] if venv else paths)
    return env


def run_checked(argv: List[str], cwd: Path, env: Dict[str, str], timeout: float) -> str:
    """Runs argv to completion; its stdout, or a failure showing both outputs' ends."""
    r = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, (
        f"{argv} failed ({r.returncode}):\n--- stdout\n{r.stdout[-5000:]}\n"
        f"--- stderr\n{r.stderr[-5000:]}"
    )
    return r.stdout


class Venv:
    """A fresh virtualenv in a temporary folder, for the interpreter of one of the checkout's
    venvs; commands run in `cwd` (outside the checkout), through scripts/sid for the sid root's."""

    def __init__(self, label: str, path: Path, cwd: Path) -> None:
        self.label, self.path, self.cwd = label, path, cwd
        self.sid = in_sid(label)
        cwd.mkdir(parents=True, exist_ok=True)
        self.run([base_python(label), "-m", "venv", str(path)], timeout=300)

    def argv(self, argv: List[str]) -> List[str]:
        return [str(SID), *argv] if self.sid else argv

    def run(
        self, argv: List[str], timeout: float = 120, extra_env: Optional[Dict[str, str]] = None
    ) -> str:
        env = {**user_env(self.path), **(extra_env or {})}
        return run_checked(self.argv(argv), self.cwd, env, timeout)

    def bin(self, name: str) -> str:
        return str(self.path / "bin" / name)

    def pip_install(self, *what: str, timeout: float = PIP_TIMEOUT_S) -> None:
        # A build from source (the sdist) compiles on at most 2 cores: the machine is shared.
        self.run(
            [self.bin("python"), "-m", "pip", "install", "-q", *what],
            timeout=timeout,
            extra_env={"CMAKE_BUILD_PARALLEL_LEVEL": "2"},
        )

    def popen(self, argv: List[str], **kw: object) -> subprocess.Popen:
        return subprocess.Popen(
            self.argv(argv),
            cwd=self.cwd,
            env=user_env(self.path),
            text=True,
            **kw,  # type: ignore[call-overload]
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(url: str, body: Optional[bytes] = None, timeout: float = 10) -> bytes:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    req = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return bytes(r.read())


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"exited with {proc.returncode} before answering {url}"
        try:
            http(url, timeout=2)
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def check_serving(url: str, ui_index: Optional[Path] = None, ui: bool = True) -> None:
    """The querier API answers (Connect JSON, as Grafana's data source asks) and / is the built
    UI (`ui_index`'s content when given) rather than the server's placeholder page."""
    info = json.loads(http(f"{url}/api/v1/info"))
    assert info.get("version"), info
    types = json.loads(http(f"{url}/querier.v1.QuerierService/ProfileTypes", b"{}"))
    assert isinstance(types, dict), types
    if not ui:
        return
    page = http(f"{url}/").decode()
    assert "<script" in page, page[:300]
    if ui_index is not None:
        assert page == ui_index.read_text(), "/ is not the packaged UI's index.html"


@pytest.fixture
def stop_later():
    procs: List[subprocess.Popen] = []
    yield procs.append
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)
