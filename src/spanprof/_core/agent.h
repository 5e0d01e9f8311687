// Shared state between the sampler (signal handler, timers: sampler.cc), the drain
// (symbolisation, aggregation: drain.cc) and the binding (module.cc).
#pragma once

#include <atomic>
#include <cstdint>

#include "cpython.h"
#include "profile.h"
#include "ring.h"
#include "spans.h"

namespace spanprof {

constexpr uint32_t kMaxFrames = 2048;           // deeper stacks keep their innermost 2,048 frames
constexpr size_t kRingBytes = size_t{4} << 20;  // 4 MiB

struct Config {
  int rate_hz = 100;
  bool gil_only = true;
  bool report_pid = false;
  bool report_thread_id = false;
  bool report_thread_name = false;
  int line_no = 0;  // pyroscope-io LineNo: 0 current line, 1 function's first line, 2 no line
};

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
};
static_assert(sizeof(RecordHeader) % 8 == 0);
constexpr uint32_t kHasSpan = 1;
constexpr uint32_t kTruncated = 2;

// Not handler-safe (a system call, possibly a pipe): reads `n` bytes at `addr` of this process
// without faulting on an unmapped address (process_vm_readv, or write() to a pipe under seccomp).
bool safe_read(const void* addr, void* out, size_t n);

Ring& ring();
const Config& config();
int64_t wall_ns();
int64_t mono_ns();

// sampler.cc; all with the GIL held unless noted.
bool sampler_running();
PyObject* sampler_start(const Config& cfg);
PyObject* sampler_stop();
void sampler_scan_threads(PyThreadState* exclude);  // creates/deletes per-thread timers
void sampler_register_current_thread();             // arms the calling thread now (GIL held)
int sampler_signal();
bool sampler_signal_lost();  // our handler was replaced while running: timers disarmed
uint64_t sampler_timers_active();
void sampler_after_fork_child();  // replaces state the fork may have left inconsistent
bool sampler_forked();            // a fork happened and after_fork_child() has not run yet
bool sampler_was_running_at_fork();
void sampler_emergency_stop();  // Py_AtExit: no Python, no GIL
// Benchmark aid: runs the handler's sampling path `iterations` times on this thread, returns ns.
uint64_t sampler_probe(int iterations);
// GIL held. Exercises the signal handler's fault guard on a PROT_NONE page (see sampler.cc).
int sampler_fault_guard_selftest();

// drain.cc
void drain_start();          // GIL held; starts the drain thread
void drain_stop_and_join();  // GIL NOT held
// GIL NOT held; `ts` is the caller's saved thread state, used to take the GIL for symbolisation.
void drain_once(PyThreadState* ts, bool scan);
Profile* drain_take_profile(PyThreadState* ts);  // GIL NOT held: flushes the ring, swaps windows
void drain_after_fork_child();
uint64_t drain_code_cache_size();

}  // namespace spanprof
