"""Issue #19 end to end in a real browser against the real demo (conftest.py): every frame carries
its file and line, the sandwich of a known function lists its known caller, "traces through this
function" returns the traces that ran it, trace search finds traces by attribute and by child span
name, paging reaches trace 201, the exports open in Google's pprof and validate as speedscope, a
span with few samples states its uncertainty, and dark mode renders with readable contrast.
The browser half is ui_features_flow.mjs; what it saw is checked here against the source code and
the server's API.
"""

from __future__ import annotations

import ast
import gzip
import json
import shutil
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict

import pytest
from conftest import ARTIFACTS, CHROMIUM, ROOT, SERVER, get_json, wait_for_profiled_cpu_trace

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup)"),
    pytest.mark.skipif(SERVER is None, reason="spanprof-server is not built (scripts/build)"),
]

FUNCTION = "count_primes_slowly"
PPROF = ROOT / "build" / "tools" / "pprof"


def wait_for_traces(url: str, at_least: int, since_ms: int, timeout: float = 180) -> int:
    """Waits until the demo stored `at_least` root spans after since_ms; returns the end time."""
    deadline = time.monotonic() + timeout
    total = 0
    while time.monotonic() < deadline:
        to_ms = int(time.time() * 1000) - 5_000
        q = urllib.parse.urlencode({"from": since_ms, "to": to_ms, "limit": 1})
        total = get_json(f"{url}/api/v1/traces?{q}")["total"]
        if total >= at_least:
            return to_ms
        time.sleep(2)
    raise AssertionError(f"only {total} traces after {timeout:.0f} s, need {at_least}")


