// libFuzzer target: query strings and tenant ids as the HTTP layer parses them (http/params):
// parse_query's limits hold on whatever it accepts, a refusal is a 400 with a message, and the
// render parameters (parse_render_params) built from the result parse or refuse the same way.
// Input: line 1 = X-Scope-OrgID value, the rest = the query string.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/legacy.h"
#include "http/params.h"

namespace {
void check_refusal(const spanprof::Status& e) {
  if (e && (e->status != 400 || e->message.empty())) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view tenant = in.substr(0, nl);
  std::string_view qs = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  auto te = spanprof::check_tenant_id(tenant);
  check_refusal(te);
  if (!te && (tenant.empty() || tenant.size() > 150 || tenant == "." || tenant == ".."))
    std::abort();
  spanprof::QueryParams q;
  auto e = spanprof::parse_query(qs, q);
  check_refusal(e);
  if (e) return 0;
  if (q.size() > spanprof::kMaxQueryParams) std::abort();
  for (auto& [k, v] : q) {
    if (k.size() > spanprof::kMaxParamKeyBytes) std::abort();
    auto nested = spanprof::api_params_of(v);
    if (!nested) check_refusal(nested.error);
  }
  auto rq = spanprof::parse_render_params(q, 1'700'000'000'000);
  if (!rq) check_refusal(rq.error);
  return 0;
}
