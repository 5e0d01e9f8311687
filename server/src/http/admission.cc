#include "http/admission.h"

#include <algorithm>
#include <cctype>

#include "core/util.h"
#include "http/params.h"

namespace spanprof {

namespace {

bool ct_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

// `h` starts with the auth scheme `scheme` (compared without case, RFC 9110 11.1) and a space;
// `rest` is what follows.
bool has_scheme(std::string_view h, std::string_view scheme, std::string_view& rest) {
  if (h.size() <= scheme.size() || h[scheme.size()] != ' ') return false;
  for (size_t i = 0; i < scheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(h[i])) != scheme[i]) return false;
  size_t p = scheme.size();
  while (p < h.size() && h[p] == ' ') ++p;
  rest = h.substr(p);
  return true;
}

}  // namespace

bool authorized(std::string_view h, const std::string& token) {
  if (token.empty()) return true;
  std::string_view cred;
  if (has_scheme(h, "bearer", cred)) return ct_equal(cred, token);
  if (has_scheme(h, "basic", cred)) {
    std::string dec;
    if (!base64_decode(cred, dec)) return false;
    size_t colon = dec.find(':');
    return colon != std::string::npos && ct_equal(std::string_view(dec).substr(colon + 1), token);
  }
  return false;
}

Result<std::string> tenant_from(const std::string& t) {
  if (t.empty()) return std::string("anonymous");
  if (auto e = check_tenant_id(t)) return *e;
  return t;
}

Status TenantRate::admit(const std::string& tenant, size_t bytes) {
  if (rate_ <= 0) return std::nullopt;
  const double burst = rate_ * 4;
  double now = double(now_ns()) / 1e9;
  std::lock_guard g(mu_);
  auto [it, fresh] = buckets_.try_emplace(tenant, Bucket{burst, now});
  Bucket& b = it->second;
  b.tokens = std::min(burst, b.tokens + (now - b.at) * rate_);
  b.at = now;
  if (b.tokens >= double(bytes) || (fresh && bytes > burst)) {
    b.tokens -= double(bytes);  // may go negative once: a single body larger than the burst
    return std::nullopt;
  }
  int wait = int((double(bytes) - b.tokens) / rate_) + 1;
  return Error{429, "resource_exhausted",
               "tenant " + tenant + " is over its ingest rate of " + std::to_string(size_t(rate_)) +
                   " bytes/s (--max-ingest-rate)",
               wait};
}

TenantInFlight::Slot::~Slot() {
  if (!owner) return;
  std::lock_guard g(owner->mu_);
  if (--owner->n_[tenant] == 0) owner->n_.erase(tenant);
}

Status TenantInFlight::enter(const std::string& tenant, Slot& slot) {
  if (max_ == 0) return std::nullopt;
  std::lock_guard g(mu_);
  size_t& n = n_[tenant];
  if (n >= max_)
    return Error{429, "resource_exhausted",
                 "tenant " + tenant + " already has " + std::to_string(n) +
                     " ingest requests in progress (--max-inflight-per-tenant)",
                 1};
  ++n;
  slot.owner = this;
  slot.tenant = tenant;
  return std::nullopt;
}

int grpc_status_code(const Error& e) {
  switch (e.status) {
    case 401:
      return 16;  // UNAUTHENTICATED
    case 403:
      return 7;  // PERMISSION_DENIED
    case 404:
      return 5;  // NOT_FOUND
    case 413:
    case 429:
      return 8;  // RESOURCE_EXHAUSTED
    case 501:
      return 12;  // UNIMPLEMENTED
    case 503:
    case 507:
      return 14;  // UNAVAILABLE
    default:
      return e.status >= 400 && e.status < 500 ? 3 /* INVALID_ARGUMENT */ : 13 /* INTERNAL */;
  }
}

}  // namespace spanprof
