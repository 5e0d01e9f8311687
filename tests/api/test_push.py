"""Exporters against a real HTTP receiver: what goes on the wire for Pyroscope push, legacy
ingest and OTLP profiles, and what the file exporter writes."""

from __future__ import annotations

import base64
import gzip
import itertools
import sys
import time
from pathlib import Path

import pytest
from support import burn, decode_push, pprof_reader, pprof_times, samples_with

import spanprof

RATE = 200
PERIOD_NS = 1_000_000_000 // RATE


def push_marker_work(seconds: float) -> int:
    return burn(seconds)


def test_push_request_has_series_labels_samples_window_auth_and_tenant(receiver):
    # GIVEN an agent pushing to the receiver with auth, tenant, extra headers and tags
    t0 = time.time_ns()
    spanprof.configure(
        application_name="svc.push",
        server_address=receiver.url,
        basic_auth_username="user",
        basic_auth_password="s3cret",
        tenant_id="team-a",
        http_headers={"X-Extra": "yes"},
        tags={"region": "eu-west"},
        sample_rate=RATE,
        upload_interval=0.5,
    )
    # WHEN the application burns CPU inside a dynamic tag
    with spanprof.tag_wrapper({"endpoint": "checkout"}):
        push_marker_work(0.8)
    assert spanprof.shutdown() is True
    t1 = time.time_ns()

    # THEN every push is authenticated, tenanted, gzip proto
    pushes = receiver.pushes()
    assert pushes, receiver.requests
    for r in pushes:
        assert r.headers["authorization"] == "Basic " + base64.b64encode(b"user:s3cret").decode()
        assert r.headers["x-scope-orgid"] == "team-a"
        assert r.headers["x-extra"] == "yes"
        assert r.headers["content-type"] == "application/proto"
        assert r.headers["content-encoding"] == "gzip"
    series = [s for r in pushes for s in decode_push(r.body)]
    for s in series:
        assert s.labels["__name__"] == "process_cpu"
        assert s.labels["service_name"] == "svc.push"
        assert s.labels["region"] == "eu-west"
        assert s.labels["process.runtime.name"] == "cpython"
        assert s.labels["process.runtime.version"].startswith(
            "{}.{}.".format(*sys.version_info[:2])
        )
        assert len(s.profiles) == 1 and len(s.ids[0]) == 36  # a uuid per raw sample
        p = s.profiles[0]
        assert p.sample_type == [("cpu", "nanoseconds")]
        assert p.period_type == ("cpu", "nanoseconds")
        assert p.period == PERIOD_NS
        for sample in p.samples:
            assert sample.values[0] > 0 and sample.values[0] % PERIOD_NS == 0
        start, duration = pprof_times(s.raw[0])
        assert t0 <= start <= t1 and duration > 0
        assert start + duration <= t1 + 1_000_000_000
    # ... the windows do not overlap
    windows = sorted(pprof_times(s.raw[0]) for s in series)
    for (a, da), (b, _) in itertools.pairwise(windows):
        assert a + da <= b + 1_000_000  # 1 ms of clock rounding
    marked = samples_with(series, "push_marker_work")
    assert sum(s.values[0] for s in marked) // PERIOD_NS >= 40
    assert all(s.labels.get("endpoint") == "checkout" for s in marked)


def test_bearer_token_from_deprecated_auth_token(receiver):
    with pytest.warns(DeprecationWarning, match="auth_token"):
        spanprof.configure(
            application_name="svc.bearer",
            server_address=receiver.url,
            auth_token="tok-1",
            upload_interval=0.3,
            sample_rate=RATE,
        )
    push_marker_work(0.2)
    spanprof.shutdown()
    pushes = receiver.pushes()
    assert pushes and all(r.headers["authorization"] == "Bearer tok-1" for r in pushes)


def _span_samples(tracer, receiver_or_dir_config):
    spanprof.configure(**receiver_or_dir_config, sample_rate=RATE, upload_interval=30)
    with tracer.start_as_current_span("labelled-root") as span:
        push_marker_work(0.4)
    assert spanprof.shutdown() is True
    return format(span.get_span_context().span_id, "016x")


