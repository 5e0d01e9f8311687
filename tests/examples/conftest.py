"""Fixtures for the example tests (see harness.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterator, List, Sequence

import pytest
from harness import ROOT, Example, Receiver, serve_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server, rec = serve_receiver()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
    assert not rec.errors, rec.errors


@pytest.fixture
def start_example() -> Iterator:
    started: List[Example] = []

    def start(argv: Sequence[str], env: Dict[str, str], cwd: Path = ROOT) -> Example:
        ex = Example(argv, env, cwd)
        started.append(ex)
        return ex

    yield start
    for ex in started:
        ex.kill()
