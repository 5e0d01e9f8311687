// Reading a request body with limits: shared by every POST route of the server and by the
// multipart fuzz target (server/fuzz/fuzz_multipart.cc), which runs cpp-httplib's request parser
// over fuzzed bytes and then this exact code.
#pragma once
#include <httplib.h>

#include <string>
#include <vector>

#include "core/types.h"
#include "http/legacy.h"

namespace spanprof {

struct Body {
  std::string data;             // the body, when not multipart
  std::vector<FormPart> parts;  // multipart/form-data parts, in order
};

// Reads the body (httplib has undone Content-Encoding, except gzip taken over by take_over_gzip,
// which is inflated here) and stops at `limit` bytes of
// decompressed data, so a gzip bomb costs at most `limit` bytes of memory. httplib itself also
// stops decompressing at its payload limit (`wire_limit`); that failure is reported as 413 too.
// Multipart: httplib's parser splits the parts; more than kMaxFormParts parts is a 400.
Status read_body(const httplib::Request& req, const httplib::ContentReader& reader, size_t limit,
                 size_t wire_limit, Body& b);

// A gzip-encoded (non-multipart) body is inflated by read_body() with libdeflate in one call
// instead of by httplib's streaming zlib (ingest bodies: 2-3x less CPU). Called before the body is
// read (pre-routing): moves `Content-Encoding: gzip` to kGzipMarker so httplib hands over the raw
// bytes. A marker sent by the client is dropped first.
void take_over_gzip(httplib::Request& req);
inline constexpr const char* kGzipMarker = "Spanprof-Internal-Gzip-Body";

constexpr size_t kMaxFormParts = 64;  // the legacy upload has two; a flood of empty parts is not

}  // namespace spanprof