@pytest.fixture(scope="module")
def seen(demo: str) -> Dict[str, Any]:
    since = int(time.time() * 1000) - 900_000
    trace = wait_for_profiled_cpu_trace(demo)
    full = get_json(f"{demo}/api/v1/traces/{trace['trace_id']}")
    span = next(s for s in full["spans"] if s["name"] == "compute_report")
    to_ms = wait_for_traces(demo, 260, since)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    assert node, "node is not installed (scripts/setup installs it)"
    facts = {
        "function": FUNCTION,
        "trace_id": trace["trace_id"],
        "span_id": span["span_id"],
        "from_ms": since,
        "to_ms": to_ms,
    }
    r = subprocess.run(
        [
            node,
            str(ROOT / "tests" / "e2e" / "ui_features_flow.mjs"),
            demo,
            str(ARTIFACTS),
            json.dumps(facts),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "{}"
    result: Dict[str, Any] = json.loads(last)
    (ARTIFACTS / "features-flow.json").write_text(json.dumps(result, indent=2))
    assert r.returncode == 0 and result.get("ok"), (
        f"browser flow failed at {result.get('failed_step')!r}: {result.get('error')}\n{r.stderr[-2000:]}"
    )
    assert not result["errors"], result["errors"]
    result["facts"] = facts
    result["url"] = demo
    return result["steps"]


DEMO_SOURCE = ROOT / "src" / "spanprof" / "demo" / "service.py"


def source_lines(name: str) -> range:
    """Lines of a top-level function of the demo service, read from its source."""
    tree = ast.parse(DEMO_SOURCE.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return range(fn.lineno, (fn.end_lineno or fn.lineno) + 1)


def test_frames_show_file_and_line_of_a_known_function(seen: Dict[str, Any]) -> None:
    src = DEMO_SOURCE.resolve()
    body = source_lines(FUNCTION)
    for f in seen["frames"]["frames"]:
        assert Path(f["file"]).resolve() == src
        assert f["line"] in body
    place = seen["frames"]["tablePlace"]
    file, line = place.rsplit(":", 1)
    assert Path(file).resolve() == src and int(line) in body
    # The frame's details offer the same place, copyable, and the link template filled in.
    assert seen["details"]["name"] == FUNCTION
    assert seen["details"]["place"] == place
    assert seen["details"]["link"] == f"https://example.invalid/{file}#L{line}"
    # Grouped by line: every frame of the function is at a line inside its body.
    assert seen["byLine"]["grouping"] == "line"
    assert seen["byLine"]["frames"] and all(f["line"] in body for f in seen["byLine"]["frames"])


def test_sandwich_lists_the_known_caller(seen: Dict[str, Any]) -> None:
    sw = seen["sandwich"]
    assert sw["key"].startswith(FUNCTION + " ")
    assert "sandwich=" + FUNCTION in sw["url"]
    # count_primes_slowly runs in the thread pool: the frame right above it is the work item's run().
    direct = [c for c in sw["callers"] if c["depth"] == 1]
    assert direct, sw["callers"]
    assert all(
        c["name"].endswith("run") and c["file"].endswith("concurrent/futures/thread.py")
        for c in direct
    )
    # Its own code calls nothing Python-level but may show; the root of both halves is the function.
    assert all(c["depth"] >= 1 for c in sw["callees"])


def test_traces_through_the_function_ran_it(seen: Dict[str, Any], demo: str) -> None:
    ft = seen["functionTraces"]
    assert ft["state"] == "ready" and ft["rows"]
    assert {r["root"] for r in ft["rows"]} == {"GET /cpu"}
    # The first trace listed really ran the function: its own flame graph holds it.
    top = ft["rows"][0]["id"]
    spans = get_json(f"{demo}/api/v1/traces/{top}")["spans"]
    root = next(s for s in spans if not s["parent_span_id"])
    fg = get_json(
        f"{demo}/api/v1/flamegraph?trace_id={top}&span_id={root['span_id']}&mode=children"
    )
    assert FUNCTION in fg["names"]


def test_exemplar_opens_its_trace(seen: Dict[str, Any]) -> None:
    assert seen["exemplar"]["url"].startswith("#/trace/" + seen["exemplar"]["id"])
    # A selected time range lists the traces that used the most CPU in it.
    assert seen["rangeTraces"]["state"] == "ready" and seen["rangeTraces"]["rows"]


def test_search_by_attribute_and_child_span(seen: Dict[str, Any]) -> None:
    assert seen["byAttribute"]["rows"] > 0 and seen["byAttribute"]["roots"] == ["GET /checkout"]
    assert seen["byChild"]["rows"] > 0 and seen["byChild"]["roots"] == ["GET /checkout"]
    assert seen["byChildAsRoot"]["state"] == "empty"


def test_paging_reaches_trace_201(seen: Dict[str, Any]) -> None:
    p = seen["paging"]
    assert p["firstPage"] == 200
    assert p["rows"] >= 201 and p["distinct"] == p["rows"] and p["id201"]
    assert p["histogramBars"] > 0


def test_exports_open_in_pprof_and_validate_as_speedscope(seen: Dict[str, Any]) -> None:
    files = seen["exports"]
    raw = Path(files["pprof"]).read_bytes()
    assert raw[:2] == b"\x1f\x8b" and gzip.decompress(raw)
    assert PPROF.is_file(), "build/tools/pprof missing: run scripts/setup"
    top = subprocess.run(
        [str(PPROF), "-top", "-nodecount=200", files["pprof"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert top.returncode == 0, top.stderr
    assert FUNCTION in top.stdout
    # By line: the function's frames carry the demo's file and a line.
    lines = subprocess.run(
        [str(PPROF), "-top", "-lines", "-nodecount=400", files["pprof"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert lines.returncode == 0, lines.stderr
    assert any(FUNCTION in row and "demo/service.py:" in row for row in lines.stdout.splitlines())
    validate = subprocess.run(
        ["node", str(ROOT / "tests" / "e2e" / "validate_speedscope.mjs"), files["speedscope"]],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr
    doc = json.loads(Path(files["speedscope"]).read_text())
    assert any(f["name"] == FUNCTION and f.get("line") for f in doc["shared"]["frames"])
    lines = Path(files["collapsed"]).read_text().splitlines()
    assert lines and all(line.rsplit(" ", 1)[1].isdigit() for line in lines)
    assert any(FUNCTION in line for line in lines)


def test_few_samples_state_their_uncertainty(seen: Dict[str, Any]) -> None:
    c = seen["confidence"]
    assert 0 < c["samples"] < 1000
    assert "±" in c["text"] and "percentage points" in c["text"]


def test_dark_mode_renders_with_contrast(seen: Dict[str, Any]) -> None:
    d = seen["dark"]
    assert d["light"]["meanLuminance"] > 0.5
    for dark in (d["darkSystem"], d["darkToggle"]):
        assert dark["meanLuminance"] < 0.2, dark
        for pair in dark["pairs"]:
            assert pair["contrast"] >= 4.5, pair
    assert d["darkToggle"]["theme"] == "dark"
    for pair in d["light"]["pairs"]:
        assert pair["contrast"] >= 4.5, pair
