// The ring record the signal handler writes and the drain reads.
#pragma once

#include <cstddef>
#include <cstdint>

#include "cpython.h"
#include "spans.h"

namespace spanprof {

constexpr uint32_t kMaxFrames = 2048;           // deeper stacks keep their innermost 2,048 frames
constexpr size_t kRingBytes = size_t{4} << 20;  // 4 MiB

// One ring record: this header followed by `nframes` py::RawFrame, leaf first.
struct RecordHeader {
  uint32_t nframes;
  uint32_t flags;  // kHasSpan | kTruncated
  uint64_t native_tid;
  uint64_t ident;   // pthread_self() of the sampled thread == threading.get_ident()
  uint64_t tagset;  // thread tag-set id, 0 = none
  SpanIds span;
  // Timer expiries the kernel merged into this signal (si_overrun): under CPU contention a
  // period can expire while the previous signal is still pending. The sample stands for
  // 1 + extra_periods periods of the thread's CPU time.
  uint32_t extra_periods;
  // codes.h: the code-death epoch when the sample was taken. A code object recorded here died
  // after the sample iff its death was logged with a larger epoch.
  uint64_t code_epoch;
};
static_assert(sizeof(RecordHeader) % 8 == 0);
constexpr uint32_t kHasSpan = 1;
constexpr uint32_t kTruncated = 2;

}  // namespace spanprof
