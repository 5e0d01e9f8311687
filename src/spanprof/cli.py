"""`spanprof` command line: run, record, serve, demo, doctor. Each subcommand lives in its own
module; `--version` prints the agent's, the server's and the UI's versions."""

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
    "doctor": (
        "spanprof._doctor",
        "report what the agent can do here, the server and UI installed, the server in use",
    ),
}


def version_text() -> str:
    """One line per part: the agent (this package), the packaged server, the packaged UI."""
    from spanprof import __version__, _install

    binary = _install.find_server_binary()
    ui_dir = _install.find_ui_dir()
    server = _install.server_version(binary) if binary else None
    ui = _install.ui_version(ui_dir) if ui_dir else None
    server_text = server or ("unknown: the binary does not run" if binary else "not installed")
    return (
        f"spanprof {__version__}\n"
        f"server {server_text}" + (f" ({binary})" if binary else "") + "\n"
        f"ui {ui or 'not installed'}" + (f" ({ui_dir})" if ui_dir else "")
    )


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spanprof", description="Span profiles for Python.")
    parser.add_argument("--version", action=_VersionAction)
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
