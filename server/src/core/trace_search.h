// Trace search for /api/v1/traces: filters on the root span (service, name, duration, time) and on
// any span of the trace (span name, attributes key=value, status), sorted by duration or start,
// paged by offset, with the distribution of the matching traces' durations. No HTTP here.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/store.h"
#include "core/ui_api.h"

namespace spanprof {

struct TraceQuery {
  std::string service, root_name, span_name, status;            // status: "", "error" or "ok"
  std::vector<std::pair<std::string, std::string>> attributes;  // all must hold on one span
  int64_t min_duration_ns = -1, max_duration_ns = -1, from_ns = 0, to_ns = INT64_MAX;
  int has_profile = -1;  // -1 any, 0 without samples, 1 with samples
  bool by_duration = false;
  size_t offset = 0, limit = 20;
};

// Most root spans one search looks at; past it the answer says "scan_limited".
constexpr size_t kTraceScanLimit = 20000;

// Parses the /api/v1/traces parameters (openapi.yaml). `attributes` is "k=v;k2=v2".
Result<TraceQuery> parse_trace_query(const Params& p);

// Whether one span has every attribute (string form of the value; numbers and booleans as JSON).
bool span_has_attributes(const SpanRow& s,
                         const std::vector<std::pair<std::string, std::string>>& attrs);

// Log-spaced duration buckets: bounds_ns[i] .. bounds_ns[i+1] holds counts[i].
nlohmann::json duration_histogram(const std::vector<int64_t>& durations_ns);

class TraceSearch {
 public:
  TraceSearch(const Store& s, const QueryEngine& q) : s_(s), q_(q) {}
  Result<nlohmann::json> run(const std::string& tenant, const TraceQuery& tq) const;

 private:
  const Store& s_;
  const QueryEngine& q_;
};

}  // namespace spanprof
