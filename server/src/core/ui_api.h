// The web UI's /api/v1 JSON answers (server/openapi.yaml, ARCHITECTURE.md) over the query engine:
// span, span-name and service selections, flame graphs with frames by line, timelines, diffs,
// stats. Parameters arrive as the single-valued map http/params builds from the query string;
// a bad value is a 400 naming the parameter. No HTTP here.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/query.h"

namespace spanprof {

// An /api/v1 query: one value per key (http/params: a repeated key keeps its last value).
using Params = std::map<std::string, std::string>;

// Value of `k`; absent or empty = def.
std::string param(const Params& p, const char* k, const std::string& def = "");
// Integer parameter in [lo, hi]; absent or empty = def; else a 400 naming the parameter.
Result<int64_t> int_param(const Params& p, const char* k, int64_t def, int64_t lo, int64_t hi);
// A time or duration in ms: absent = def; given = an integer in [0, year 2262], so that the ns
// values and differences computed from it cannot overflow.
Result<int64_t> ms_param(const Params& p, const char* k, int64_t def);
// `selector` ("{...}") narrowed to service_name="service", as one selector text.
Result<std::string> service_selector(const std::string& service, const std::string& selector);

class UiApi {
 public:
  explicit UiApi(const QueryEngine& q) : q_(q), s_(q.store()) {}
  const QueryEngine& engine() const { return q_; }

  nlohmann::json services(const std::string& tenant) const;
  Result<nlohmann::json> traces(const std::string& tenant, const Params& p) const;
  Result<nlohmann::json> trace(const std::string& tenant, const std::string& trace_id) const {
    return q_.trace(tenant, trace_id);
  }
  Result<nlohmann::json> flamegraph(const std::string& tenant, const Params& p) const;
  Result<nlohmann::json> timeline(const std::string& tenant, const Params& p) const;
  // Two flame graph selections (each an /api/v1/flamegraph parameter set) side by side; `p`
  // carries max_nodes.
  Result<nlohmann::json> diff(const std::string& tenant, const Params& left, const Params& right,
                              const Params& p) const;
  // The tenant's own figures; with server_wide (the --admin-tenant) also the whole store's
  // under "server".
  nlohmann::json stats(const std::string& tenant, bool server_wide) const;
  nlohmann::json server_stats() const;

  // Samples selected by an /api/v1/flamegraph parameter set.
  Result<StackSet> selection(const std::string& tenant, const Params& p) const;

 private:
  const QueryEngine& q_;
  const Store& s_;
};

}  // namespace spanprof
