// libFuzzer target: legacy ingest of folded text / lines bodies and the `name` parameter, through
// legacy_ingest as the server's /ingest route runs it (gzip sniffing, the counts × period check,
// decode_folded), plus the sample_type_config JSON parser. Input: line 1 = `name`, the rest =
// the body; an odd size selects format=lines, and the first byte of the body (when it is a digit)
// the sampleRate's magnitude.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/decode.h"
#include "http/legacy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view body = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  spanprof::QueryParams q{{"name", std::string(in.substr(0, nl))}};
  if (size % 2) q.emplace("format", "lines");
  if (!body.empty() && body[0] >= '0' && body[0] <= '9')
    q.emplace("sampleRate", "1" + std::string(size_t(body[0] - '0'), '0'));
  std::vector<spanprof::RawProfile> out;
  auto e = spanprof::legacy_ingest(q, false, body, {}, "t", spanprof::Limits{}, out);
  if (e && (e->status < 400 || e->status > 499)) __builtin_trap();
  std::vector<std::pair<std::string, std::string>> types;
  (void)spanprof::parse_sample_type_config(body, types);
  return 0;
}
