#include "threads.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "guard.h"
#include "tags.h"
#include "timers.h"

namespace spanprof {
namespace {

PyObject* threading_module() {
  PyObject* name = PyUnicode_FromString("threading");
  PyObject* mod = name != nullptr ? PyImport_GetModule(name) : nullptr;
  Py_XDECREF(name);
  if (mod == nullptr) PyErr_Clear();
  return mod;
}

pid_t gettid_() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Threads whose thread state does not carry the kernel tid (py::kStateHasNativeTid false: 3.10).
// threading's Thread objects know it (Thread._native_id, set by the thread itself). Threads
// started outside threading (_thread.start_new_thread, C threads) have no Thread object: their
// thread state's thread_id is their pthread_t, which glibc makes the address of the thread's
// descriptor, and the descriptor holds the kernel tid at a fixed offset, found on the calling
// thread (the first word equal to its own tid), checked against every tid threading knows, and
// read for other threads with safe_read(), so a descriptor already gone fails the read instead of
// faulting. A tid is used only while /proc/self/task/<tid> exists.
class TidFinder {
 public:
  TidFinder() {
    if constexpr (py::kStateHasNativeTid) return;
    const auto self = static_cast<uint64_t>(pthread_self());
    ids_[self] = gettid_();
    PyObject* items = threads_active_items();
    if (items == nullptr) return;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); ++i) {
      PyObject* k = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 0);
      PyObject* v = PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 1);
      PyObject* nid = PyObject_GetAttrString(v, "_native_id");
      if (nid != nullptr && PyLong_Check(nid)) {
        const long long tid = PyLong_AsLongLong(nid);
        const unsigned long long ident = PyLong_AsUnsignedLongLong(k);
        if (!PyErr_Occurred() && tid > 0) {
          ids_[ident] = static_cast<pid_t>(tid);
          // A descriptor offset that disagrees with a tid threading knows is not trusted.
          if (ident != self && offset() >= 0 && descriptor_tid(ident) != static_cast<pid_t>(tid))
            s_offset = -1;
        }
      }
      Py_XDECREF(nid);
      PyErr_Clear();
    }
    Py_DECREF(items);
    ids_[self] = gettid_();  // authoritative (Thread._native_id is the parent's after a fork)
  }

  pid_t tid(PyThreadState* ts) const {
    if constexpr (py::kStateHasNativeTid) {
      return static_cast<pid_t>(py::native_tid(ts));
    } else {
      auto found = ids_.find(ts->thread_id);
      if (found != ids_.end()) return found->second;
      const pid_t t = descriptor_tid(ts->thread_id);
      if (t <= 0) return 0;
      char path[48];
      snprintf(path, sizeof path, "/proc/self/task/%d", static_cast<int>(t));
      return access(path, F_OK) == 0 ? t : 0;
    }
  }

 private:
  static ptrdiff_t offset() {
    if (s_offset != -2) return s_offset;
    s_offset = -1;
    const auto* self = reinterpret_cast<const pid_t*>(pthread_self());
    const pid_t mine = gettid_();
    for (size_t i = 0; i < 1024 / sizeof(pid_t); ++i) {
      if (self[i] == mine) {
        s_offset = static_cast<ptrdiff_t>(i * sizeof(pid_t));
        break;
      }
    }
    return s_offset;
  }
  static pid_t descriptor_tid(uint64_t ident) {
    const ptrdiff_t off = offset();
    pid_t tid = 0;
    if (off < 0 || ident == 0 ||
        !safe_read(reinterpret_cast<const void*>(ident + static_cast<uint64_t>(off)), &tid,
                   sizeof tid))
      return 0;
    return tid;
  }
  static inline ptrdiff_t s_offset = -2;  // -2 not probed yet, -1 unusable
  std::unordered_map<uint64_t, pid_t> ids_;
};

// ---- arming new threads at their first Python call -----------------------------------------
// The drain's scan runs when the thread list changed or once a second; a thread that lives
// shorter than the gap would never be armed. threading's documented profile hook
// (threading.setprofile) runs in every new threading.Thread before run(): ours arms the calling
// thread, restores the hook the user had (if any) for this thread and forwards the first event to
// it. Installed by start(), the user's hook restored by stop().

