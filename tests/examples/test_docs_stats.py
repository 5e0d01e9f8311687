"""docs/troubleshooting.md's table of spanprof.stats() keys names real keys, and the counters the
page tells readers to watch move the way it says when a profiled program burns CPU in a span."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "troubleshooting.md"

PROGRAM = r"""
import json, sys, time
import spanprof
from opentelemetry.sdk.trace import TracerProvider
from spanprof.otel import SpanProfileProcessor

spanprof.configure(application_name="stats-doc", server_address="file://" + sys.argv[1])
provider = TracerProvider()
provider.add_span_processor(SpanProfileProcessor())
with provider.get_tracer("t").start_as_current_span("busy"):
    t = time.process_time()
    while time.process_time() - t < 0.5:
        sum(range(1000))
before = spanprof.stats()
ok = spanprof.shutdown()
after = spanprof.stats()
print(json.dumps({"before": before, "after": after, "ok": ok}))
"""


def documented_keys() -> set:
    table = DOC.read_text().split("## Reading `spanprof.stats()`")[1]
    return {
        k
        for line in table.splitlines()
        if line.startswith("| `")
        for k in re.findall(r"`(\w+)`", line.split("|")[1])
    }


def test_documented_stats_keys_are_real(tmp_path):
    import json

    out = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(out.stdout.splitlines()[-1])
    before, after = result["before"], result["after"]
    missing = documented_keys() - set(before)
    assert not missing, f"documented but not in spanprof.stats(): {sorted(missing)}"
    # "Healthy" as the page defines it.
    assert before["running"] is True and before["samples_taken"] > 0
    assert before["span_lookup_ok"] > 0
    assert before["exporter"] == "file"
    assert result["ok"] is True
    assert after["windows_sent"] >= 1 and after["last_error"] is None
    assert list(tmp_path.glob("stats-doc-*.pb.gz"))
