"""Post-import hook: when the program (or opentelemetry-instrument) imports the OpenTelemetry SDK,
every TracerProvider it creates gets spanprof's span processor."""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any, Optional, Sequence

TARGET = "opentelemetry.sdk.trace"


def _on_sdk_loaded() -> None:
    try:
        from spanprof.otel import instrument_tracer_providers

        instrument_tracer_providers()
    except Exception as e:
        sys.stderr.write(f"spanprof: spans will not be linked to profiles: {e!r}\n")


class _SdkImportHook(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Optional[Sequence[str]], target: Any = None) -> Any:
        if name != TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            _remove_hook()
            _on_sdk_loaded()

        loader.exec_module = exec_module  # type: ignore[method-assign] # the loader object belongs to this one module
        return spec


_hook = _SdkImportHook()


def _remove_hook() -> None:
    try:
        sys.meta_path.remove(_hook)
    except ValueError:
        pass


def link_spans_when_otel_sdk_loads() -> None:
    if TARGET in sys.modules:
        _on_sdk_loaded()
    elif _hook not in sys.meta_path:
        sys.meta_path.insert(0, _hook)
