"""``spanprof run`` bootstrap: this directory is put first on PYTHONPATH, so Python imports this
module at start-up, before the program's own code, in the program and in every Python child it
spawns (the environment is inherited; forked children are handled by spanprof's at-fork hook).

It starts profiling from the SPANPROF_*/PYROSCOPE_*/OTEL_* environment, arranges for every
OpenTelemetry SDK TracerProvider to get the span processor, sets OpenTelemetry up for a program
that does not (otel_setup; SPANPROF_OTEL_SETUP=0 turns that off), then runs the sitecustomize that
this one shadows (another tool's bootstrap, e.g. opentelemetry-instrument's), if any.
A problem here is reported on stderr and never stops the program.
"""

import os
import sys


def _report(message):
    sys.stderr.write(f"spanprof: {message}\n")


def _import_spanprof():
    try:
        import spanprof
    except ImportError:
        # Not installed where the program's interpreter looks: use the copy this file belongs to,
        # at the end of the path so it never shadows the program's own modules.
        sys.path.append(
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        )
        import spanprof  # noqa: F401


def _start():
    _import_spanprof()
    from spanprof import _config

    if os.environ.get("SPANPROF_ENABLED", "1").strip().lower() in ("0", "false", "no", "off"):
        return
    if os.environ.get("SPANPROF_LINK_SPANS", "1").strip().lower() not in (
        "0",
        "false",
        "no",
        "off",
    ):
        from spanprof._bootstrap import hooks

        hooks.link_spans_when_otel_sdk_loads()
    import spanprof

    kw = _config.from_env(os.environ)
    spanprof.configure(**kw)
    otel = os.environ.get("SPANPROF_OTEL_SETUP", "1").strip().lower()
    if otel not in ("0", "false", "no", "off"):
        from spanprof._bootstrap import otel_setup

        config = _config.build(kw)
        otel_setup.setup(
            os.environ, config.service_name, config.server_address, instrument=otel != "provider"
        )


def _chain():
    """Runs the next ``sitecustomize`` on the path, the one this module shadows."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _start()
except Exception as e:  # the program runs, profiled or not
    _report(f"profiling not started: {e}")
_chain()
