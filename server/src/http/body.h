// A request body as the routes use it: Content-Encoding undone with a limit (a gzip bomb costs at
// most `limit` bytes) and multipart/form-data split into parts. Shared by every POST route and
// the fuzz targets (server/fuzz), which run this exact code over fuzzed requests.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"
#include "http/legacy.h"
#include "http/request.h"

namespace spanprof {

struct Body {
  std::string data;             // the body, when not multipart
  std::vector<FormPart> parts;  // multipart/form-data parts, in order
};

// Inflates gzip/x-gzip/deflate bodies (413 past `limit` decompressed bytes; 415 for any other
// Content-Encoding), then splits a multipart body. Moves req.body's bytes.
Status read_body(Request& req, size_t limit, Body& b);

// multipart/form-data (RFC 7578) with the boundary from `content_type`: the parts' names and
// contents. 400 for a missing boundary, a part without its closing delimiter, part headers over
// 8 KiB, or more than kMaxFormParts parts.
Status parse_multipart(std::string_view content_type, std::string_view body,
                       std::vector<FormPart>& parts);

constexpr size_t kMaxFormParts = 64;  // the legacy upload has two; a flood of empty parts is not

}  // namespace spanprof
