// Shared by the fuzz targets that go through the HTTP layer: runs one raw HTTP/1.1 request through
// the server's own request parser (Beast's, with the connection's limits: request line, headers,
// Content-Length or chunked body), target and query-string decoding, then the Router with the
// routes the target registered. No socket; the response is discarded.
#pragma once
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "core/types.h"
#include "http/body.h"
#include "http/legacy.h"
#include "http/listener.h"
#include "http/router.h"

namespace spanprof::fuzz {

class Server : public Router {
 public:
  HttpOptions opts;
  void run(std::string_view raw) {
    Request req;
    if (auto e = parse_http_request(raw, opts, req)) {
      if (e->status >= 500) std::abort();
      return;
    }
    Response res;
    dispatch(req, res);
    // A handler that throws, or a 5xx for outside input. 501 is not a failure: it is Connect's
    // `unimplemented`, the deliberate answer to a method spanprof does not have.
    if (res.status >= 500 && res.status != 501) std::abort();
  }
  // `<method> <target> HTTP/1.1`, Host, `headers` (complete lines), Content-Length, body.
  void request(std::string_view method, std::string_view target, std::string_view headers,
               std::string_view body) {
    std::string raw;
    raw.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: fuzz\r\n");
    raw.append(headers).append("Content-Length: ").append(std::to_string(body.size()));
    raw.append("\r\n\r\n").append(body);
    run(raw);
  }
};

// Cuts the first line (without its '\n') off `in`.
inline std::string_view next_line(std::string_view& in) {
  size_t nl = in.find('\n');
  std::string_view l = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return l;
}

// protobuf logs every string field with invalid UTF-8 it parses: noise at fuzzing speed.
inline void quiet_protobuf() {
  google::protobuf::SetLogHandler(
      [](google::protobuf::LogLevel, const char*, int, const std::string&) {});
}

// The contract of every handler under test: success or a 4xx, never a 5xx or another code.
inline void check_status(const Status& e) {
  if (e && (e->status < 400 || e->status > 499)) std::abort();
}

// The server's legacy /ingest route minus the store: read_body, then legacy_ingest.
inline Router::Handler legacy_ingest_handler(size_t limit) {
  return [limit](Request& req, Response& res) {
    Limits lim;
    lim.max_body_bytes = lim.max_decompressed_bytes = limit;
    Body b;
    Status e = read_body(req, limit, b);
    std::vector<RawProfile> out;
    if (!e)
      e = legacy_ingest(req.params, req.is_multipart_form_data(), b.data, b.parts, "anonymous", lim,
                        out);
    check_status(e);
    res.status = e ? e->status : 200;
  };
}

}  // namespace spanprof::fuzz

// Every target that includes this header starts with protobuf's logging silenced.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spanprof::fuzz::quiet_protobuf();
  return 0;
}
