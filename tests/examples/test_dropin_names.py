"""`import spanprof as pyroscope` / `from spanprof.otel import ...`: every public name of the
installed pyroscope-io and pyroscope-otel (scripts/requirements-tools.txt pins them) exists in
spanprof, with the same callable signature where it is a function."""

from __future__ import annotations

import inspect
import types

import pyroscope
import pyroscope.otel

import spanprof
import spanprof.otel


def public_names(mod: types.ModuleType) -> set[str]:
    """Names the module defines for its users: not modules, not helpers imported from elsewhere."""
    out = set()
    prefix = mod.__name__.split(".")[0]
    for name, value in vars(mod).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        defined_in = getattr(value, "__module__", None)
        if (inspect.isfunction(value) or inspect.isclass(value)) and not str(
            defined_in or ""
        ).startswith(prefix):
            continue  # e.g. contextmanager, the OTel SDK classes it imports
        out.add(name)
    return out


def test_every_pyroscope_io_name_exists():
    missing = public_names(pyroscope) - set(dir(spanprof))
    assert not missing, f"pyroscope-io names spanprof lacks: {sorted(missing)}"


def test_every_pyroscope_otel_name_exists_with_the_same_value():
    missing = public_names(pyroscope.otel) - set(dir(spanprof.otel))
    assert not missing, f"pyroscope-otel names spanprof.otel lacks: {sorted(missing)}"
    for name in public_names(pyroscope.otel):
        value = getattr(pyroscope.otel, name)
        if isinstance(value, str):
            assert getattr(spanprof.otel, name) == value, name


def test_functions_accept_pyroscope_ios_parameters():
    for name in public_names(pyroscope):
        theirs = getattr(pyroscope, name)
        if not inspect.isfunction(theirs) or name == "configure_experimental_stack_profiler":
            continue  # (that one takes anything and refuses: spanprof has no such sampler mode)
        ours = inspect.signature(getattr(spanprof, name)).parameters
        accepts_any = any(p.kind is p.VAR_POSITIONAL for p in ours.values())
        for pname, p in inspect.signature(theirs).parameters.items():
            if p.kind is p.POSITIONAL_OR_KEYWORD and not accepts_any:
                assert pname in ours, f"spanprof.{name} lacks parameter {pname}"


def test_runtime_name_and_version_match():
    assert spanprof.runtime_name() == pyroscope.runtime_name()
    assert spanprof.runtime_version() == pyroscope.runtime_version()
    assert spanprof.configure_experimental_stack_profiler(max_nframe=64) is False
