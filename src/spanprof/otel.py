"""OpenTelemetry span processor: profiling samples carry the span that is current in the
interrupted thread's (or asyncio task's) OpenTelemetry context.

pyroscope-otel tags the OS *thread* in ``on_start``/``on_end``, so concurrent asyncio tasks on one
loop steal each other's labels. Here the labels follow the context instead:

- ``on_start`` records, per span, an immutable ``_native.SpanRef`` (trace id, span id, its local
  root's id and name). A local root is a span whose parent is absent or remote; it also gets the
  attribute ``pyroscope.profile.id`` (what Grafana's traces-to-profiles link looks for).
- The processor wraps OpenTelemetry's runtime context so that every ``context.attach(ctx)`` also
  sets a dedicated ContextVar to the SpanRef of the span current in ``ctx`` (None if none), and
  every ``detach`` resets it. ``start_as_current_span``, ``use_span`` and instrumentations all go
  through attach/detach.
- The native sampler reads that ContextVar from the interrupted thread's current context at sample
  time (no GIL, no Python call) and labels the sample ``span_id`` (local root), ``span_name``
  (local root's name), ``trace_id`` and ``active_span_id`` (the span itself).

Because the value lives in a ContextVar, asyncio tasks (which copy the context) each see their
own span, ``asyncio.to_thread`` and ``contextvars.copy_context().run`` carry it to other threads,
a span created but never made current labels nothing, and ending a span anywhere leaves every
other context's label alone.
"""

from __future__ import annotations

import contextvars
import importlib
import threading
import warnings
from typing import Any, Dict, Optional, Tuple

from opentelemetry import context as _otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context, _RuntimeContext
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace.propagation import _SPAN_KEY

__all__ = [
    "PROFILE_ID_PYROSCOPE_TAG_KEY",
    "PROFILE_ID_SPAN_ATTRIBUTE_KEY",
    "SPAN_NAME_PYROSCOPE_TAG_KEY",
    "TRACE_ID_PYROSCOPE_TAG_KEY",
    "PyroscopeSpanProcessor",
    "SpanProfileProcessor",
    "instrument_tracer_providers",
]

PROFILE_ID_SPAN_ATTRIBUTE_KEY = "pyroscope.profile.id"
# The sample labels pyroscope-otel names (spanprof writes the same ones).
PROFILE_ID_PYROSCOPE_TAG_KEY = "span_id"
SPAN_NAME_PYROSCOPE_TAG_KEY = "span_name"
TRACE_ID_PYROSCOPE_TAG_KEY = "trace_id"

# Read by the native sampler (registered with _native.set_span_var). Value: SpanRef or None.
_SPAN_VAR: contextvars.ContextVar[Any] = contextvars.ContextVar("spanprof.span", default=None)

# (trace_id, span_id) -> (SpanRef, root span id, root name) for started, not yet ended spans.
_Entry = Tuple[Any, int, str]
_refs: Dict[Tuple[int, int], _Entry] = {}
_MAX_LIVE_SPANS = 1 << 17  # spans never ended must not grow this without bound

_install_lock = threading.Lock()
_SpanRef: Any = None


def _native_span_ref_type() -> Any:
    global _SpanRef
    if _SpanRef is None:
        _SpanRef = importlib.import_module("spanprof._native").SpanRef
    return _SpanRef


def _ref_for(ctx: Optional[Context]) -> Any:
    # On every attach: kept to two dict lookups (trace.get_current_span would add two calls).
    span: Any = ctx.get(_SPAN_KEY) if ctx is not None else None
    if span is None:
        return None
    sc = span.get_span_context()
    entry = _refs.get((sc.trace_id, sc.span_id))
    return entry[0] if entry is not None else None


class _MirrorToken:
    __slots__ = ("inner", "var_token")

    def __init__(self, inner: Any, var_token: contextvars.Token) -> None:
        self.inner = inner
        self.var_token = var_token


