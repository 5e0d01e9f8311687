// libFuzzer target: a legacy `/ingest` multipart upload (what pyroscope-io's Go and older Python
// clients send) through the server's HTTP request parser (Beast) and
// multipart/form-data parser (read_body) and legacy_ingest: `profile` part → pprof decoder,
// `sample_type_config` → JSON. Input: line 1 = the boundary as it appears after `boundary=` in
// Content-Type (may be quoted), line 2 = the query string, the rest = the body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http_harness.h"

namespace {

constexpr size_t kLimit = 1 << 20;

spanprof::fuzz::Server& server() {
  static spanprof::fuzz::Server* s = [] {
    auto* srv = new spanprof::fuzz::Server();
    srv->opts.max_body_bytes = kLimit;
    srv->Post("/ingest", spanprof::fuzz::legacy_ingest_handler(kLimit));
    return srv;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view boundary = spanprof::fuzz::next_line(in), query = spanprof::fuzz::next_line(in);
  server().request("POST", "/ingest?" + std::string(query),
                   "Content-Type: multipart/form-data; boundary=" + std::string(boundary) + "\r\n",
                   in);
  return 0;
}
