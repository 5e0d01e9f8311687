// The server process: storage, the HTTP listeners and the OTLP/gRPC receiver (when built with
// gRPC: SPANPROF_HAVE_GRPC), until SIGTERM/SIGINT; then both shells drain and storage closes.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <thread>

#include "core/log.h"
#include "http/admission.h"
#include "http/listener.h"
#include "http/server.h"
#ifdef SPANPROF_HAVE_GRPC
#include "grpc/otlp_grpc.h"
#endif

namespace spanprof {

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

bool split_host_port(const std::string& hp, std::string& host, int& port) {
  size_t c = hp.rfind(':');
  if (c == std::string::npos) return false;
  host = hp.substr(0, c);
  if (host.empty()) host = "127.0.0.1";
  try {
    port = std::stoi(hp.substr(c + 1));
  } catch (...) {
    return false;
  }
  return port >= 0 && port < 65536;
}

bool is_loopback(const std::string& hp) {
  return hp.rfind("127.", 0) == 0 || hp.rfind("localhost:", 0) == 0 || hp.rfind(':', 0) == 0;
}

// Tests read this line to find an ephemeral port.
void announce(const char* what, const char* scheme, const std::string& host, int port) {
  log_info("%s listening on %s://%s:%d", what, scheme, host.c_str(), port);
  fprintf(stderr, "LISTENING %s %s:%d\n", what, host.c_str(), port);
  fflush(stderr);
}

}  // namespace

int run_server(const ServerConfig& cfg) {
#ifndef SPANPROF_HAVE_GRPC
  if (!cfg.otlp_grpc.empty()) {
    log_error(
        "--otlp-grpc: this spanprof-server was built without gRPC (libgrpc++-dev was missing at "
        "build time). Send OTLP/HTTP to /v1/traces and /v1development/profiles instead (the "
        "Collector's otlphttp exporter, the SDKs' http/protobuf protocol), or build the server "
        "with gRPC (scripts/setup installs it)");
    return 2;
  }
#endif
  auto store = Store::open(cfg.store);
  if (!store) {
    log_error("%s", store.error.message.c_str());
    return 1;
  }
  auto gate = std::make_shared<IngestGate>(cfg.limits);
  Router router;
  auto routes = install_routes(router, cfg, **store, gate);
  HttpOptions ho = cfg.http;
  ho.max_body_bytes = cfg.limits.max_body_bytes;
  HttpServer http(router, ho);
  auto listen = [&](const std::string& hp, const char* what) -> bool {
    std::string host, err;
    int port;
    if (!split_host_port(hp, host, port)) {
      log_error("bad %s address %s (want host:port)", what, hp.c_str());
      return false;
    }
    port = http.listen(host, port, err);
    if (port < 0) {
      log_error("cannot bind %s: %s", hp.c_str(), err.c_str());
      return false;
    }
    announce(what, "http", host, port);
    return true;
  };
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  std::signal(SIGPIPE, SIG_IGN);
  bool ok = listen(cfg.listen, "api");
  if (ok && !cfg.otlp_listen.empty()) ok = listen(cfg.otlp_listen, "otlp");
#ifdef SPANPROF_HAVE_GRPC
  std::unique_ptr<OtlpGrpcServer> grpc;
  if (ok && !cfg.otlp_grpc.empty()) {
    std::string host, err;
    int port;
    if (!split_host_port(cfg.otlp_grpc, host, port)) {
      log_error("bad otlp-grpc address %s (want host:port)", cfg.otlp_grpc.c_str());
      ok = false;
    } else {
      grpc = std::make_unique<OtlpGrpcServer>(cfg, **store, gate);
      port = grpc->start(host, port, err);
      if (port < 0) {
        log_error("cannot bind %s for OTLP/gRPC: %s", cfg.otlp_grpc.c_str(), err.c_str());
        ok = false;
      } else {
        announce("otlp-grpc", "grpc", host, port);
      }
    }
  }
#endif
  if (ok) {
    http.start();
    for (const std::string* hp : {&cfg.listen, &cfg.otlp_listen, &cfg.otlp_grpc})
      if (!hp->empty() && !is_loopback(*hp) && cfg.auth_token.empty())
        log_warn("listening on a non-loopback address (%s) without --auth-token", hp->c_str());
    while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    log_info("shutting down: finishing in-flight requests");
  }
#ifdef SPANPROF_HAVE_GRPC
  if (grpc) grpc->stop(30);
#endif
  if (ok) http.stop();
  (*store).reset();
  log_info("storage closed");
  return ok ? 0 : 1;
}

}  // namespace spanprof
