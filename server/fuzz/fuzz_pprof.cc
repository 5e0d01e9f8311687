// libFuzzer target: pprof decoding (plain and gzip-sniffed) with default limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<spanprof::RawProfile> out;
  spanprof::Limits lim;
  lim.max_decompressed_bytes = 1 << 20;
  (void)spanprof::decode_pprof(std::string_view(reinterpret_cast<const char*>(data), size), "t",
                               {{"service_name", "fuzz"}}, lim, out);
  return 0;
}