def test_active_span_id_is_dropped_for_a_plain_pyroscope_server(receiver, tracer):
    # GIVEN a server that does not answer /api/v1/info as spanprof (a real Pyroscope)
    span_id = _span_samples(
        tracer, {"application_name": "svc.pyro", "server_address": receiver.url}
    )
    marked = samples_with(receiver.series(), "push_marker_work")
    assert marked
    # THEN span_id/trace_id stay on the samples, active_span_id never leaves the process
    assert all(s.labels.get("span_id") == span_id for s in marked)
    assert all(len(s.labels.get("trace_id", "")) == 32 for s in marked)
    assert not any(
        "active_span_id" in s.labels
        for se in receiver.series()
        for p in se.profiles
        for s in p.samples
    )
    assert any(r.path == "/api/v1/info" for r in receiver.requests)


def test_active_span_id_is_kept_for_a_spanprof_server(receiver, tracer):
    receiver.spanprof = True
    span_id = _span_samples(tracer, {"application_name": "svc.sp", "server_address": receiver.url})
    marked = samples_with(receiver.series(), "push_marker_work")
    assert marked and all(s.labels.get("active_span_id") == span_id for s in marked)


def test_legacy_ingest_exporter(receiver):
    spanprof.configure(
        application_name="svc.ingest",
        server_address=receiver.url,
        exporter="ingest",
        tags={"env": "ci"},
        sample_rate=RATE,
        upload_interval=30,
    )
    t0 = int(time.time())
    push_marker_work(0.3)
    assert spanprof.shutdown() is True
    reqs = receiver.pushes("/ingest")
    assert len(reqs) == 1
    q = {k: v[0] for k, v in reqs[0].query.items()}
    assert q["name"] == "svc.ingest.cpu{env=ci}"
    assert q["format"] == "pprof" and q["spyName"] == "spanprof" and q["sampleRate"] == str(RATE)
    assert t0 - 1 <= int(q["from"]) <= int(q["until"]) <= time.time() + 1
    decoded = pprof_reader.decode(reqs[0].body)
    assert any("push_marker_work" in f for s in decoded.samples for f in s.functions)


def test_otlp_profiles_exporter(receiver, tracer):
    from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2

    port = receiver.url.rsplit(":", 1)[1]
    span_id = _span_samples(
        tracer, {"application_name": "svc.otlp", "server_address": f"otlp+http://127.0.0.1:{port}"}
    )
    reqs = receiver.pushes("/v1development/profiles")
    assert len(reqs) == 1
    assert reqs[0].headers["content-type"] == "application/x-protobuf"
    msg = profiles_service_pb2.ExportProfilesServiceRequest()
    msg.ParseFromString(reqs[0].body)
    rp = msg.resource_profiles[0]
    attrs = {kv.key: kv.value.string_value for kv in rp.resource.attributes}
    assert attrs["service.name"] == "svc.otlp"
    profiles = [p for sp in rp.scope_profiles for p in sp.profiles]
    assert profiles and sum(len(p.samples) for p in profiles) > 0
    links = [bytes(link.span_id).hex() for link in msg.dictionary.link_table]
    assert span_id in links


def test_file_exporter_writes_one_pprof_per_window_with_all_labels(tmp_path: Path, tracer):
    span_id = _span_samples(
        tracer, {"application_name": "svc/files", "server_address": f"file://{tmp_path}"}
    )
    files = sorted(tmp_path.glob("*.pb.gz"))
    assert len(files) == 1 and files[0].name.startswith("svc_files-")
    assert not list(tmp_path.glob("*.tmp"))
    decoded = pprof_reader.decode(gzip.decompress(files[0].read_bytes()))
    marked = [s for s in decoded.samples if any("push_marker_work" in f for f in s.functions)]
    assert marked and all(
        s.labels.get("active_span_id") == span_id and s.labels.get("span_id") == span_id
        for s in marked
    )
