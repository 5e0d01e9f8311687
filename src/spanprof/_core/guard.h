// Reading memory that may not be there: the signal handler's SIGSEGV/SIGBUS guard, and
// safe_read() for threads that are not in a signal handler.
#pragma once

#include <setjmp.h>

#include <atomic>
#include <cstddef>

namespace spanprof {

// A frame the interpreter is still publishing or already tearing down can point at memory that is
// not mapped (frames.cc rejects the cases it can recognise). A SIGSEGV or SIGBUS raised while a
// guarded function runs on this thread jumps back out of it. Any other fault goes to the handler
// installed before ours, or takes the default action. GIL (or the lifecycle lock) held.
void guard_install();
void guard_remove();  // puts the previous handlers back if ours are still installed

// Initial-exec TLS: reading it from a signal handler must not allocate.
extern __attribute__((tls_model("initial-exec"))) thread_local sigjmp_buf* t_fault_jump;

// Runs fn() with this thread's SIGSEGV/SIGBUS sent back here; false when fn() faulted (its work
// is abandoned part-way: fn must leave in memory what the caller needs to undo). Async-signal-safe
// once guard_install() has run.
template <typename Fn>
__attribute__((noinline)) bool run_guarded(Fn&& fn) {
  sigjmp_buf jb;
  if (sigsetjmp(jb, 0) != 0) return false;  // the fault handler cleared the guard and jumped here
  t_fault_jump = &jb;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_fault_jump = nullptr;
  return true;
}

// Reads a PROT_NONE page and a mapped one through the guard; 3 when the fault was caught and the
// clean read passed.
int guard_selftest();

// Not handler-safe (a system call, possibly a pipe): reads `n` bytes at `addr` of this process
// without faulting on an unmapped address (process_vm_readv, or write() to a pipe under seccomp).
bool safe_read(const void* addr, void* out, size_t n);

}  // namespace spanprof
