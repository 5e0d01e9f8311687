// The sampler: per-thread CPU-clock POSIX timers and the signal handler that captures the
// interrupted thread's own Python stack into the ring.
//
// Timer management (create, delete) only happens with the GIL held, so the GIL is the lock of the
// timer table. The handler touches no lock, allocates nothing and calls no Python API.
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
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

// `tid`: the kernel id of this thread, carried in the timer's sigval (the timer is created for
// one thread and signals only it), so 3.9/3.10, whose thread state lacks it, need no gettid
// system call per sample.
void sample_this_thread([[maybe_unused]] pid_t tid) {
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
  uint32_t n = py::frame_bound(ts, kMaxFrames);
  if (n == 0) {
    st.samples_dropped_empty.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (n > kMaxFrames) n = kMaxFrames;
  const auto size = static_cast<uint32_t>(sizeof(RecordHeader) + n * sizeof(py::RawFrame));
  uint8_t* body = g_ring.reserve(size);
  if (body == nullptr) {
    st.samples_dropped_ring_full.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  auto* h = reinterpret_cast<RecordHeader*>(body);
  auto* frames = reinterpret_cast<py::RawFrame*>(body + sizeof(RecordHeader));
  py::WalkCounts wc;
  h->nframes = py::walk_frames(ts, frames, n, &wc);
  h->flags = wc.truncated ? kTruncated : 0;
#if PY_VERSION_HEX >= 0x030B0000
  h->native_tid = ts->native_thread_id;
#else
  h->native_tid = static_cast<uint64_t>(tid);
#endif
  h->ident = ts->thread_id;
  h->tagset = tags_lookup_id(ts->thread_id);
  h->pad = 0;
  switch (lookup_span(ts, &h->span)) {
    case SpanLookup::kFound:
      h->flags |= kHasSpan;
      st.span_lookup_ok.fetch_add(1, std::memory_order_relaxed);
      break;
    case SpanLookup::kNone:
      st.span_lookup_none.fetch_add(1, std::memory_order_relaxed);
      break;
    case SpanLookup::kFailed:
      st.span_lookup_failed.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  Ring::commit(body, size);
  st.samples_taken.fetch_add(1, std::memory_order_relaxed);
  if (wc.truncated) st.samples_truncated.fetch_add(1, std::memory_order_relaxed);
  if (wc.invalid) st.frames_invalid.fetch_add(wc.invalid, std::memory_order_relaxed);
  if (wc.incomplete) st.frames_incomplete.fetch_add(wc.incomplete, std::memory_order_relaxed);
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
      sample_this_thread(static_cast<pid_t>(info->si_value.sival_int));
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
// 3.9/3.10 keep no native thread id in PyThreadState: take it from threading's Thread objects
// (Thread._native_id, set by the thread itself when it starts). The calling thread's own id is
// known directly. Threads started with _thread.start_new_thread outside threading are not seen.
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
      if (!PyErr_Occurred() && tid > 0) ids[ident] = static_cast<pid_t>(tid);
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
    const pid_t tid = found != native_ids.end() ? found->second : 0;
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
  g_running = false;
  Py_BEGIN_ALLOW_THREADS drain_stop_and_join();
  drain_once(_save, false);  // what the handlers wrote before the disarm goes into the aggregate
  Py_END_ALLOW_THREADS Py_RETURN_NONE;
}

uint64_t sampler_probe(int iterations) {
  const auto tid = static_cast<pid_t>(syscall(SYS_gettid));
  const int64_t t0 = mono_ns();
  for (int i = 0; i < iterations; ++i) sample_this_thread(tid);
  return static_cast<uint64_t>(mono_ns() - t0);
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
