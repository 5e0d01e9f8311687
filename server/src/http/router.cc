#include "http/router.h"

#include <nlohmann/json.hpp>

#include "core/log.h"

namespace spanprof {

void send_error(Response& res, const Error& e) {
  using json = nlohmann::json;
  res.status = e.status;
  if (e.retry_after_s > 0) res.set_header("Retry-After", std::to_string(e.retry_after_s));
  res.set_content(json{{"code", e.code}, {"message", e.message}}.dump(
                      -1, ' ', false, json::error_handler_t::replace),
                  "application/json");
}

// A pattern without regex syntax ('.' counts as itself: "/push.v1.PusherService/Push") is compared
// as a string; matching ~30 std::regex patterns per request cost more than the comparison.
void Router::add(const char* method, const std::string& pattern, Handler h) {
  bool literal = pattern.find_first_of("()[]{}*+?|^$\\") == std::string::npos;
  routes_.push_back({method, literal ? pattern : std::string(),
                     literal ? std::regex() : std::regex(pattern), std::move(h)});
}

void Router::dispatch(Request& req, Response& res) const {
  try {
    if (pre_ && pre_(req, res)) return;
    bool path_known = false;
    std::smatch m;
    for (auto& r : routes_) {
      if (!r.literal.empty() ? r.literal != req.path : !std::regex_match(req.path, m, r.re))
        continue;
      path_known = true;
      if (r.method != req.method && !(r.method == "GET" && req.method == "HEAD")) continue;
      if (r.literal.empty())
        req.matches.assign(m.begin(), m.end());
      else
        req.matches = {req.path};
      r.h(req, res);
      return;
    }
    if (path_known)
      send_error(res, {405, "invalid_argument", "method " + req.method + " not allowed here"});
    else
      send_error(res, not_found("no such route: " + req.path));
  } catch (const std::exception& e) {
    log_error("handler exception: %s", e.what());
    res = Response();
    send_error(res, internal_error(e.what()));
  }
}

}  // namespace spanprof
