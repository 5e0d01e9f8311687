// Query engine over the Store: series selection, merges, flame graphs, span profiles, pprof out.
// The querier.v1 semantics build on it in core/querier, the web UI's /api/v1 documents in
// core/ui_api. Parameters arrive as values; no HTTP and no query-string parsing here.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/flame.h"
#include "core/selector.h"
#include "core/store.h"

namespace spanprof {

inline constexpr const char* kCpuProfileType = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
// The agent's wall-clock profile; OTLP wall profiles may name another period type, so wall series
// are recognised by their sample type (`__type__` = wall, `__unit__` = nanoseconds).
inline constexpr const char* kWallProfileType = "wall:wall:nanoseconds:wall:nanoseconds";
bool is_wall_series(const Labels& series_labels);

struct StackSet {
  std::unordered_map<uint32_t, int64_t> values;  // stack id → summed value
  int64_t period = 0;
  double sample_count = 0;  // Σ value / period (or Σ value when the period is unknown)
  std::string sample_type = "cpu", sample_unit = "nanoseconds", period_type = "cpu",
              period_unit = "nanoseconds";
};

// Which samples of the matched series a querier.v1 selection keeps; every condition given holds.
struct SampleFilter {
  std::vector<uint64_t> span_ids;                          // local-root span (span_selector)
  std::vector<std::pair<uint64_t, uint64_t>> trace_ids;    // (hi, lo) (trace_id_selector)
  std::optional<std::unordered_set<int64_t>> profile_ids;  // store ids (profile_id_selector)
  std::vector<std::string> call_site;  // root-first function-name prefix (stack_trace_selector)
};

struct SeriesPoints {
  Labels labels;
  std::vector<std::pair<int64_t, double>> points;  // (ms, value)
};

class QueryEngine {
 public:
  explicit QueryEngine(const Store& s) : s_(s) {}
  const Store& store() const { return s_; }

  // Series of a tenant matching a profile type (empty = any) and a selector.
  Result<std::vector<SeriesInfo>> match(const std::string& tenant, const std::string& profile_type,
                                        const std::string& selector) const;
  // Merge of every sample of the matched series in [from_ms, to_ms]; span_ids (if non-empty)
  // keeps only samples whose span_id is one of them.
  Result<StackSet> merge(const std::string& tenant, const std::string& profile_type,
                         const std::string& selector, int64_t from_ms, int64_t to_ms,
                         const std::vector<uint64_t>& span_ids) const;
  // As merge(), keeping the samples `f` selects.
  Result<StackSet> merge_filtered(const std::string& tenant, const std::string& profile_type,
                                  const std::string& selector, int64_t from_ms, int64_t to_ms,
                                  const SampleFilter& f) const;
  // Calls f(profile, sample) for every sample `filter` keeps in the given profiles.
  void scan_filtered(const std::vector<ProfileMeta>& profiles, const SampleFilter& filter,
                     const std::function<void(const ProfileMeta&, const SampleRow&)>& f) const;
  FlameGraphOut flamegraph(const StackSet& s, int64_t max_nodes) const;
  void add_to_tree(const StackSet& s, FlameTree& t, int side) const;
  // Serialized perftools.profiles.Profile. With max_nodes > 0, as Pyroscope truncates a pprof:
  // the call tree by function keeps its max_nodes largest nodes, and each stack is cut below its
  // deepest kept function, an "other" frame standing for what was cut.
  std::string to_pprof(const StackSet& s, int64_t max_nodes = 0) const;

  Result<std::vector<SeriesPoints>> select_series(const std::string& tenant,
                                                  const std::string& profile_type,
                                                  const std::string& selector, int64_t from_ms,
                                                  int64_t to_ms, double step_s,
                                                  const std::vector<std::string>& group_by,
                                                  bool average) const;
  // Series matching any of the matchers (all when empty); with from_ms/to_ms both > 0 only
  // series with a profile in that range (Grafana's label pickers and health check).
  Result<std::vector<SeriesInfo>> match_any(const std::string& tenant,
                                            const std::vector<std::string>& matchers,
                                            int64_t from_ms = 0, int64_t to_ms = 0) const;

  // /api/v1/traces/{id}: the trace's spans with their CPU and wall time (core/span_query.cc).
  Result<nlohmann::json> trace(const std::string& tenant, const std::string& trace_id) const;
  // Every sample of the series of `profile_type` matching `sel` in [from_ms, to_ms].
  StackSet merge_series(const std::string& tenant, const std::string& profile_type,
                        const Selector& sel, int64_t from_ms, int64_t to_ms) const;

  // Samples of the given spans' local roots (all times) in the series of `profile_type` (CPU
  // by default) that match `sel`.
  void span_samples(const std::string& tenant, const std::vector<SpanRow>& spans,
                    const std::function<void(const ProfileMeta&, const SampleRow&)>& f,
                    const std::string& profile_type = kCpuProfileType,
                    const Selector& sel = {}) const;
  // Samples of the given spans' local roots in the given series (one scan for several profile
  // types).
  void span_samples_in(const std::string& tenant, const std::vector<SpanRow>& spans,
                       const std::unordered_set<int64_t>& series,
                       const std::function<void(const ProfileMeta&, const SampleRow&)>& f) const;

 private:
  StackSet merge_of(const std::string& tenant, const std::vector<SeriesInfo>& series,
                    int64_t from_ms, int64_t to_ms, const SampleFilter& f) const;
  const Store& s_;
};

// A sample's value in samples (value / period; the value itself when the period is unknown).
inline double count_of(const ProfileMeta& m, const SampleRow& r) {
  return m.period > 0 ? double(r.value) / double(m.period) : double(r.value);
}
// The span a sample is attributed to: the innermost active span, else the local root.
inline uint64_t effective_span(const SampleRow& r) {
  return r.ids.active_span_id ? r.ids.active_span_id : r.ids.span_id;
}

// Sample and period types of a StackSet from its series' labels.
void set_sample_types(StackSet& st, const SeriesInfo& si);
}  // namespace spanprof
