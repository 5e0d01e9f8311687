#include "core/located.h"

#include <algorithm>
#include <charconv>
#include <unordered_map>

namespace spanprof {

Result<FrameKey> parse_frame_key(const std::string& s) {
  if (s.empty() || s == "function") return FrameKey::function;
  if (s == "line") return FrameKey::line;
  return bad_request("frames must be function or line");
}

nlohmann::json located_flamegraph(const Store& s, const StackSet& st, FrameKey key,
                                  int64_t max_nodes) {
  // Tree keys: location ids (by line) or function ids (by function).
  FlameTree t;
  std::vector<uint32_t> locs, keys;
  std::unordered_map<uint32_t, int64_t> first_line;  // function id → lowest sampled line
  for (auto& [stack, v] : st.values) {
    s.stack_locations(stack, locs);
    keys.clear();
    for (auto l : locs) {
      if (key == FrameKey::line) {
        keys.push_back(l);
        continue;
      }
      auto L = s.location(l);
      keys.push_back(L.function);
      auto [it, fresh] = first_line.emplace(L.function, std::max<int64_t>(L.line, 0));
      if (!fresh && L.line > 0 && (it->second <= 0 || L.line < it->second)) it->second = L.line;
    }
    t.add(keys.data(), keys.size(), v, 0);
  }
  // The encoder shares a names entry between equal strings: the display name carries its key
  // after a NUL (digits only, so the last NUL is ours even if a name holds one).
  auto function_of = [&](uint32_t k) { return key == FrameKey::line ? s.location(k).function : k; };
  auto out = t.flamegraph(
      [&](uint32_t k) {
        return s.str(s.function(function_of(k)).first) + '\0' + std::to_string(k);
      },
      max_nodes);
  std::vector<std::string> files(out.names.size());
  std::vector<int64_t> lines(out.names.size(), 0);
  for (size_t i = 0; i < out.names.size(); ++i) {
    std::string& n = out.names[i];
    size_t cut = n.rfind('\0');
    if (cut == std::string::npos) continue;  // "total", "other"
    uint32_t k = 0;
    std::from_chars(n.data() + cut + 1, n.data() + n.size(), k);
    n.resize(cut);
    uint32_t fn = function_of(k);
    files[i] = s.str(s.function(fn).second);
    if (key == FrameKey::line) {
      lines[i] = std::max<int64_t>(s.location(k).line, 0);  // agents send -1 for "no line"
    } else {
      auto it = first_line.find(fn);
      lines[i] = it == first_line.end() ? 0 : it->second;
    }
  }
  return {{"names", out.names},
          {"levels", out.levels},
          {"total", out.total},
          {"max_self", out.max_self},
          {"files", files},
          {"lines", lines},
          {"frames", key == FrameKey::line ? "line" : "function"}};
}

}  // namespace spanprof
