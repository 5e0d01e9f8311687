"""Message classes for perftools.profiles.Profile (pprof) and OTLP profiles
(opentelemetry.proto.profiles.v1development, ExportProfilesServiceRequest), built at test time from
the public field numbers with protobuf's descriptor API: an independent parser for our encoders."""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
I32, I64, U64, STR, BYTES, MSG, FX64, BOOL, U32, DBL = (
    F.TYPE_INT32,
    F.TYPE_INT64,
    F.TYPE_UINT64,
    F.TYPE_STRING,
    F.TYPE_BYTES,
    F.TYPE_MESSAGE,
    F.TYPE_FIXED64,
    F.TYPE_BOOL,
    F.TYPE_UINT32,
    F.TYPE_DOUBLE,
)

PPROF = {
    "Profile": [
        ("sample_type", 1, MSG, REP, "ValueType"),
        ("sample", 2, MSG, REP, "Sample"),
        ("location", 4, MSG, REP, "Location"),
        ("function", 5, MSG, REP, "Function"),
        ("string_table", 6, STR, REP, None),
        ("time_nanos", 9, I64, OPT, None),
        ("duration_nanos", 10, I64, OPT, None),
        ("period_type", 11, MSG, OPT, "ValueType"),
        ("period", 12, I64, OPT, None),
    ],
    "ValueType": [("type", 1, I64, OPT, None), ("unit", 2, I64, OPT, None)],
    "Sample": [
        ("location_id", 1, U64, REP, None),
        ("value", 2, I64, REP, None),
        ("label", 3, MSG, REP, "Label"),
    ],
    "Label": [("key", 1, I64, OPT, None), ("str", 2, I64, OPT, None), ("num", 3, I64, OPT, None)],
    "Location": [
        ("id", 1, U64, OPT, None),
        ("mapping_id", 2, U64, OPT, None),
        ("address", 3, U64, OPT, None),
        ("line", 4, MSG, REP, "Line"),
    ],
    "Line": [("function_id", 1, U64, OPT, None), ("line", 2, I64, OPT, None)],
    "Function": [
        ("id", 1, U64, OPT, None),
        ("name", 2, I64, OPT, None),
        ("system_name", 3, I64, OPT, None),
        ("filename", 4, I64, OPT, None),
        ("start_line", 5, I64, OPT, None),
    ],
}

OTLP = {
    "ExportProfilesServiceRequest": [
        ("resource_profiles", 1, MSG, REP, "ResourceProfiles"),
        ("dictionary", 2, MSG, OPT, "ProfilesDictionary"),
    ],
    "ProfilesDictionary": [
        ("mapping_table", 1, MSG, REP, "Mapping"),
        ("location_table", 2, MSG, REP, "Location"),
        ("function_table", 3, MSG, REP, "Function"),
        ("link_table", 4, MSG, REP, "Link"),
        ("string_table", 5, STR, REP, None),
        ("attribute_table", 6, MSG, REP, "KeyValueAndUnit"),
        ("stack_table", 7, MSG, REP, "Stack"),
    ],
    "ResourceProfiles": [
        ("resource", 1, MSG, OPT, "Resource"),
        ("scope_profiles", 2, MSG, REP, "ScopeProfiles"),
    ],
    "Resource": [("attributes", 1, MSG, REP, "KeyValue")],
    "KeyValue": [("key", 1, STR, OPT, None), ("value", 2, MSG, OPT, "AnyValue")],
    "AnyValue": [
        ("string_value", 1, STR, OPT, None),
        ("int_value", 3, I64, OPT, None),
        ("bytes_value", 7, BYTES, OPT, None),
    ],
    "ScopeProfiles": [
        ("scope", 1, MSG, OPT, "InstrumentationScope"),
        ("profiles", 2, MSG, REP, "Profile"),
    ],
    "InstrumentationScope": [("name", 1, STR, OPT, None), ("version", 2, STR, OPT, None)],
    "Profile": [
        ("sample_type", 1, MSG, OPT, "ValueType"),
        ("samples", 2, MSG, REP, "Sample"),
        ("time_unix_nano", 3, FX64, OPT, None),
        ("duration_nano", 4, U64, OPT, None),
        ("period_type", 5, MSG, OPT, "ValueType"),
        ("period", 6, I64, OPT, None),
    ],
    "ValueType": [("type_strindex", 1, I32, OPT, None), ("unit_strindex", 2, I32, OPT, None)],
    "Sample": [
        ("stack_index", 1, I32, OPT, None),
        ("attribute_indices", 2, I32, REP, None),
        ("link_index", 3, I32, OPT, None),
        ("values", 4, I64, REP, None),
    ],
    "Link": [("trace_id", 1, BYTES, OPT, None), ("span_id", 2, BYTES, OPT, None)],
    "Mapping": [("memory_start", 1, U64, OPT, None)],
    "Stack": [("location_indices", 1, I32, REP, None)],
    "Location": [
        ("mapping_index", 1, I32, OPT, None),
        ("address", 2, U64, OPT, None),
        ("lines", 3, MSG, REP, "Line"),
    ],
    "Line": [("function_index", 1, I32, OPT, None), ("line", 2, I64, OPT, None)],
    "Function": [
        ("name_strindex", 1, I32, OPT, None),
        ("system_name_strindex", 2, I32, OPT, None),
        ("filename_strindex", 3, I32, OPT, None),
        ("start_line", 4, I64, OPT, None),
    ],
    "KeyValueAndUnit": [
        ("key_strindex", 1, I32, OPT, None),
        ("value", 2, MSG, OPT, "AnyValue"),
        ("unit_strindex", 3, I32, OPT, None),
    ],
}


def _build(package: str, messages: dict, file_name: str):
    fdp = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    for name, fields in messages.items():
        m = fdp.message_type.add(name=name)
        for fname, num, ftype, label, tname in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = f".{package}.{tname}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{n}"))
        for n in messages
    }


PprofProfile = _build("perftools.profiles", PPROF, "spanprof_test_pprof.proto")["Profile"]
OtlpRequest = _build("spanprof.test.otlp", OTLP, "spanprof_test_otlp.proto")[
    "ExportProfilesServiceRequest"
]
