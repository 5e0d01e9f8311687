"""Bounded libFuzzer runs of every parser of outside input (server/fuzz), built with clang-14
(-DSPANPROF_FUZZ=ON, ASan + libFuzzer) into build/server-fuzz. Seeds: the committed corpus plus
valid binary messages generated here from our .proto files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, make_pprof, push_request

BUILD = ROOT / "build" / "server-fuzz"
TARGETS = [
    "pprof",
    "push",
    "otlp",
    "folded",
    "selector",
    "json",
    "multipart",
    "params",
    "http",
    "query",
]
SECONDS = int(os.environ.get("SPANPROF_FUZZ_SECONDS", "20"))


@pytest.fixture(scope="module")
def fuzz_build():
    if not shutil.which("clang++-14"):
        pytest.skip("clang++-14 not installed (scripts/setup installs it)")
    env = {**os.environ, "CC": "clang-14", "CXX": "clang++-14"}
    subprocess.run(
        [
            "cmake",
            "-S",
            str(ROOT / "server"),
            "-B",
            str(BUILD),
            "-G",
            "Ninja",
            "-DSPANPROF_FUZZ=ON",
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    r = subprocess.run(
        [
            "nice",
            "-n",
            "10",
            "cmake",
            "--build",
            str(BUILD),
            "-j2",
            "--target",
            *[f"fuzz_{t}" for t in TARGETS],
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return BUILD


def seeds(pb, target: str, d) -> None:
    src = ROOT / "server" / "fuzz" / "corpus" / target
    for f in src.iterdir():
        shutil.copy(f, d / f.name)
    raw = make_pprof(
        pb, [(["main", "work"], 3, {"span_id": "0123456789abcdef", "thread_name": "T"})]
    )
    if target == "pprof":
        (d / "gen1").write_bytes(raw)
        (d / "gen2").write_bytes(gzip.compress(raw))
    elif target == "push":
        (d / "gen1").write_bytes(b"\x00" + push_request(pb, {"service_name": "s"}, raw))
    elif target == "otlp":
        from test_ingest import _otlp_json_trace
        from wire import otlp_profiles_request

        body = otlp_profiles_request(pb, "svc", "fn", b"\x00" * 7 + b"\x01", b"\x00" * 15 + b"\x02")
        (d / "gen1").write_bytes(b"\x00" + body)
        (d / "gen2").write_bytes(b"\x03" + json.dumps(_otlp_json_trace("svc", "ab" * 16)).encode())
        body = otlp_profiles_request(pb, "svc", "fn", b"\x01" * 8, b"\x02" * 16, refs=True)
        (d / "gen3").write_bytes(b"\x00" + body)
    elif target == "http":
        body = push_request(pb, {"service_name": "s"}, raw)
        head = (
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/proto\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        (d / "gen1").write_bytes(head.encode() + body)


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target_runs_clean(fuzz_build, pb, target, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds(pb, target, corpus)
    r = subprocess.run(
        [
            str(fuzz_build / f"fuzz_{target}"),
            f"-max_total_time={SECONDS}",
            "-rss_limit_mb=2048",
            "-max_len=65536",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=SECONDS + 120,
    )
    assert r.returncode == 0, r.stderr[-6000:]
    assert "Done" in r.stderr, r.stderr[-2000:]
