"""Sizing a block of benchmark work: how many calls of a unit make about ``seconds`` of CPU."""

from __future__ import annotations

import time
from typing import Callable


def units_for(unit: Callable[[], object], seconds: float, probe: float) -> int:
    """Calls ``unit`` in doubling batches until one batch takes at least ``probe`` seconds of
    process CPU time, then scales that batch to ``seconds``. Process time, like the timed blocks,
    so the profilers' own threads count in both."""
    n = 1
    while True:
        t = time.process_time()
        for _ in range(n):
            unit()
        dt = time.process_time() - t
        if dt >= probe:
            return max(1, int(n * seconds / dt))
        n *= 2
