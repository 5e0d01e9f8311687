#include "core/ingest.h"

#include <vector>

#include "core/decode.h"

namespace spanprof {

Status ingest_otlp_profiles(Store& store, std::string_view body, bool json,
                            const std::string& tenant, const Limits& lim) {
  std::vector<RawProfile> profiles;
  if (auto e = decode_otlp_profiles(body, json, tenant, lim, profiles)) return e;
  return store.write_profiles(std::move(profiles));
}

Status ingest_otlp_traces(Store& store, std::string_view body, bool json, const std::string& tenant,
                          const Limits& lim) {
  std::vector<SpanRow> spans;
  if (auto e = decode_otlp_traces(body, json, tenant, lim, spans)) return e;
  return store.write_spans(std::move(spans));
}

}  // namespace spanprof
