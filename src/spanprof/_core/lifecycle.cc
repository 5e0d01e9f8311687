#include "lifecycle.h"

#include <pthread.h>

#include <mutex>

#include "codes.h"
#include "drain.h"
#include "guard.h"
#include "record.h"
#include "sampler.h"
#include "stats.h"
#include "tags.h"
#include "threads.h"
#include "timers.h"
#include "wall.h"

namespace spanprof {
namespace {

Config g_config;
bool g_running = false;
bool g_forked = false;
bool g_was_running_at_fork = false;
// Serialises start/stop/fork handling: on free-threaded builds two threads may call them at once.
// Never held while waiting for the drain (which may need an attached thread state).
std::mutex* g_lifecycle_mu = new std::mutex;

void atfork_child() {
  // Async-signal-safe only: no allocation, no locks. Timers and threads do not survive fork().
  g_was_running_at_fork = g_running;
  sampler_reset_after_fork();
  g_running = false;
  g_forked = true;
}

struct AtforkRegistration {
  AtforkRegistration() { pthread_atfork(nullptr, nullptr, atfork_child); }
} g_atfork_registration;

PyObject* start_locked(const Config& cfg) {
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
  if (!py::tstate_source_ready()) {
    PyErr_SetString(PyExc_RuntimeError,
                    "spanprof: cannot find CPython's per-thread state from a signal handler on "
                    "this interpreter; cannot sample");
    return nullptr;
  }
  if (!ring().init(kRingBytes)) {
    PyErr_NoMemory();
    return nullptr;
  }
  codes_install();
  if (!timers_start(cfg.rate_hz, sampler_on_signal)) {
    PyErr_SetString(PyExc_RuntimeError,
                    "spanprof: every real-time signal already has a handler; none is left for the "
                    "sampler's timers");
    return nullptr;
  }
  g_config = cfg;
  stats().handler_ns_max.store(0, std::memory_order_relaxed);  // the max is per start()
  sampler_configure(cfg.gil_only);
  guard_install();
  codes_track(true);
  g_running = true;
  sampler_activate();
  threads_scan(nullptr, 0);  // the calling thread (and every other one) right away
  // Free-threaded builds stop the world for every sys.setprofile() (a new thread would do it
  // twice through the hook), and a fork that catches one deadlocks the child: there the drain's
  // scan arms new threads (when the thread list changes, within 100 ms).
  if constexpr (!py::kFreeThreaded) threads_install_hook();
  drain_start(cfg);
  if (cfg.wall && !wall_start(cfg)) {
    PyErr_SetString(PyExc_RuntimeError, "spanprof: could not start the wall-clock sampler thread");
    // The CPU side runs; stop() undoes it.
    return nullptr;
  }
  Py_RETURN_NONE;
}

}  // namespace

PyObject* agent_start(const Config& cfg) {
  if (g_forked) {
    PyObject* r = agent_after_fork_child();
    if (r == nullptr) return nullptr;
    Py_DECREF(r);
    if (g_running) return PyErr_Format(PyExc_RuntimeError, "spanprof sampler is already running");
  }
  std::lock_guard<std::mutex> lock(*g_lifecycle_mu);
  return start_locked(cfg);
}

PyObject* agent_stop() {
  {
    std::lock_guard<std::mutex> lock(*g_lifecycle_mu);
    if (!g_running) Py_RETURN_NONE;
    if constexpr (!py::kFreeThreaded) threads_remove_hook();
    wall_stop_and_join();  // it reads thread states only under HEAD_LOCK, never needs the GIL
    timers_stop();
    sampler_deactivate_and_wait();
    guard_remove();
    g_running = false;
  }
  Py_BEGIN_ALLOW_THREADS drain_stop_and_join();
  drain_once(_save, false);  // what the handlers wrote before the disarm goes into the aggregate
  Py_END_ALLOW_THREADS codes_track(false);
  Py_RETURN_NONE;
}

bool agent_running() { return g_running; }
const Config& agent_config() { return g_config; }
bool agent_forked() { return g_forked; }

PyObject* agent_after_fork_child() {
  if (!g_forked) Py_RETURN_NONE;
  g_forked = false;
  g_lifecycle_mu = new std::mutex;  // the parent's may have been held at fork; leaked
  timers_after_fork_child();
  wall_after_fork_child();
  tags_after_fork();
  drain_after_fork_child();
  stats().reset();
  if (g_was_running_at_fork) {
    std::lock_guard<std::mutex> lock(*g_lifecycle_mu);
    return start_locked(g_config);
  }
  Py_RETURN_NONE;
}

void agent_emergency_stop() {
  wall_stop_and_join();  // it needs no GIL; it must not read a finalized interpreter
  sampler_deactivate_and_wait();
  if (g_running) timers_stop();
}

uint64_t agent_probe(int iterations) {
  std::lock_guard<std::mutex> lock(*g_lifecycle_mu);
  if (!py::tstate_source_ready()) return 0;
  if (!ring().init(kRingBytes)) return 0;
  codes_install();
  guard_install();
  const uint64_t ns = sampler_probe(iterations);
  if (!g_running) guard_remove();
  return ns;
}

}  // namespace spanprof
