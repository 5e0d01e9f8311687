// Query parameters as the HTTP layer hands them over, and their conversion for /api/v1. No httplib
// here (its Params type is this multimap), so fuzz targets can call the same code.
#pragma once
#include <map>
#include <string>

#include "core/query.h"

namespace spanprof {

// A key may repeat in a query string.
using QueryParams = std::multimap<std::string, std::string>;

// First value of `key`, "" when absent (httplib's get_param_value).
inline std::string first_param(const QueryParams& q, const std::string& key) {
  auto it = q.find(key);
  return it == q.end() ? std::string() : it->second;
}

// /api/v1 documents take single-valued parameters: a repeated key keeps its last value.
inline Params api_params(const QueryParams& q) {
  Params p;
  for (auto& [k, v] : q) p[k] = v;
  return p;
}

}  // namespace spanprof
