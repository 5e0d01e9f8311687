"""Encoders read back by independent parsers: protobuf message classes built from the public field
numbers, Google's pprof tool when present, json for speedscope."""

from __future__ import annotations

import contextvars
import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import burn_cpu
from proto_schema import OtlpRequest, PprofProfile

SPAN_VAR: contextvars.ContextVar = contextvars.ContextVar("spanprof_enc_span", default=None)
TRACE, SPAN, ROOT = bytes(range(1, 17)), bytes(range(20, 28)), bytes(range(40, 48))


def encoder_alpha(seconds):
    return burn_cpu(seconds)


def encoder_beta(seconds):
    return burn_cpu(seconds)


@pytest.fixture()
def profile(native):
    native.set_span_var(SPAN_VAR)
    native.start(100, True, False, True, False)
    encoder_alpha(0.3)
    SPAN_VAR.set(native.SpanRef(TRACE, SPAN, ROOT, "POST /enc"))
    encoder_beta(0.2)
    SPAN_VAR.set(None)
    native.stop()
    return native.collect()


def truth(profile):
    """(function names leaf-first, labels, count) straight from samples()."""
    return [([f[0] for f in frames], labels, count) for frames, labels, count in profile.samples()]


def test_pprof_matches_samples(profile):
    msg = PprofProfile()
    msg.ParseFromString(profile.to_pprof())
    st = list(msg.string_table)
    assert st[0] == ""
    assert [(st[v.type], st[v.unit]) for v in msg.sample_type] == [("cpu", "nanoseconds")]
    assert (st[msg.period_type.type], st[msg.period_type.unit]) == ("cpu", "nanoseconds")
    assert msg.period == 10_000_000 == profile.period_ns
    funcs = {f.id: f for f in msg.function}
    locs = {loc.id: loc for loc in msg.location}
    decoded = {}
    for s in msg.sample:
        names = tuple(st[funcs[locs[i].line[0].function_id].name] for i in s.location_id)
        labels = tuple(sorted((st[lab.key], st[lab.str]) for lab in s.label))
        assert len(s.value) == 1 and s.value[0] % msg.period == 0
        decoded[(names, labels)] = decoded.get((names, labels), 0) + s.value[0] // msg.period
    expected = {}
    for names, labels, count in truth(profile):
        key = (tuple(names), tuple(sorted(labels.items())))
        expected[key] = expected.get(key, 0) + count
    assert decoded == expected
    beta = [lab for (names, lab) in decoded if "encoder_beta" in names]
    assert beta and all(dict(lab)["span_name"] == "POST /enc" for lab in beta)
    assert all(dict(lab)["trace_id"] == TRACE.hex() for lab in beta)


def test_pprof_drop_labels(profile):
    msg = PprofProfile()
    msg.ParseFromString(profile.to_pprof(drop_labels=("active_span_id", "thread_id")))
    st = list(msg.string_table)
    keys = {st[lab.key] for s in msg.sample for lab in s.label}
    assert "active_span_id" not in keys and "thread_id" not in keys and "span_id" in keys
    assert sum(s.value[0] for s in msg.sample) == profile.sample_count * profile.period_ns


@pytest.mark.skipif(
    not (Path(__file__).resolve().parents[2] / "build/tools/pprof").exists()
    and not shutil.which("pprof"),
    reason="Google's pprof tool not installed (scripts/setup installs it)",
)
def test_google_pprof_reads_it(profile, tmp_path):
    tool = Path(__file__).resolve().parents[2] / "build/tools/pprof"
    exe = str(tool) if tool.exists() else shutil.which("pprof")
    f = tmp_path / "cpu.pb.gz"
    f.write_bytes(gzip.compress(profile.to_pprof()))
    out = subprocess.run([exe, "-traces", str(f)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "encoder_alpha" in out.stdout and "encoder_beta" in out.stdout
    assert "POST /enc" in out.stdout  # span_name label


def test_collapsed(profile):
    lines = profile.to_collapsed().splitlines()
    total = 0
    for line in lines:
        stack, n = line.rsplit(" ", 1)
        total += int(n)
        frames = stack.split(";")
        assert all(" (" in f and f.endswith(")") for f in frames)
    assert total == profile.sample_count
    assert any(line.split(" (")[0] != "" and "encoder_alpha (" in line for line in lines)


def test_speedscope(profile):
    doc = json.loads(profile.to_speedscope("my run"))
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    prof = doc["profiles"][0]
    assert prof["type"] == "sampled" and prof["unit"] == "nanoseconds" and prof["name"] == "my run"
    assert len(prof["samples"]) == len(prof["weights"])
    assert sum(prof["weights"]) == profile.sample_count * profile.period_ns == prof["endValue"]
    frames = doc["shared"]["frames"]
    for stack in prof["samples"]:
        assert all(0 <= i < len(frames) for i in stack)
    leafs = {frames[s[-1]]["name"] for s in prof["samples"]}
    assert "burn_cpu" in leafs


def test_otlp(profile):
    req = OtlpRequest()
    req.ParseFromString(
        profile.to_otlp({"service.name": "enc-svc"}, "spanprof-test", ("thread_id",))
    )
    d = req.dictionary
    st = list(d.string_table)
    assert st[0] == "" and len(d.link_table) >= 2 and d.link_table[0].trace_id == bytes(16)
    rp = req.resource_profiles[0]
    assert {(a.key, a.value.string_value) for a in rp.resource.attributes} == {
        ("service.name", "enc-svc")
    }
    sp = rp.scope_profiles[0]
    assert sp.scope.name == "spanprof-test"
    p = sp.profiles[0]
    assert (st[p.sample_type.type_strindex], st[p.sample_type.unit_strindex]) == (
        "cpu",
        "nanoseconds",
    )
    assert p.period == profile.period_ns
    total = 0
    linked = 0
    for s in p.samples:
        total += s.values[0]
        names = [
            st[d.function_table[d.location_table[i].lines[0].function_index].name_strindex]
            for i in d.stack_table[s.stack_index].location_indices
        ]
        values = {
            st[d.attribute_table[i].key_strindex]: d.attribute_table[i].value
            for i in s.attribute_indices
        }
        attrs = {k: v.string_value for k, v in values.items()}
        assert "thread_id" not in attrs
        # Span and trace ids in the link only (Pyroscope's span_id is the link's span: the local
        # root); the active span as bytes, which Pyroscope makes no series label of.
        assert "span_id" not in attrs and "trace_id" not in attrs
        if "encoder_beta" in names:
            link = d.link_table[s.link_index]
            assert (link.trace_id, link.span_id) == (TRACE, ROOT)
            assert values["active_span_id"].bytes_value == SPAN
            assert values["active_span_id"].string_value == ""
            assert attrs["span_name"] == "POST /enc"
            linked += 1
        elif "encoder_alpha" in names:
            assert s.link_index == 0
    assert linked > 0
    assert total == profile.sample_count * profile.period_ns


def test_merge(native, profile):
    other = native.Profile()
    other.merge(profile)
    other.merge(profile)
    assert other.sample_count == 2 * profile.sample_count
    assert sorted((n, sorted(lab.items()), 2 * c) for n, lab, c in truth(profile)) == sorted(
        (n, sorted(lab.items()), c) for n, lab, c in truth(other)
    )
