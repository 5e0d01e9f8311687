"""Wall-clock profiles on the wire, against a real HTTP receiver: Pyroscope push (two series),
legacy ingest (two requests), OTLP profiles (a wall sample type) and files (`{service}.wall-{pid}-{ms}.pb.gz`, which a `{service}-*.pb.gz` glob does not take)."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

from support import decode_push, pprof_reader

import spanprof


def sleep_in_span(tracer) -> str:
    """A thread blocked 0.4 s in time.sleep inside a span; returns the span id (hex)."""
    out = {}

    def run() -> None:
        with tracer.start_as_current_span("sleepy") as span:
            out["id"] = format(span.get_span_context().span_id, "016x")
            time.sleep(0.4)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out["id"]


def test_push_sends_a_wall_series_beside_the_cpu_one(receiver, tracer):
    spanprof.configure(application_name="svc.wall", server_address=receiver.url,
                       upload_interval=30, profile_types=("cpu", "wall"))  # fmt: skip
    span_id = sleep_in_span(tracer)
    spanprof.shutdown()
    series = [s for r in receiver.pushes() for s in decode_push(r.body)]
    by_name = {s.labels["__name__"]: s for s in series}
    assert set(by_name) == {"process_cpu", "wall"}
    assert by_name["wall"].labels["service_name"] == "svc.wall"
    wall = by_name["wall"].profiles[0]
    assert wall.sample_type == [("wall", "nanoseconds")]
    assert wall.period_type == ("wall", "nanoseconds")
    slept = [
        s for s in wall.samples if s.functions[0] in ("<time.sleep>", "<sleep>", "<select/poll>")
    ]
    on_span = sum(s.values[0] for s in slept if s.labels.get("span_id") == span_id)
    assert on_span >= 0.7 * 0.4e9
    assert all(s.labels.get("thread_state") == "blocked" for s in slept)
    assert {s.labels.get("thread_state") for s in wall.samples} <= {
        "running", "gil_wait", "blocked", "awaiting"
    }  # fmt: skip


def test_legacy_ingest_sends_cpu_and_wall_requests(receiver, tracer):
    spanprof.configure(application_name="svc.ingestwall", server_address=receiver.url,
                       exporter="ingest", upload_interval=30, profile_types="cpu,wall")  # fmt: skip
    sleep_in_span(tracer)
    spanprof.shutdown()
    names = sorted(r.query["name"][0].split("{")[0] for r in receiver.pushes("/ingest"))
    assert names == ["svc.ingestwall.cpu", "svc.ingestwall.wall"]
    wall = next(r for r in receiver.pushes("/ingest") if ".wall{" in r.query["name"][0])
    assert wall.query["units"] == ["nanoseconds"]
    assert pprof_reader.decode(wall.body).sample_type == [("wall", "nanoseconds")]


def test_otlp_sends_a_wall_profile(receiver, tracer):
    from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2

    port = receiver.url.rsplit(":", 1)[1]
    spanprof.configure(application_name="svc.otlpwall", upload_interval=30,
                       server_address=f"otlp+http://127.0.0.1:{port}", profile_types=("wall",))  # fmt: skip
    span_id = sleep_in_span(tracer)
    spanprof.shutdown()
    reqs = receiver.pushes("/v1development/profiles")
    assert len(reqs) == 1  # wall only
    msg = profiles_service_pb2.ExportProfilesServiceRequest()
    msg.ParseFromString(reqs[0].body)
    strings = list(msg.dictionary.string_table)
    profiles = [p for rp in msg.resource_profiles for sp in rp.scope_profiles for p in sp.profiles]
    types = {
        (strings[p.sample_type.type_strindex], strings[p.sample_type.unit_strindex])
        for p in profiles
    }
    assert types == {("wall", "nanoseconds")}
    assert span_id in [bytes(link.span_id).hex() for link in msg.dictionary.link_table]


def test_file_exporter_writes_a_wall_file_per_window(tmp_path: Path, tracer):
    spanprof.configure(application_name="svc", server_address=f"file://{tmp_path}",
                       upload_interval=30, profile_types=("cpu", "wall"))  # fmt: skip
    sleep_in_span(tracer)
    spanprof.shutdown()
    walls = sorted(tmp_path.glob("svc.wall-*.pb.gz"))
    assert len(walls) == 1
    decoded = pprof_reader.decode(gzip.decompress(walls[0].read_bytes()))
    assert decoded.sample_type == [("wall", "nanoseconds")]
    assert len(sorted(tmp_path.glob("*.pb.gz"))) == 2
    assert len(sorted(tmp_path.glob("svc-*.pb.gz"))) == 1  # the CPU profile alone
