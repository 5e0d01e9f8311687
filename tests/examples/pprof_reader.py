"""Reads pprof files (perftools.profiles.Profile, gzip or plain) into plain samples, for the
example tests. The message classes are built at test time from a descriptor written from the
public pprof field numbers, so these tests do not trust spanprof's own encoder to read its output.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto
MAX_PROFILE_BYTES = 64 << 20  # a test profile is a few KiB; anything this large is a bug


def _message_classes():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="spanprof_tests_pprof.proto", package="spanprof_tests.pprof", syntax="proto3"
    )

    def msg(name: str, fields: List[Tuple[str, int, int, int, str]]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = f".spanprof_tests.pprof.{type_name}"

    one, rep = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    i64, u64, s, m_, b = (
        _F.TYPE_INT64,
        _F.TYPE_UINT64,
        _F.TYPE_STRING,
        _F.TYPE_MESSAGE,
        _F.TYPE_BOOL,
    )
    msg("ValueType", [("type", 1, i64, one, ""), ("unit", 2, i64, one, "")])
    msg("Label", [("key", 1, i64, one, ""), ("str", 2, i64, one, ""), ("num", 3, i64, one, ""), ("num_unit", 4, i64, one, "")])  # fmt: skip
    msg("Sample", [("location_id", 1, u64, rep, ""), ("value", 2, i64, rep, ""), ("label", 3, m_, rep, "Label")])  # fmt: skip
    msg("Line", [("function_id", 1, u64, one, ""), ("line", 2, i64, one, ""), ("column", 3, i64, one, "")])  # fmt: skip
    msg("Location", [("id", 1, u64, one, ""), ("mapping_id", 2, u64, one, ""), ("address", 3, u64, one, ""), ("line", 4, m_, rep, "Line"), ("is_folded", 5, b, one, "")])  # fmt: skip
    msg("Function", [("id", 1, u64, one, ""), ("name", 2, i64, one, ""), ("system_name", 3, i64, one, ""), ("filename", 4, i64, one, ""), ("start_line", 5, i64, one, "")])  # fmt: skip
    msg("Profile", [
        ("sample_type", 1, m_, rep, "ValueType"), ("sample", 2, m_, rep, "Sample"),
        ("location", 4, m_, rep, "Location"), ("function", 5, m_, rep, "Function"),
        ("string_table", 6, s, rep, ""), ("time_nanos", 9, i64, one, ""),
        ("duration_nanos", 10, i64, one, ""), ("period_type", 11, m_, one, "ValueType"),
        ("period", 12, i64, one, ""),
    ])  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("spanprof_tests.pprof.Profile")
    )


Profile = _message_classes()


@dataclass
class Sample:
    functions: List[str]  # leaf first
    files: List[str]
    labels: Dict[str, str]
    values: List[int]


@dataclass
class Decoded:
    sample_type: List[Tuple[str, str]]
    period_type: Tuple[str, str]
    period: int
    samples: List[Sample]


def decode(data: bytes) -> Decoded:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) > MAX_PROFILE_BYTES:
        raise ValueError(f"pprof: {len(data)} bytes is more than {MAX_PROFILE_BYTES}")
    p = Profile()
    p.ParseFromString(data)
    st = list(p.string_table)
    if not st or st[0] != "":
        raise ValueError("pprof: string_table[0] must be the empty string")
    funcs = {f.id: (st[f.name], st[f.filename]) for f in p.function}
    locs = {loc.id: [funcs[line.function_id] for line in loc.line] for loc in p.location}
    samples = []
    for s in p.sample:
        frames = [fn for lid in s.location_id for fn in locs[lid]]
        labels = {st[lb.key]: (st[lb.str] if lb.str else str(lb.num)) for lb in s.label}
        samples.append(
            Sample([f for f, _ in frames], [fl for _, fl in frames], labels, list(s.value))
        )
    return Decoded(
        [(st[v.type], st[v.unit]) for v in p.sample_type],
        (st[p.period_type.type], st[p.period_type.unit]),
        p.period,
        samples,
    )


def read_file(path: Path) -> Decoded:
    return decode(path.read_bytes())
