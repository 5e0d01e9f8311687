// Who may send what, shared by every network shell (the HTTP routes in http/server.cc and the
// OTLP/gRPC receiver in grpc/otlp_grpc.cc): credentials, tenant ids, and the per-tenant ingest
// budget (rate and requests in flight). One IngestGate serves both shells, so a tenant's budget
// is the same whichever transport it uses.
#pragma once
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/types.h"

namespace spanprof {

// `authorization` (an HTTP header or gRPC metadata value) carries `token`: "Bearer <token>" or
// "Basic base64(<any user>:<token>)", scheme compared without case. An empty `token` admits all.
bool authorized(std::string_view authorization, const std::string& token);

// The tenant named by an X-Scope-OrgID value: "anonymous" when empty, else 400 unless
// check_tenant_id (http/params.h, Pyroscope's rules) accepts it.
Result<std::string> tenant_from(const std::string& org_id);

// Ingest rate per tenant: a token bucket over request bytes (as sent), refilled at `bytes_per_s`
// and holding up to 4 s of it. Over the rate: 429 with a retry delay. 0 = no limit.
class TenantRate {
 public:
  explicit TenantRate(size_t bytes_per_s) : rate_(double(bytes_per_s)) {}
  Status admit(const std::string& tenant, size_t bytes);

 private:
  struct Bucket {
    double tokens, at;
  };
  double rate_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

// Ingest requests in flight per tenant (decoding, or waiting for their commit): past `max`
// (--max-inflight-per-tenant; 0 = no limit), 429, so one tenant's many connections cannot hold
// every worker while other tenants' pushes wait.
class TenantInFlight {
 public:
  explicit TenantInFlight(size_t max) : max_(max) {}
  // Held for the request's duration; leaving scope frees its place.
  struct Slot {
    TenantInFlight* owner = nullptr;
    std::string tenant;
    Slot() = default;
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot();
  };
  Status enter(const std::string& tenant, Slot& slot);

 private:
  size_t max_;
  std::mutex mu_;
  std::unordered_map<std::string, size_t> n_;
};

// Both budgets of one ingest request of `bytes` bytes.
class IngestGate {
 public:
  explicit IngestGate(const Limits& lim)
      : rate_(lim.max_ingest_bytes_per_s),
        in_flight_(size_t(std::max(0, lim.max_inflight_per_tenant))) {}
  Status enter(const std::string& tenant, size_t bytes, TenantInFlight::Slot& slot) {
    if (auto e = rate_.admit(tenant, bytes)) return e;
    return in_flight_.enter(tenant, slot);
  }

 private:
  TenantRate rate_;
  TenantInFlight in_flight_;
};

// The gRPC status code (grpc::StatusCode's number) for an Error the core or the HTTP shell gives
// as an HTTP status, as OTLP/gRPC clients read it: bad input → INVALID_ARGUMENT (3, not
// retried); size limits and 429 → RESOURCE_EXHAUSTED (8, retried when a RetryInfo comes with
// it); 503 and a full disk (507) → UNAVAILABLE (14, retried); 401 → UNAUTHENTICATED (16).
int grpc_status_code(const Error& e);

}  // namespace spanprof
