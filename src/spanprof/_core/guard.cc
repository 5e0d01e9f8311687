// The fault guard (see guard.h) and safe_read().
#include "guard.h"

#include <link.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace spanprof {

__attribute__((tls_model("initial-exec"))) thread_local sigjmp_buf* t_fault_jump = nullptr;

namespace {

struct sigaction g_prev_fault[2];  // SIGSEGV, SIGBUS, as found when ours was installed
bool g_installed = false;
uintptr_t g_text_lo = 0, g_text_hi = 0;  // our executable segment; set before the guard is used

// Whether the fault happened in our own code: another signal handler that interrupts a guarded
// read and faults itself must reach its own fault handling, not our jump.
bool fault_in_our_code([[maybe_unused]] void* uc) {
#if defined(__x86_64__)
  const auto pc = static_cast<uintptr_t>(static_cast<ucontext_t*>(uc)->uc_mcontext.gregs[REG_RIP]);
#elif defined(__aarch64__)
  const auto pc = static_cast<uintptr_t>(static_cast<ucontext_t*>(uc)->uc_mcontext.pc);
#else
  return true;
#endif
#if defined(__x86_64__) || defined(__aarch64__)
  return g_text_hi == 0 || (pc >= g_text_lo && pc < g_text_hi);
#endif
}

int find_text(struct dl_phdr_info* info, size_t, void*) {
  const auto self = reinterpret_cast<uintptr_t>(&fault_in_our_code);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || !(ph.p_flags & PF_X)) continue;
    const uintptr_t lo = info->dlpi_addr + ph.p_vaddr, hi = lo + ph.p_memsz;
    if (self >= lo && self < hi) {
      g_text_lo = lo;
      g_text_hi = hi;
      return 1;
    }
  }
  return 0;
}

void restore_default(int sig) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
}

void on_fault(int sig, siginfo_t* info, void* uc) {
  sigjmp_buf* jb = t_fault_jump;
  if (jb != nullptr && fault_in_our_code(uc)) {
    t_fault_jump = nullptr;
    siglongjmp(*jb, 1);
  }
  const struct sigaction prev = g_prev_fault[sig == SIGBUS ? 1 : 0];
  const bool sent = info != nullptr && info->si_code <= 0;  // kill()/raise(), not a real fault
  if ((prev.sa_flags & SA_SIGINFO) == 0 &&
      (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN)) {
    if (prev.sa_handler == SIG_IGN && sent) return;
    // The default action: with it restored, a real fault re-executes the faulting instruction
    // and the kernel ends the process as it would have without us; a sent signal is re-raised.
    restore_default(sig);
    if (sent) raise(sig);
    return;
  }
  if (prev.sa_flags & SA_RESETHAND) restore_default(sig);
  if (prev.sa_flags & SA_SIGINFO) {
    prev.sa_sigaction(sig, info, uc);
  } else {
    prev.sa_handler(sig);
  }
}

bool fault_handler_is_ours(int sig) {
  struct sigaction cur {};
  return sigaction(sig, nullptr, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
         cur.sa_sigaction == on_fault;
}

constexpr int kSigs[2] = {SIGSEGV, SIGBUS};

int g_vm_readv_works = -1;  // -1 unknown, 0 no (seccomp), 1 yes

}  // namespace

void guard_install() {
  if (g_installed) return;
  if (g_text_hi == 0) dl_iterate_phdr(find_text, nullptr);
  for (int i = 0; i < 2; ++i) {
    if (fault_handler_is_ours(kSigs[i])) continue;  // left installed by an earlier run
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    // NODEFER: siglongjmp out of the handler leaves the mask as it is, so SIGSEGV must not be
    // blocked inside it. ONSTACK: a stack overflow in the program still reaches the previous
    // handler (faulthandler) on the alternate stack.
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(kSigs[i], &sa, &g_prev_fault[i]);
  }
  g_installed = true;
}

void guard_remove() {
  if (!g_installed) return;
  for (int i = 0; i < 2; ++i) {
    // Someone who installed a handler after ours keeps it (and may chain to ours, which then
    // chains on to the one we saved).
    if (fault_handler_is_ours(kSigs[i])) sigaction(kSigs[i], &g_prev_fault[i], nullptr);
  }
  g_installed = false;
}

int guard_selftest() {
  const bool was_installed = g_installed;
  guard_install();
  const long page = sysconf(_SC_PAGESIZE);
  void* p = mmap(nullptr, static_cast<size_t>(page), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -1;
  volatile int sink = 0;
  const bool unmapped_ok = run_guarded([&] { sink = *static_cast<volatile int*>(p); });
  const bool mapped_ok = run_guarded([&] { sink = sink + 1; });
  munmap(p, static_cast<size_t>(page));
  if (!was_installed) guard_remove();
  return (unmapped_ok ? 0 : 1) | (mapped_ok ? 2 : 0);
}

bool safe_read(const void* addr, void* out, size_t n) {
  if (g_vm_readv_works != 0) {
    struct iovec local {
      out, n
    };
    struct iovec remote {
      const_cast<void*>(addr), n
    };
    const ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (r == static_cast<ssize_t>(n)) {
      g_vm_readv_works = 1;
      return true;
    }
    if (r < 0 && (errno == ENOSYS || errno == EPERM) && g_vm_readv_works == -1) {
      g_vm_readv_works = 0;
    } else {
      return false;
    }
  }
  // Fallback: the kernel reports EFAULT instead of faulting when write() reads a bad address.
  int fds[2];
  if (pipe(fds) != 0) return false;
  bool ok = write(fds[1], addr, n) == static_cast<ssize_t>(n) &&
            read(fds[0], out, n) == static_cast<ssize_t>(n);
  close(fds[0]);
  close(fds[1]);
  return ok;
}

}  // namespace spanprof
