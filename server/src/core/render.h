// Pyroscope's legacy render documents (/pyroscope/render, /pyroscope/render-diff): flamebearer
// JSON assembled from querier.v1 answers the way Pyroscope's HTTP handlers assemble it
// (pkg/querier/http.go, pkg/querier/timeline, pkg/model ExportToFlamebearer). No HTTP here.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/querier.h"

namespace spanprof {

struct RenderSelection {
  std::string profile_type;  // "" = any (legacy app.<suffix> queries)
  std::string selector;
  int64_t from_ms = 0, until_ms = 0;
  int64_t max_nodes = 0;  // 0 = Pyroscope's default
};

// Pyroscope's timeline step (s) for a range: range / 1500 rounded to a round interval, >= 15 s.
int64_t render_step_s(int64_t from_ms, int64_t until_ms);
// A flamebearer timeline: start and end snapped down to the step, one value per step over
// [start, end), zero where `points` has none. Points are (ms, value), ascending.
nlohmann::json render_timeline(const std::vector<std::pair<int64_t, double>>& points,
                               int64_t start_ms, int64_t end_ms, int64_t step_s);

// /pyroscope/render: flame graph, metadata (units, sampleRate, name from the profile type),
// timeline, and with group_by one timeline per value of its first label under "groups".
Result<nlohmann::json> render(const Querier& q, const std::string& tenant, const RenderSelection& s,
                              const std::vector<std::string>& group_by, bool average,
                              int64_t now_ms);
// /pyroscope/render?format=dot: the selection's call graph as DOT text (SelectMergeStacktraces
// with PROFILE_FORMAT_DOT; max_nodes 0 = Pyroscope's 100); "" when it has no samples.
Result<std::string> render_dot(const Querier& q, const std::string& tenant,
                               const RenderSelection& s, int64_t now_ms);
// /pyroscope/render-diff: the two selections' diff flame graph ("double" format); their profile
// types must be the same.
Result<nlohmann::json> render_diff(const Querier& q, const std::string& tenant,
                                   const RenderSelection& left, const RenderSelection& right,
                                   int64_t now_ms);

}  // namespace spanprof
