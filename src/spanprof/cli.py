"""`spanprof` command line: run, record, serve, demo. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# name -> (module, one-line help). Each module defines add_arguments(parser) and main(args) -> int.
SUBCOMMANDS = {
    "run": (
        "spanprof._cli_run",
        "run a program with profiling and span linking, configured from the environment",
    ),
    "record": ("spanprof._cli_record", "profile a program and write the profile to a file"),
    "serve": ("spanprof._cli_serve", "start the spanprof server (ingest, storage, query, web UI)"),
    "demo": ("spanprof._cli_demo", "start the server and an instrumented demo service under load"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spanprof", description="Span profiles for Python.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help(sys.stderr)
        return 2
    return int(args._module.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
