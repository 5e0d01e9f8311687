// Pyroscope's legacy HTTP API as plain functions of query parameters and bodies: `/ingest` (query
// parameters, folded/lines/pprof bodies, multipart uploads) and the parameters of
// `/pyroscope/render`. No httplib and no storage here, so the fuzz targets in server/fuzz run
// exactly what the server runs, without a server.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "core/decode.h"
#include "core/types.h"
#include "http/params.h"

namespace spanprof {

// One part of a multipart/form-data body (the fields the legacy upload uses).
struct FormPart {
  std::string name;
  std::string content;
};

// `/ingest` query → LegacyParams. 400 when from/until/sampleRate are not plain decimal integers,
// from/until are negative or beyond year 2262 in their unit (the ns time would overflow), or
// sampleRate is outside 1..1e9. Does not look at `name` (legacy_series does).
Result<LegacyParams> parse_legacy_params(const QueryParams& q);

// A whole `/ingest` request minus HTTP: parameters, then either the multipart parts (field
// `profile` = pprof, optional `sample_type_config` = JSON) or the raw body (`format=pprof`,
// `lines`, else folded text, gzip sniffed). Appends the decoded profiles to `out` with from/until
// applied as the profiles' time range. 4xx Error on bad input; never throws.
Status legacy_ingest(const QueryParams& q, bool multipart, std::string_view body,
                     const std::vector<FormPart>& parts, const std::string& tenant,
                     const Limits& lim, std::vector<RawProfile>& out);

// `/pyroscope/render` parameters.
struct RenderQuery {
  std::string query;         // as given
  std::string profile_type;  // "" = any (legacy app.<suffix> other than cpu)
  std::string selector;      // label selector text, service_name matcher added for app.cpu{...}
  int64_t from_ms = 0, until_ms = 0;
  int64_t max_nodes = 0;              // 0 = no limit
  std::vector<std::string> group_by;  // groupBy, repeated
  bool average = false;               // aggregation=avg (sum otherwise)
  bool dot = false;                   // format=dot (DOT text) rather than json
};
// `query` is `<profile type>{selector}` or legacy `app.cpu{k="v"}`; `from`/`until` are unix
// times (s/ms/µs/ns by size), `now` or `now-<duration>` (default now-1h .. now); `maxNodes` (or
// `max-nodes`) a non-negative integer; `format` json (default) or dot; `aggregation` sum or avg;
// `groupBy` repeated. 400 with a message for anything else.
// `side` "left" / "right" reads `/pyroscope/render-diff`'s leftQuery, leftFrom, leftUntil (...).
Result<RenderQuery> parse_render_params(const QueryParams& q, int64_t now_ms,
                                        const std::string& side = "");

}  // namespace spanprof
