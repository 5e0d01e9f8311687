// libFuzzer target: legacy ingest — folded text / lines bodies and the `name` parameter.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  spanprof::LegacyParams p;
  p.name = std::string(in.substr(0, nl == std::string_view::npos ? in.size() : nl));
  std::string_view body = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  std::vector<spanprof::RawProfile> out;
  (void)spanprof::decode_folded(body, size % 2, p, "t", spanprof::Limits{}, out);
  std::vector<std::pair<std::string, std::string>> types;
  (void)spanprof::parse_sample_type_config(body, types);
  return 0;
}
