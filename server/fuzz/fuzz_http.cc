// libFuzzer target: one whole HTTP/1.1 request, as raw bytes (request line, headers, a sized or
// chunked body, any Content-Encoding), through the server's request parser and connection limits
// (parse_http_request) and then every route of the real server (install_routes) over a store in a
// temporary directory: auth, tenants, JSON and protobuf bodies, multipart, queries. A 5xx or a
// crash is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "http/server.h"
#include "http_harness.h"

namespace {

std::filesystem::path g_dir;
void remove_dir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

spanprof::fuzz::Server& server() {
  static spanprof::fuzz::Server* srv = [] {
    char tmpl[] = "/tmp/spanprof-fuzz-http-XXXXXX";
    if (!mkdtemp(tmpl)) std::abort();
    g_dir = tmpl;
    std::atexit(remove_dir);
    static spanprof::ServerConfig cfg;
    cfg.store.dir = g_dir.string();
    cfg.store.retention_s = 0;
    cfg.limits.max_body_bytes = cfg.limits.max_decompressed_bytes = 1 << 20;
    cfg.auth_token = "";
    auto st = spanprof::Store::open(cfg.store);
    if (!st) std::abort();
    static std::unique_ptr<spanprof::Store> store = std::move(*st);
    auto* s = new spanprof::fuzz::Server();
    s->opts.max_body_bytes = cfg.limits.max_body_bytes;
    static auto routes = spanprof::install_routes(*s, cfg, *store);
    return s;
  }();
  return *srv;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  server().run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
