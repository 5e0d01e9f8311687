#include "http/body.h"

#include <algorithm>
#include <cctype>

#include "core/util.h"

namespace spanprof {

namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  std::transform(o.begin(), o.end(), o.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return o;
}

// The value of parameter `key` in a header value like `form-data; name="x"; filename=y`.
std::string header_param(std::string_view v, std::string_view key) {
  size_t pos = 0;
  while ((pos = v.find(';', pos)) != std::string_view::npos) {
    ++pos;
    while (pos < v.size() && (v[pos] == ' ' || v[pos] == '\t')) ++pos;
    size_t eq = v.find('=', pos);
    if (eq == std::string_view::npos) return "";
    if (lower(v.substr(pos, eq - pos)) != key) continue;
    std::string_view rest = v.substr(eq + 1);
    if (!rest.empty() && rest[0] == '"') {
      size_t end = rest.find('"', 1);
      return std::string(rest.substr(1, end == std::string_view::npos ? rest.npos : end - 1));
    }
    return std::string(rest.substr(0, rest.find(';')));
  }
  return "";
}

}  // namespace

Status parse_multipart(std::string_view content_type, std::string_view body,
                       std::vector<FormPart>& parts) {
  std::string boundary = header_param(content_type, "boundary");
  while (!boundary.empty() && (boundary.back() == ' ' || boundary.back() == '\t'))
    boundary.pop_back();
  if (boundary.empty() || boundary.size() > 200)
    return bad_request("multipart/form-data without a valid boundary parameter");
  const std::string delim = "--" + boundary;
  const Error bad = bad_request(
      "could not parse the multipart/form-data body (boundary or part "
      "headers)");
  size_t pos = body.find(delim);
  if (pos == std::string_view::npos) return bad;
  pos += delim.size();
  for (;;) {
    if (body.substr(pos, 2) == "--") return std::nullopt;  // closing delimiter
    size_t eol = body.find("\r\n", pos);                   // rest of the delimiter line
    if (eol == std::string_view::npos) return bad;
    size_t hdr_end = body.find("\r\n\r\n", eol);
    if (hdr_end == std::string_view::npos) return bad;
    if (hdr_end - eol > 8192) return bad_request("multipart part headers exceed 8 KiB");
    if (parts.size() >= kMaxFormParts)
      return bad_request("multipart body has more than " + std::to_string(kMaxFormParts) +
                         " parts");
    FormPart part;
    std::string_view headers = body.substr(eol + 2, hdr_end - eol - 2 + 2);
    size_t hp = 0;
    while (hp < headers.size()) {
      size_t e = headers.find("\r\n", hp);
      std::string_view line = headers.substr(hp, e == std::string_view::npos ? e : e - hp);
      hp = e == std::string_view::npos ? headers.size() : e + 2;
      size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      if (lower(line.substr(0, colon)) == "content-disposition")
        part.name = header_param(line.substr(colon + 1), "name");
    }
    size_t start = hdr_end + 4;
    size_t end = body.find("\r\n" + delim, start);
    if (end == std::string_view::npos) return bad;
    part.content.assign(body.substr(start, end - start));
    parts.push_back(std::move(part));
    pos = end + 2 + delim.size();
  }
}

Status read_body(Request& req, size_t limit, Body& b) {
  std::string data = std::move(req.body);
  size_t n_enc = req.get_header_value_count("Content-Encoding");
  if (n_enc > 1) return Error{415, "invalid_argument", "more than one Content-Encoding"};
  if (n_enc == 1) {
    std::string enc = lower(req.get_header_value("Content-Encoding"));
    if (enc == "gzip" || enc == "x-gzip" || enc == "deflate") {
      auto r = gunzip(data, limit);
      if (!r) return r.error;
      data = std::move(*r);
    } else if (enc != "identity") {
      return Error{415, "invalid_argument",
                   "unsupported Content-Encoding (gzip, deflate or identity)"};
    }
  }
  if (data.size() > limit)
    return too_large("decompressed body exceeds " + std::to_string(limit) + " bytes");
  if (req.is_multipart_form_data())
    return parse_multipart(req.get_header_value("Content-Type"), data, b.parts);
  b.data = std::move(data);
  return std::nullopt;
}

}  // namespace spanprof
