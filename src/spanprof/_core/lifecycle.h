// Start, stop, fork and exit: the only place that drives both the sampler side (timers, threads,
// the handler) and the drain. Called from the binding (module.cc) with the GIL held unless noted.
#pragma once

#include "config.h"
#include "cpython.h"

namespace spanprof {

PyObject* agent_start(const Config& cfg);  // None, or nullptr with a Python error set
PyObject* agent_stop();
bool agent_running();
const Config& agent_config();
// A fork happened and agent_after_fork_child() has not run yet.
bool agent_forked();
// os.register_at_fork(after_in_child=...): replaces state the fork may have left inconsistent and
// restarts sampling if it ran in the parent. Idempotent.
PyObject* agent_after_fork_child();
void agent_emergency_stop();  // Py_AtExit: no Python, no GIL
// Benchmark aid: the handler's sampling path run on this thread (fault guard installed around it).
uint64_t agent_probe(int iterations);

}  // namespace spanprof
