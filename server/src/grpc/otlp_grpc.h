// OTLP over gRPC (--otlp-grpc, the Collector's and the SDKs' port 4317): the unary Export methods
// of opentelemetry.proto.collector.trace.v1.TraceService and
// opentelemetry.proto.collector.profiles.v1development.ProfilesService on Debian's gRPC
// (callback server, raw messages). A shell like http/: the request bytes go to core/ingest.h, the
// same function the OTLP/HTTP routes call; credentials, tenant and the per-tenant ingest budget
// come from http/admission.h (one IngestGate with the HTTP side).
#pragma once
#include <memory>
#include <string>

#include "core/store.h"
#include "http/admission.h"
#include "http/server.h"

namespace spanprof {

class OtlpGrpcServer {
 public:
  // `cfg`, `store` and `gate` must outlive the server. Calls run on cfg.otlp_grpc_threads
  // threads of the receiver's own (the HTTP workers are never used), at most
  // cfg.http.max_queued_requests waiting; past that UNAVAILABLE.
  OtlpGrpcServer(const ServerConfig& cfg, Store& store, std::shared_ptr<IngestGate> gate);
  ~OtlpGrpcServer();
  OtlpGrpcServer(const OtlpGrpcServer&) = delete;
  OtlpGrpcServer& operator=(const OtlpGrpcServer&) = delete;

  // Binds host:port (port 0 = a free port) and starts serving. Returns the bound port, or -1
  // with `err` set.
  int start(const std::string& host, int port, std::string& err);
  // Refuses new calls, lets calls in flight finish for up to `grace_s`, then cancels the rest.
  void stop(int grace_s);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace spanprof
