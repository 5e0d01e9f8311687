// querier.v1 SelectHeatmap and AnalyzeQuery, with Pyroscope's semantics (pkg/model/heatmap,
// pkg/frontend/readpath/queryfrontend/query_heatmap.go, pkg/querier/analyze_query.go).
//
// Heatmap: points are profiles (INDIVIDUAL: value = the profile's total) or spans (SPAN: value =
// the summed samples of one local-root span id in one profile), grouped into series by the
// group_by labels; the y axis is 20 equal buckets between the smallest and largest point value of
// the whole answer, the x axis slots of `step` whose timestamp is the slot's right edge.
//
// AnalyzeQuery: spanprof's one embedded store is the one component ("spanprof store", one block);
// its figures cover the tenant's data in the range, total_queried_series the series the query
// matches. Bytes are not accounted per time range in spanprof's store: the byte fields are 0.
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>

#include "core/querier.h"
#include "core/util.h"

namespace spanprof {

namespace q1 = querier::v1;
namespace t1 = types::v1;

namespace {

constexpr int kYBuckets = 20;

struct HeatPoint {
  int64_t value = 0;
  uint64_t trace_hi = 0, trace_lo = 0;
  Labels labels;  // the exemplar's: series labels minus group_by, intersected when merged
};
// (ms, profile id, span id) → point, as Pyroscope's points builder keys exemplars.
using HeatPoints = std::map<std::tuple<int64_t, int64_t, uint64_t>, HeatPoint>;

void add_point(HeatPoints& pts, std::tuple<int64_t, int64_t, uint64_t> key, int64_t value,
               const Labels& labels, uint64_t hi, uint64_t lo) {
  auto [it, fresh] = pts.try_emplace(key);
  HeatPoint& p = it->second;
  if (__builtin_add_overflow(p.value, value, &p.value)) p.value = INT64_MAX;  // hostile values
  if (fresh) {
    p.labels = labels;
    p.trace_hi = hi;
    p.trace_lo = lo;
    return;
  }
  Labels common;
  for (auto& kv : p.labels)
    if (std::find(labels.begin(), labels.end(), kv) != labels.end()) common.push_back(kv);
  p.labels = std::move(common);
}

// Pyroscope's slot timestamp: rounded up onto the grid start + k * step, kept in [start, end'].
int64_t round_up(int64_t t, int64_t start, int64_t step) {
  int64_t m = start % step;
  t -= m;
  if (t % step != 0) t = (t / step + 1) * step;
  return t + m;
}

template <class Msg>
void add_labels(Msg* msg, const Labels& ls) {
  for (auto& [k, v] : ls) {
    auto* lp = msg->add_labels();
    lp->set_name(k);
    lp->set_value(v);
  }
}

bool is_profile_type_id(const std::string& s) { return std::count(s.begin(), s.end(), ':') == 4; }

}  // namespace

Result<q1::SelectHeatmapResponse> Querier::select_heatmap(const std::string& tenant,
                                                          const q1::SelectHeatmapRequest& r,
                                                          int64_t now_ms) const {
  if (!(r.step() >= 0.001)) return bad_request("step must be >= 1ms");
  if (r.step() > 365.0 * 24 * 3600) return bad_request("step must be at most a year");
  if (r.has_limit() && r.limit() < 0) return bad_request("limit must be non-negative");
  const int64_t start = r.start(), end = r.end() > 0 ? r.end() : now_ms;
  if (start >= end) return bad_request("start time must be before end time");
  // ms; the slot arithmetic (start - step, rounding up to the grid) stays far inside int64.
  if (start < 0 || end > INT64_MAX / 4) return bad_request("start and end must be ms since 1970");
  if (!is_profile_type_id(r.profile_typeid()))
    return bad_request("profile_typeID must be <name>:<type>:<unit>:<period type>:<period unit>");
  const bool span = r.query_type() == q1::HEATMAP_QUERY_TYPE_SPAN;
  if (!span && r.query_type() != q1::HEATMAP_QUERY_TYPE_INDIVIDUAL)
    return bad_request("valid heatmap query type must be specified");
  auto exemplars = wants_exemplars(
      r.exemplar_type(), span ? t1::EXEMPLAR_TYPE_SPAN : t1::EXEMPLAR_TYPE_INDIVIDUAL,
      bad_request(span ? "individual exemplars only available for individual query type"
                       : "span exemplars only available for span query type"));
  if (!exemplars) return exemplars.error;
  auto series = q_.match(tenant, r.profile_typeid(), r.label_selector());
  if (!series) return series.error;
  const int64_t step = std::max<int64_t>(1, int64_t(r.step() * 1000));
  const std::vector<std::string> by(r.group_by().begin(), r.group_by().end());
  auto grouped = [&by](const std::string& k) {
    return std::find(by.begin(), by.end(), k) != by.end();
  };

  std::map<Labels, HeatPoints> groups;
  for (auto& si : *series) {
    Labels key, rest;
    for (auto& kv : si.labels) (grouped(kv.first) ? key : rest).push_back(kv);
    auto metas = q_.store().profiles_of({si.id}, start - step, end);
    if (metas.empty()) continue;
    HeatPoints& pts = groups[key];
    if (!span) {
      for (auto& m : metas) add_point(pts, {m.time_ms, m.id, 0}, m.total, rest, 0, 0);
      continue;
    }
    q_.scan_filtered(metas, {}, [&](const ProfileMeta& m, const SampleRow& s) {
      if (s.ids.span_id)
        add_point(pts, {m.time_ms, 0, s.ids.span_id}, s.value, rest, s.ids.trace_hi,
                  s.ids.trace_lo);
    });
  }
  int64_t lo = INT64_MAX, hi = 0;
  for (auto& [k, pts] : groups)
    for (auto& [pk, p] : pts) {
      lo = std::min(lo, p.value);
      hi = std::max(hi, p.value);
    }
  q1::SelectHeatmapResponse out;
  if (lo == INT64_MAX) return out;
  if (lo == hi) hi = lo + 1;
  std::vector<int64_t> bmin(kYBuckets), bmax(kYBuckets);
  const double size = (double(hi) - double(lo)) / kYBuckets;
  for (int i = 0; i < kYBuckets; ++i) {
    bmin[size_t(i)] = lo + int64_t(double(i) * size);
    bmax[size_t(i)] = lo + int64_t(double(i + 1) * size);
  }
  bmax.back() = hi;
  auto bucket = [&](int64_t v) {
    for (int i = 0; i < kYBuckets; ++i)
      if (v >= bmin[size_t(i)] && v < bmax[size_t(i)]) return i;
    return v >= bmin.back() ? kYBuckets - 1 : -1;
  };
  const int64_t last = round_up(end, start, step);

  struct Built {
    const Labels* labels;
    t1::HeatmapSeries series;
    int64_t total = 0;
  };
  std::vector<Built> built;
  for (auto& [key, pts] : groups) {
    // slot → bucket → (count, best point)
    std::map<int64_t,
             std::map<int, std::pair<int32_t,
                                     const std::pair<const std::tuple<int64_t, int64_t, uint64_t>,
                                                     HeatPoint>*>>>
        cells;
    for (auto& e : pts) {
      int y = bucket(e.second.value);
      if (y < 0) continue;
      int64_t ts = std::clamp(round_up(std::get<0>(e.first), start, step), start, last);
      auto& c = cells[ts][y];
      c.first += 1;
      if (!c.second || e.second.value > c.second->second.value) c.second = &e;
    }
    Built b{&key, {}, 0};
    add_labels(&b.series, key);
    for (auto& [ts, ys] : cells) {
      auto* slot = b.series.add_slots();
      slot->set_timestamp(ts);
      for (int i = 0; i < kYBuckets; ++i) {
        slot->add_y_min(double(bmin[size_t(i)]));
        slot->add_counts(0);
      }
      for (auto& [y, c] : ys) {
        slot->set_counts(y, c.first);
        b.total += c.first;
        if (!*exemplars) continue;
        auto& [pk, p] = *c.second;
        auto* ex = slot->add_exemplars();
        ex->set_timestamp(std::get<0>(pk));
        ex->set_value(p.value);
        if (span) {
          ex->set_span_id(hex_u64(std::get<2>(pk)));
          if (p.trace_hi || p.trace_lo) ex->set_trace_id(hex_u128(p.trace_hi, p.trace_lo));
        } else {
          ex->set_profile_id(profile_uuid(std::get<1>(pk)));
        }
        add_labels(ex, p.labels);
      }
    }
    built.push_back(std::move(b));
  }
  if (r.limit() > 0 && built.size() > size_t(r.limit())) {
    // Pyroscope's TopSeries: by summed counts, largest first, then by labels.
    std::stable_sort(built.begin(), built.end(), [](const Built& a, const Built& b) {
      return a.total != b.total ? a.total > b.total : *a.labels < *b.labels;
    });
    built.resize(size_t(r.limit()));
  }
  for (auto& b : built) *out.add_series() = std::move(b.series);
  return out;
}

Result<q1::AnalyzeQueryResponse> Querier::analyze_query(const std::string& tenant,
                                                        const q1::AnalyzeQueryRequest& r,
                                                        int64_t now_ms) const {
  const int64_t start = r.start(), end = r.end() > 0 ? r.end() : now_ms;
  if (start > end) return bad_request("start must not be after end");
  // `query` is `<profile type>{selector}`, either part optional, as Pyroscope's metric selector.
  const std::string& qtext = r.query();
  size_t brace = qtext.find('{');
  std::string ptype = qtext.substr(0, brace);
  std::string sel = brace == std::string::npos ? "{}" : qtext.substr(brace);
  auto matched = q_.match(tenant, ptype, sel);
  if (!matched) return matched.error;
  q1::AnalyzeQueryResponse out;
  auto* scope = out.add_query_scopes();
  scope->set_component_type("spanprof store");
  scope->set_component_count(1);
  std::vector<int64_t> ids;
  for (auto& si : q_.store().series_of(tenant))
    if (q_.store().series_active(si.id, start, end)) ids.push_back(si.id);
  auto metas = q_.store().profiles_of(ids, start, end);
  uint64_t rows = 0;
  q_.scan_filtered(metas, {}, [&rows](const ProfileMeta&, const SampleRow&) { ++rows; });
  scope->set_block_count(metas.empty() ? 0 : 1);
  scope->set_series_count(ids.size());
  scope->set_profile_count(metas.size());
  scope->set_sample_count(rows);
  uint64_t queried = 0;
  for (auto& si : *matched)
    if (q_.store().series_active(si.id, start, end)) ++queried;
  auto* impact = out.mutable_query_impact();
  impact->set_total_queried_series(queried);
  impact->set_total_bytes_in_time_range(0);
  impact->set_deduplication_needed(false);
  return out;
}

}  // namespace spanprof
