// Wall-clock sampling: where every thread and every suspended asyncio task spends its time,
// running or not.
//
// Threads running Python are not read here: their CPU-timer samples (sampler.h) are their wall
// samples while they run (the drain adds them to both profiles). Every other thread, which has
// released the GIL (free-threaded: detached) to wait for it, to block in a system call or to run
// native code, cannot change its Python frames until it takes the GIL back, so a native sampler
// thread reads them at `rate_hz` without stopping or signalling it: no EINTR, no early return,
// no cost to the thread itself. The read is validated (the thread did not start running Python
// during it) and runs under the fault guard. A thread still at the same frame, instruction and
// context as at its previous read costs one small "repeat" record, so idle threads are cheap.
// What a blocked thread waits in comes from /proc/self/task/<tid>/syscall (a futex on the GIL's
// own condition variable is a GIL wait), read only when its stack moved, a bounded number per
// round. Suspended asyncio tasks (tasks.h) are read in the same round.
#pragma once

#include <cstdint>

#include "config.h"
#include "cpython.h"

namespace spanprof {

// GIL held. Starts the wall sampler thread for the main interpreter.
bool wall_start(const Config& cfg);
// Any thread, GIL not needed: stops and joins the sampler thread (no record is written after).
void wall_stop_and_join();
void wall_after_fork_child();

// An unchanged thread's or task's time is accumulated and written at most this often: one small
// record per idle thread or task a second. Time accumulated at a profile swap travels with the
// thread's next full record, into the next profile (at most this much later); a stack that moves
// writes what it accumulated at once.
inline constexpr int64_t kWallFlushNs = 1'000'000'000;

// The wall profile's generation: a repeat record counts only within the generation of the full
// record it repeats (the drain bumps it when it swaps the wall profile).
uint32_t wall_generation();
void wall_bump_generation();

// For the sampler thread's readers (tasks.cc): a header-only record counting `weight_ns` more for
// the last full record of `source`, and the wall fields of a full record.
bool wall_write_repeat(int64_t weight_ns, uint32_t generation, uint64_t source);
struct RecordHeader;
void fill_wall(RecordHeader* h, int64_t weight_ns, uint32_t generation, uint64_t source,
               uint8_t state, uint16_t leaf);

}  // namespace spanprof
