#include "http/request.h"

#include <algorithm>
#include <cctype>

namespace spanprof {

bool CaseLess::operator()(const std::string& a, const std::string& b) const {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) <
           std::tolower(static_cast<unsigned char>(y));
  });
}

std::string Request::get_header_value(const std::string& k) const {
  auto it = headers.find(k);
  return it == headers.end() ? std::string() : it->second;
}

bool Request::is_multipart_form_data() const {
  std::string ct = get_header_value("Content-Type");
  std::transform(ct.begin(), ct.end(), ct.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return ct.rfind("multipart/form-data", 0) == 0;
}

void Response::set_header(const std::string& k, const std::string& v) {
  headers.erase(k);
  headers.emplace(k, v);
}

namespace {
int hexv(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = char(std::tolower(static_cast<unsigned char>(c)));
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}
}  // namespace

Status parse_target(std::string_view target, Request& req) {
  if (target.empty() || target[0] != '/')
    return bad_request("the request target must be a path starting with '/'");
  size_t q = target.find('?');
  std::string_view raw = target.substr(0, q);
  req.path.clear();
  for (size_t i = 0; i < raw.size(); ++i) {
    int a, b;
    if (raw[i] == '%' && i + 2 < raw.size() && (a = hexv(raw[i + 1])) >= 0 &&
        (b = hexv(raw[i + 2])) >= 0) {
      req.path += char(a << 4 | b);
      i += 2;
    } else {
      req.path += raw[i];
    }
  }
  if (req.path.find('\0') != std::string::npos) return bad_request("NUL in the request path");
  req.params.clear();
  if (q == std::string_view::npos) return std::nullopt;
  return parse_query(target.substr(q + 1), req.params);
}

}  // namespace spanprof
