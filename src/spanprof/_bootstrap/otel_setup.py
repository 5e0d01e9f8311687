"""``spanprof run``: OpenTelemetry for a program that does not set it up itself.

At start-up every installed ``opentelemetry-instrumentation-*`` package whose library is present
is switched on (as ``opentelemetry-instrument`` does). The TracerProvider is decided later: if the
program starts its first span while no global provider is set, spanprof sets one (the SDK, the
service name of the profiles, an OTLP/HTTP exporter to the configured server). A program that
sets its own provider before its first span keeps it, and the instrumentations report to it.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Mapping, Optional

_lock = threading.Lock()


def _report(message: str) -> None:
    sys.stderr.write(f"spanprof: {message}\n")


def instrument_installed_libraries(environ: Mapping[str, str]) -> None:
    from importlib.metadata import entry_points

    try:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    except ImportError:  # no instrumentation package installed
        return
    disabled = {
        n.strip() for n in environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    }
    for ep in entry_points(group="opentelemetry_instrumentor"):
        if ep.name in disabled:
            continue
        try:
            if ep.dist is not None and get_dist_dependency_conflicts(ep.dist):
                continue  # the library it instruments is not installed (or not a usable version)
            instrumentor = ep.load()()
            if not getattr(instrumentor, "is_instrumented_by_opentelemetry", False):
                instrumentor.instrument()
        except Exception as e:
            _report(f"OpenTelemetry instrumentation {ep.name} not enabled: {e!r}")


def traces_endpoint(environ: Mapping[str, str], server_address: str) -> Optional[str]:
    """Where traces go: OTel's own variables when set (the exporter reads them), else the
    server the profiles go to (spanprof serve takes OTLP traces on the same address); None for
    a file:// destination."""
    if "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in environ or "OTEL_EXPORTER_OTLP_ENDPOINT" in environ:
        return ""
    if server_address.startswith("file:"):
        return None
    base = server_address.split("+", 1)[1] if server_address.startswith("otlp+") else server_address
    return base.rstrip("/") + "/v1/traces"


def _make_provider(service_name: str, endpoint: Optional[str]) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES; OTEL_SERVICE_NAME already named the service.
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if endpoint is None:
        return provider
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        _report(
            "traces are not exported (spans still label the profiles): "
            "pip install opentelemetry-exporter-otlp-proto-http, or 'spanprof[otel]'"
        )
        return provider
    exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def provide_default_tracer_provider(service_name: str, server_address: str) -> None:
    """Sets spanprof's provider at the program's first span if it has set none by then."""
    from opentelemetry import trace

    proxy = getattr(trace, "ProxyTracer", None)
    original = getattr(proxy, "_tracer", None)
    if not isinstance(original, property) or original.fget is None:
        return  # an opentelemetry-api whose internals differ: leave the program as it is
    getter = original.fget
    endpoint = traces_endpoint(os.environ, server_address)

    def _tracer(self: Any) -> Any:
        if self._real_tracer is None and getattr(trace, "_TRACER_PROVIDER", None) is None:
            with _lock:
                if getattr(trace, "_TRACER_PROVIDER", None) is None:
                    try:
                        trace.set_tracer_provider(_make_provider(service_name, endpoint))
                    except Exception as e:
                        _report(f"OpenTelemetry not set up: {e!r}")
                    assert proxy is not None
                    proxy._tracer = original  # type: ignore[attr-defined]
        return getter(self)

    proxy._tracer = property(_tracer)  # type: ignore[union-attr]


def setup(
    environ: Mapping[str, str], service_name: str, server_address: str, instrument: bool = True
) -> None:
    """instrument=False: the provider only (opentelemetry-instrument without a distro installs
    the instrumentations itself)."""
    import importlib.util

    try:  # find, not import: a program that never traces does not pay for loading the SDK
        if importlib.util.find_spec("opentelemetry.sdk") is None:
            return  # no SDK: the program is not traced, and spanprof does not install one
    except ImportError:
        return
    if instrument:
        instrument_installed_libraries(environ)
    provide_default_tracer_provider(service_name, server_address)
