#include "http/body.h"

#include <cctype>
#include <cstdlib>

#include "core/util.h"

namespace spanprof {

void take_over_gzip(httplib::Request& req) {
  req.headers.erase(kGzipMarker);
  if (req.is_multipart_form_data() || req.get_header_value_count("Content-Encoding") != 1) return;
  std::string enc = req.get_header_value("Content-Encoding");
  for (auto& c : enc) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (enc != "gzip" && enc != "x-gzip") return;
  req.headers.erase("Content-Encoding");
  req.headers.emplace(kGzipMarker, "1");
}

Status read_body(const httplib::Request& req, const httplib::ContentReader& reader, size_t limit,
                 size_t wire_limit, Body& b) {
  size_t total = 0;
  bool over = false, too_many = false;
  bool ok;
  if (req.is_multipart_form_data()) {
    ok = reader(
        [&](const httplib::MultipartFormData& f) {
          if (b.parts.size() >= kMaxFormParts) return !(too_many = true);
          b.parts.push_back({f.name, {}});
          return true;
        },
        [&](const char* d, size_t n) {
          if ((total += n) > limit) return !(over = true);
          if (!b.parts.empty()) b.parts.back().content.append(d, n);
          return true;
        });
  } else {
    ok = reader([&](const char* d, size_t n) {
      if ((total += n) > limit) return !(over = true);
      b.data.append(d, n);
      return true;
    });
  }
  if (over) return too_large("decompressed body exceeds " + std::to_string(limit) + " bytes");
  if (too_many)
    return bad_request("multipart body has more than " + std::to_string(kMaxFormParts) + " parts");
  constexpr size_t kInflateChunk = 2 * 16384;  // httplib's decompression buffer, twice
  if (!ok && req.has_header("Content-Encoding") && total + kInflateChunk >= wire_limit)
    return too_large("decompressed body exceeds " + std::to_string(wire_limit) + " bytes");
  if (!ok &&
      std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > wire_limit)
    return too_large("request body exceeds " + std::to_string(wire_limit) + " bytes");
  if (ok && req.has_header(kGzipMarker)) {
    auto r = gunzip(b.data, limit);
    if (!r) return r.error;
    b.data = std::move(*r);
  }
  if (!ok) {
    if (req.is_multipart_form_data())
      return bad_request("could not parse the multipart/form-data body (boundary or part headers)");
    return bad_request("could not read the request body (bad encoding or framing)");
  }
  return std::nullopt;
}

}  // namespace spanprof
