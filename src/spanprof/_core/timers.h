// Per-thread CPU-clock POSIX timers and the signal they deliver.
//
// Each sampled thread gets a timer on its own CPU clock that signals only that thread
// (SIGEV_THREAD_ID), so a thread is sampled in proportion to the CPU it uses and an idle thread
// costs nothing. The signal is a real-time signal no one else handles, never SIGPROF: programs and
// libraries use SIGPROF with setitimer() and believe they own it (Python's signal.getsignal()
// cannot see a handler installed from C), so sharing it fed them our signals and, once they put
// SIG_DFL back, killed the process. If someone takes our signal anyway, timers_check_signal()
// moves every timer to another free signal and counts the interval that may have been lost.
//
// The table is guarded by an internal mutex (there is no GIL on free-threaded builds); none of
// these functions may be called from a signal handler.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <cstdint>

namespace spanprof {

using SignalHandler = void (*)(int, siginfo_t*, void*);

// Chooses and installs the signal; enables timer creation. False when no signal is free.
bool timers_start(int rate_hz, SignalHandler handler);
// Disables creation and deletes every timer. Signals already queued still find our handler
// (it is never uninstalled: the default action of a real-time signal ends the process).
void timers_stop();
// Arms a timer for thread `tid` under `key` (the thread state's id) unless one exists.
void timers_ensure(uint64_t key, pid_t tid);
bool timers_has(uint64_t key);
pid_t timers_tid(uint64_t key);  // the kernel tid armed under `key`, 0 when none
// Deletes the timers whose key `keep(key)` rejects.
template <typename Keep>
void timers_retain(Keep&& keep);
void timers_retain_if(bool (*keep)(uint64_t key, void* arg), void* arg);

// Called by the drain each round: if another handler replaced ours, moves every timer to a fresh
// signal (counted in signal_moves; the time since the previous check in sampling_gap_ns).
void timers_check_signal();

int timers_signal();  // the signal in use, 0 before the first start()
uint64_t timers_active();
// Fork child (no timers survive fork): forget the parent's table without touching its lock.
void timers_after_fork_child();

template <typename Keep>
void timers_retain(Keep&& keep) {
  timers_retain_if([](uint64_t key, void* arg) { return (*static_cast<Keep*>(arg))(key); }, &keep);
}

}  // namespace spanprof
