#include "core/profile_traces.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <unordered_map>

#include "core/util.h"

namespace spanprof {

using json = nlohmann::json;

namespace {

// Whether a stack holds the frame; memoised per function and per stack.
class StackMatcher {
 public:
  StackMatcher(const Store& s, const FrameMatch& m) : s_(s), m_(m) {}
  bool operator()(uint32_t stack) {
    if (m_.any()) return true;
    auto it = stacks_.find(stack);
    if (it != stacks_.end()) return it->second;
    s_.stack_locations(stack, locs_);
    bool hit = false;
    for (auto l : locs_) {
      auto L = s_.location(l);
      if ((m_.line == 0 || L.line == m_.line) && function_ok(L.function)) {
        hit = true;
        break;
      }
    }
    stacks_.emplace(stack, hit);
    return hit;
  }

 private:
  bool function_ok(uint32_t fn) {
    auto it = functions_.find(fn);
    if (it != functions_.end()) return it->second;
    auto [name, file] = s_.function(fn);
    bool ok = s_.str(name) == m_.function && (m_.file.empty() || s_.str(file) == m_.file);
    functions_.emplace(fn, ok);
    return ok;
  }
  const Store& s_;
  const FrameMatch& m_;
  std::unordered_map<uint32_t, bool> stacks_, functions_;
  std::vector<uint32_t> locs_;
};

}  // namespace

Result<json> traces_through(const Store& s, const QueryEngine& q, const std::string& tenant,
                            const Params& p) {
  constexpr int64_t kMaxMs = INT64_MAX / 1'000'000;
  std::string service = param(p, "service");
  if (service.empty()) return bad_request("service is required");
  auto from = int_param(p, "from", 0, 0, kMaxMs), to = int_param(p, "to", kMaxMs, 0, kMaxMs),
       limit = int_param(p, "limit", 20, 1, 200), line = int_param(p, "line", 0, 0, INT32_MAX);
  for (auto* r : {&from, &to, &limit, &line})
    if (!*r) return r->error;
  FrameMatch m{param(p, "function"), param(p, "file"), *line};
  if (m.any() && (!m.file.empty() || m.line)) return bad_request("file and line need function");
  auto sel = service_selector(service, param(p, "selector", "{}"));
  if (!sel) return sel.error;
  auto series = q.match(tenant, param(p, "profile_type", kCpuProfileType), *sel);
  if (!series) return series.error;
  std::vector<int64_t> ids;
  for (auto& si : *series) ids.push_back(si.id);

  struct Acc {
    int64_t in = 0, all = 0;
    double samples = 0;
  };
  std::map<std::pair<uint64_t, uint64_t>, Acc> by_trace;
  int64_t function_value = 0, total = 0, unattributed = 0, period = 0;
  StackMatcher hit(s, m);
  s.scan_profiles(s.profiles_of(ids, *from, *to), [&](const ProfileMeta& pm, const SampleRow& r) {
    if (pm.period) period = pm.period;
    bool h = hit(r.stack);
    total += r.value;
    if (h) function_value += r.value;
    if (!(r.ids.trace_hi | r.ids.trace_lo)) {
      if (h) unattributed += r.value;
      return;
    }
    Acc& a = by_trace[{r.ids.trace_hi, r.ids.trace_lo}];
    a.all += r.value;
    if (h) {
      a.in += r.value;
      a.samples += pm.period > 0 ? double(r.value) / double(pm.period) : double(r.value);
    }
  });
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, Acc>> ranked;
  for (auto& [k, a] : by_trace)
    if (a.in > 0) ranked.emplace_back(k, a);
  std::sort(ranked.begin(), ranked.end(), [](auto& x, auto& y) {
    return x.second.in != y.second.in ? x.second.in > y.second.in : x.first < y.first;
  });
  if (ranked.size() > size_t(*limit)) ranked.resize(size_t(*limit));
  json out = json::array();
  for (auto& [k, a] : ranked) {
    auto spans = s.trace_spans(tenant, k.first, k.second);
    // The root span, else (root not stored) the earliest: trace_spans orders by start.
    auto it = std::find_if(spans.begin(), spans.end(), [](auto& x) { return !x.parent_span_id; });
    const SpanRow* root = it != spans.end() ? &*it : spans.empty() ? nullptr : &spans.front();
    out.push_back({{"trace_id", hex_u128(k.first, k.second)},
                   {"stored", root != nullptr},
                   {"root_name", root ? root->name : ""},
                   {"service", root ? root->service : service},
                   {"start_unix_nano", root ? root->start_ns : 0},
                   {"duration_ns", root ? root->end_ns - root->start_ns : 0},
                   {"value", a.in},
                   {"trace_value", a.all},
                   {"samples", int64_t(std::llround(a.samples))}});
  }
  return json{{"traces", out},
              {"function_value", function_value},
              {"total", total},
              {"unattributed", unattributed},
              {"period_ns", period}};
}

}  // namespace spanprof
