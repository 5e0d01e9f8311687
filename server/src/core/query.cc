#include "core/query.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/located.h"
#include "core/trace_search.h"
#include "core/util.h"
#include "pprof.pb.h"

namespace spanprof {

using json = nlohmann::json;

static const char* kDefaultType = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() &&
               std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += char(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

Params parse_query_string(std::string_view qs) {
  Params p;
  while (!qs.empty()) {
    size_t amp = qs.find('&');
    std::string_view kv = qs.substr(0, amp);
    size_t eq = kv.find('=');
    if (!kv.empty())
      p[url_decode(kv.substr(0, eq))] =
          eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    qs = qs.substr(amp + 1);
  }
  return p;
}

json flamegraph_to_json(const FlameGraphOut& f) {
  return {{"names", f.names}, {"levels", f.levels}, {"total", f.total}, {"max_self", f.max_self}};
}

static std::string get(const Params& p, const char* k, std::string def = "") {
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

// A time or duration parameter in ms: absent = def; given = an integer in [0, year 2262], so that
// the ns values and differences computed from it cannot overflow.
static Result<int64_t> get_ms(const Params& p, const char* k, int64_t def) {
  constexpr int64_t kMaxMs = INT64_MAX / 1'000'000;
  auto it = p.find(k);
  if (it == p.end() || it->second.empty()) return def;
  auto v = get_int(p, k, def);
  if (v && (*v < 0 || *v > kMaxMs))
    return bad_request(std::string("parameter '") + k + "' must be in 0.." +
                       std::to_string(kMaxMs) + " (ms)");
  return v;
}

Result<std::vector<SeriesInfo>> QueryEngine::match(const std::string& tenant,
                                                   const std::string& profile_type,
                                                   const std::string& selector) const {
  auto sel = parse_selector(selector);
  if (!sel) return sel.error;
  std::vector<SeriesInfo> out;
  for (auto& si : s_.series_of(tenant))
    if ((profile_type.empty() || si.profile_type == profile_type) && matches_all(*sel, si.labels))
      out.push_back(std::move(si));
  return out;
}

Result<std::vector<SeriesInfo>> QueryEngine::match_any(const std::string& tenant,
                                                       const std::vector<std::string>& matchers,
                                                       int64_t from_ms, int64_t to_ms) const {
  auto in_range = [&](std::vector<SeriesInfo> v) {
    if (from_ms <= 0 || to_ms <= 0) return v;
    std::vector<SeriesInfo> out;
    for (auto& si : v)
      if (s_.series_active(si.id, from_ms, to_ms)) out.push_back(std::move(si));
    return out;
  };
  if (matchers.empty()) return in_range(s_.series_of(tenant));
  std::vector<Selector> sels;
  for (auto& m : matchers) {
    auto s = parse_selector(m);
    if (!s) return s.error;
    sels.push_back(std::move(*s));
  }
  std::vector<SeriesInfo> out;
  for (auto& si : s_.series_of(tenant))
    for (auto& s : sels)
      if (matches_all(s, si.labels)) {
        out.push_back(si);
        break;
      }
  return in_range(std::move(out));
}

static void set_types(StackSet& st, const SeriesInfo& si) {
  if (auto* v = find_label(si.labels, "__type__")) st.sample_type = *v;
  if (auto* v = find_label(si.labels, "__unit__")) st.sample_unit = *v;
  if (auto* v = find_label(si.labels, "__period_type__")) st.period_type = *v;
  if (auto* v = find_label(si.labels, "__period_unit__")) st.period_unit = *v;
}

static void add_sample(StackSet& st, const ProfileMeta& m, const SampleRow& r) {
  st.values[r.stack] += r.value;
  st.sample_count += count_of(m, r);
  if (m.period > 0) st.period = m.period;
}

namespace {
// stack_trace_selector: whether a stack starts (root first) with the call site's function names;
// remembered per stack id.
class CallSiteMatch {
 public:
  CallSiteMatch(const Store& s, const std::vector<std::string>& call_site)
      : s_(s), cs_(call_site) {}
  bool keep(uint32_t stack) {
    if (cs_.empty()) return true;
    auto it = memo_.find(stack);
    if (it != memo_.end()) return it->second;
    s_.stack_function_names(stack, buf_);
    bool ok = buf_.size() >= cs_.size();
    for (size_t i = 0; ok && i < cs_.size(); ++i) ok = s_.str(buf_[i]) == cs_[i];
    memo_.emplace(stack, ok);
    return ok;
  }

 private:
  const Store& s_;
  const std::vector<std::string>& cs_;
  std::unordered_map<uint32_t, bool> memo_;
  std::vector<uint32_t> buf_;
};

// The profile, trace and call-site conditions of a filter (span ids are applied by the scan).
class SampleKeep {
 public:
  SampleKeep(const Store& s, const SampleFilter& f)
      : f_(f), traces_(f.trace_ids.begin(), f.trace_ids.end()), cs_(s, f.call_site) {}
  bool profile(const ProfileMeta& m) const {
    return !f_.profile_ids || f_.profile_ids->count(m.id);
  }
  bool sample(const SampleRow& r) {
    return (traces_.empty() || traces_.count({r.ids.trace_hi, r.ids.trace_lo})) &&
           cs_.keep(r.stack);
  }

 private:
  const SampleFilter& f_;
  std::set<std::pair<uint64_t, uint64_t>> traces_;
  CallSiteMatch cs_;
};
}  // namespace

StackSet QueryEngine::merge_series(const std::string& tenant, const std::string& profile_type,
                                   const Selector& sel, int64_t from_ms, int64_t to_ms) const {
  std::vector<SeriesInfo> series;
  for (auto& si : s_.series_of(tenant))
    if (si.profile_type == profile_type && matches_all(sel, si.labels))
      series.push_back(std::move(si));
  return merge_of(tenant, series, from_ms, to_ms, {});
}

Result<StackSet> QueryEngine::merge(const std::string& tenant, const std::string& profile_type,
                                    const std::string& selector, int64_t from_ms, int64_t to_ms,
                                    const std::vector<uint64_t>& span_ids) const {
  SampleFilter f;
  f.span_ids = span_ids;
  return merge_filtered(tenant, profile_type, selector, from_ms, to_ms, f);
}

Result<StackSet> QueryEngine::merge_filtered(const std::string& tenant,
                                             const std::string& profile_type,
                                             const std::string& selector, int64_t from_ms,
                                             int64_t to_ms, const SampleFilter& f) const {
  auto series = match(tenant, profile_type, selector);
  if (!series) return series.error;
  return merge_of(tenant, *series, from_ms, to_ms, f);
}

void QueryEngine::scan_filtered(
    const std::vector<ProfileMeta>& profiles, const SampleFilter& filter,
    const std::function<void(const ProfileMeta&, const SampleRow&)>& f) const {
  SampleKeep keep(s_, filter);
  std::vector<ProfileMeta> ps;
  for (auto& m : profiles)
    if (keep.profile(m)) ps.push_back(m);
  s_.scan_profiles(ps, [&](const ProfileMeta& m, const SampleRow& r) {
    if (keep.sample(r)) f(m, r);
  });
}

StackSet QueryEngine::merge_of(const std::string& tenant, const std::vector<SeriesInfo>& series,
                               int64_t from_ms, int64_t to_ms, const SampleFilter& f) const {
  StackSet st;
  if (series.empty()) return st;
  set_types(st, series.front());
  auto add = [&st](const ProfileMeta& m, const SampleRow& r) { add_sample(st, m, r); };
  if (!f.span_ids.empty()) {
    // Span selections read the span index, then keep the matched series only.
    std::unordered_set<int64_t> ok;
    for (auto& s : series) ok.insert(s.id);
    SampleKeep keep(s_, f);
    s_.scan_span_ids(tenant, f.span_ids, from_ms, to_ms,
                     [&](const ProfileMeta& m, const SampleRow& r) {
                       if (ok.count(m.series) && keep.profile(m) && keep.sample(r)) add(m, r);
                     });
    return st;
  }
  std::vector<int64_t> ids;
  for (auto& s : series) ids.push_back(s.id);
  scan_filtered(s_.profiles_of(ids, from_ms, to_ms), f, add);
  return st;
}

void QueryEngine::add_to_tree(const StackSet& s, FlameTree& t, int side) const {
  std::vector<uint32_t> names;
  for (auto& [stack, v] : s.values) {
    s_.stack_function_names(stack, names);
    t.add(names.data(), names.size(), v, side);
  }
}

FlameGraphOut QueryEngine::flamegraph(const StackSet& s, int64_t max_nodes) const {
  FlameTree t;
  add_to_tree(s, t, 0);
  return t.flamegraph([&](uint32_t k) { return s_.str(k); }, max_nodes);
}

std::string QueryEngine::to_pprof(const StackSet& s, int64_t max_nodes) const {
  constexpr uint32_t kOther = UINT32_MAX;  // the "other" location standing for cut frames
  // Root-first location stacks and their values, truncated under max_nodes.
  std::map<std::vector<uint32_t>, int64_t> stacks;
  {
    std::vector<std::pair<std::vector<uint32_t>, int64_t>> all;
    FlameTree by_function;
    std::vector<uint32_t> fns;
    for (auto& [stack, v] : s.values) {
      std::vector<uint32_t> locs;
      s_.stack_locations(stack, locs);
      if (max_nodes > 0) {
        fns.clear();
        for (auto l : locs) fns.push_back(s_.location(l).function);
        by_function.add(fns.data(), fns.size(), v);
      }
      all.emplace_back(std::move(locs), v);
    }
    const int64_t keep = by_function.min_keep(max_nodes);
    for (auto& [locs, v] : all) {
      if (keep > 0) {
        fns.clear();
        for (auto l : locs) fns.push_back(s_.location(l).function);
        size_t k = by_function.kept_prefix(fns.data(), fns.size(), keep);
        if (k < locs.size()) {
          locs.resize(k);
          locs.push_back(kOther);
        }
      }
      stacks[locs] += v;
    }
  }
  perftools::profiles::Profile p;
  std::unordered_map<std::string, int64_t> strs;
  auto sid = [&](const std::string& x) -> int64_t {
    auto it = strs.find(x);
    if (it != strs.end()) return it->second;
    int64_t i = p.string_table_size();
    p.add_string_table(x);
    strs.emplace(x, i);
    return i;
  };
  sid("");
  auto* vt = p.add_sample_type();
  vt->set_type(sid(s.sample_type));
  vt->set_unit(sid(s.sample_unit));
  p.mutable_period_type()->set_type(sid(s.period_type));
  p.mutable_period_type()->set_unit(sid(s.period_unit));
  p.set_period(s.period);
  std::unordered_map<uint32_t, uint64_t> loc_out, fn_out;
  auto add_function = [&](uint32_t key, const std::string& name, const std::string& file) {
    auto* fn = p.add_function();
    fn->set_id(uint64_t(p.function_size()));
    fn->set_name(sid(name));
    fn->set_system_name(fn->name());
    fn->set_filename(sid(file));
    return fn_out.emplace(key, fn->id()).first;
  };
  for (auto& [locs, v] : stacks) {
    auto* smp = p.add_sample();
    for (auto it = locs.rbegin(); it != locs.rend(); ++it) {  // pprof: leaf first
      auto lo = loc_out.find(*it);
      if (lo == loc_out.end()) {
        Store::Loc L{kOther, 0};
        if (*it != kOther) L = s_.location(*it);
        auto fo = fn_out.find(L.function);
        if (fo == fn_out.end()) {
          if (L.function == kOther) {
            fo = add_function(kOther, "other", "");
          } else {
            auto [n, f] = s_.function(L.function);
            fo = add_function(L.function, s_.str(n), s_.str(f));
          }
        }
        auto* loc = p.add_location();
        loc->set_id(uint64_t(p.location_size()));
        auto* line = loc->add_line();
        line->set_function_id(fo->second);
        line->set_line(L.line);
        lo = loc_out.emplace(*it, loc->id()).first;
      }
      smp->add_location_id(lo->second);
    }
    smp->add_value(v);
  }
  return p.SerializeAsString();
}

Result<std::vector<SeriesPoints>> QueryEngine::select_series(
    const std::string& tenant, const std::string& profile_type, const std::string& selector,
    int64_t from_ms, int64_t to_ms, double step_s, const std::vector<std::string>& group_by,
    bool average) const {
  auto series = match(tenant, profile_type, selector);
  if (!series) return series.error;
  int64_t step_ms = std::max<int64_t>(1000, int64_t(step_s * 1000));
  // Buckets are sparse (one per profile time seen), so a small step over a long range is cheap.
  std::map<Labels, std::map<int64_t, std::pair<double, int64_t>>> groups;
  for (auto& si : *series) {
    Labels key;
    for (auto& g : group_by)
      if (auto* v = find_label(si.labels, g)) key.emplace_back(g, *v);
    auto& pts = groups[key];
    for (auto& m : s_.profiles_of({si.id}, from_ms, to_ms)) {
      int64_t b = from_ms + (m.time_ms - from_ms) / step_ms * step_ms;
      pts[b].first += double(m.total);
      pts[b].second += 1;
    }
  }
  std::vector<SeriesPoints> out;
  for (auto& [k, pts] : groups) {
    SeriesPoints sp;
    sp.labels = k;
    for (auto& [t, v] : pts)
      sp.points.emplace_back(t, average && v.second ? v.first / double(v.second) : v.first);
    if (!sp.points.empty()) out.push_back(std::move(sp));
  }
  return out;
}

// ---------------- /api/v1 ----------------

json QueryEngine::services(const std::string& tenant) const {
  std::set<std::string> out;
  for (auto& s : s_.series_of(tenant)) out.insert(s.service);
  for (auto& s : s_.span_services(tenant)) out.insert(s);
  return {{"services", std::vector<std::string>(out.begin(), out.end())}};
}

Result<json> QueryEngine::traces(const std::string& tenant, const Params& p) const {
  auto q = parse_trace_query(p);
  if (!q) return q.error;
  return TraceSearch(s_, *this).run(tenant, *q);
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

Result<StackSet> QueryEngine::api_selection(const std::string& tenant, const Params& p) const {
  auto from = get_ms(p, "from", 0), to = get_ms(p, "to", INT64_MAX / 2);
  if (!from) return from.error;
  if (!to) return to.error;
  std::string mode = get(p, "mode", "self");
  if (mode != "self" && mode != "children") return bad_request("mode must be self or children");
  StackSet st;
  auto add = [&](const ProfileMeta& m, const SampleRow& r) {
    st.values[r.stack] += r.value;
    st.sample_count += count_of(m, r);
    if (m.period) st.period = m.period;
  };
  std::string trace_id = get(p, "trace_id"), span_id = get(p, "span_id");
  std::string service = get(p, "service"), span_name = get(p, "span_name");
  std::string ptype = get(p, "profile_type", kDefaultType);
  // Span selections honour profile_type and selector too (e.g. {thread_state="awaiting"}).
  auto sel = parse_selector(get(p, "selector", "{}"));
  if (!sel) return sel.error;
  for (auto& si : s_.series_of(tenant))
    if (si.profile_type == ptype) {
      set_types(st, si);
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
    span_samples(
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
        span_samples(
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
    return merge_series(tenant, ptype, by_name, *from, *to);
  }
  if (service.empty()) return bad_request("need span_id, span_name or service");
  sel->push_back(Matcher{Matcher::kEq, "service_name", service, nullptr});
  return merge_series(tenant, ptype, *sel, *from, *to);
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

Result<json> QueryEngine::flamegraph_json(const std::string& tenant, const Params& p) const {
  auto st = api_selection(tenant, p);
  if (!st) return st.error;
  auto mx = get_int(p, "max_nodes", 0);
  if (!mx) return mx.error;
  auto key = parse_frame_key(get(p, "frames"));
  if (!key) return key.error;
  json j = located_flamegraph(s_, *st, *key, *mx);
  j["period_ns"] = st->period;
  j["sample_count"] = int64_t(std::llround(st->sample_count));
  return j;
}

Result<json> QueryEngine::timeline(const std::string& tenant, const Params& p) const {
  std::string service = get(p, "service");
  auto from = get_ms(p, "from", 0), to = get_ms(p, "to", now_ns() / 1'000'000),
       step = get_ms(p, "step_ms", 0);
  for (auto* r : {&from, &to, &step})
    if (!*r) return r->error;
  int64_t step_ms = *step > 0 ? *step : std::max<int64_t>(10000, (*to - *from) / 200);
  std::string text = get(p, "selector", "{}");
  auto sel = parse_selector(text);
  if (!sel) return sel.error;
  if (!service.empty()) {
    Matcher m;
    m.name = "service_name";
    m.value = service;
    sel->push_back(m);
  }
  std::string pt = get(p, "profile_type", kDefaultType);
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

Result<json> QueryEngine::diff(const std::string& tenant, const Params& p) const {
  std::string l = get(p, "left"), r = get(p, "right");
  if (l.empty() || r.empty()) return bad_request("diff needs left and right");
  auto ls = api_selection(tenant, parse_query_string(l));
  if (!ls) return ls.error;
  auto rs = api_selection(tenant, parse_query_string(r));
  if (!rs) return rs.error;
  auto mx = get_int(p, "max_nodes", 0);
  if (!mx) return mx.error;
  FlameTree t;
  add_to_tree(*ls, t, 0);
  add_to_tree(*rs, t, 1);
  auto f = t.diff([&](uint32_t k) { return s_.str(k); }, *mx);
  return json{{"names", f.names},
              {"levels", f.levels},
              {"left_total", f.left_total},
              {"right_total", f.right_total},
              {"max_self", f.max_self}};
}

json QueryEngine::stats(const std::string& tenant, bool server_wide) const {
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

json QueryEngine::server_stats() const {
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
