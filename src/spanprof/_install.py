"""Where this installation's parts are: the server binary and the built web UI, and their versions.

A wheel carries both in the package (``spanprof/bin/spanprof-server``, ``spanprof/_ui/``), so they
are looked for there first; then in a checkout's build tree (``PYTHONPATH=src``), then on PATH.
``$SPANPROF_SERVER_BIN`` and ``$SPANPROF_UI_DIR`` override everything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Optional

SERVER_BINARY_NAME = "spanprof-server"
PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(os.path.dirname(PKG_DIR))
UI_VERSION_FILE = "spanprof-ui-version"


def in_checkout() -> bool:
    """True when this package is a source checkout's src/spanprof (not an installed copy)."""
    return os.path.isfile(os.path.join(_REPO_ROOT, "server", "CMakeLists.txt"))


def find_server_binary() -> Optional[str]:
    """$SPANPROF_SERVER_BIN, then the package's bin/, then a checkout's build tree, then PATH."""
    env = os.environ.get("SPANPROF_SERVER_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    for cand in (
        os.path.join(PKG_DIR, "bin", SERVER_BINARY_NAME),
        os.path.join(_REPO_ROOT, "build", "server", SERVER_BINARY_NAME),
    ):
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which(SERVER_BINARY_NAME)


def find_ui_dir() -> Optional[str]:
    """$SPANPROF_UI_DIR, then the package's _ui/, then a checkout's ui/dist."""
    for cand in (
        os.environ.get("SPANPROF_UI_DIR"),
        os.path.join(PKG_DIR, "_ui"),
        os.path.join(_REPO_ROOT, "ui", "dist"),
    ):
        if cand and os.path.isfile(os.path.join(cand, "index.html")):
            return cand
    return None


def _fix_hint() -> str:
    if in_checkout():
        return "in this checkout, scripts/setup builds it (build/server, ui/dist)"
    return (
        "install a spanprof wheel that includes it (pip install --force-reinstall spanprof; "
        "an sdist builds it only where the server's build dependencies are installed)"
    )


def server_missing_message(command: str) -> str:
    where = os.environ.get("SPANPROF_SERVER_BIN")
    if where:
        return f"{command}: SPANPROF_SERVER_BIN={where} is not an executable file"
    return (
        f"{command}: this spanprof installation has no server binary ({SERVER_BINARY_NAME}, looked "
        f"in {os.path.join(PKG_DIR, 'bin')} and on PATH): {_fix_hint()}, or point "
        "SPANPROF_SERVER_BIN at one"
    )


def ui_missing_message(command: str) -> str:
    return (
        f"{command}: this spanprof installation has no built web UI (looked in "
        f"{os.path.join(PKG_DIR, '_ui')}): {_fix_hint()}, or point SPANPROF_UI_DIR at one. "
        "The API works without it."
    )


def server_version(binary: Optional[str]) -> Optional[str]:
    """The binary's own ``--version`` output, or None when it does not run."""
    if not binary:
        return None
    try:
        r = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = r.stdout.strip()
    return out.splitlines()[-1] if r.returncode == 0 and out else None


def ui_version(ui_dir: Optional[str]) -> Optional[str]:
    """The version the packaged UI was built at, or the checkout's ui/package.json beside dist/."""
    if not ui_dir:
        return None
    try:
        with open(os.path.join(ui_dir, UI_VERSION_FILE)) as f:
            return f.read().strip() or None
    except OSError:
        pass
    try:
        with open(os.path.join(os.path.dirname(ui_dir), "package.json")) as f:
            return str(json.load(f)["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
