"""The asyncio web service of overhead table (c): FastAPI on uvicorn, one process, one worker.

    python bench/peers/web_app.py --port PORT --profiler P [--url URL]

``GET /work`` builds and prices 300 items in Python (under a millisecond of CPU per request here,
framework included), awaits a 2 ms sleep (a stand-in for a database call) and answers JSON. The profiler is started in this process
before uvicorn (``pyspy``/``none``: not at all; the suite attaches py-spy from outside).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from target import PROFILERS, start_profiler


def build_app():
    from fastapi import FastAPI

    app = FastAPI()

    def price(items: list) -> float:
        total = 0.0
        for i, item in enumerate(items):
            total += (item["qty"] * item["unit"]) * (0.9 if i % 3 == 0 else 1.0)
        return round(total, 2)

    @app.get("/work")
    async def work(n: int = 300) -> dict:
        items = [
            {"sku": f"sku-{i}", "qty": i % 5 + 1, "unit": (i * 37) % 100 / 10} for i in range(n)
        ]
        total = price(items)
        await asyncio.sleep(0.002)
        return {"items": len(items), "total": total}

    @app.get("/health")
    async def health() -> dict:
        return {"ok": True}

    return app


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--profiler", choices=PROFILERS, required=True)
    ap.add_argument("--url", default="")
    args = ap.parse_args()
    import uvicorn

    stop = start_profiler(args.profiler, args.url, 100)
    try:
        uvicorn.run(
            build_app(), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
        )
    finally:
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
