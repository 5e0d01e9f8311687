// libFuzzer target: OTLP traces and OTLP profiles (v1development), binary and JSON.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  spanprof::Limits lim;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  bool json = data[0] & 1;
  if (data[0] & 2) {
    std::vector<spanprof::SpanRow> spans;
    (void)spanprof::decode_otlp_traces(body, json, "t", lim, spans);
  } else {
    std::vector<spanprof::RawProfile> out;
    (void)spanprof::decode_otlp_profiles(body, json, "t", lim, out);
  }
  return 0;
}
