#include "core/query.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "core/util.h"
#include "pprof.pb.h"

namespace spanprof {

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

void set_sample_types(StackSet& st, const SeriesInfo& si) {
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
  set_sample_types(st, series.front());
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

}  // namespace spanprof