class _SpanMirroringRuntimeContext(_RuntimeContext):
    """Wraps OpenTelemetry's runtime context; keeps ``_SPAN_VAR`` equal to the SpanRef of the
    span in the current OpenTelemetry context."""

    def __init__(self, inner: _RuntimeContext) -> None:
        self.inner = inner

    def attach(self, context: Context) -> Any:
        token = self.inner.attach(context)
        return _MirrorToken(token, _SPAN_VAR.set(_ref_for(context)))

    def get_current(self) -> Context:
        return self.inner.get_current()

    def detach(self, token: Any) -> None:
        if not isinstance(token, _MirrorToken):  # attached before we were installed
            self.inner.detach(token)
            _SPAN_VAR.set(_ref_for(self.inner.get_current()))
            return
        try:
            self.inner.detach(token.inner)
        finally:
            try:
                _SPAN_VAR.reset(token.var_token)
            except (ValueError, RuntimeError):
                # Token from another context or used twice: resync with what OTel now has.
                _SPAN_VAR.set(_ref_for(self.inner.get_current()))


def install() -> bool:
    """Mirrors the current span into the sampler's ContextVar from now on. Idempotent. Returns
    False (and warns once) when the native module is missing."""
    with _install_lock:
        if isinstance(_otel_context._RUNTIME_CONTEXT, _SpanMirroringRuntimeContext):
            return True
        try:
            importlib.import_module("spanprof._native").set_span_var(_SPAN_VAR)
            _native_span_ref_type()
        except ImportError as e:
            warnings.warn(
                f"spanprof.otel: the native profiler is unavailable ({e}); spans get pyroscope.profile.id but samples carry no span",
                RuntimeWarning,
                stacklevel=3,
            )
            return False
        _otel_context._RUNTIME_CONTEXT = _SpanMirroringRuntimeContext(
            _otel_context._RUNTIME_CONTEXT
        )
        # The caller's current context may already hold a span: mirror it too.
        _SPAN_VAR.set(_ref_for(_otel_context.get_current()))
        return True


class SpanProfileProcessor(SpanProcessor):
    """Links spans and profiling samples. Drop-in for pyroscope-otel's PyroscopeSpanProcessor."""

    def __init__(self) -> None:
        self._linking = install()

    def on_start(self, span: Span, parent_context: Optional[Context] = None) -> None:
        sc = span.get_span_context()
        parent = span.parent
        is_root = parent is None or parent.is_remote
        if is_root:
            span.set_attribute(PROFILE_ID_SPAN_ATTRIBUTE_KEY, format(sc.span_id, "016x"))
        key = (sc.trace_id, sc.span_id)
        if not self._linking or key in _refs:  # a second processor on the same provider
            return
        root_id, root_name = sc.span_id, span.name
        if not is_root:
            assert parent is not None
            entry = _refs.get((parent.trace_id, parent.span_id))
            if entry is not None:
                root_id, root_name = entry[1], entry[2]
            else:  # parent started before the processor existed: best guess is the parent
                root_id = parent.span_id
        ref = _SpanRef(
            sc.trace_id.to_bytes(16, "big"),
            sc.span_id.to_bytes(8, "big"),
            root_id.to_bytes(8, "big"),
            root_name,
        )
        if len(_refs) >= _MAX_LIVE_SPANS:
            try:
                del _refs[next(iter(_refs))]
            except (StopIteration, RuntimeError, KeyError):
                pass
        _refs[key] = (ref, root_id, root_name)

    def on_end(self, span: ReadableSpan) -> None:
        sc = span.get_span_context()
        if sc is not None:
            _refs.pop((sc.trace_id, sc.span_id), None)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


PyroscopeSpanProcessor = SpanProfileProcessor

_patched = False


def instrument_tracer_providers() -> None:
    """For ``spanprof run``: every SDK TracerProvider, the ones created before this call (the
    global one) and after it, gets a SpanProfileProcessor without any change to the program."""
    global _patched
    from opentelemetry.sdk.trace import TracerProvider

    with _install_lock:
        if not _patched:
            _patched = True
            original = TracerProvider.__init__

            def __init__(self: TracerProvider, *args: Any, **kwargs: Any) -> None:
                original(self, *args, **kwargs)
                _add_processor(self)

            __init__.__wrapped__ = original  # type: ignore[attr-defined]
            TracerProvider.__init__ = __init__  # type: ignore[method-assign]
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        _add_processor(current)


def _add_processor(provider: Any) -> None:
    active = getattr(provider, "_active_span_processor", None)
    existing = getattr(active, "_span_processors", ())
    if any(isinstance(p, SpanProfileProcessor) for p in existing):
        return
    provider.add_span_processor(SpanProfileProcessor())
