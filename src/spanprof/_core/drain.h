// The drain: a native thread that every 100 ms consumes the ring, symbolises frames (codes.h) and
// aggregates (stack, labels) -> count into the current Profile; it also rescans the interpreter's
// thread list (threads.h) when it changed or once a second, and checks that the sampler's signal
// is still ours (timers.h).
//
// Locking: the drain's own mutex is never acquired while holding the GIL (or an attached thread
// state); the GIL may be taken while holding it. Callers of drain_once() and
// drain_take_profile() must therefore have released the GIL.
#pragma once

#include <cstdint>

#include "config.h"
#include "cpython.h"
#include "profile.h"

namespace spanprof {

void drain_start(const Config& cfg);  // GIL held; starts the drain thread
void drain_stop_and_join();           // GIL NOT held
// GIL NOT held; `ts` is the caller's saved thread state, used to take the GIL for the thread
// scan and thread names.
void drain_once(PyThreadState* ts, bool scan);
struct ProfilePair {
  Profile* cpu;
  Profile* wall;  // nullptr unless wall-clock sampling was on in the window
};
// GIL NOT held: flushes the ring, swaps windows.
ProfilePair drain_take_profiles(PyThreadState* ts);
void drain_after_fork_child();

}  // namespace spanprof
