// HTTP shell over the core: routes, auth, tenants, body limits, Connect/JSON framing.
#pragma once
#include <memory>
#include <string>

#include "core/store.h"
#include "core/types.h"
#include "http/listener.h"
#include "http/router.h"

namespace spanprof {

struct ServerConfig {
  std::string listen = "127.0.0.1:4040";
  std::string otlp_listen;    // empty = no second listener
  std::string otlp_grpc;      // host:port for OTLP/gRPC (grpc/otlp_grpc.h); empty = off
  int otlp_grpc_threads = 8;  // gRPC threads running Export calls (they block on commits)
  std::string ui_dir;
  std::string auth_token;
  std::string admin_tenant;  // sees server-wide figures in /api/v1/stats; empty = nobody
  Limits limits;
  StoreOptions store;
  HttpOptions http;  // http.workers: routes block while their push commits (group commits)
};

class IngestGate;

// Adds every route of the server to `r`. The result holds the routes' state: keep it while `r`
// is used. `cfg` and `store` must outlive it too. `gate`: the per-tenant ingest budget shared with
// the OTLP/gRPC receiver (null: one of the routes' own).
std::shared_ptr<void> install_routes(Router& r, const ServerConfig& cfg, Store& store,
                                     std::shared_ptr<IngestGate> gate = nullptr);

// Runs until SIGTERM/SIGINT; returns the process exit code.
int run_server(const ServerConfig& cfg);

}  // namespace spanprof
