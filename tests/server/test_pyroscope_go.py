"""pyroscope-go, Grafana's own Go client (from the Go module proxy: tests/peers/pyroscope-go,
built by scripts/setup), pushing CPU profiles to the server with tags."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import CPU, ROOT, flame_names

CLIENT = Path(
    os.environ.get("SPANPROF_PYROSCOPE_GO_BIN", ROOT / "build" / "tools" / "spanprof-pyroscope-go")
)


def test_pyroscope_go_client_push_found_by_select_merge(server):
    if not CLIENT.exists():
        pytest.skip(f"{CLIENT} not built (scripts/setup builds tests/peers/pyroscope-go)")
    out = subprocess.run(
        [str(CLIENT), server.url, "2.5"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    # Stop() has flushed: the profiles are stored once the pushes were answered.
    fg = server.connect_json(
        "SelectMergeStacktraces",
        {"profileTypeID": CPU, "labelSelector": '{service_name="pyroscope-go-peer", env="ci"}'},
    )["flamegraph"]
    assert any("pyroscopeGoWork" in n for n in flame_names(fg)), (
        sorted(flame_names(fg))[:50],
        server.log_text()[-3000:],
    )
    values = server.connect_json(
        "LabelValues", {"name": "env", "matchers": ['{service_name="pyroscope-go-peer"}']}
    )
    assert values["names"] == ["ci"]
