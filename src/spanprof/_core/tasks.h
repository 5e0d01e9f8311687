// asyncio tasks suspended on an await, read by the wall sampler thread (wall.h).
#pragma once

#include <cstdint>

#include "cpython.h"

namespace spanprof {

// GIL held (wall_start): finds the running interpreter's task registry and checks the Task
// layout this build mirrors against a real task. Sampling tasks stays off when it fails.
void tasks_prepare();
// Wall sampler thread: one record (or repeat) per suspended task. True when a task had to be
// read in full (one moved, or a new one).
bool tasks_sample(int64_t weight_ns, uint32_t generation);
// Wall sampler thread, when it stops: writes the time accumulated for unchanged tasks.
void tasks_flush(uint32_t generation);
// Fork child, before a new sampler thread starts.
void tasks_after_fork_child();

}  // namespace spanprof