// New threads read the saved hook while stop() may replace it: on free-threaded builds at the same
// time, so a mutex (never held across a Python call) guards the pointer and its reference.
std::mutex g_hook_mu;
PyObject* g_prev_thread_hook = nullptr;  // the hook threading had before start()
PyObject* g_our_thread_hook = nullptr;   // our hook (a PyCFunction)

PyObject* saved_hook() {  // new reference; None when there was none
  std::lock_guard<std::mutex> lock(g_hook_mu);
  PyObject* prev = g_prev_thread_hook != nullptr ? g_prev_thread_hook : Py_None;
  Py_INCREF(prev);
  return prev;
}

void set_saved_hook(PyObject* hook) {  // steals `hook` (may be nullptr)
  PyObject* old;
  {
    std::lock_guard<std::mutex> lock(g_hook_mu);
    old = g_prev_thread_hook;
    g_prev_thread_hook = hook;
  }
  Py_XDECREF(old);
}

PyObject* thread_start_hook(PyObject*, PyObject* args) {
  threads_register_current();
  PyObject* prev = saved_hook();
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

}  // namespace

void threads_scan(PyThreadState* exclude, uint64_t generation) {
  const TidFinder tids;
  std::unordered_set<uint64_t> seen;    // thread-state ids with a timer
  std::unordered_set<uint64_t> idents;  // every thread's ident, for the tag table
  py::for_each_thread(PyInterpreterState_Main(), [&](PyThreadState* ts) {
    idents.insert(ts->thread_id);
    if (ts == exclude) return;
    const pid_t tid = tids.tid(ts);
    if (tid == 0) return;
    seen.insert(ts->id);
    timers_ensure(ts->id, tid);
  });
  timers_retain([&seen](uint64_t key) { return seen.count(key) != 0; });
  tags_collect(idents, generation);
}

PyObject* threads_active_items() {
  PyObject* mod = threading_module();
  if (mod == nullptr) return nullptr;
  PyObject* active = PyObject_GetAttrString(mod, "_active");
  Py_DECREF(mod);
  PyObject* items = active != nullptr && PyDict_Check(active) ? PyDict_Items(active) : nullptr;
  Py_XDECREF(active);
  if (items == nullptr) PyErr_Clear();
  return items;
}

void threads_register_current() {
  PyThreadState* ts = PyThreadState_Get();
  timers_ensure(ts->id, gettid_());
}

void threads_install_hook() {
  PyObject* threading = threading_module();
  if (threading == nullptr) return;  // threads started later are found by the scan
  if (g_our_thread_hook == nullptr) g_our_thread_hook = PyCFunction_New(&kThreadStartHook, nullptr);
  PyObject* prev = PyObject_GetAttrString(threading, "_profile_hook");
  if (prev == nullptr) PyErr_Clear();
  if (g_our_thread_hook != nullptr && prev != g_our_thread_hook) {
    if (prev == Py_None) Py_CLEAR(prev);
    set_saved_hook(prev);
    prev = nullptr;
    PyObject* r = PyObject_CallMethod(threading, "setprofile", "O", g_our_thread_hook);
    if (r == nullptr) PyErr_Clear();
    Py_XDECREF(r);
  }
  Py_XDECREF(prev);
  Py_DECREF(threading);
}

void threads_remove_hook() {
  PyObject* threading = threading_module();
  if (threading == nullptr) return;
  PyObject* cur = PyObject_GetAttrString(threading, "_profile_hook");
  if (cur == nullptr) PyErr_Clear();
  if (cur != nullptr && cur == g_our_thread_hook) {  // nobody replaced ours meanwhile
    PyObject* prev = saved_hook();
    PyObject* r = PyObject_CallMethod(threading, "setprofile", "O", prev);
    Py_DECREF(prev);
    if (r == nullptr) PyErr_Clear();
    Py_XDECREF(r);
  }
  Py_XDECREF(cur);
  set_saved_hook(nullptr);
  Py_DECREF(threading);
}

}  // namespace spanprof
