// The signal handler: captures the interrupted thread's own Python stack, span and tags into the
// ring. It touches no lock, allocates nothing and calls no Python API.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cstdint>

#include "cpython.h"
#include "record.h"
#include "ring.h"
#include "spans.h"

namespace spanprof {

Ring& ring();

// What a guarded capture reserved, kept in memory so a fault can give the record back.
struct Capture {
  uint8_t* volatile body = nullptr;
  volatile uint32_t size = 0;
  uint32_t nframes = 0;  // kUnsettled / 0: nothing reserved
  py::WalkCounts wc;
  bool transition = false;
  SpanLookup span = SpanLookup::kNone;
  RecordHeader* header() const { return reinterpret_cast<RecordHeader*>(body); }
};

// handler-safe. Reserves a ring record and fills it with `ts`'s stack, span and tags under the
// fault guard (header fields not named here are zero). False when it faulted (anything reserved
// was given back). Otherwise c->body is the reserved record, or nullptr when nothing was
// reserved (c->nframes says why: 0 no frame, py::kUnsettled); the caller commits or cancels it.
bool capture_stack(PyThreadState* ts, uint64_t native_tid, uint32_t extra_frames, Capture* c);

// Before the first signal can arrive (py::tstate_source_ready() has been checked): whether threads
// that do not run Python (gil_only) are skipped.
void sampler_configure(bool gil_only);
void sampler_activate();
// After this returns no handler is sampling; later signals return at once.
void sampler_deactivate_and_wait();
// Async-signal-safe (fork child): as above without waiting, and the ring emptied.
void sampler_reset_after_fork();

void sampler_on_signal(int signo, siginfo_t* info, void* uc);

// Benchmark aid: runs the handler's sampling path `iterations` times on this thread, returns ns.
uint64_t sampler_probe(int iterations);

}  // namespace spanprof
