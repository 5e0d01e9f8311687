// One HTTP request and its response as the routes see them, independent of the connection code
// (http/listener.cc) so the fuzz targets can run the same routes over bytes without a socket.
// Accessors mirror the few cpp-httplib ones the routes were written against.
#pragma once
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"
#include "http/legacy.h"
#include "http/params.h"

namespace spanprof {

struct CaseLess {
  bool operator()(const std::string& a, const std::string& b) const;
};
using Headers = std::multimap<std::string, std::string, CaseLess>;

struct Request {
  std::string method, target;  // target as sent: path?query
  std::string path;            // percent-decoded
  QueryParams params;          // query string, percent-decoded ('+' = space)
  Headers headers;
  std::string body;                  // as received, after Transfer-Encoding; see http/body.h
  std::vector<FormPart> parts;       // multipart/form-data parts (filled by decode_body)
  std::vector<std::string> matches;  // the route pattern's groups; [0] = the whole path
  std::string remote_addr;

  bool has_header(const std::string& k) const { return headers.count(k) > 0; }
  // The whole first value ("" when absent), embedded NULs included.
  std::string get_header_value(const std::string& k) const;
  size_t get_header_value_count(const std::string& k) const { return headers.count(k); }
  bool is_multipart_form_data() const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  bool close = false;  // close the connection after this response
  void set_header(const std::string& k, const std::string& v);
  void set_content(std::string b, const std::string& content_type) {
    body = std::move(b);
    set_header("Content-Type", content_type);
  }
};

// Splits `target` into path and query parameters (Request::path, ::params). 400 for a target
// that is not origin-form ("/..."), or whose path decodes to a NUL.
Status parse_target(std::string_view target, Request& req);

}  // namespace spanprof
