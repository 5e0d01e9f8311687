"""Load client of overhead table (c): a fixed number of GET requests over keep-alive HTTP/1.1
connections on loopback, a fixed number in flight, bounded in count and in time.

    python bench/peers/load.py --port PORT --requests N --concurrency C [--timeout S] [--path P]

Written on raw asyncio streams so the client itself costs little CPU (it shares 2 cores with the
service). Prints one JSON line: requests done, errors, elapsed s, throughput, p50/p99 latency ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import List


async def client(
    host: str,
    port: int,
    path: str,
    todo: List[int],
    lat: List[float],
    errors: List[str],
    deadline: float,
) -> None:
    """One connection's loop; a failed request is counted (with its reason) and the connection
    is opened again, so one reset does not end the run."""
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode()
    writer = None
    try:
        while todo and time.monotonic() < deadline:
            todo.pop()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                t0 = time.perf_counter()
                writer.write(req)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                lat.append(time.perf_counter() - t0)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors.append(head.split(b"\r\n", 1)[0].decode(errors="replace"))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
                errors.append(f"{type(e).__name__}: {e}")
                if writer is not None:
                    writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


async def run(args: argparse.Namespace) -> dict:
    todo = list(range(args.requests))
    lat: List[float] = []
    errors: List[str] = []
    t0 = time.perf_counter()
    deadline = time.monotonic() + args.timeout
    await asyncio.gather(
        *(
            client("127.0.0.1", args.port, args.path, todo, lat, errors, deadline)
            for _ in range(args.concurrency)
        )
    )
    elapsed = time.perf_counter() - t0
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")  # noqa: E731
    return {
        "requests": len(lat),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "elapsed_s": elapsed,
        "throughput_rps": len(lat) / elapsed if elapsed else 0.0,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--path", default="/work")
    args = ap.parse_args()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
