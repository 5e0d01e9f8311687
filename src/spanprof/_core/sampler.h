// The signal handler: captures the interrupted thread's own Python stack, span and tags into the
// ring. It touches no lock, allocates nothing and calls no Python API.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cstdint>

#include "ring.h"

namespace spanprof {

Ring& ring();

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
