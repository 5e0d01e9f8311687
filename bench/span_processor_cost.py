"""Cost per span of spanprof's span processor (SpanProfileProcessor + the context mirror).

    python bench/span_processor_cost.py [--pairs 60] [--spans 2000]

One process, interleaved blocks (as bench/../measuring notes advise): block A creates ``--spans``
nested pairs of spans with ``start_as_current_span`` on a plain SDK TracerProvider, block B the
same on a provider with SpanProfileProcessor and the runtime-context mirror installed; the mirror
is switched on and off between blocks, outside the timed region. Reports the median extra cost per
span (B - A) over the pairs, with the quartiles. Sampling is off: this is the processor's own cost.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider

from spanprof import otel


def block(tracer, n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        with tracer.start_as_current_span("parent"):
            with tracer.start_as_current_span("child"):
                pass
    return (time.perf_counter_ns() - t0) / (2 * n)  # ns per span


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--pairs", type=int, default=60)
    ap.add_argument("--spans", type=int, default=2000)
    args = ap.parse_args()
    plain = TracerProvider().get_tracer("bench")
    linked_provider = TracerProvider()
    linked_provider.add_span_processor(otel.SpanProfileProcessor())  # installs the mirror
    linked = linked_provider.get_tracer("bench")
    mirror = otel_context._RUNTIME_CONTEXT
    assert isinstance(mirror, otel._SpanMirroringRuntimeContext)
    inner = mirror.inner
    block(plain, args.spans)  # warm-up
    extra, base = [], []
    for _ in range(args.pairs):
        otel_context._RUNTIME_CONTEXT = inner
        a = block(plain, args.spans)
        otel_context._RUNTIME_CONTEXT = mirror
        b = block(linked, args.spans)
        base.append(a)
        extra.append(b - a)
    q = statistics.quantiles(extra, n=4)
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "",
    )
    print(
        f"{time.strftime('%Y-%m-%d')}, {cpu}, {os.cpu_count()} vCPU, CPython {platform.python_version()}, "
        f"{args.pairs} pairs x {2 * args.spans} spans"
    )
    print(f"plain SDK span (start_as_current_span + end): median {statistics.median(base):.0f} ns")
    print(
        f"extra per span with SpanProfileProcessor: median {statistics.median(extra):.0f} ns "
        f"(quartiles {q[0]:.0f} .. {q[2]:.0f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
