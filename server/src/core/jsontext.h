// Checks on JSON text before any tree parser sees it: nesting depth (a parser that recurses per
// level overflows the stack on `[`×100,000) and OTLP's hex ids, rewritten in one flat pass. No
// recursion here: the scan keeps only a depth counter.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "core/types.h"

namespace spanprof {

// 400 when arrays/objects nest deeper than `max_depth` or a string is unterminated; the message
// names the limit. Anything else malformed is left to the parser that follows.
Status check_json_depth(std::string_view text, size_t max_depth);

// OTLP/JSON carries trace and span ids as hex; protobuf's JSON parser expects base64 for bytes.
// Copies `text` to `out`, replacing the hex string value of every traceId/spanId/parentSpanId key
// (and their snake_case forms) with its base64. Checks depth as check_json_depth does.
Status otlp_json_ids_to_base64(std::string_view text, size_t max_depth, std::string& out);

}  // namespace spanprof
