"""``spanprof serve``: start the C++ server (ingest, durable storage, query API, web UI).

The binary is found via $SPANPROF_SERVER_BIN, then <repo>/build/server/spanprof-server, then the
installed package's bin/, then PATH; this process is replaced by it (exec), so signals and the
exit code are the server's own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Optional

SERVER_BINARY_NAME = "spanprof-server"
_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_ROOT = os.path.dirname(os.path.dirname(_PKG_DIR))


def find_server_binary() -> Optional[str]:
    """$SPANPROF_SERVER_BIN, then the build tree, then the installed package, then PATH."""
    env = os.environ.get("SPANPROF_SERVER_BIN")
    if env:
        return env if os.access(env, os.X_OK) else None
    for cand in (
        os.path.join(_REPO_ROOT, "build", "server", SERVER_BINARY_NAME),
        os.path.join(_PKG_DIR, "bin", SERVER_BINARY_NAME),
    ):
        if os.access(cand, os.X_OK):
            return cand
    return shutil.which(SERVER_BINARY_NAME)


def find_ui_dir() -> Optional[str]:
    for cand in (
        os.environ.get("SPANPROF_UI_DIR"),
        os.path.join(_PKG_DIR, "_ui"),
        os.path.join(_REPO_ROOT, "ui", "dist"),
    ):
        if cand and os.path.isfile(os.path.join(cand, "index.html")):
            return cand
    return None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", default="spanprof-data", help="database directory (default: %(default)s)"
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1:4040",
        help="host:port of the API and UI (default: %(default)s)",
    )
    p.add_argument(
        "--otlp-listen", default=None, help="extra host:port for OTLP/HTTP, e.g. 127.0.0.1:4318"
    )
    p.add_argument(
        "--retention", default="7d", help="delete data older than this, e.g. 7d, 12h; 0 keeps all"
    )
    p.add_argument(
        "--max-disk",
        default="0",
        help="delete the oldest data past this size, e.g. 10GB; 0 = no limit",
    )
    p.add_argument(
        "--auth-token", default=None, help="require this Bearer token (or Basic password)"
    )
    p.add_argument(
        "--ui-dir", default=None, help="built web UI directory (default: ui/dist when present)"
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    p.add_argument(
        "extra", nargs=argparse.REMAINDER, help="further flags passed to spanprof-server"
    )


def build_command(args: argparse.Namespace, binary: str) -> list:
    cmd = [binary, "--data-dir", args.data_dir, "--listen", args.listen]
    cmd += [
        "--retention",
        args.retention,
        "--max-disk",
        args.max_disk,
        "--log-level",
        args.log_level,
    ]
    if args.otlp_listen:
        cmd += ["--otlp-listen", args.otlp_listen]
    if args.auth_token:
        cmd += ["--auth-token", args.auth_token]
    ui_dir = args.ui_dir or find_ui_dir()
    if ui_dir:
        cmd += ["--ui-dir", ui_dir]
    extra = [a for a in (args.extra or []) if a != "--"]
    return cmd + extra


def main(args: argparse.Namespace) -> int:
    binary = find_server_binary()
    if not binary:
        print(
            "spanprof serve: the server binary spanprof-server was not found "
            "($SPANPROF_SERVER_BIN, build/server/spanprof-server, PATH). Build it with scripts/build.",
            file=sys.stderr,
        )
        return 1
    cmd = build_command(args, binary)
    os.execv(binary, cmd)
    return 0  # not reached
