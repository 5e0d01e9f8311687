// libFuzzer target: push.v1 PushRequest, binary and proto3 JSON (first byte picks).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::vector<spanprof::RawProfile> out;
  spanprof::Limits lim;
  lim.max_decompressed_bytes = 1 << 20;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  (void)spanprof::decode_push(body, data[0] & 1, "t", lim, out);
  return 0;
}
