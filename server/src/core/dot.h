// A pprof profile as a Graphviz DOT call graph, with the semantics of the graph Pyroscope answers
// for `/pyroscope/render?format=dot` and SelectMergeStacktraces' PROFILE_FORMAT_DOT (pprof's
// report graph: one node per function, flat = value where it is the leaf, cum = value of the
// samples it appears in, counted once per sample; an edge caller → callee carries the value of
// the samples through that call; at most `max_nodes` nodes, the largest by cum, and a dotted
// (residual) edge where dropped nodes were skipped). No HTTP here.
#pragma once
#include <cstdint>
#include <string>

#include "pprof.pb.h"

namespace spanprof {

// DOT text of `p` (its last sample type), "" when it has no samples. max_nodes <= 0 = all.
std::string pprof_to_dot(const perftools::profiles::Profile& p, int64_t max_nodes);

}  // namespace spanprof
