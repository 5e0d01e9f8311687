// The route table: method + path pattern (a regex matched against the whole decoded path, its
// groups in Request::matches) → handler. One table for every listener; the connection code
// (http/listener.cc) and the fuzz targets call dispatch().
#pragma once
#include <functional>
#include <regex>
#include <string>
#include <vector>

#include "http/request.h"

namespace spanprof {

class Router {
 public:
  // A handler may take the request as const (most do) or not (body readers move the body out).
  using Handler = std::function<void(Request&, Response&)>;
  // Runs before routing; returns true when it answered the request itself (auth).
  using Pre = std::function<bool(const Request&, Response&)>;

  void Get(const std::string& pattern, Handler h) { add("GET", pattern, std::move(h)); }
  void Post(const std::string& pattern, Handler h) { add("POST", pattern, std::move(h)); }
  void set_pre_routing_handler(Pre p) { pre_ = std::move(p); }

  // Runs the matching handler. Unknown path → 404, wrong method → 405, a handler that throws
  // → 500; every error response has a JSON body {"code", "message"}.
  void dispatch(Request& req, Response& res) const;

 private:
  struct Route {
    std::string method;
    std::string literal;  // the pattern when it has no regex syntax: compared, not matched
    std::regex re;
    Handler h;
  };
  void add(const char* method, const std::string& pattern, Handler h);
  std::vector<Route> routes_;
  Pre pre_;
};

// {"code", "message"} with `status`; the message may quote the request: invalid UTF-8 in it
// becomes U+FFFD. Sets Retry-After when e.retry_after_s > 0.
void send_error(Response& res, const Error& e);

}  // namespace spanprof
