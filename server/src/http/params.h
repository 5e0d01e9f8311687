// Request parameters from hostile input: the query string (percent-decoding, limits) and the
// tenant id (X-Scope-OrgID), and their conversion for /api/v1 (core/ui_api). No Beast here, so
// fuzz targets (fuzz_query) and gtest call the same code the server runs.
#pragma once
#include <map>
#include <string>
#include <string_view>

#include "core/types.h"
#include "core/ui_api.h"

namespace spanprof {

// A key may repeat in a query string.
using QueryParams = std::multimap<std::string, std::string>;

// Limits of one query string (the request target's length is bounded by the HTTP layer first).
inline constexpr size_t kMaxQueryParams = 256;
inline constexpr size_t kMaxParamKeyBytes = 256;

// application/x-www-form-urlencoded decoding: '+' is a space, %XX a byte; a '%' not followed by
// two hex digits stays as it is (Go's net/http drops such a pair; keeping it loses nothing).
std::string url_decode(std::string_view s);

// `a=1&b=2&a=3` → out (cleared first). 400 past kMaxQueryParams pairs or a key longer than
// kMaxParamKeyBytes; empty pairs are skipped, a pair without '=' has the value "".
Status parse_query(std::string_view qs, QueryParams& out);

// First value of `key`, "" when absent.
inline std::string first_param(const QueryParams& q, const std::string& key) {
  auto it = q.find(key);
  return it == q.end() ? std::string() : it->second;
}

// /api/v1 documents take single-valued parameters: a repeated key keeps its last value.
Params api_params(const QueryParams& q);
// A query string nested in a parameter (/api/v1/diff's left and right), parsed as api_params.
Result<Params> api_params_of(std::string_view qs);

// Tenant ids as Pyroscope accepts them (dskit's ValidTenantID, Cortex/Mimir tenant rules): 1-150
// characters of [A-Za-z0-9] and ! - _ . * ' ( ), and neither "." nor "..". A 400 naming the rule
// otherwise. An absent X-Scope-OrgID is the tenant "anonymous" (the server's, not checked here).
Status check_tenant_id(std::string_view t);

}  // namespace spanprof
