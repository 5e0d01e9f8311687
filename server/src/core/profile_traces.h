// From a profile back to requests: the traces whose samples (in a service's profile over a time
// range) spent the most time in one function, or, without a function, the most time at all (the
// timeline's exemplars). Samples carry the trace id of the span active when they were taken.
// No HTTP here.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/store.h"
#include "core/ui_api.h"

namespace spanprof {

struct FrameMatch {
  std::string function, file;  // file "" = any file
  int64_t line = 0;            // 0 = any line
  bool any() const { return function.empty(); }
};

// GET /api/v1/profile/traces (openapi.yaml):
//   service, profile_type, selector, from, to (ms), function, file, line, limit (1..200, 20)
// -> {"traces": [{"trace_id", "root_name", "service", "start_unix_nano", "duration_ns", "stored",
//      "value", "trace_value", "samples"}], "function_value", "total", "unattributed", "period_ns"}
// value: time of that trace in the function (all its time without a function); trace_value: all
// of that trace's time in the same profile; function_value: the function's time over all samples;
// unattributed: the function's time in samples with no trace.
Result<nlohmann::json> traces_through(const Store& s, const QueryEngine& q,
                                      const std::string& tenant, const Params& p);

}  // namespace spanprof
