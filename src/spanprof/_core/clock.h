// Clocks read by the handler (async-signal-safe: clock_gettime is a vDSO call) and the drain.
#pragma once

#include <time.h>

#include <cstdint>

namespace spanprof {

inline int64_t clock_ns(clockid_t id) {
  struct timespec t;
  clock_gettime(id, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}
inline int64_t wall_ns() { return clock_ns(CLOCK_REALTIME); }
inline int64_t mono_ns() { return clock_ns(CLOCK_MONOTONIC); }
inline int64_t thread_cpu_ns() { return clock_ns(CLOCK_THREAD_CPUTIME_ID); }

}  // namespace spanprof
