// querier.v1 (Pyroscope's QuerierService) semantics: the request messages in, the response
// messages out, errors as values carrying the Connect code. What each field means follows
// Pyroscope's querier (pkg/querier, pkg/frontend/readpath, pkg/model); a field spanprof cannot
// honour is refused (invalid_argument / unimplemented), never ignored. No HTTP here.
#pragma once
#include <string>

#include "core/query.h"
#include "pprof.pb.h"
#include "querier.pb.h"

namespace spanprof {

// Profile ids as querier.v1 shows them (exemplars) and takes them back (profile_id_selector):
// a UUID text whose last 48 bits are the store's profile id, the rest zero.
std::string profile_uuid(int64_t id);
// UUID text (36 characters with dashes, or 32 hex digits) → store id; -1 for a well-formed UUID
// that is not one of ours (it selects nothing). False when not a UUID.
bool parse_profile_uuid(const std::string& s, int64_t& id);

// Whether a request's exemplar_type asks for exemplars: NONE/UNSPECIFIED no, `kind` yes, the other
// known kind → `other`, anything else a 400.
Result<bool> wants_exemplars(types::v1::ExemplarType t, types::v1::ExemplarType kind, Error other);

inline Error unimplemented(std::string m) { return {501, "unimplemented", std::move(m)}; }

class Querier {
 public:
  explicit Querier(const QueryEngine& q) : q_(q) {}

  // Label pickers and health check: series with a profile in [start, end] when both are > 0.
  Result<querier::v1::ProfileTypesResponse> profile_types(
      const std::string& tenant, const querier::v1::ProfileTypesRequest& r) const;
  Result<types::v1::LabelNamesResponse> label_names(const std::string& tenant,
                                                    const types::v1::LabelNamesRequest& r) const;
  Result<types::v1::LabelValuesResponse> label_values(const std::string& tenant,
                                                      const types::v1::LabelValuesRequest& r) const;
  Result<querier::v1::SeriesResponse> series(const std::string& tenant,
                                             const querier::v1::SeriesRequest& r) const;

  // `now_ms` stands for an end of 0 (Grafana always sends one; curl users may not).
  Result<querier::v1::SelectMergeStacktracesResponse> select_merge_stacktraces(
      const std::string& tenant, const querier::v1::SelectMergeStacktracesRequest& r,
      int64_t now_ms) const;
  Result<querier::v1::SelectMergeSpanProfileResponse> select_merge_span_profile(
      const std::string& tenant, const querier::v1::SelectMergeSpanProfileRequest& r,
      int64_t now_ms) const;
  Result<perftools::profiles::Profile> select_merge_profile(
      const std::string& tenant, const querier::v1::SelectMergeProfileRequest& r,
      int64_t now_ms) const;
  Result<querier::v1::SelectSeriesResponse> select_series(const std::string& tenant,
                                                          const querier::v1::SelectSeriesRequest& r,
                                                          int64_t now_ms) const;
  Result<querier::v1::DiffResponse> diff(const std::string& tenant,
                                         const querier::v1::DiffRequest& r, int64_t now_ms) const;
  // core/querier_heatmap.cc
  Result<querier::v1::SelectHeatmapResponse> select_heatmap(
      const std::string& tenant, const querier::v1::SelectHeatmapRequest& r, int64_t now_ms) const;
  Result<querier::v1::AnalyzeQueryResponse> analyze_query(const std::string& tenant,
                                                          const querier::v1::AnalyzeQueryRequest& r,
                                                          int64_t now_ms) const;
  // Whether the tenant has data, and its oldest and newest profile times (Drilldown's first call).
  types::v1::GetProfileStatsResponse profile_stats(const std::string& tenant) const;

 private:
  const QueryEngine& q_;
};

}  // namespace spanprof
