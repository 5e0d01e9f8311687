// libFuzzer target: push.v1 PushRequest, binary and proto3 JSON (first byte picks); binary bodies
// are also checked against the generated parser.
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
  bool json = data[0] & 1;
  auto st = spanprof::decode_push(body, json, "t", lim, out);
  if (json) return 0;
  // The in-place binary reader must agree with the generated parser: the same verdict, and on
  // success the same profiles.
  std::vector<spanprof::RawProfile> ref;
  auto want = spanprof::decode_push_generated(body, false, "t", lim, ref);
  if (bool(st) != bool(want)) __builtin_trap();
  if (st) return 0;
  if (out.size() != ref.size()) __builtin_trap();
  for (size_t i = 0; i < out.size(); ++i)
    if (out[i].series != ref[i].series || out[i].samples.size() != ref[i].samples.size() ||
        out[i].frames.size() != ref[i].frames.size())
      __builtin_trap();
  return 0;
}
