// Flame graphs whose frames keep their place: spanprof's own /api/v1 answer carries, next to
// Pyroscope's FlameGraph encoding (names + levels, unchanged), one file and line per names entry.
// Frames are keyed by function (name + file) or by line (name + file + line), so two functions
// with one name in different files stay apart. Grafana's wire formats do not use this. No HTTP.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "core/query.h"
#include "core/store.h"

namespace spanprof {

enum class FrameKey { function, line };

// "function" (default when empty) or "line"; anything else is a 400.
Result<FrameKey> parse_frame_key(const std::string& s);

// {"names", "levels", "total", "max_self", "files", "lines", "frames"}: files[i] / lines[i]
// belong to names[i] ("" / 0 for "total" and "other", 0 where the agent knew no line). By function,
// lines[i] is the first (lowest) line sampled in that function; by line, the sampled line.
nlohmann::json located_flamegraph(const Store& s, const StackSet& st, FrameKey key,
                                  int64_t max_nodes);

}  // namespace spanprof
