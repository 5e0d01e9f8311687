// The sampler: per-thread CPU-clock POSIX timers and the signal handler that captures the
// interrupted thread's own Python stack into the ring.
//
// Timer management (create, delete) only happens with the GIL held, so the GIL is the lock of the
// timer table. The handler touches no lock, allocates nothing and calls no Python API.
#include <link.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "agent.h"
#include "stats.h"
#include "tags.h"

namespace spanprof {
namespace {

Ring g_ring;
Config g_config;
std::atomic<bool> g_active{false};  // the handler samples only while set
std::atomic<int> g_in_flight{0};    // handlers currently past their entry
std::atomic<bool> g_gil_only{true};
bool g_running = false;  // GIL
bool g_forked = false;
bool g_signal_lost = false;  // GIL; our handler was replaced by someone else while running
bool g_was_running_at_fork = false;
pthread_key_t g_tss_key;
int g_signo = 0;
bool g_handler_installed[128] = {};
uint64_t g_rng = 0x2545F4914F6CDD1Dull;

struct ThreadTimer {
  timer_t timer;
  uint64_t ident;
};
// tstate->id -> timer. GIL-protected. Replaced (the old one leaked) in a fork child.
std::unordered_map<uint64_t, ThreadTimer>* g_timers = new std::unordered_map<uint64_t, ThreadTimer>;

inline int64_t elapsed_since(int64_t t0) { return mono_ns() - t0; }

// ---- the fault guard --------------------------------------------------------------------------
// A frame the interpreter is still publishing or already tearing down can point at memory that is
// not mapped (frames.cc catches the cases it can recognise). A SIGSEGV or SIGBUS raised while this
// thread's handler reads the interpreter's state jumps back to the handler, which drops the sample
// and counts it (samples_dropped_fault). Any other fault goes to the handler installed before ours,
// or takes the default action. Installed by start() (or probe()), restored by stop() if it is
// still ours. Initial-exec TLS: reading it from a signal handler must not allocate.
__attribute__((tls_model("initial-exec"))) thread_local sigjmp_buf* t_fault_jump = nullptr;
struct sigaction g_prev_fault[2];      // SIGSEGV, SIGBUS, as found when ours was installed
bool g_fault_guard_installed = false;  // GIL

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

void on_fault(int sig, siginfo_t* info, void* uc) {
  sigjmp_buf* jb = t_fault_jump;
  if (jb != nullptr && fault_in_our_code(uc)) {
    t_fault_jump = nullptr;
    siglongjmp(*jb, 1);
  }
  const struct sigaction prev = g_prev_fault[sig == SIGBUS ? 1 : 0];
  const bool sent = info != nullptr && info->si_code <= 0;  // kill()/raise(), not a real fault
  auto restore_default = [sig] {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
  };
  if ((prev.sa_flags & SA_SIGINFO) == 0 &&
      (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN)) {
    if (prev.sa_handler == SIG_IGN && sent) return;
    // The default action: with it restored, a real fault re-executes the faulting instruction
    // and the kernel ends the process as it would have without us; a sent signal is re-raised.
    restore_default();
    if (sent) raise(sig);
    return;
  }
  if (prev.sa_flags & SA_RESETHAND) restore_default();
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

void install_fault_guard() {
  if (g_fault_guard_installed) return;
  if (g_text_hi == 0) dl_iterate_phdr(find_text, nullptr);
  const int sigs[2] = {SIGSEGV, SIGBUS};
  for (int i = 0; i < 2; ++i) {
    if (fault_handler_is_ours(sigs[i])) continue;  // left installed by an earlier run
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    // NODEFER: siglongjmp out of the handler leaves the mask as it is, so SIGSEGV must not be
    // blocked inside it. ONSTACK: a stack overflow in the program still reaches the previous
    // handler (faulthandler) on the alternate stack.
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(sigs[i], &sa, &g_prev_fault[i]);
  }
  g_fault_guard_installed = true;
}

void remove_fault_guard() {
  if (!g_fault_guard_installed) return;
  const int sigs[2] = {SIGSEGV, SIGBUS};
  for (int i = 0; i < 2; ++i) {
    // Someone who installed a handler after ours keeps it (and may chain to ours, which then
    // chains on to the one we saved).
    if (fault_handler_is_ours(sigs[i])) sigaction(sigs[i], &g_prev_fault[i], nullptr);
  }
  g_fault_guard_installed = false;
}

// Runs fn() with this thread's SIGSEGV/SIGBUS sent back here; false when fn() faulted (its work
// is abandoned part-way: fn must leave in memory what the caller needs to undo).
template <typename Fn>
__attribute__((noinline)) bool run_guarded(Fn&& fn) {
  sigjmp_buf jb;
  if (sigsetjmp(jb, 0) != 0) return false;  // on_fault cleared the guard and jumped here
  t_fault_jump = &jb;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  fn();
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_fault_jump = nullptr;
  return true;
}

// What a guarded capture reserved, kept in memory so a fault can give the record back.
struct Capture {
  uint8_t* volatile body = nullptr;
  volatile uint32_t size = 0;
  uint32_t nframes = 0;  // kUnsettled / 0: nothing reserved
  py::WalkCounts wc;
  bool transition = false;
  SpanLookup span = SpanLookup::kNone;
};

// Everything that reads the interpreter's memory; runs under the fault guard.
__attribute__((noinline)) void capture(PyThreadState* ts, [[maybe_unused]] pid_t tid,
                                       uint32_t extra_periods, Capture* c) {
  py::WalkStart start;
  uint32_t n = py::frame_bound(ts, kMaxFrames, &start);
  c->nframes = n;
  if (n == 0 || n == py::kUnsettled) return;
  if (n > kMaxFrames) n = kMaxFrames;
  const auto size = static_cast<uint32_t>(sizeof(RecordHeader) + n * sizeof(py::RawFrame));
  uint8_t* body = g_ring.reserve(size);
  if (body == nullptr) return;
  c->size = size;
  c->body = body;
  auto* h = reinterpret_cast<RecordHeader*>(body);
  auto* frames = reinterpret_cast<py::RawFrame*>(body + sizeof(RecordHeader));
  h->nframes = py::walk_frames(start, frames, n, &c->wc);
  c->transition = start.transition;
  h->flags = c->wc.truncated ? kTruncated : 0;
#if PY_VERSION_HEX >= 0x030B0000
  h->native_tid = ts->native_thread_id;
#else
  h->native_tid = static_cast<uint64_t>(tid);
#endif
  h->ident = ts->thread_id;
  h->tagset = tags_lookup_id(ts->thread_id);
  h->extra_periods = extra_periods;
  c->span = lookup_span(ts, &h->span);
  if (c->span == SpanLookup::kFound) h->flags |= kHasSpan;
}

// `tid`: the kernel id of this thread, carried in the timer's sigval (the timer is created for
// one thread and signals only it), so 3.9/3.10, whose thread state lacks it, need no gettid
// system call per sample.
void sample_this_thread(pid_t tid, uint32_t extra_periods) {
  const int64_t t0 = mono_ns();
  Stats& st = stats();
  auto* ts = static_cast<PyThreadState*>(pthread_getspecific(g_tss_key));
  if (ts == nullptr) {
    st.samples_dropped_no_tstate.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (g_gil_only.load(std::memory_order_relaxed) && !py::holds_gil(ts)) {
    st.samples_dropped_not_gil.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Capture c;
  if (!run_guarded([&] { capture(ts, tid, extra_periods, &c); })) {
    if (uint8_t* body = c.body) Ring::cancel(body, c.size);
    st.samples_dropped_fault.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.nframes == 0) {
    st.samples_dropped_empty.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.nframes == py::kUnsettled) {
    st.samples_dropped_unsettled.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint8_t* body = c.body;
  if (body == nullptr) {
    st.samples_dropped_ring_full.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  switch (c.span) {
    case SpanLookup::kFound:
      st.span_lookup_ok.fetch_add(1, std::memory_order_relaxed);
      break;
    case SpanLookup::kNone:
      st.span_lookup_none.fetch_add(1, std::memory_order_relaxed);
      break;
    case SpanLookup::kFailed:
      st.span_lookup_failed.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  Ring::commit(body, c.size);
  st.samples_taken.fetch_add(1, std::memory_order_relaxed);
  if (c.wc.truncated) st.samples_truncated.fetch_add(1, std::memory_order_relaxed);
  if (c.transition) st.samples_in_transition.fetch_add(1, std::memory_order_relaxed);
  if (c.wc.invalid) st.frames_invalid.fetch_add(c.wc.invalid, std::memory_order_relaxed);
  if (c.wc.incomplete) st.frames_incomplete.fetch_add(c.wc.incomplete, std::memory_order_relaxed);
  const auto dt = static_cast<uint64_t>(elapsed_since(t0));
  st.handler_ns_total.fetch_add(dt, std::memory_order_relaxed);
  stat_max(st.handler_ns_max, dt);
  st.handler_ns_hist[hist_bucket(dt)].fetch_add(1, std::memory_order_relaxed);
}

void on_signal(int, siginfo_t* info, void*) {
  const int saved_errno = errno;
  g_in_flight.fetch_add(1, std::memory_order_seq_cst);
  if (g_active.load(std::memory_order_seq_cst)) {
    if (info != nullptr && info->si_code == SI_TIMER) {
      const uint32_t extra = info->si_overrun > 0 ? static_cast<uint32_t>(info->si_overrun) : 0;
      if (extra != 0) stats().timer_overruns.fetch_add(extra, std::memory_order_relaxed);
      sample_this_thread(static_cast<pid_t>(info->si_value.sival_int), extra);
    } else {
      stats().signals_foreign.fetch_add(1, std::memory_order_relaxed);
    }
  }
  g_in_flight.fetch_sub(1, std::memory_order_seq_cst);
  errno = saved_errno;
}

bool is_ours(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == on_signal;
}

// SIGPROF unless another handler owns it; then the highest real-time signal nobody handles.
int choose_signal() {
  struct sigaction old {};
  if (g_signo != 0 && sigaction(g_signo, nullptr, &old) == 0 && is_ours(old)) return g_signo;
  if (sigaction(SIGPROF, nullptr, &old) == 0 &&
      (is_ours(old) || (!(old.sa_flags & SA_SIGINFO) &&
                        (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN)))) {
    return SIGPROF;
  }
  for (int s = SIGRTMAX - 1; s > SIGRTMIN + 1; --s) {
    if (sigaction(s, nullptr, &old) != 0) continue;
    if (is_ours(old) || (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)) return s;
  }
  return -1;
}

bool install_handler(int signo) {
  if (signo < 0 || signo >= 128) return false;
  if (g_handler_installed[signo]) return true;
  struct sigaction sa {};
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  // Nothing else blocked: blocking the process-directed SIGPROF of another owner while ours runs
  // cost that owner up to two thirds of its signals (they coalesce while pending), measured.
  sigemptyset(&sa.sa_mask);
  if (sigaction(signo, &sa, nullptr) != 0) return false;
  // Never uninstalled: a signal still queued after stop() must find a harmless handler, not the
  // default action (which terminates the process for SIGPROF and real-time signals).
  g_handler_installed[signo] = true;
  return true;
}

uint64_t next_random() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

bool create_timer(pid_t tid, uint64_t ident, uint64_t key) {
  struct sigevent sev {};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = g_signo;
  sev._sigev_un._tid = tid;
  sev.sigev_value.sival_int = tid;  // handed to the handler in siginfo
  // The thread's CPU clock: CPUCLOCK_SCHED (2) | CPUCLOCK_PERTHREAD (4), tid in the high bits.
  const auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  timer_t timer;
  if (timer_create(clock, &sev, &timer) != 0) {
    stats().timer_create_failed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const int64_t interval = 1'000'000'000LL / g_config.rate_hz;
  // A random first expiry, so threads that live shorter than one period are not all missed.
  const int64_t first = 1 + static_cast<int64_t>(next_random() % static_cast<uint64_t>(interval));
  struct itimerspec its {};
  its.it_interval.tv_sec = interval / 1'000'000'000;
  its.it_interval.tv_nsec = interval % 1'000'000'000;
  its.it_value.tv_sec = first / 1'000'000'000;
  its.it_value.tv_nsec = first % 1'000'000'000;
  if (timer_settime(timer, 0, &its, nullptr) != 0) {
    timer_delete(timer);
    stats().timer_create_failed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  g_timers->emplace(key, ThreadTimer{timer, ident});
  stats().timers_created.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void delete_all_timers() {
  for (auto& kv : *g_timers) {
    timer_delete(kv.second.timer);
    stats().timers_deleted.fetch_add(1, std::memory_order_relaxed);
  }
  g_timers->clear();
}

void wait_for_handlers() {
  while (g_in_flight.load(std::memory_order_seq_cst) != 0) sched_yield();
}

// ---- arming new threads at their first Python call -----------------------------------------
// The drain's scan runs when the thread list changed or once a second; a thread that lives
// shorter than the gap would never be armed. threading's
// documented profile hook (threading.setprofile) runs in every new threading.Thread before run():
// ours arms the calling thread, restores the hook the user had (if any) for this thread and
// forwards the first event to it. Installed by start(), the user's hook restored by stop().

PyObject* g_prev_thread_hook = nullptr;  // GIL; the hook threading had before start()
PyObject* g_our_thread_hook = nullptr;   // GIL; our hook (a PyCFunction)

PyObject* threading_module() {
  PyObject* name = PyUnicode_FromString("threading");
  PyObject* mod = name != nullptr ? PyImport_GetModule(name) : nullptr;
  Py_XDECREF(name);
  if (mod == nullptr) PyErr_Clear();
  return mod;
}

PyObject* thread_start_hook(PyObject*, PyObject* args) {
  sampler_register_current_thread();
  PyObject* prev = g_prev_thread_hook != nullptr ? g_prev_thread_hook : Py_None;
  Py_INCREF(prev);
  PyObject* sys_setprofile = PySys_GetObject("setprofile");  // borrowed
  PyObject* r = sys_setprofile != nullptr ? PyObject_CallOneArg(sys_setprofile, prev) : nullptr;
  if (r == nullptr) {
    Py_DECREF(prev);
    return nullptr;
  }
  Py_DECREF(r);
  if (prev == Py_None) return prev;  // the return value of a profile function is ignored
  r = PyObject_Call(prev, args, nullptr);
  Py_DECREF(prev);
  return r;
}

PyMethodDef kThreadStartHook = {"_spanprof_thread_start", thread_start_hook, METH_VARARGS, nullptr};

void install_thread_hook() {
  PyObject* threading = threading_module();
  if (threading == nullptr) return;  // threads started later are found by the scan
  if (g_our_thread_hook == nullptr) g_our_thread_hook = PyCFunction_New(&kThreadStartHook, nullptr);
  PyObject* prev = PyObject_GetAttrString(threading, "_profile_hook");
  if (prev == nullptr) PyErr_Clear();
  if (g_our_thread_hook != nullptr && prev != g_our_thread_hook) {
    Py_XSETREF(g_prev_thread_hook, prev != nullptr && prev != Py_None ? prev : nullptr);
    prev = nullptr;
    PyObject* r = PyObject_CallMethod(threading, "setprofile", "O", g_our_thread_hook);
    if (r == nullptr) PyErr_Clear();
    Py_XDECREF(r);
  }
  Py_XDECREF(prev);
  Py_DECREF(threading);
}

void remove_thread_hook() {
  PyObject* threading = threading_module();
  if (threading == nullptr) return;
  PyObject* cur = PyObject_GetAttrString(threading, "_profile_hook");
  if (cur == nullptr) PyErr_Clear();
  if (cur != nullptr && cur == g_our_thread_hook) {  // nobody replaced ours meanwhile
    PyObject* prev = g_prev_thread_hook != nullptr ? g_prev_thread_hook : Py_None;
    PyObject* r = PyObject_CallMethod(threading, "setprofile", "O", prev);
    if (r == nullptr) PyErr_Clear();
    Py_XDECREF(r);
  }
  Py_XDECREF(cur);
  Py_CLEAR(g_prev_thread_hook);
  Py_DECREF(threading);
}

void atfork_child() {
  // Async-signal-safe only: no allocation, no locks. Timers and threads do not survive fork().
  g_was_running_at_fork = g_running;
  g_active.store(false, std::memory_order_seq_cst);
  g_in_flight.store(0, std::memory_order_seq_cst);
  g_running = false;
  g_forked = true;
  g_ring.reset();
}

struct AtforkRegistration {
  AtforkRegistration() { pthread_atfork(nullptr, nullptr, atfork_child); }
} g_atfork_registration;

}  // namespace

Ring& ring() { return g_ring; }
const Config& config() { return g_config; }
bool sampler_running() { return g_running; }
int sampler_signal() { return g_signo; }
bool sampler_signal_lost() { return g_signal_lost; }
uint64_t sampler_timers_active() { return g_timers->size(); }
bool sampler_forked() { return g_forked; }
bool sampler_was_running_at_fork() { return g_was_running_at_fork; }

int64_t wall_ns() {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}
int64_t mono_ns() {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

#if PY_VERSION_HEX < 0x030B0000
// Threads started outside threading (_thread.start_new_thread, C threads) have no Thread object.
// Their thread state's thread_id is their pthread_t, which glibc makes the address of the
// thread's descriptor, and the descriptor holds the kernel tid at a fixed offset: found on the
// calling thread (the first word equal to its own tid), checked against every tid threading
// knows, and read for other threads with safe_read() (drain.cc), so a descriptor already gone
// fails the read instead of faulting. A tid is used only while /proc/self/task/<tid> exists.
ptrdiff_t g_tid_offset = -2;  // GIL; -2 not probed yet, -1 unusable

ptrdiff_t tid_offset() {
  if (g_tid_offset != -2) return g_tid_offset;
  g_tid_offset = -1;
  const auto* self = reinterpret_cast<const pid_t*>(pthread_self());
  const auto mine = static_cast<pid_t>(syscall(SYS_gettid));
  for (size_t i = 0; i < 1024 / sizeof(pid_t); ++i) {
    if (self[i] == mine) {
      g_tid_offset = static_cast<ptrdiff_t>(i * sizeof(pid_t));
      break;
    }
  }
  return g_tid_offset;
}

pid_t read_descriptor_tid(uint64_t ident) {
  const ptrdiff_t off = tid_offset();
  pid_t tid = 0;
  if (off < 0 || ident == 0 ||
      !safe_read(reinterpret_cast<const void*>(ident + static_cast<uint64_t>(off)), &tid,
                 sizeof tid))
    return 0;
  return tid;
}

pid_t tid_from_descriptor(uint64_t ident) {
  const pid_t tid = read_descriptor_tid(ident);
  if (tid <= 0) return 0;
  char path[48];
  snprintf(path, sizeof path, "/proc/self/task/%d", static_cast<int>(tid));
  return access(path, F_OK) == 0 ? tid : 0;
}

// 3.9/3.10 keep no native thread id in PyThreadState: take it from threading's Thread objects
// (Thread._native_id, set by the thread itself when it starts). The calling thread's own id is
// known directly; threads threading does not know come from their descriptor (above).
std::unordered_map<uint64_t, pid_t> native_ids_from_threading() {
  std::unordered_map<uint64_t, pid_t> ids;
  const auto self = static_cast<uint64_t>(pthread_self());
  const auto self_tid = static_cast<pid_t>(syscall(SYS_gettid));
  ids[self] = self_tid;
  PyObject* name = PyUnicode_FromString("threading");
  PyObject* mod = name != nullptr ? PyImport_GetModule(name) : nullptr;
  Py_XDECREF(name);
  PyErr_Clear();
  if (mod == nullptr) return ids;
  PyObject* active = PyObject_GetAttrString(mod, "_active");
  Py_DECREF(mod);
  if (active == nullptr || !PyDict_Check(active)) {
    Py_XDECREF(active);
    PyErr_Clear();
    return ids;
  }
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(active, &pos, &k, &v)) {
    PyObject* nid = PyObject_GetAttrString(v, "_native_id");
    if (nid != nullptr && PyLong_Check(nid)) {
      const long long tid = PyLong_AsLongLong(nid);
      const unsigned long long ident = PyLong_AsUnsignedLongLong(k);
      if (!PyErr_Occurred() && tid > 0) {
        ids[ident] = static_cast<pid_t>(tid);
        // A descriptor offset that disagrees with a tid threading knows is not trusted.
        if (ident != self && tid_offset() >= 0 &&
            read_descriptor_tid(ident) != static_cast<pid_t>(tid))
          g_tid_offset = -1;
      }
    }
    Py_XDECREF(nid);
    PyErr_Clear();
  }
  Py_DECREF(active);
  ids[self] = self_tid;  // authoritative (Thread._native_id is the parent's after a fork)
  return ids;
}
#endif

void sampler_scan_threads(PyThreadState* exclude) {
  if (!g_running) return;
  struct sigaction current {};
  if (sigaction(g_signo, nullptr, &current) == 0 && !is_ours(current)) {
    // Someone replaced our handler after start(): our timers would now call theirs. Disarm and
    // stop arming; the new owner keeps the signal (counted, visible in stats()).
    if (!g_signal_lost) {
      g_signal_lost = true;
      delete_all_timers();
    }
    return;
  }
  std::unordered_set<uint64_t> seen;
  std::unordered_set<uint64_t> idents;
#if PY_VERSION_HEX < 0x030B0000
  const auto native_ids = native_ids_from_threading();
#endif
  PyInterpreterState* interp = PyInterpreterState_Main();
  for (PyThreadState* ts = PyInterpreterState_ThreadHead(interp); ts != nullptr;
       ts = PyThreadState_Next(ts)) {
    idents.insert(ts->thread_id);
    if (ts == exclude) continue;
#if PY_VERSION_HEX >= 0x030B0000
    const auto tid = static_cast<pid_t>(ts->native_thread_id);
#else
    auto found = native_ids.find(ts->thread_id);
    const pid_t tid =
        found != native_ids.end() ? found->second : tid_from_descriptor(ts->thread_id);
#endif
    if (tid == 0) continue;
    seen.insert(ts->id);
    if (g_timers->count(ts->id) == 0) create_timer(tid, ts->thread_id, ts->id);
  }
  for (auto it = g_timers->begin(); it != g_timers->end();) {
    if (seen.count(it->first) == 0) {
      timer_delete(it->second.timer);
      stats().timers_deleted.fetch_add(1, std::memory_order_relaxed);
      it = g_timers->erase(it);
    } else {
      ++it;
    }
  }
  tags_collect(idents, static_cast<uint64_t>(stats().drain_runs.load()));
}

void sampler_register_current_thread() {
  if (!g_running || g_signal_lost) return;
  PyThreadState* ts = PyThreadState_Get();
  if (g_timers->count(ts->id) != 0) return;
  create_timer(static_cast<pid_t>(syscall(SYS_gettid)), static_cast<uint64_t>(pthread_self()),
               ts->id);
}

PyObject* sampler_start(const Config& cfg) {
#ifdef Py_GIL_DISABLED
  (void)cfg;
  PyErr_SetString(PyExc_RuntimeError,
                  "spanprof does not support free-threaded CPython builds (Py_GIL_DISABLED) yet; "
                  "use a regular build of CPython");
  return nullptr;
#else
  if (g_forked) sampler_after_fork_child();
  if (g_running) {
    PyErr_SetString(PyExc_RuntimeError, "spanprof sampler is already running; call stop() first");
    return nullptr;
  }
  if (cfg.rate_hz < 1 || cfg.rate_hz > 1000) {
    PyErr_Format(PyExc_ValueError, "sample rate must be between 1 and 1000 Hz, got %d",
                 cfg.rate_hz);
    return nullptr;
  }
  if (const char* what = py::layout_mismatch()) {
    PyErr_Format(PyExc_RuntimeError,
                 "spanprof: the running CPython's %s layout differs from the headers this build "
                 "of spanprof was compiled with; reinstall spanprof for this interpreter (%s)",
                 what, Py_GetVersion());
    return nullptr;
  }
  Py_tss_t* key = py::auto_tss_key();
  if (!key->_is_initialized) {
    PyErr_SetString(PyExc_RuntimeError,
                    "spanprof: CPython's thread-state key is not initialised; cannot sample");
    return nullptr;
  }
  g_tss_key = key->_key;
  if (!g_ring.init(kRingBytes)) {
    PyErr_NoMemory();
    return nullptr;
  }
  const int signo = choose_signal();
  if (signo < 0 || (g_signo = signo, !install_handler(signo))) {
    PyErr_SetString(PyExc_RuntimeError,
                    "spanprof: SIGPROF is owned by another handler and no free real-time signal "
                    "is left for the sampler");
    return nullptr;
  }
  g_config = cfg;
  g_signal_lost = false;
  stats().handler_ns_max.store(0, std::memory_order_relaxed);  // the max is per start()
  g_rng ^= static_cast<uint64_t>(mono_ns()) * 0x9E3779B97F4A7C15ull;
  g_gil_only.store(cfg.gil_only, std::memory_order_relaxed);
  install_fault_guard();
  g_running = true;
  g_active.store(true, std::memory_order_seq_cst);
  sampler_scan_threads(nullptr);  // the calling thread (and every other one) right away
  install_thread_hook();
  drain_start();
  Py_RETURN_NONE;
#endif
}

PyObject* sampler_stop() {
  if (!g_running) Py_RETURN_NONE;
  remove_thread_hook();
  g_active.store(false, std::memory_order_seq_cst);
  delete_all_timers();
  wait_for_handlers();
  remove_fault_guard();
  g_running = false;
  Py_BEGIN_ALLOW_THREADS drain_stop_and_join();
  drain_once(_save, false);  // what the handlers wrote before the disarm goes into the aggregate
  Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

uint64_t sampler_probe(int iterations) {
  const auto tid = static_cast<pid_t>(syscall(SYS_gettid));
  install_fault_guard();
  const int64_t t0 = mono_ns();
  for (int i = 0; i < iterations; ++i) sample_this_thread(tid, 0);
  const auto dt = static_cast<uint64_t>(mono_ns() - t0);
  if (!g_running) remove_fault_guard();
  return dt;
}

int sampler_fault_guard_selftest() {
  install_fault_guard();
  const long page = sysconf(_SC_PAGESIZE);
  void* p = mmap(nullptr, static_cast<size_t>(page), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -1;
  volatile int sink = 0;
  const bool unmapped_ok = run_guarded([&] { sink = *static_cast<volatile int*>(p); });
  const bool mapped_ok = run_guarded([&] { sink = sink + 1; });
  munmap(p, static_cast<size_t>(page));
  if (!g_running) remove_fault_guard();
  return (unmapped_ok ? 0 : 1) | (mapped_ok ? 2 : 0);  // 3: fault caught, clean read passed
}

void sampler_emergency_stop() {
  g_active.store(false, std::memory_order_seq_cst);
  if (g_running) {
    for (auto& kv : *g_timers) timer_delete(kv.second.timer);
    g_timers->clear();
  }
  wait_for_handlers();
}

void sampler_after_fork_child() {
  if (!g_forked) return;
  g_forked = false;
  g_timers = new std::unordered_map<uint64_t, ThreadTimer>;  // parent's timers do not exist here
  tags_after_fork();
  drain_after_fork_child();
  stats().reset();
}

}  // namespace spanprof
