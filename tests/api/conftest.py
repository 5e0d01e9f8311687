"""Fixtures for the API tests: an in-test receiver over real HTTP, and an agent that is always
shut down after the test."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from support import Receiver, Server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    server = Server(rec)
    try:
        yield rec
    finally:
        server.close()


@pytest.fixture(autouse=True)
def _no_agent_left_running() -> Iterator[None]:
    yield
    import spanprof

    spanprof.shutdown(timeout=2.0)


@pytest.fixture
def tracer():
    """A real OpenTelemetry SDK tracer whose provider has spanprof's processor."""
    from opentelemetry.sdk.trace import TracerProvider

    from spanprof.otel import SpanProfileProcessor

    provider = TracerProvider()
    provider.add_span_processor(SpanProfileProcessor())
    yield provider.get_tracer("spanprof-tests")
    provider.shutdown()
