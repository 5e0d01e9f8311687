#include "core/render.h"

#include <algorithm>

namespace spanprof {

using json = nlohmann::json;
namespace q1 = querier::v1;

int64_t render_step_s(int64_t from_ms, int64_t until_ms) {
  // Grafana's interval rounding, as Pyroscope's timeline.CalcPointInterval uses it: 1,500
  // points at most, never below 15 s. (limit in ms, step in ms)
  static const std::pair<int64_t, int64_t> kRound[] = {{17'500, 15'000},
                                                       {25'000, 20'000},
                                                       {45'000, 30'000},
                                                       {90'000, 60'000},
                                                       {210'000, 120'000},
                                                       {450'000, 300'000},
                                                       {750'000, 600'000},
                                                       {1'050'000, 900'000},
                                                       {1'500'000, 1'200'000},
                                                       {2'700'000, 1'800'000},
                                                       {5'400'000, 3'600'000},
                                                       {9'000'000, 7'200'000},
                                                       {16'200'000, 10'800'000},
                                                       {32'400'000, 21'600'000},
                                                       {86'400'000, 43'200'000},
                                                       {604'800'000, 86'400'000},
                                                       {1'814'400'000, 604'800'000},
                                                       {3'628'799'999, 2'592'000'000}};
  int64_t interval = (until_ms - from_ms) / 1500;
  if (interval < 15'000) return 15;
  for (auto [limit, step] : kRound)
    if (interval <= limit) return step / 1000;
  return 31'536'000;  // a year
}

json render_timeline(const std::vector<std::pair<int64_t, double>>& points, int64_t start_ms,
                     int64_t end_ms, int64_t step_s) {
  const int64_t step_ms = step_s * 1000;
  start_ms = start_ms / step_ms * step_ms;
  end_ms = end_ms / step_ms * step_ms;
  // Steps between two times, counted in whole seconds as Pyroscope counts them.
  auto steps = [step_s](int64_t a_ms, int64_t b_ms) {
    return (b_ms / 1000 - a_ms / 1000) / step_s;
  };
  std::vector<int64_t> samples;
  if (start_ms < end_ms) {
    const int64_t* prev = nullptr;
    for (auto& [t, v] : points) {
      if (t < start_ms || t >= end_ms) continue;
      int64_t gap = prev ? steps(*prev, t) - 1 : steps(start_ms, t);
      if (gap > 0) samples.insert(samples.end(), size_t(gap), 0);
      samples.push_back(int64_t(v));
      prev = &t;
    }
    size_t n = size_t(std::max<int64_t>(0, steps(start_ms, end_ms)));
    if (samples.size() < n) samples.resize(n, 0);
  }
  return {{"startTime", start_ms / 1000},
          {"samples", samples},
          {"durationDelta", step_s},
          {"watermarks", nullptr}};
}

namespace {

// Pyroscope's ExportToFlamebearer metadata: CPU time is counted in samples at 1e9 a second,
// object counts in objects, anything else in its own unit at 100 a second.
json metadata(const std::string& profile_type, const char* format) {
  std::vector<std::string> parts;
  size_t at = 0;
  while (true) {
    size_t c = profile_type.find(':', at);
    parts.push_back(profile_type.substr(at, c - at));
    if (c == std::string::npos) break;
    at = c + 1;
  }
  std::string sample_type = parts.size() > 1 ? parts[1] : "";
  std::string units = parts.size() > 2 ? parts[2] : "";
  int64_t rate = 100;
  if (sample_type == "cpu") {
    units = "samples";
    rate = 1'000'000'000;
  } else if (sample_type == "inuse_objects" || sample_type == "alloc_objects" ||
             sample_type == "goroutine" || sample_type == "samples") {
    units = "objects";
  }
  return {{"format", format},
          {"spyName", ""},
          {"sampleRate", rate},
          {"units", units},
          {"name", sample_type}};
}

q1::SelectMergeStacktracesRequest merge_request(const RenderSelection& s) {
  q1::SelectMergeStacktracesRequest r;
  r.set_profile_typeid(s.profile_type);
  r.set_label_selector(s.selector);
  r.set_start(s.from_ms);
  r.set_end(s.until_ms);
  if (s.max_nodes > 0) r.set_max_nodes(s.max_nodes);
  return r;
}

template <class Levels>
json levels_json(const Levels& levels) {
  json out = json::array();
  for (auto& l : levels) out.push_back(std::vector<int64_t>(l.values().begin(), l.values().end()));
  return out;
}

// The flamebearer document's common part: a flame graph (or a diff's) and its metadata.
template <class FlameGraph>
json flamebearer(const FlameGraph& f, const std::string& profile_type, const char* format) {
  return {{"version", 1},
          {"flamebearer",
           {{"names", std::vector<std::string>(f.names().begin(), f.names().end())},
            {"levels", levels_json(f.levels())},
            {"numTicks", f.total()},
            {"maxSelf", f.max_self()}}},
          {"metadata", metadata(profile_type, format)},
          {"timeline", nullptr},
          {"groups", nullptr},
          {"heatmap", nullptr}};
}

std::vector<std::pair<int64_t, double>> points_of(const types::v1::Series& s) {
  std::vector<std::pair<int64_t, double>> out;
  for (auto& p : s.points()) out.emplace_back(p.timestamp(), p.value());
  return out;
}

}  // namespace

Result<json> render(const Querier& q, const std::string& tenant, const RenderSelection& s,
                    const std::vector<std::string>& group_by, bool average, int64_t now_ms) {
  auto fg = q.select_merge_stacktraces(tenant, merge_request(s), now_ms);
  if (!fg) return fg.error;
  const int64_t step = render_step_s(s.from_ms, s.until_ms);
  q1::SelectSeriesRequest sr;
  sr.set_profile_typeid(s.profile_type);
  sr.set_label_selector(s.selector);
  sr.set_start(s.from_ms);
  sr.set_end(s.until_ms);
  sr.set_step(double(step));
  for (auto& g : group_by) sr.add_group_by(g);
  if (average) sr.set_aggregation(types::v1::TIME_SERIES_AGGREGATION_TYPE_AVERAGE);
  auto series = q.select_series(tenant, sr, now_ms);
  if (!series) return series.error;
  json doc = flamebearer(fg->flamegraph(), s.profile_type, "single");
  // One series: the timeline; several (grouped) or none: an empty one, as Pyroscope.
  doc["timeline"] =
      render_timeline(series->series_size() == 1 ? points_of(series->series(0))
                                                 : std::vector<std::pair<int64_t, double>>{},
                      s.from_ms, s.until_ms, step);
  if (!group_by.empty()) {
    json groups = json::object();
    for (auto& se : series->series()) {
      std::string key = "*";
      for (auto& l : se.labels())
        if (l.name() == group_by[0]) {
          key = l.value();
          break;
        }
      groups[key] = render_timeline(points_of(se), s.from_ms, s.until_ms, step);
    }
    doc["groups"] = std::move(groups);
  }
  return doc;
}

Result<std::string> render_dot(const Querier& q, const std::string& tenant,
                               const RenderSelection& s, int64_t now_ms) {
  auto r = merge_request(s);
  r.set_format(q1::PROFILE_FORMAT_DOT);
  auto out = q.select_merge_stacktraces(tenant, r, now_ms);
  if (!out) return out.error;
  return std::string(out->dot());
}

Result<json> render_diff(const Querier& q, const std::string& tenant, const RenderSelection& left,
                         const RenderSelection& right, int64_t now_ms) {
  if (left.profile_type != right.profile_type) return bad_request("profile types must match");
  q1::DiffRequest r;
  *r.mutable_left() = merge_request(left);
  *r.mutable_right() = merge_request(right);
  auto d = q.diff(tenant, r, now_ms);
  if (!d) return d.error;
  json doc = flamebearer(d->flamegraph(), left.profile_type, "double");
  doc["leftTicks"] = d->flamegraph().leftticks();
  doc["rightTicks"] = d->flamegraph().rightticks();
  return doc;
}

}  // namespace spanprof
