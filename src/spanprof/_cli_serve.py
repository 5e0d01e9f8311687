"""``spanprof serve``: start the C++ server (ingest, durable storage, query API, web UI).

The binary and the UI are the installed package's (spanprof._install says where it looks); this
process is replaced by the server (exec), so signals and the exit code are the server's own.
"""

from __future__ import annotations

import argparse
import os
import sys

from spanprof._install import (
    find_server_binary,
    find_ui_dir,
    server_missing_message,
    ui_missing_message,
)

__all__ = ["add_arguments", "build_command", "find_server_binary", "find_ui_dir", "main"]


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
        "--otlp-grpc",
        default=None,
        help="host:port for OTLP/gRPC (traces and profiles), e.g. 127.0.0.1:4317 (default: off)",
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
        "--ui-dir", default=None, help="built web UI directory (default: the installed package's)"
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
    if args.otlp_grpc:
        cmd += ["--otlp-grpc", args.otlp_grpc]
    if args.auth_token:
        cmd += ["--auth-token", args.auth_token]
    ui_dir = args.ui_dir or find_ui_dir()
    if ui_dir:
        cmd += ["--ui-dir", ui_dir]
    else:
        print(ui_missing_message("spanprof serve"), file=sys.stderr)
    extra = [a for a in (args.extra or []) if a != "--"]
    return cmd + extra


def main(args: argparse.Namespace) -> int:
    binary = find_server_binary()
    if not binary:
        print(server_missing_message("spanprof serve"), file=sys.stderr)
        return 1
    cmd = build_command(args, binary)
    os.execv(binary, cmd)
    return 0  # not reached
