// Span-based reads of the profile store: the samples of given spans (found through span_index by
// local root, attributed by active span), and the /api/v1/traces/{id} document with each span's
// CPU samples and nanoseconds and its wall-clock nanoseconds by thread state. No HTTP here.
#include <array>
#include <cmath>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "core/query.h"
#include "core/util.h"

namespace spanprof {

using json = nlohmann::json;

bool is_wall_series(const Labels& l) {
  auto* t = find_label(l, "__type__");
  auto* u = find_label(l, "__unit__");
  return t && u && *t == "wall" && *u == "nanoseconds";
}

void QueryEngine::span_samples(const std::string& tenant, const std::vector<SpanRow>& spans,
                               const std::function<void(const ProfileMeta&, const SampleRow&)>& f,
                               const std::string& profile_type, const Selector& sel) const {
  std::unordered_set<int64_t> ok;
  for (auto& si : s_.series_of(tenant))
    if (si.profile_type == profile_type && matches_all(sel, si.labels)) ok.insert(si.id);
  span_samples_in(tenant, spans, ok, f);
}

void QueryEngine::span_samples_in(
    const std::string& tenant, const std::vector<SpanRow>& spans,
    const std::unordered_set<int64_t>& series,
    const std::function<void(const ProfileMeta&, const SampleRow&)>& f) const {
  if (series.empty()) return;
  std::vector<uint64_t> ids;
  for (auto& s : spans) ids.push_back(s.span_id);
  s_.scan_span_ids(tenant, ids, INT64_MIN, INT64_MAX,
                   [&](const ProfileMeta& m, const SampleRow& r) {
                     if (series.count(m.series)) f(m, r);
                   });
}

static json span_json(const SpanRow& s) {
  json d = json::parse(s.detail_json, nullptr, false);
  if (d.is_discarded()) d = json::object();
  static const char* kinds[] = {"UNSPECIFIED", "INTERNAL", "SERVER",
                                "CLIENT",      "PRODUCER", "CONSUMER"};
  static const char* codes[] = {"UNSET", "OK", "ERROR"};
  return {{"span_id", hex_u64(s.span_id)},
          {"parent_span_id", s.parent_span_id ? hex_u64(s.parent_span_id) : ""},
          {"name", s.name},
          {"service", s.service},
          {"kind", s.kind >= 0 && s.kind <= 5 ? kinds[s.kind] : "UNSPECIFIED"},
          {"start_unix_nano", s.start_ns},
          {"end_unix_nano", s.end_ns},
          {"status",
           {{"code", s.status_code >= 0 && s.status_code <= 2 ? codes[s.status_code] : "UNSET"},
            {"message", s.status_message}}},
          {"attributes", d.value("attributes", json::object())},
          {"events", d.value("events", json::array())},
          {"resource", d.value("resource", json::object())},
          {"scope", d.value("scope", json::object())}};
}

namespace {

// Where a span's wall-clock time went, by the wall samples' `thread_state` label.
constexpr const char* kStates[] = {"running", "gil_wait", "blocked", "awaiting", "other"};
constexpr size_t kNumStates = std::size(kStates);

size_t state_index(const Labels& l) {
  if (auto* v = find_label(l, "thread_state"))
    for (size_t i = 0; i + 1 < kNumStates; ++i)
      if (*v == kStates[i]) return i;
  return kNumStates - 1;
}

struct SpanCost {
  double cpu_samples = 0;
  int64_t cpu_ns = 0;
  std::array<int64_t, kNumStates> wall{};
  SpanCost& operator+=(const SpanCost& o) {
    cpu_samples += o.cpu_samples;
    cpu_ns += o.cpu_ns;
    for (size_t i = 0; i < kNumStates; ++i) wall[i] += o.wall[i];
    return *this;
  }
};

json wall_json(const std::array<int64_t, kNumStates>& w) {
  json j = json::object();
  for (size_t i = 0; i < kNumStates; ++i) j[kStates[i]] = w[i];
  return j;
}

}  // namespace

Result<json> QueryEngine::trace(const std::string& tenant, const std::string& trace_id) const {
  uint64_t hi, lo;
  if (!parse_hex_u128(trace_id, hi, lo)) return bad_request("trace_id must be 32 hex characters");
  auto spans = s_.trace_spans(tenant, hi, lo);
  if (spans.empty()) return not_found("trace " + trace_id + " not found");
  // Series id → CPU (-1) or the wall state index; one scan reads both profile types.
  std::unordered_map<int64_t, int> kind;
  std::unordered_map<int64_t, const std::string*> wall_type;
  std::unordered_set<int64_t> wanted;
  auto series = s_.series_of(tenant);
  for (auto& si : series) {
    if (si.profile_type == kCpuProfileType) {
      kind[si.id] = -1;
    } else if (is_wall_series(si.labels)) {
      kind[si.id] = int(state_index(si.labels));
      wall_type[si.id] = &si.profile_type;
    } else {
      continue;
    }
    wanted.insert(si.id);
  }
  std::unordered_map<uint64_t, SpanCost> self;
  int64_t period = 0, wall_period = 0;
  std::string wall_pt;
  span_samples_in(tenant, spans, wanted, [&](const ProfileMeta& m, const SampleRow& r) {
    SpanCost& c = self[effective_span(r)];
    int k = kind[m.series];
    if (k < 0) {
      c.cpu_samples += count_of(m, r);
      c.cpu_ns += r.value;
      if (m.period) period = m.period;
      return;
    }
    c.wall[size_t(k)] += r.value;
    if (m.period) wall_period = m.period;
    const std::string& pt = *wall_type[m.series];
    if (wall_pt.empty() || pt == kWallProfileType) wall_pt = pt;
  });
  std::unordered_map<uint64_t, std::vector<uint64_t>> kids;
  std::unordered_set<uint64_t> present;
  for (auto& s : spans) present.insert(s.span_id);
  for (auto& s : spans)
    if (s.parent_span_id && present.count(s.parent_span_id))
      kids[s.parent_span_id].push_back(s.span_id);
  std::unordered_map<uint64_t, SpanCost> total;
  std::function<SpanCost(uint64_t, int)> tot = [&](uint64_t id, int depth) -> SpanCost {
    auto it = total.find(id);
    if (it != total.end()) return it->second;
    SpanCost t = self.count(id) ? self[id] : SpanCost{};
    if (depth < 10000)
      for (auto c : kids[id]) t += tot(c, depth + 1);
    total[id] = t;
    return t;
  };
  json arr = json::array();
  for (auto& s : spans) {
    json j = span_json(s);
    SpanCost own = self.count(s.span_id) ? self[s.span_id] : SpanCost{};
    SpanCost all = tot(s.span_id, 0);
    j["self_samples"] = int64_t(std::llround(own.cpu_samples));
    j["total_samples"] = int64_t(std::llround(all.cpu_samples));
    j["self_cpu_ns"] = own.cpu_ns;
    j["total_cpu_ns"] = all.cpu_ns;
    j["wall_ns"] = {{"self", wall_json(own.wall)}, {"total", wall_json(all.wall)}};
    arr.push_back(std::move(j));
  }
  return json{{"trace_id", trace_id},
              {"spans", arr},
              {"period_ns", period},
              {"wall_period_ns", wall_period},
              {"wall_profile_type", wall_pt}};
}

}  // namespace spanprof
