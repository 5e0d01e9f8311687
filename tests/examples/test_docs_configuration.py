"""docs/configuration.md against the code: every configure() keyword with its real default, every
environment variable the code reads, every option of every `spanprof` subcommand. A change on
either side without the other fails here."""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path
from typing import Dict, List

import pytest

from spanprof import _config, cli
from spanprof._config import LineNo, ProfilerImplementation

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"


def sections() -> Dict[str, List[List[str]]]:
    """heading text -> the rows (cells, backticks kept) of the first table under it, header
    row dropped."""
    out: Dict[str, List[List[str]]] = {}
    heading, done = "", set()
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            if heading in out:
                done.add(heading)
            heading = line.lstrip("#").strip()
        elif line.startswith("|") and heading not in done:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if set("".join(cells)) <= set("-: "):
                continue  # the |---|---| line
            out.setdefault(heading, []).append(cells)
        elif heading in out:
            done.add(heading)
    return {h: rows[1:] for h, rows in out.items()}


def code_spans(cell: str) -> List[str]:
    return re.findall(r"`([^`]*)`", cell)


def accepted_keywords() -> set:
    """The keyword set that _config.build checks unknown keywords against."""
    sets = [
        c
        for c in _config.build.__code__.co_consts
        if isinstance(c, frozenset) and "application_name" in c
    ]
    assert len(sets) == 1, "could not find configure()'s keyword set in _config.build"
    return set(sets[0])


KEYWORDS = sections()["`configure()` keywords"]


def test_every_keyword_is_documented_and_nothing_else():
    documented = [code_spans(row[0])[0] for row in KEYWORDS]
    assert len(documented) == len(set(documented)), "a keyword is documented twice"
    assert set(documented) == accepted_keywords()


@pytest.mark.parametrize("row", KEYWORDS, ids=lambda r: code_spans(r[0])[0])
def test_documented_default_is_the_real_default(row):
    keyword, default_text = code_spans(row[0])[0], code_spans(row[1])[0]
    value = eval(default_text, {"LineNo": LineNo, "ProfilerImplementation": ProfilerImplementation})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        given = _config.build({keyword: value})
        default = _config.build({})
    # Passing the documented default must change nothing at all.
    assert given == default, f"{keyword}={default_text} is not what configure() does by default"
    if keyword in _config.Config.__dataclass_fields__:
        assert getattr(given, keyword) == getattr(default, keyword)


ENV = sections()["Environment variables"]
SAMPLE = {"string": "x", "integer": "7", "number": "2.5", "boolean": "true", "map": "a=b"}


def test_every_variable_the_code_reads_is_documented_and_nothing_else():
    documented = {name for row in ENV for name in code_spans(row[0])}
    derived = {p + k.upper() for k in _config._ENV_KEYS for p in ("SPANPROF_", "PYROSCOPE_")}
    literals = set()
    for path in (ROOT / "src" / "spanprof").rglob("*.py"):
        literals |= set(
            re.findall(r"[\"']((?:SPANPROF|PYROSCOPE|OTEL)_[A-Z_]+)[\"']", path.read_text())
        )
    assert documented == derived | literals


@pytest.mark.parametrize(
    "row", [r for r in ENV if code_spans(r[1])], ids=lambda r: code_spans(r[0])[0]
)
def test_variable_sets_its_keyword(row):
    kind = row[2].split(",")[0].split(":")[0].strip()
    for name in code_spans(row[0]):
        raw = "service.name=svc,team=x" if name == "OTEL_RESOURCE_ATTRIBUTES" else SAMPLE[kind]
        kw = _config.from_env({name: raw})
        assert set(code_spans(row[1])) <= set(kw), f"{name}={raw!r} gave {kw}"


def subcommand_parsers() -> Dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_subcommand_is_documented_and_nothing_else():
    documented = {m.group(1) for h in sections() if (m := re.fullmatch(r"`spanprof (\w+)`", h))}
    assert documented == set(subcommand_parsers())


@pytest.mark.parametrize("name", sorted(subcommand_parsers()))
def test_subcommand_options(name):
    parser = subcommand_parsers()[name]
    rows = sections()[f"`spanprof {name}`"]
    documented = {opt for row in rows for opt in code_spans(row[0])}
    real = {
        opt
        for a in parser._actions
        for opt in a.option_strings
        if not isinstance(a, argparse._HelpAction)
    }
    assert documented == real
    header = [
        c.strip()
        for c in DOC.read_text().split(f"### `spanprof {name}`")[1].split("\n|")[1].split("|")
    ]
    for row in rows:
        opt = code_spans(row[0])[-1]
        (action,) = [a for a in parser._actions if opt in a.option_strings]
        if header[1] == "default":  # the documented default is argparse's
            assert code_spans(row[1]) == [str(action.default)] or (
                action.default is None and row[1] == "—"
            )
        elif header[1] == "sets":  # the option sets that environment variable
            module = parser.get_default("_module")
            argv = (
                [opt]
                if action.nargs == 0
                else [
                    opt,
                    "1" if action.type in (int, float) else "pyroscope" if action.choices else "v",
                ]
            )
            env = module.build_env(parser.parse_args([*argv, "--", "true"]), {})
            assert code_spans(row[1])[0] in env, f"{opt} does not set {row[1]}"
