// Shared by the fuzz targets that go through cpp-httplib: runs one raw HTTP/1.1 request through
// httplib::Server's own request parser (request line, headers, query string, Content-Length,
// multipart) without a socket, by handing process_request an in-memory stream. The routes are
// whatever the target registered; the response is discarded.
#pragma once
#include <google/protobuf/stubs/logging.h>
#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "core/types.h"
#include "http/body.h"
#include "http/legacy.h"

namespace spanprof::fuzz {

// Reads the request from a string; every write (the response) is dropped.
class MemStream : public httplib::Stream {
 public:
  explicit MemStream(std::string_view in) : in_(in) {}
  bool is_readable() const override { return true; }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    size_t n = std::min(size, in_.size() - pos_);
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return ssize_t(n);
  }
  ssize_t write(const char*, size_t size) override { return ssize_t(size); }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 1;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 2;
  }
  socket_t socket() const override { return INVALID_SOCKET; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

// httplib::Server with its (protected) per-request entry point made callable.
class Server : public httplib::Server {
 public:
  Server() {
    // A handler that throws would be a 500 in the server (its exception handler): a bug here.
    set_exception_handler(
        [](const httplib::Request&, httplib::Response&, std::exception_ptr) { std::abort(); });
  }
  void run(std::string_view raw) {
    MemStream s(raw);
    bool closed = false;
    (void)process_request(s, true, closed, [](httplib::Request&) {});
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
inline httplib::Server::HandlerWithContentReader legacy_ingest_handler(size_t limit) {
  return [limit](const httplib::Request& req, httplib::Response& res,
                 const httplib::ContentReader& reader) {
    Limits lim;
    lim.max_body_bytes = lim.max_decompressed_bytes = limit;
    Body b;
    Status e = read_body(req, reader, limit, limit, b);
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
