"""Wire-format builders shared by the server tests and the browser tests that feed a real server:
our .proto files compiled at test time (protoc → descriptor set → dynamic message classes), pprof
profiles (CPU or wall), push.v1 requests and OTLP profiles requests."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional, Union

PROTO_DIR = Path(__file__).resolve().parents[2] / "server" / "proto"


def load_protos():
    """Compiles server/proto with protoc into a descriptor set; returns a name → class lookup."""
    protoc = shutil.which("protoc") or "protoc"
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "set.pb")
        files = sorted(p.name for p in PROTO_DIR.glob("*.proto"))
        subprocess.run(
            [
                protoc,
                "-I",
                str(PROTO_DIR),
                "--include_imports",
                f"--descriptor_set_out={out}",
                *files,
            ],
            check=True,
        )
        fds = descriptor_pb2.FileDescriptorSet.FromString(Path(out).read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)

    class Msgs:
        def __getattr__(self, full_name: str):
            return message_factory.GetMessageClass(pool.FindMessageTypeByName(full_name))

        def get(self, full_name: str):
            return self.__getattr__(full_name)

    return Msgs()


Frame = Union[str, tuple[str, str, int]]


def make_pprof(
    pb,
    stacks: list[tuple[list[Frame], int, dict[str, str]]],
    period: int = 10_000_000,
    time_ns: Optional[int] = None,
    sample_type: str = "cpu",
) -> bytes:
    """stacks: (frames root-first, sample count, labels). A frame is a function name (file app.py,
    line 1) or (function, file, line). Values are count * period (nanoseconds of `sample_type`,
    "cpu" or "wall", which is also the period type, as the agent writes them)."""
    P = pb.get("perftools.profiles.Profile")
    p = P()
    strings: dict[str, int] = {}

    def s(x: str) -> int:
        if x not in strings:
            strings[x] = len(p.string_table)
            p.string_table.append(x)
        return strings[x]

    s("")
    st = p.sample_type.add()
    st.type, st.unit = s(sample_type), s("nanoseconds")
    p.period_type.type, p.period_type.unit = s(sample_type), s("nanoseconds")
    p.period = period
    p.time_nanos = time_ns if time_ns is not None else time.time_ns()
    p.duration_nanos = 10_000_000_000
    funcs: dict[tuple[str, str], int] = {}
    locs: dict[tuple[str, str, int], int] = {}
    for frames, count, labels in stacks:
        sample = p.sample.add()
        for frame in reversed(frames):  # leaf first
            name, file, lineno = (frame, "app.py", 1) if isinstance(frame, str) else frame
            if (name, file) not in funcs:
                f = p.function.add()
                f.id = len(p.function)
                f.name, f.filename = s(name), s(file)
                funcs[(name, file)] = f.id
            if (name, file, lineno) not in locs:
                loc = p.location.add()
                loc.id = len(p.location)
                line = loc.line.add()
                line.function_id = funcs[(name, file)]
                line.line = lineno
                locs[(name, file, lineno)] = loc.id
            sample.location_id.append(locs[(name, file, lineno)])
        sample.value.append(count * period)
        for k, v in labels.items():
            lab = sample.label.add()
            lab.key, lab.str = s(k), s(v)
    return p.SerializeToString()


def push_request(pb, labels: dict[str, str], raw: bytes, gzipped: bool = True) -> bytes:
    return push_series(pb, [(labels, raw)], gzipped)


def push_series(pb, series: list[tuple[dict[str, str], bytes]], gzipped: bool = True) -> bytes:
    """One push.v1 request with a RawProfileSeries per (labels, uncompressed pprof)."""
    req = pb.get("push.v1.PushRequest")()
    for labels, raw in series:
        one = req.series.add()
        for k, v in labels.items():
            lp = one.labels.add()
            lp.name, lp.value = k, v
        sample = one.samples.add()
        sample.raw_profile = gzip.compress(raw) if gzipped else raw
        sample.ID = "00000000-0000-0000-0000-000000000000"
    return req.SerializeToString()


def otlp_profiles_request(
    pb,
    service: str,
    fn: str,
    span: bytes,
    trace: bytes,
    sample_type: str = "cpu",
    attrs: Optional[dict[str, str]] = None,
    resource: Optional[dict[str, str]] = None,
    refs: bool = False,
) -> bytes:
    """An OTLP ExportProfilesServiceRequest: one sample of 30 ms in main → fn, linked to
    (trace, span), with the given sample attributes (default thread.name=worker) and resource
    attributes besides service.name. `refs`: resource attribute keys and values as string-table
    references (key_strindex, string_value_strindex), as the Collector's pdata sends them."""
    Req = pb.get("opentelemetry.proto.profiles.v1development.ExportProfilesServiceRequest")
    r = Req()
    d = r.dictionary
    attrs = {"thread.name": "worker"} if attrs is None else attrs
    for s in ["", sample_type, "nanoseconds", fn, "main", "app.py"]:
        d.string_table.append(s)
    d.function_table.add()  # index 0 = zero value
    d.location_table.add()
    d.stack_table.add()
    d.link_table.add()
    d.attribute_table.add()
    for name_idx in (4, 3):  # main (1), fn (2)
        f = d.function_table.add()
        f.name_strindex, f.filename_strindex = name_idx, 5
        loc = d.location_table.add()
        loc.lines.add().function_index = len(d.function_table) - 1
    stack = d.stack_table.add()
    stack.location_indices.extend([2, 1])  # leaf first
    link = d.link_table.add()
    link.trace_id, link.span_id = trace, span
    for k, v in attrs.items():
        d.string_table.append(k)
        attr = d.attribute_table.add()
        attr.key_strindex = len(d.string_table) - 1
        attr.value.string_value = v
    rp = r.resource_profiles.add()
    for k, v in {"service.name": service, **(resource or {})}.items():
        kv = rp.resource.attributes.add()
        if refs:
            d.string_table.extend([k, v])
            kv.key_strindex = len(d.string_table) - 2
            kv.value.string_value_strindex = len(d.string_table) - 1
        else:
            kv.key = k
            kv.value.string_value = v
    prof = rp.scope_profiles.add().profiles.add()
    prof.sample_type.type_strindex, prof.sample_type.unit_strindex = 1, 2
    prof.period_type.type_strindex, prof.period_type.unit_strindex = 1, 2
    prof.period = 10_000_000
    prof.time_unix_nano = time.time_ns()
    s = prof.samples.add()
    s.stack_index = 1
    s.link_index = 1
    s.attribute_indices.extend(range(1, len(attrs) + 1))
    s.values.append(30_000_000)
    return r.SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _ld(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def new_names_pprof(funcs: int, depth: int, prefix: bytes) -> bytes:
    """A pprof written by hand (the generated classes are slow at this size): `funcs` functions
    named <prefix>_<i> (file app.py, one location each) and funcs / depth samples of value 1
    whose stacks are `depth` consecutive locations: a push whose store work is new names and
    stacks, not rows. A same-length `prefix` can be replaced in the bytes to make new names."""
    out = [_ld(1, b"\x08\x01\x10\x02"), _ld(11, b"\x08\x01\x10\x02"), b"\x60\x01"]
    for k in range(funcs // depth):
        ids = b"".join(_varint(k * depth + j + 1) for j in range(depth))
        out.append(_ld(2, _ld(1, ids) + _ld(2, b"\x01")))
    for i in range(funcs):
        v = _varint(i + 1)
        out.append(_ld(4, b"\x08" + v + _ld(4, b"\x08" + v + b"\x10\x01")))
        out.append(_ld(5, b"\x08" + v + b"\x10" + _varint(i + 4) + b"\x20\x03"))
    strings = [b"", b"cpu", b"nanoseconds", b"app.py"]
    strings += [prefix + b"_%07d" % i for i in range(funcs)]
    out += [_ld(6, x) for x in strings]
    return b"".join(out)
