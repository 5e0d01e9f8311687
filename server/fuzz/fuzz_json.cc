// libFuzzer target: the /api/v1 query-string parser and the diff sub-query path
// (parse_query_string → url_decode), plus time/size/duration parsing used by flags and params.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/query.h"
#include "core/util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto p = spanprof::parse_query_string(in);
  for (auto& [k, v] : p) {
    (void)spanprof::parse_query_string(v);
    (void)spanprof::parse_duration_s(v);
    (void)spanprof::parse_size_bytes(v);
    uint64_t hi, lo;
    (void)spanprof::parse_hex_u128(v, hi, lo);
  }
  std::string out;
  (void)spanprof::base64_decode(in, out);
  return 0;
}
