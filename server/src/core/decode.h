// Decoders for every ingest format: outside bytes → RawProfile / SpanRow. Each checks Limits and
// returns a 4xx Error for bad input; none of them throws or touches storage. No HTTP here.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace google::protobuf {
class Message;
}

namespace spanprof {

// A protobuf message from binary or proto3 JSON (depth-checked first: lim.max_json_depth).
// An empty JSON body is `{}`.
Status parse_proto_message(std::string_view body, bool json, const Limits& lim,
                           google::protobuf::Message& m, const char* what);

// Pyroscope's rule: __profile_type__ = <__name__>:<sample type>:<unit>:<period type>:<unit>.
std::string profile_type_id(const RawProfile& p);

// Checks names/values/count of the labels (max labels, lengths, name characters).
Status check_labels(const Labels& l, const Limits& lim);

// pprof (gzipped or plain) → one RawProfile per sample type. `series` already holds the push's
// series labels. `only_types` (optional) restricts/renames sample types: {type, display name}.
Status decode_pprof(std::string_view data, const std::string& tenant, const Labels& series,
                    const Limits& lim, std::vector<RawProfile>& out,
                    const std::vector<std::pair<std::string, std::string>>* only_types = nullptr);

// push.v1.PushRequest in binary proto (read in place) or proto3 JSON.
Status decode_push(std::string_view body, bool json, const std::string& tenant, const Limits& lim,
                   std::vector<RawProfile>& out);
// The same through the generated protobuf parser: JSON bodies, and the reference fuzz_push and
// the tests compare the in-place reader with.
Status decode_push_generated(std::string_view body, bool json, const std::string& tenant,
                             const Limits& lim, std::vector<RawProfile>& out);

// Legacy /ingest query parameters.
struct LegacyParams {
  std::string name;  // app.suffix{k=v,...}
  int64_t from = 0, until = 0;
  int64_t sample_rate = 100;
  std::string spy_name, units = "samples", aggregation = "sum", format;
};
// Parses `name` into series labels (service_name, __name__, the {k=v} tags) and the type.
Status legacy_series(const LegacyParams& p, const Limits& lim, Labels& series, std::string& suffix);
// Folded text ("a;b;c 42" per line) or lines ("a;b;c" per line, count 1).
Status decode_folded(std::string_view body, bool lines_format, const LegacyParams& p,
                     const std::string& tenant, const Limits& lim, std::vector<RawProfile>& out);
// sample_type_config JSON from the legacy multipart upload → {type, display name} list.
Status parse_sample_type_config(std::string_view json,
                                std::vector<std::pair<std::string, std::string>>& out);

// OTLP profiles v1development ExportProfilesServiceRequest (binary proto).
Status decode_otlp_profiles(std::string_view body, bool json, const std::string& tenant,
                            const Limits& lim, std::vector<RawProfile>& out);

// OTLP traces ExportTraceServiceRequest, binary proto or OTLP JSON (hex ids).
Status decode_otlp_traces(std::string_view body, bool json, const std::string& tenant,
                          const Limits& lim, std::vector<SpanRow>& out);

}  // namespace spanprof
