// The connection layer: Boost.Beast over Asio. One event-loop thread owns every socket (accept,
// header and body reads with timeouts, writes); complete requests go to a bounded pool of worker
// threads that run the routes (decoding, queries, waiting for a durable commit). An idle
// keep-alive connection or a slow client costs a socket and a small buffer, never a worker.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "http/router.h"

namespace spanprof {

struct HttpOptions {
  size_t max_body_bytes = 16u << 20;  // on the wire (Content-Length or chunked); 413 past it
  size_t max_header_bytes = 16 * 1024;
  size_t max_target_bytes = 4096;            // 414 past it
  int header_timeout_s = 10;                 // from the first byte of a request to its last header
  int body_timeout_s = 60;                   // reading the body
  int idle_timeout_s = 120;                  // a keep-alive connection between requests
  size_t max_connections = 16384;            // all clients; more are closed at accept
  size_t max_connections_per_client = 4096;  // per remote IP address
  int workers = 32;                          // threads running routes (they block on commits)
  size_t max_queued_requests = 4096;         // complete requests waiting for a worker; 503 past it
  int backlog = 4096;                        // listen(2) backlog (the kernel caps it at somaxconn)
};

// One complete HTTP/1.1 request from bytes, through the same parser, limits and conversion the
// connections use (the fuzz targets' entry). 4xx Error for what a connection would refuse.
Status parse_http_request(std::string_view raw, const HttpOptions& o, Request& req);

class HttpServer {
 public:
  HttpServer(const Router& router, const HttpOptions& o);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0 = any free port) and starts accepting once run() runs. Returns the
  // bound port, or -1 with `err` set.
  int listen(const std::string& host, int port, std::string& err);
  void start();  // starts the event loop and workers
  // Stops accepting, lets requests in flight finish (up to `grace_s`), then closes everything.
  void stop(int grace_s = 30);

  struct Impl;  // public so the connection code in listener.cc can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace spanprof
