#include "core/ui_api.h"

#include <cmath>
#include <set>

#include "core/located.h"
#include "core/trace_search.h"
#include "core/util.h"

namespace spanprof {

using json = nlohmann::json;

// Largest max_nodes an /api/v1 flame graph takes (more nodes than any stored tree holds).
constexpr int64_t kMaxNodesParam = 1 << 24;

std::string param(const Params& p, const char* k, const std::string& def) {
  auto it = p.find(k);
  return it == p.end() || it->second.empty() ? def : it->second;
}

static Result<int64_t> get_int(const Params& p, const char* k, int64_t def) {
  auto it = p.find(k);
  if (it == p.end() || it->second.empty()) return def;
  try {
    size_t pos = 0;
    long long v = std::stoll(it->second, &pos);
    if (pos != it->second.size()) throw std::invalid_argument("x");
    return int64_t(v);
  } catch (...) {
    return bad_request(std::string("parameter '") + k + "' must be an integer");
  }
}

Result<int64_t> ms_param(const Params& p, const char* k, int64_t def) {
  constexpr int64_t kMaxMs = INT64_MAX / 1'000'000;
  auto it = p.find(k);
  if (it == p.end() || it->second.empty()) return def;
  auto v = get_int(p, k, def);
  if (v && (*v < 0 || *v > kMaxMs))
    return bad_request(std::string("parameter '") + k + "' must be in 0.." +
                       std::to_string(kMaxMs) + " (ms)");
  return v;
}

json UiApi::services(const std::string& tenant) const {
  std::set<std::string> out;
  for (auto& s : s_.series_of(tenant)) out.insert(s.service);
  for (auto& s : s_.span_services(tenant)) out.insert(s);
  return {{"services", std::vector<std::string>(out.begin(), out.end())}};
}

Result<json> UiApi::traces(const std::string& tenant, const Params& p) const {
  auto q = parse_trace_query(p);
  if (!q) return q.error;
  return TraceSearch(s_, q_).run(tenant, *q);
}

static std::unordered_set<uint64_t> descendants(const std::vector<SpanRow>& spans,
                                                const std::unordered_set<uint64_t>& roots) {
  std::unordered_map<uint64_t, std::vector<uint64_t>> kids;
  for (auto& s : spans)
    if (s.parent_span_id) kids[s.parent_span_id].push_back(s.span_id);
  std::unordered_set<uint64_t> out;
  std::vector<uint64_t> todo(roots.begin(), roots.end());
  while (!todo.empty()) {
    uint64_t x = todo.back();
    todo.pop_back();
    if (!out.insert(x).second) continue;
    for (auto c : kids[x]) todo.push_back(c);
  }
  return out;
}

Result<StackSet> UiApi::selection(const std::string& tenant, const Params& p) const {
  auto from = ms_param(p, "from", 0), to = ms_param(p, "to", INT64_MAX / 2);
  if (!from) return from.error;
  if (!to) return to.error;
  std::string mode = param(p, "mode", "self");
  if (mode != "self" && mode != "children") return bad_request("mode must be self or children");
  StackSet st;
  auto add = [&](const ProfileMeta& m, const SampleRow& r) {
    st.values[r.stack] += r.value;
    st.sample_count += count_of(m, r);
    if (m.period) st.period = m.period;
  };
  std::string trace_id = param(p, "trace_id"), span_id = param(p, "span_id");
  std::string service = param(p, "service"), span_name = param(p, "span_name");
  std::string ptype = param(p, "profile_type", kCpuProfileType);
  // Span selections honour profile_type and selector too (e.g. {thread_state="awaiting"}).
  auto sel = parse_selector(param(p, "selector", "{}"));
  if (!sel) return sel.error;
  for (auto& si : s_.series_of(tenant))
    if (si.profile_type == ptype) {
      set_sample_types(st, si);
      break;
    }
  if (!span_id.empty()) {
    uint64_t sid;
    if (!parse_hex_u64(span_id, sid)) return bad_request("span_id must be 16 hex characters");
    std::vector<SpanRow> spans;
    if (!trace_id.empty()) {
      uint64_t hi, lo;
      if (!parse_hex_u128(trace_id, hi, lo))
        return bad_request("trace_id must be 32 hex characters");
      spans = s_.trace_spans(tenant, hi, lo);
    }
    std::unordered_set<uint64_t> target{sid};
    if (mode == "children") target = descendants(spans, target);
    if (spans.empty()) {  // trace not stored: the span can only be a local root
      SpanRow only;
      only.span_id = sid;
      spans.push_back(only);
    }
    bool all_of_root = spans.size() == 1 && mode == "children";
    q_.span_samples(
        tenant, spans,
        [&](const ProfileMeta& m, const SampleRow& r) {
          if (all_of_root || target.count(effective_span(r))) add(m, r);
        },
        ptype, *sel);
    return st;
  }
  if (!span_name.empty()) {
    auto traces =
        s_.traces_with_span_name(tenant, service, span_name, *from * 1'000'000,
                                 *to >= INT64_MAX / 2 ? INT64_MAX : *to * 1'000'000, 2000);
    if (!traces.empty()) {
      for (auto& [hi, lo] : traces) {
        auto spans = s_.trace_spans(tenant, hi, lo);
        std::unordered_set<uint64_t> target;
        for (auto& s : spans)
          if (s.name == span_name && (service.empty() || s.service == service))
            target.insert(s.span_id);
        if (mode == "children") target = descendants(spans, target);
        q_.span_samples(
            tenant, spans,
            [&](const ProfileMeta& m, const SampleRow& r) {
              if (target.count(effective_span(r))) add(m, r);
            },
            ptype, *sel);
      }
      return st;
    }
    // No stored spans: fall back to the span_name series label (local root names).
    Selector by_name = *sel;
    by_name.push_back(Matcher{Matcher::kEq, "span_name", span_name, nullptr});
    if (!service.empty())
      by_name.push_back(Matcher{Matcher::kEq, "service_name", service, nullptr});
    return q_.merge_series(tenant, ptype, by_name, *from, *to);
  }
  if (service.empty()) return bad_request("need span_id, span_name or service");
  sel->push_back(Matcher{Matcher::kEq, "service_name", service, nullptr});
  return q_.merge_series(tenant, ptype, *sel, *from, *to);
}

Result<int64_t> int_param(const Params& p, const char* k, int64_t def, int64_t lo, int64_t hi) {
  auto it = p.find(k);
  if (it == p.end() || it->second.empty()) return def;
  size_t pos = 0;
  int64_t x = 0;
  try {
    x = std::stoll(it->second, &pos);
  } catch (...) {
    pos = 0;
  }
  if (pos == 0 || pos != it->second.size() || x < lo || x > hi)
    return bad_request(std::string("parameter '") + k + "' must be an integer in " +
                       std::to_string(lo) + ".." + std::to_string(hi));
  return x;
}

Result<std::string> service_selector(const std::string& service, const std::string& text) {
  size_t close = text.rfind('}');
  if (close == std::string::npos) return bad_request("selector must end with '}'");
  std::string inner = text.substr(text.find('{') + 1, close - text.find('{') - 1);
  std::string esc;
  for (char c : service) {
    if (c == '"' || c == '\\') esc += '\\';
    esc += c;
  }
  return "{service_name=\"" + esc + "\"" +
         (inner.find_first_not_of(" \t") == std::string::npos ? "" : "," + inner) + "}";
}

Result<json> UiApi::flamegraph(const std::string& tenant, const Params& p) const {
  auto st = selection(tenant, p);
  if (!st) return st.error;
  auto mx = int_param(p, "max_nodes", 0, 0, kMaxNodesParam);
  if (!mx) return mx.error;
  auto key = parse_frame_key(param(p, "frames"));
  if (!key) return key.error;
  json j = located_flamegraph(s_, *st, *key, *mx);
  j["period_ns"] = st->period;
  j["sample_count"] = int64_t(std::llround(st->sample_count));
  return j;
}

Result<json> UiApi::timeline(const std::string& tenant, const Params& p) const {
  std::string service = param(p, "service");
  auto from = ms_param(p, "from", 0), to = ms_param(p, "to", now_ns() / 1'000'000),
       step = ms_param(p, "step_ms", 0);
  for (auto* r : {&from, &to, &step})
    if (!*r) return r->error;
  int64_t step_ms = *step > 0 ? *step : std::max<int64_t>(10000, (*to - *from) / 200);
  std::string text = param(p, "selector", "{}");
  auto sel = parse_selector(text);
  if (!sel) return sel.error;
  if (!service.empty()) {
    Matcher m;
    m.name = "service_name";
    m.value = service;
    sel->push_back(m);
  }
  std::string pt = param(p, "profile_type", kCpuProfileType);
  std::map<int64_t, double> pts;
  std::vector<int64_t> ids;
  std::string unit = "nanoseconds";
  for (auto& si : s_.series_of(tenant))
    if (si.profile_type == pt && matches_all(*sel, si.labels)) {
      ids.push_back(si.id);
      if (auto* u = find_label(si.labels, "__unit__")) unit = *u;
    }
  for (auto& m : s_.profiles_of(ids, *from, *to))
    pts[*from + (m.time_ms - *from) / step_ms * step_ms] += double(m.total);
  json arr = json::array();
  for (auto& [t, v] : pts) arr.push_back({t, v});
  return json{{"points", arr}, {"unit", unit}, {"step_ms", step_ms}};
}

Result<json> UiApi::diff(const std::string& tenant, const Params& left, const Params& right,
                         const Params& p) const {
  auto ls = selection(tenant, left);
  if (!ls) return ls.error;
  auto rs = selection(tenant, right);
  if (!rs) return rs.error;
  auto mx = int_param(p, "max_nodes", 0, 0, kMaxNodesParam);
  if (!mx) return mx.error;
  FlameTree t;
  q_.add_to_tree(*ls, t, 0);
  q_.add_to_tree(*rs, t, 1);
  auto f = t.diff([&](uint32_t k) { return s_.str(k); }, *mx);
  return json{{"names", f.names},
              {"levels", f.levels},
              {"left_total", f.left_total},
              {"right_total", f.right_total},
              {"max_self", f.max_self}};
}

json UiApi::stats(const std::string& tenant, bool server_wide) const {
  auto t = s_.tenant_stats(tenant);
  json out = {{"tenant", tenant},
              {"series", t.series},
              {"profiles", t.profiles},
              {"sample_rows", t.sample_rows}};
  // Every tenant sees whether its writes are being refused for the storage budget (and why).
  auto s = s_.stats();
  out["writes_refused"] = s.over_budget;
  if (s.over_budget) out["writes_refused_reason"] = s.over_budget_reason;
  if (server_wide) out["server"] = server_stats();
  return out;
}

json UiApi::server_stats() const {
  auto s = s_.stats();
  double per = s.sample_rows ? double(s.db_bytes + s.wal_bytes) / double(s.sample_rows) : 0;
  return {{"db_bytes", s.db_bytes},
          {"wal_bytes", s.wal_bytes},
          {"sample_rows", s.sample_rows},
          {"profiles", s.profiles},
          {"stacks", s.stacks},
          {"bytes_per_sample_row", per},
          {"wal_syncs", s.wal_syncs},
          {"synced_batches", s.synced_batches},
          {"disk_bytes", s.disk_bytes},
          {"max_disk_bytes", s.max_disk_bytes},
          {"removed_profiles", s.removed_profiles},
          {"collected",
           {{"stacks", s.collected_stacks},
            {"strings", s.collected_strings},
            {"series", s.collected_series}}},
          {"over_budget", s.over_budget},
          {"over_budget_reason", s.over_budget_reason}};
}

}  // namespace spanprof
