// libFuzzer target: the /api/v1 query-string parser and the diff sub-query path
// (api_params_of → parse_query → url_decode), plus time/size/duration parsing used by flags and
// params.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/util.h"
#include "http/params.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto p = spanprof::api_params_of(in);
  if (!p) return 0;
  for (auto& [k, v] : *p) {
    (void)spanprof::api_params_of(v);
    (void)spanprof::parse_duration_s(v);
    (void)spanprof::parse_size_bytes(v);
    uint64_t hi, lo;
    (void)spanprof::parse_hex_u128(v, hi, lo);
  }
  std::string out;
  (void)spanprof::base64_decode(in, out);
  return 0;
}
