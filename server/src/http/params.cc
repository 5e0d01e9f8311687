#include "http/params.h"

namespace spanprof {

namespace {
int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    int hi, lo;
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && (hi = hex_digit(s[i + 1])) >= 0 &&
               (lo = hex_digit(s[i + 2])) >= 0) {
      out += char(hi << 4 | lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Status parse_query(std::string_view qs, QueryParams& out) {
  out.clear();
  while (!qs.empty()) {
    size_t amp = qs.find('&');
    std::string_view kv = qs.substr(0, amp);
    if (!kv.empty()) {
      if (out.size() == kMaxQueryParams)
        return bad_request("the query string has more than " + std::to_string(kMaxQueryParams) +
                           " parameters");
      size_t eq = kv.find('=');
      std::string_view key = kv.substr(0, eq);
      if (key.size() > kMaxParamKeyBytes * 3 || url_decode(key).size() > kMaxParamKeyBytes)
        return bad_request("a query parameter name is longer than " +
                           std::to_string(kMaxParamKeyBytes) + " bytes");
      out.emplace(url_decode(key),
                  eq == std::string_view::npos ? std::string() : url_decode(kv.substr(eq + 1)));
    }
    if (amp == std::string_view::npos) break;
    qs = qs.substr(amp + 1);
  }
  return std::nullopt;
}

Params api_params(const QueryParams& q) {
  Params p;
  for (auto& [k, v] : q) p[k] = v;
  return p;
}

Result<Params> api_params_of(std::string_view qs) {
  QueryParams q;
  if (auto e = parse_query(qs, q)) return *e;
  return api_params(q);
}

Status check_tenant_id(std::string_view t) {
  static const char kRule[] =
      "X-Scope-OrgID must be 1-150 characters of A-Z a-z 0-9 ! - _ . * ' ( ) and not '.' or '..' "
      "(Pyroscope's tenant id rules)";
  if (t.empty() || t.size() > 150 || t == "." || t == "..") return bad_request(kRule);
  for (char c : t) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '!' || c == '-' || c == '_' || c == '.' || c == '*' || c == '\'' || c == '(' ||
              c == ')';
    if (!ok) return bad_request(kRule);
  }
  return std::nullopt;
}

}  // namespace spanprof
