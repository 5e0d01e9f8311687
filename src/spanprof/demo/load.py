"""A bounded load driver for the demo service: a few worker threads send a weighted mix of fast,
slow and CPU-heavy requests at a capped rate until told to stop."""

from __future__ import annotations

import random
import threading
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Tuple

# path -> weight. /cpu and /checkout burn CPU; /slow waits; /fast is a cache hit.
MIX: List[Tuple[str, int]] = [("/fast", 5), ("/slow", 2), ("/cpu", 2), ("/checkout", 2)]


class LoadDriver:
    def __init__(self, base_url: str, rate: float = 4.0, workers: int = 3, seed: int = 1) -> None:
        self.base_url = base_url.rstrip("/")
        self.interval = workers / rate if rate > 0 else 1.0  # per worker: total <= rate req/s
        self.workers = workers
        self.stop_event = threading.Event()
        self.counts: Dict[str, int] = {}
        self.errors = 0
        self.last_error: Optional[str] = None
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._rng = random.Random(seed)
        paths = [p for p, w in MIX for _ in range(w)]
        self._paths = paths

    def start(self) -> None:
        # The first requests hit every endpoint once, so each kind of trace exists early.
        for path, _ in MIX:
            self._one(path)
        for i in range(self.workers):
            t = threading.Thread(target=self._run, args=(i,), name=f"demo-load-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout)

    def _run(self, i: int) -> None:
        rng = random.Random(self._rng.random() + i)
        while not self.stop_event.is_set():
            started = time.monotonic()
            self._one(rng.choice(self._paths))
            # Jittered pacing keeps the total rate bounded whatever the response times.
            wait = self.interval * rng.uniform(0.5, 1.5) - (time.monotonic() - started)
            self.stop_event.wait(max(0.05, wait))

    def _one(self, path: str) -> None:
        try:
            with urllib.request.urlopen(self.base_url + path, timeout=30) as r:
                r.read()
            with self._lock:
                self.counts[path] = self.counts.get(path, 0) + 1
        except (OSError, urllib.error.URLError) as e:
            with self._lock:
                self.errors += 1
                self.last_error = f"{path}: {e}"

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())
