// libFuzzer target: Prometheus-syntax label selectors (parse, then match a fixed label set).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/selector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto s = spanprof::parse_selector(std::string_view(reinterpret_cast<const char*>(data), size));
  if (s) {
    spanprof::Labels l{{"env", "prod"}, {"service_name", "api"}};
    (void)spanprof::matches_all(*s, l);
  }
  return 0;
}
