#include "core/querier.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "core/dot.h"
#include "core/util.h"

namespace spanprof {

namespace q1 = querier::v1;
namespace t1 = types::v1;

namespace {

// Pyroscope's querier.max-flamegraph-nodes-default and -max: an absent or 0 max_nodes means the
// default; more than the max, or below 0 (a request for no limit), is refused.
constexpr int64_t kDefaultMaxNodes = 8 << 10;
constexpr int64_t kMaxMaxNodes = 1 << 20;

Result<int64_t> flame_max_nodes(bool has, int64_t n) {
  if (!has || n == 0) return kDefaultMaxNodes;
  if (n < 0 || n > kMaxMaxNodes)
    return bad_request("max_nodes must be in 1.." + std::to_string(kMaxMaxNodes) + " (got " +
                       std::to_string(n) + ")");
  return n;
}

// SelectMergeProfile keeps its historical contract in Pyroscope: no default, 0 = the whole
// profile.
Result<int64_t> pprof_max_nodes(bool has, int64_t n) {
  if (!has) return int64_t(0);
  if (n < 0 || n > kMaxMaxNodes)
    return bad_request("max_nodes must be in 0.." + std::to_string(kMaxMaxNodes));
  return n;
}

// PROFILE_FORMAT_DOT, as Pyroscope's query frontend: the graph keeps max_nodes nodes (100 when
// unset or not positive) of a pprof truncated to max(512, max_nodes) nodes.
constexpr int64_t kDotMaxNodes = 100, kDotSourceMaxNodes = 512;
Result<int64_t> dot_max_nodes(bool has, int64_t n) {
  if (!has || n <= 0) return kDotMaxNodes;
  if (n > kMaxMaxNodes)
    return bad_request("max_nodes must be at most " + std::to_string(kMaxMaxNodes));
  return n;
}

int64_t end_or_now(int64_t end, int64_t now_ms) { return end > 0 ? end : now_ms; }

using Strings = google::protobuf::RepeatedPtrField<std::string>;

Result<SampleFilter> filter_of(const Strings& spans, const Strings& traces, const Strings& profiles,
                               const t1::StackTraceSelector* sts) {
  if (!spans.empty() && !traces.empty())
    return bad_request("span_selector and trace_id_selector cannot be combined");
  SampleFilter f;
  for (auto& s : spans) {
    uint64_t x;
    if (!parse_hex_u64(s, x))
      return bad_request("span_selector entries must be 16 hex characters: " + s.substr(0, 40));
    f.span_ids.push_back(x);
  }
  for (auto& s : traces) {
    uint64_t hi, lo;
    if (!parse_hex_u128(s, hi, lo))
      return bad_request("trace_id_selector entries must be 32 hex characters: " + s.substr(0, 40));
    f.trace_ids.emplace_back(hi, lo);
  }
  if (!profiles.empty()) {
    f.profile_ids.emplace();
    for (auto& s : profiles) {
      int64_t id;
      if (!parse_profile_uuid(s, id))
        return bad_request("profile_id_selector entries must be UUIDs: " + s.substr(0, 40));
      f.profile_ids->insert(id);
    }
  }
  if (sts) {
    if (sts->has_go_pgo())
      return bad_request("stack_trace_selector.go_pgo is not supported (Go PGO profiles)");
    for (auto& l : sts->call_site()) f.call_site.push_back(l.name());
  }
  return f;
}

void fill_flamegraph(q1::FlameGraph* fg, const FlameGraphOut& f) {
  for (auto& n : f.names) fg->add_names(n);
  for (auto& l : f.levels) {
    auto* lv = fg->add_levels();
    for (auto v : l) lv->add_values(v);
  }
  fg->set_total(f.total);
  fg->set_max_self(f.max_self);
}

Result<perftools::profiles::Profile> pprof_of(const QueryEngine& q, const StackSet& st,
                                              int64_t max_nodes, int64_t start_ms, int64_t end_ms) {
  perftools::profiles::Profile p;
  if (!p.ParseFromString(q.to_pprof(st, max_nodes)))
    return internal_error("could not encode the merged profile");
  // As Pyroscope's querier: the profile stands for the whole queried range.
  p.set_time_nanos(end_ms * 1'000'000);
  p.set_duration_nanos((end_ms - start_ms) * 1'000'000);
  return p;
}

bool hex_digits(const std::string& s, size_t from, size_t n) {
  for (size_t i = from; i < from + n; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

}  // namespace

Result<bool> wants_exemplars(t1::ExemplarType t, t1::ExemplarType kind, Error other) {
  if (t == t1::EXEMPLAR_TYPE_UNSPECIFIED || t == t1::EXEMPLAR_TYPE_NONE) return false;
  if (t == kind) return true;
  if (t == t1::EXEMPLAR_TYPE_INDIVIDUAL || t == t1::EXEMPLAR_TYPE_SPAN) return other;
  return bad_request("unknown exemplar type " + std::to_string(int(t)));
}

std::string profile_uuid(int64_t id) {
  char buf[40];
  snprintf(buf, sizeof buf, "00000000-0000-0000-0000-%012" PRIx64,
           uint64_t(id) & uint64_t{0xffffffffffff});
  return buf;
}

bool parse_profile_uuid(const std::string& s, int64_t& id) {
  std::string hex;
  if (s.size() == 36) {
    for (size_t i : {8, 13, 18, 23})
      if (s[i] != '-') return false;
    hex = s.substr(0, 8) + s.substr(9, 4) + s.substr(14, 4) + s.substr(19, 4) + s.substr(24);
  } else if (s.size() == 32) {
    hex = s;
  } else {
    return false;
  }
  if (!hex_digits(hex, 0, 32)) return false;
  if (hex.find_first_not_of('0') < 20) {
    id = -1;  // a UUID spanprof did not hand out
    return true;
  }
  id = int64_t(std::stoull(hex.substr(20), nullptr, 16));
  return true;
}

Result<q1::ProfileTypesResponse> Querier::profile_types(const std::string& tenant,
                                                        const q1::ProfileTypesRequest& r) const {
  auto found = q_.match_any(tenant, {}, r.start(), r.end());
  if (!found) return found.error;
  std::map<std::string, const SeriesInfo*> seen;
  for (auto& si : *found) seen.emplace(si.profile_type, &si);
  q1::ProfileTypesResponse out;
  for (auto& [id, si] : seen) {
    auto* pt = out.add_profile_types();
    pt->set_id(id);
    // Explicit capture: clang 14 (fuzz build) cannot capture a structured binding.
    auto lab = [&labels = si->labels](const char* k) {
      auto* v = find_label(labels, k);
      return v ? *v : std::string();
    };
    pt->set_name(lab("__name__"));
    pt->set_sample_type(lab("__type__"));
    pt->set_sample_unit(lab("__unit__"));
    pt->set_period_type(lab("__period_type__"));
    pt->set_period_unit(lab("__period_unit__"));
  }
  return out;
}

Result<t1::LabelNamesResponse> Querier::label_names(const std::string& tenant,
                                                    const t1::LabelNamesRequest& r) const {
  auto ss = q_.match_any(tenant, {r.matchers().begin(), r.matchers().end()}, r.start(), r.end());
  if (!ss) return ss.error;
  std::set<std::string> names;
  for (auto& si : *ss)
    for (auto& kv : si.labels) names.insert(kv.first);
  t1::LabelNamesResponse out;
  for (auto& n : names) out.add_names(n);
  return out;
}

Result<t1::LabelValuesResponse> Querier::label_values(const std::string& tenant,
                                                      const t1::LabelValuesRequest& r) const {
  auto ss = q_.match_any(tenant, {r.matchers().begin(), r.matchers().end()}, r.start(), r.end());
  if (!ss) return ss.error;
  std::set<std::string> vals;
  for (auto& si : *ss)
    if (auto* v = find_label(si.labels, r.name())) vals.insert(*v);
  t1::LabelValuesResponse out;
  for (auto& v : vals) out.add_names(v);
  return out;
}

Result<q1::SeriesResponse> Querier::series(const std::string& tenant,
                                           const q1::SeriesRequest& r) const {
  auto ss = q_.match_any(tenant, {r.matchers().begin(), r.matchers().end()}, r.start(), r.end());
  if (!ss) return ss.error;
  std::set<Labels> uniq;
  for (auto& si : *ss) {
    Labels l;
    for (auto& kv : si.labels)
      if (r.label_names_size() == 0 || std::find(r.label_names().begin(), r.label_names().end(),
                                                 kv.first) != r.label_names().end())
        l.push_back(kv);
    uniq.insert(std::move(l));
  }
  q1::SeriesResponse out;
  for (auto& l : uniq) {
    auto* ls = out.add_labels_set();
    for (auto& [k, v] : l) {
      auto* lp = ls->add_labels();
      lp->set_name(k);
      lp->set_value(v);
    }
  }
  return out;
}

Result<q1::SelectMergeStacktracesResponse> Querier::select_merge_stacktraces(
    const std::string& tenant, const q1::SelectMergeStacktracesRequest& r, int64_t now_ms) const {
  auto f = filter_of(r.span_selector(), r.trace_id_selector(), r.profile_id_selector(),
                     r.has_stack_trace_selector() ? &r.stack_trace_selector() : nullptr);
  if (!f) return f.error;
  const int64_t end = end_or_now(r.end(), now_ms);
  q1::SelectMergeStacktracesResponse out;
  switch (r.format()) {
    case q1::PROFILE_FORMAT_UNSPECIFIED:
    case q1::PROFILE_FORMAT_FLAMEGRAPH:
    case q1::PROFILE_FORMAT_TREE: {
      auto n = flame_max_nodes(r.has_max_nodes(), r.max_nodes());
      if (!n) return n.error;
      auto st =
          q_.merge_filtered(tenant, r.profile_typeid(), r.label_selector(), r.start(), end, *f);
      if (!st) return st.error;
      if (r.format() == q1::PROFILE_FORMAT_TREE) {
        FlameTree t;
        q_.add_to_tree(*st, t, 0);
        out.set_tree(t.tree_bytes([&](uint32_t k) { return q_.store().str(k); }, *n));
      } else {
        fill_flamegraph(out.mutable_flamegraph(), q_.flamegraph(*st, *n));
      }
      return out;
    }
    case q1::PROFILE_FORMAT_PPROF: {
      auto n = pprof_max_nodes(r.has_max_nodes(), r.max_nodes());
      if (!n) return n.error;
      auto st =
          q_.merge_filtered(tenant, r.profile_typeid(), r.label_selector(), r.start(), end, *f);
      if (!st) return st.error;
      auto p = pprof_of(q_, *st, *n, r.start(), end);
      if (!p) return p.error;
      *out.mutable_pprof()->mutable_profile() = std::move(*p);
      return out;
    }
    case q1::PROFILE_FORMAT_DOT: {
      auto n = dot_max_nodes(r.has_max_nodes(), r.max_nodes());
      if (!n) return n.error;
      auto st =
          q_.merge_filtered(tenant, r.profile_typeid(), r.label_selector(), r.start(), end, *f);
      if (!st) return st.error;
      if (st->values.empty()) return out;  // no samples: no graph (dot ""), as Pyroscope
      auto p = pprof_of(q_, *st, std::max(*n, kDotSourceMaxNodes), r.start(), end);
      if (!p) return p.error;
      out.set_dot(pprof_to_dot(*p, *n));
      return out;
    }
    default:
      return bad_request("unknown format " + std::to_string(int(r.format())));
  }
}

Result<q1::SelectMergeSpanProfileResponse> Querier::select_merge_span_profile(
    const std::string& tenant, const q1::SelectMergeSpanProfileRequest& r, int64_t now_ms) const {
  // As Pyroscope: this deprecated call answers a tree when asked for one, else a flame graph.
  q1::SelectMergeStacktracesRequest m;
  m.set_profile_typeid(r.profile_typeid());
  m.set_label_selector(r.label_selector());
  m.set_start(r.start());
  m.set_end(r.end());
  if (r.has_max_nodes()) m.set_max_nodes(r.max_nodes());
  m.set_format(r.format() == q1::PROFILE_FORMAT_TREE ? q1::PROFILE_FORMAT_TREE
                                                     : q1::PROFILE_FORMAT_FLAMEGRAPH);
  *m.mutable_span_selector() = r.span_selector();
  q1::SelectMergeSpanProfileResponse out;
  if (r.span_selector().empty()) {  // no span chosen: nothing to show (not the whole service)
    fill_flamegraph(out.mutable_flamegraph(), FlameTree().flamegraph({}, 0));
    return out;
  }
  auto res = select_merge_stacktraces(tenant, m, now_ms);
  if (!res) return res.error;
  if (res->has_flamegraph()) *out.mutable_flamegraph() = std::move(*res->mutable_flamegraph());
  out.set_tree(std::move(*res->mutable_tree()));
  return out;
}

Result<perftools::profiles::Profile> Querier::select_merge_profile(
    const std::string& tenant, const q1::SelectMergeProfileRequest& r, int64_t now_ms) const {
  auto f = filter_of({}, r.trace_id_selector(), r.profile_id_selector(),
                     r.has_stack_trace_selector() ? &r.stack_trace_selector() : nullptr);
  if (!f) return f.error;
  auto n = pprof_max_nodes(r.has_max_nodes(), r.max_nodes());
  if (!n) return n.error;
  const int64_t end = end_or_now(r.end(), now_ms);
  auto st = q_.merge_filtered(tenant, r.profile_typeid(), r.label_selector(), r.start(), end, *f);
  if (!st) return st.error;
  return pprof_of(q_, *st, *n, r.start(), end);
}

Result<q1::SelectSeriesResponse> Querier::select_series(const std::string& tenant,
                                                        const q1::SelectSeriesRequest& r,
                                                        int64_t now_ms) const {
  // Step in seconds; Pyroscope refuses below 1 ms. 0 (absent) keeps spanprof's 15 s default.
  const double step_s = r.step() == 0 ? 15.0 : r.step();
  if (!(step_s >= 0.001) || step_s > 86400.0 * 366)
    return bad_request("step must be in 0.001..31622400 (seconds)");
  const int64_t step = std::max<int64_t>(1, int64_t(step_s * 1000));
  bool average = false;
  if (r.has_aggregation()) {
    if (r.aggregation() == t1::TIME_SERIES_AGGREGATION_TYPE_AVERAGE)
      average = true;
    else if (r.aggregation() != t1::TIME_SERIES_AGGREGATION_TYPE_SUM)
      return bad_request("unknown aggregation " + std::to_string(int(r.aggregation())));
  }
  auto exemplars = wants_exemplars(r.exemplar_type(), t1::EXEMPLAR_TYPE_INDIVIDUAL,
                                   unimplemented("exemplar type span is not implemented"));
  if (!exemplars) return exemplars.error;
  auto f =
      filter_of({}, {}, {}, r.has_stack_trace_selector() ? &r.stack_trace_selector() : nullptr);
  if (!f) return f.error;
  auto series = q_.match(tenant, r.profile_typeid(), r.label_selector());
  if (!series) return series.error;
  const int64_t start = r.start(), end = end_or_now(r.end(), now_ms);

  // Points as Pyroscope stamps them: start, start+step, ... up to end, each summing the profiles
  // in (T - step, T]; the first one also takes [start - step, start].
  struct Point {
    double sum = 0;
    int64_t n = 0;
    const ProfileMeta* best = nullptr;  // the exemplar: the point's largest profile
    double best_value = 0;
    const Labels* best_labels = nullptr;
  };
  struct Group {
    std::map<int64_t, Point> points;
  };
  std::map<Labels, Group> groups;
  std::vector<std::vector<ProfileMeta>> metas(series->size());
  std::vector<Labels> exemplar_labels(series->size());
  for (size_t i = 0; i < series->size(); ++i) {
    const SeriesInfo& si = (*series)[i];
    Labels key;
    for (auto& [k, v] : si.labels)
      if (std::find(r.group_by().begin(), r.group_by().end(), k) != r.group_by().end())
        key.emplace_back(k, v);
    for (auto& kv : si.labels)
      if (std::find(r.group_by().begin(), r.group_by().end(), kv.first) == r.group_by().end())
        exemplar_labels[i].push_back(kv);
    metas[i] = q_.store().profiles_of({si.id}, start - step, end);
    std::unordered_map<int64_t, double> value;  // profile id → selected value
    if (!f->call_site.empty())
      q_.scan_filtered(metas[i], *f,
                       [&](const ProfileMeta& m, const SampleRow& s) { value[m.id] += s.value; });
    Group& g = groups[key];
    for (auto& m : metas[i]) {
      double v = double(m.total);
      if (!f->call_site.empty()) {
        auto it = value.find(m.id);
        if (it == value.end()) continue;
        v = it->second;
      }
      int64_t k = m.time_ms <= start ? 0 : (m.time_ms - start + step - 1) / step;
      int64_t t = start + k * step;
      if (t > end) continue;
      Point& p = g.points[t];
      p.sum += v;
      p.n += 1;
      if (!p.best || v > p.best_value) {
        p.best = &m;
        p.best_value = v;
        p.best_labels = &exemplar_labels[i];
      }
    }
  }
  struct Out {
    const Labels* labels;
    const Group* g;
    double total = 0;
  };
  std::vector<Out> outs;
  for (auto& [k, g] : groups) {
    if (g.points.empty()) continue;
    Out o{&k, &g};
    for (auto& [t, p] : g.points) o.total += average ? p.sum / double(p.n) : p.sum;
    outs.push_back(o);
  }
  // Pyroscope's TopSeries: by total value, largest first, then by labels; limit keeps the first N.
  std::sort(outs.begin(), outs.end(), [](const Out& a, const Out& b) {
    return a.total != b.total ? a.total > b.total : *a.labels < *b.labels;
  });
  if (r.has_limit() && r.limit() > 0 && outs.size() > size_t(r.limit()))
    outs.resize(size_t(r.limit()));
  auto add_labels = [](auto* msg, const Labels& ls) {
    for (auto& [k, v] : ls) {
      auto* lp = msg->add_labels();
      lp->set_name(k);
      lp->set_value(v);
    }
  };
  q1::SelectSeriesResponse resp;
  for (auto& o : outs) {
    auto* se = resp.add_series();
    add_labels(se, *o.labels);
    for (auto& [t, p] : o.g->points) {
      auto* pt = se->add_points();
      pt->set_timestamp(t);
      pt->set_value(average ? p.sum / double(p.n) : p.sum);
      if (*exemplars && p.best) {
        auto* ex = pt->add_exemplars();
        ex->set_timestamp(p.best->time_ms);
        ex->set_profile_id(profile_uuid(p.best->id));
        ex->set_value(int64_t(p.best_value));
        add_labels(ex, *p.best_labels);
      }
    }
  }
  return resp;
}

Result<q1::DiffResponse> Querier::diff(const std::string& tenant, const q1::DiffRequest& r,
                                       int64_t now_ms) const {
  // As Pyroscope: each side is a SelectMergeStacktraces selection (its format ignored); the
  // response is the two trees in one flame graph, max_nodes the larger of the two sides'.
  const int64_t asked = std::max(r.left().max_nodes(), r.right().max_nodes());
  auto n = flame_max_nodes(asked != 0, asked);
  if (!n) return n.error;
  FlameTree t;
  for (int side = 0; side < 2; ++side) {
    auto& m = side == 0 ? r.left() : r.right();
    auto f = filter_of(m.span_selector(), m.trace_id_selector(), m.profile_id_selector(),
                       m.has_stack_trace_selector() ? &m.stack_trace_selector() : nullptr);
    if (!f) return f.error;
    auto st = q_.merge_filtered(tenant, m.profile_typeid(), m.label_selector(), m.start(),
                                end_or_now(m.end(), now_ms), *f);
    if (!st) return st.error;
    q_.add_to_tree(*st, t, side);
  }
  auto d = t.diff([&](uint32_t k) { return q_.store().str(k); }, *n);
  q1::DiffResponse out;
  auto* fg = out.mutable_flamegraph();
  for (auto& x : d.names) fg->add_names(x);
  for (auto& l : d.levels) {
    auto* lv = fg->add_levels();
    for (auto v : l) lv->add_values(v);
  }
  fg->set_total(d.left_total + d.right_total);
  fg->set_max_self(d.max_self);
  fg->set_leftticks(d.left_total);
  fg->set_rightticks(d.right_total);
  return out;
}

types::v1::GetProfileStatsResponse Querier::profile_stats(const std::string& tenant) const {
  types::v1::GetProfileStatsResponse out;
  auto [oldest, newest] = q_.store().profile_time_range(tenant);
  if (newest <= 0) return out;  // as Pyroscope: nothing ingested, every field zero
  out.set_data_ingested(true);
  out.set_oldest_profile_time(oldest);
  out.set_newest_profile_time(newest);
  return out;
}

}  // namespace spanprof
