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
  // Wall-clock records (wall.h); zero in CPU records.
  uint8_t kind;   // kKindCpu / kKindWall
  uint8_t state;  // ThreadState
  uint16_t leaf;  // Leaf: the synthetic innermost frame (a wait the stack cannot show), 0 = none
  uint32_t reserved;
  uint64_t weight_ns;  // wall time the record stands for
  // kRepeat: the same stack and labels as the last full record of `source` (a thread state or a
  // task) in the current profile generation; nframes is 0.
  uint64_t source;
  uint32_t generation;
  uint32_t task_name_len;
  char task_name[40];  // asyncio task name (UTF-8, truncated), task_name_len bytes
};
static_assert(sizeof(RecordHeader) % 8 == 0);
constexpr uint32_t kHasSpan = 1;
constexpr uint32_t kTruncated = 2;
constexpr uint32_t kRepeat = 4;
constexpr uint32_t kTask = 8;
constexpr uint32_t kDeficit = 32;    // wall time of a thread running Python beyond its CPU time
constexpr uint32_t kRanPython = 16;  // CPU record of a thread running Python (GIL held / attached)

constexpr uint8_t kKindCpu = 0;
constexpr uint8_t kKindWall = 1;

// Wall-clock state of a sampled thread or task (the `thread_state` label).
enum ThreadState : uint8_t {
  kStateRunning = 0,   // running Python (holds the GIL / attached) or native code, on a CPU
  kStateGilWait = 1,   // runnable, waiting to take the GIL
  kStateBlocked = 2,   // in a blocking system call (sleep, I/O, lock, select, child wait)
  kStateAwaiting = 3,  // an asyncio task suspended on an await
};

// Synthetic leaf frames: what a blocked thread or suspended task waits in.
enum Leaf : uint16_t {
  kLeafNone = 0,
  kLeafSleep,
  kLeafLock,
  kLeafRecv,
  kLeafSend,
  kLeafAccept,
  kLeafConnect,
  kLeafRead,
  kLeafWrite,
  kLeafSelect,
  kLeafChildWait,
  kLeafGil,
  kLeafSyscall,  // another system call
  kLeafAwaitFuture,
  kLeafAwaitTask,
  kLeafAwaitOther,
  kLeafCount,
};

}  // namespace spanprof
