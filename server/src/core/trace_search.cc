#include "core/trace_search.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "core/util.h"

namespace spanprof {

using json = nlohmann::json;

Result<TraceQuery> parse_trace_query(const Params& p) {
  constexpr int64_t kMaxMs = INT64_MAX / 1'000'000;
  TraceQuery q;
  q.service = param(p, "service");
  q.root_name = param(p, "name");
  q.span_name = param(p, "span_name");
  q.status = param(p, "status");
  if (!q.status.empty() && q.status != "error" && q.status != "ok")
    return bad_request("status must be error or ok");
  std::string attrs = param(p, "attributes");
  if (attrs.size() > 4096) return bad_request("attributes is longer than 4096 characters");
  for (size_t pos = 0; pos < attrs.size();) {
    size_t end = attrs.find(';', pos);
    if (end == std::string::npos) end = attrs.size();
    std::string kv = attrs.substr(pos, end - pos);
    pos = end + 1;
    if (kv.find_first_not_of(' ') == std::string::npos) continue;
    size_t eq = kv.find('=');
    if (eq == 0 || eq == std::string::npos)
      return bad_request("attributes must be key=value pairs separated by ';' (got '" + kv + "')");
    if (q.attributes.size() >= 16) return bad_request("at most 16 attribute filters");
    q.attributes.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  auto mn = int_param(p, "min_duration_ms", -1, 0, kMaxMs);
  auto mx = int_param(p, "max_duration_ms", -1, 0, kMaxMs);
  auto mnn = int_param(p, "min_duration_ns", -1, 0, INT64_MAX);
  auto mxn = int_param(p, "max_duration_ns", -1, 0, INT64_MAX);
  auto from = int_param(p, "from", 0, 0, kMaxMs);
  auto to = int_param(p, "to", kMaxMs, 0, kMaxMs);
  auto limit = int_param(p, "limit", 20, 1, 1000);
  auto offset = int_param(p, "offset", 0, 0, int64_t(kTraceScanLimit));
  for (auto* r : {&mn, &mx, &mnn, &mxn, &from, &to, &limit, &offset})
    if (!*r) return r->error;
  q.min_duration_ns = *mnn >= 0 ? *mnn : *mn >= 0 ? *mn * 1'000'000 : -1;
  q.max_duration_ns = *mxn >= 0 ? *mxn : *mx >= 0 ? *mx * 1'000'000 : -1;
  q.from_ns = *from * 1'000'000;
  q.to_ns = *to >= kMaxMs ? INT64_MAX : *to * 1'000'000;
  q.limit = size_t(*limit);
  q.offset = size_t(*offset);
  std::string has = param(p, "has_profile");
  if (has == "true" || has == "1") q.has_profile = 1;
  if (has == "false" || has == "0") q.has_profile = 0;
  std::string sort = param(p, "sort");
  if (!sort.empty() && sort != "start" && sort != "duration")
    return bad_request("sort must be start or duration");
  q.by_duration = sort == "duration";
  return q;
}

static std::string value_text(const json& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

bool span_has_attributes(const SpanRow& s,
                         const std::vector<std::pair<std::string, std::string>>& attrs) {
  if (attrs.empty()) return true;
  json d = json::parse(s.detail_json, nullptr, false);
  if (d.is_discarded() || !d.is_object()) return false;
  auto it = d.find("attributes");
  if (it == d.end() || !it->is_object()) return false;
  for (auto& [k, v] : attrs) {
    auto a = it->find(k);
    if (a == it->end() || value_text(*a) != v) return false;
  }
  return true;
}

json duration_histogram(const std::vector<int64_t>& d) {
  // Four buckets per power of ten from 10 µs to 1000 s; shorter and longer go to the ends.
  std::vector<int64_t> bounds;
  for (int e = 4; e <= 12; ++e)
    for (double m : {1.0, 1.778, 3.162, 5.623}) {
      if (e == 12 && m > 1.0) break;
      bounds.push_back(int64_t(std::llround(m * std::pow(10.0, e))));
    }
  std::vector<int64_t> counts(bounds.size() - 1, 0);
  for (int64_t x : d) {
    auto it = std::upper_bound(bounds.begin(), bounds.end(), x);
    size_t i = it == bounds.begin() ? 0 : size_t(it - bounds.begin()) - 1;
    counts[std::min(i, counts.size() - 1)]++;
  }
  // Trim empty buckets at both ends (keep at least one).
  size_t a = 0, b = counts.size();
  while (a + 1 < b && counts[a] == 0) ++a;
  while (b > a + 1 && counts[b - 1] == 0) --b;
  return {
      {"bounds_ns", std::vector<int64_t>(bounds.begin() + long(a), bounds.begin() + long(b) + 1)},
      {"counts", std::vector<int64_t>(counts.begin() + long(a), counts.begin() + long(b))}};
}

Result<json> TraceSearch::run(const std::string& tenant, const TraceQuery& tq) const {
  TraceFilter f;
  f.service = tq.service;
  f.name = tq.root_name;
  f.min_duration_ns = tq.min_duration_ns;
  f.max_duration_ns = tq.max_duration_ns;
  f.from_ns = tq.from_ns;
  f.to_ns = tq.to_ns;
  f.limit = kTraceScanLimit + 1;
  auto roots = s_.find_root_spans(tenant, f);
  bool limited = roots.size() > kTraceScanLimit;
  if (limited) roots.resize(kTraceScanLimit);
  bool per_span = !tq.span_name.empty() || !tq.attributes.empty() || !tq.status.empty();
  struct T {
    SpanRow root;
    size_t spans = 0;
    double samples = -1;  // CPU samples; -1: not counted yet
    int64_t wall_ns = 0;
  };
  std::vector<T> hits;
  // A trace "has a profile" when it has CPU or wall-clock samples (a trace that only waited has
  // no CPU samples but is explained by its wall profile).
  std::unordered_set<int64_t> cpu, either;
  for (auto& si : s_.series_of(tenant)) {
    bool is_cpu = si.profile_type == kCpuProfileType;
    if (is_cpu) cpu.insert(si.id);
    if (is_cpu || is_wall_series(si.labels)) either.insert(si.id);
  }
  auto count = [&](T& t, const std::vector<SpanRow>& spans) {
    t.samples = 0;
    q_.span_samples_in(tenant, spans, either, [&](const ProfileMeta& m, const SampleRow& r) {
      if (!cpu.count(m.series)) {
        t.wall_ns += r.value;
        return;
      }
      t.samples += m.period > 0 ? double(r.value) / double(m.period) : double(r.value);
    });
  };
  auto profiled = [](const T& t) { return t.samples > 0 || t.wall_ns > 0; };
  for (auto& r : roots) {
    T t{r, 0, -1, 0};
    if (per_span || tq.has_profile >= 0) {
      auto spans = s_.trace_spans(tenant, r.trace_hi, r.trace_lo);
      bool name_ok = tq.span_name.empty(), attr_ok = tq.attributes.empty(), error = false;
      for (auto& s : spans) {
        if (!name_ok && s.name == tq.span_name) name_ok = true;
        if (!attr_ok && span_has_attributes(s, tq.attributes)) attr_ok = true;
        if (s.status_code == 2) error = true;
      }
      if (!name_ok || !attr_ok) continue;
      if ((tq.status == "error" && !error) || (tq.status == "ok" && error)) continue;
      t.spans = spans.size();
      if (tq.has_profile >= 0) {
        count(t, spans);
        if (profiled(t) != (tq.has_profile == 1)) continue;
      }
    }
    hits.push_back(std::move(t));
  }
  auto dur = [](const T& t) { return t.root.end_ns - t.root.start_ns; };
  std::stable_sort(hits.begin(), hits.end(), [&](const T& a, const T& b) {
    if (tq.by_duration && dur(a) != dur(b)) return dur(a) > dur(b);
    if (a.root.start_ns != b.root.start_ns) return a.root.start_ns > b.root.start_ns;
    return std::tie(a.root.trace_hi, a.root.trace_lo) < std::tie(b.root.trace_hi, b.root.trace_lo);
  });
  std::vector<int64_t> durations;
  durations.reserve(hits.size());
  for (auto& t : hits) durations.push_back(dur(t));
  json out = json::array();
  size_t end = std::min(hits.size(), tq.offset + tq.limit);
  for (size_t i = tq.offset; i < end; ++i) {
    T& t = hits[i];
    auto spans = s_.trace_spans(tenant, t.root.trace_hi, t.root.trace_lo);
    t.spans = spans.size();
    if (t.samples < 0) count(t, spans);
    bool error =
        std::any_of(spans.begin(), spans.end(), [](auto& s) { return s.status_code == 2; });
    out.push_back({{"trace_id", hex_u128(t.root.trace_hi, t.root.trace_lo)},
                   {"service", t.root.service},
                   {"root_name", t.root.name},
                   {"start_unix_nano", t.root.start_ns},
                   {"duration_ns", dur(t)},
                   {"span_count", t.spans},
                   {"has_profile", profiled(t)},
                   {"sample_count", int64_t(std::llround(t.samples))},
                   {"wall_ns", t.wall_ns},
                   {"error", error}});
  }
  return json{
      {"traces", out},           {"total", hits.size()},
      {"offset", tq.offset},     {"next_offset", end < hits.size() ? json(end) : json(nullptr)},
      {"scan_limited", limited}, {"histogram", duration_histogram(durations)}};
}

}  // namespace spanprof
