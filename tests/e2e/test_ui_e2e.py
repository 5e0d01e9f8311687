"""End to end in a real browser: `spanprof demo` (the real server fed by the real instrumented
service) and Debian's chromium driven by playwright-core (ui_flow.mjs): open Traces, open the
slowest GET /cpu trace, click its CPU-heavy span, find the expected function in the flame graph,
switch to span-and-children, open Compare, look at Profiles. Screenshots go to test-artifacts/e2e/.

Skips (saying why) only when chromium or the server binary is missing; anything else missing
(node, playwright-core, the built UI) is a failure, because scripts/setup installs them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CHROMIUM, SERVER, wait_for_profiled_cpu_trace

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
EXPECTED_FUNCTION = "count_primes_slowly"

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (scripts/setup installs Debian's chromium)",
    ),
    pytest.mark.skipif(
        SERVER is None,
        reason="spanprof-server is not built ($SPANPROF_SERVER_BIN, build/server/spanprof-server, PATH)",
    ),
]


def test_browser_flow(demo: str) -> None:
    # GIVEN the demo running and at least one GET /cpu trace whose CPU-heavy span has samples
    wait_for_profiled_cpu_trace(demo)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "failure.png").unlink(missing_ok=True)  # only this run's failure, if any
    node = shutil.which("node")
    assert node, "node is not installed (scripts/setup installs it)"
    assert (ROOT / "ui" / "node_modules" / "playwright-core").is_dir(), (
        "playwright-core missing: run scripts/setup (npm ci in ui/)"
    )
    # WHEN a real browser walks through the UI
    r = subprocess.run(
        [
            node,
            str(ROOT / "tests" / "e2e" / "ui_flow.mjs"),
            demo,
            str(ARTIFACTS),
            EXPECTED_FUNCTION,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "{}"
    result = json.loads(last)
    (ARTIFACTS / "flow.json").write_text(json.dumps(result, indent=2))
    # THEN every step passed and left a screenshot
    assert r.returncode == 0 and result.get("ok"), (
        f"browser flow failed at {result.get('failed_step')!r}: {result.get('error')}\n{r.stderr[-2000:]}"
    )
    steps = {s["step"]: s for s in result["steps"]}
    traces_step = steps["open Traces and search for the CPU-heavy endpoint"]
    assert traces_step["traces"] >= 1 and traces_step["sorted_desc"]
    assert {"compute_report", "fibonacci"} <= set(steps["open the slowest trace"]["spans"])
    assert not any(
        "fibonacci_recursive" in f
        for f in steps["click the CPU-heavy span (this span only)"]["frames"]
    )
    assert any(
        EXPECTED_FUNCTION in f for f in steps["click the CPU-heavy span (this span only)"]["frames"]
    )
    assert any(
        EXPECTED_FUNCTION in f for f in steps["switch to this span and its children"]["frames"]
    )
    assert EXPECTED_FUNCTION in steps["hover the expected frame and read its tooltip"]["tooltip"]
    for name in (
        "01-traces",
        "03-span-flamegraph",
        "06-span-and-children",
        "07-compare",
        "08-profiles",
    ):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000, name
