// spanprof._native: the CPython binding of the agent core (contract in ARCHITECTURE.md).
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "codes.h"
#include "config.h"
#include "drain.h"
#include "guard.h"
#include "lifecycle.h"
#include "linetable.h"
#include "profile.h"
#include "pyprofile.h"
#include "record.h"
#include "sampler.h"
#include "stats.h"
#include "tags.h"
#include "tasks.h"
#include "timers.h"

namespace spanprof {

Stats& stats() {
  static Stats s;
  return s;
}

namespace {

constexpr size_t kMaxTags = 64;
constexpr Py_ssize_t kMaxTagBytes = 1024;

PyObject* mod_start(PyObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {
      "rate_hz", "gil_only", "report_pid", "report_thread_id", "report_thread_name",
      "line_no", "cpu",      "wall",       "wall_tasks",       nullptr};
  Config cfg;
  int gil_only = 1, pid = 0, tid = 0, tname = 0, cpu = 1, wall = 0, wall_tasks = 1;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|ippppippp:start", const_cast<char**>(kwlist),
                                   &cfg.rate_hz, &gil_only, &pid, &tid, &tname, &cfg.line_no, &cpu,
                                   &wall, &wall_tasks)) {
    return nullptr;
  }
  cfg.cpu = cpu;
  cfg.wall = wall;
  cfg.wall_tasks = wall_tasks;
  if (cfg.line_no < 0 || cfg.line_no > 2) {
    PyErr_SetString(PyExc_ValueError,
                    "line_no must be 0 (current line), 1 (first line) or 2 (no line)");
    return nullptr;
  }
  cfg.gil_only = gil_only;
  cfg.report_pid = pid;
  cfg.report_thread_id = tid;
  cfg.report_thread_name = tname;
  return agent_start(cfg);
}

PyObject* mod_stop(PyObject*, PyObject*) { return agent_stop(); }

// What the agent can do on this interpreter (spanprof doctor).
PyObject* mod_capabilities(PyObject*, PyObject*) {
  tasks_prepare();  // idempotent; learns the Task layout if it has not been yet
  const bool tasks = stats().wall_tasks_layout.load(std::memory_order_relaxed) != 0;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%ld/syscall",
                static_cast<long>(syscall(SYS_gettid)));
  const bool proc = access(path, R_OK) == 0;
  return Py_BuildValue(
      "{s:s,s:s,s:s,s:i}", "wall-clock threads", "yes (blocked threads read in place, no signal)",
      "asyncio tasks",
      tasks ? "yes (Task layout learned from a probe task)"
            : "no: the Task layout was not recognised",
      "wait classification",
      proc ? "yes (/proc/self/task/<tid>/syscall)" : "no: /proc/self/task/<tid>/syscall unreadable",
      "max frames", static_cast<int>(kMaxFrames));
}

PyObject* mod_is_running(PyObject*, PyObject*) { return PyBool_FromLong(agent_running()); }

PyObject* mod_collect(PyObject*, PyObject*) {
  if (agent_forked()) {
    PyObject* r = agent_after_fork_child();
    if (r == nullptr) return nullptr;
    Py_DECREF(r);
  }
  ProfilePair p;
  Py_BEGIN_ALLOW_THREADS p = drain_take_profiles(_save);
  Py_END_ALLOW_THREADS PyObject* cpu = wrap_profile(p.cpu);
  if (cpu == nullptr) {
    delete p.wall;
    return nullptr;
  }
  if (p.wall != nullptr) {
    PyObject* wall = wrap_profile(p.wall);
    if (wall == nullptr) {
      Py_DECREF(cpu);
      return nullptr;
    }
    profile_attach_wall(cpu, wall);
  }
  return cpu;
}

PyObject* mod_stats(PyObject*, PyObject*) {
  PyObject* d = PyDict_New();
  if (d == nullptr) return nullptr;
  auto put = [d](const char* k, uint64_t v) {
    PyObject* o = PyLong_FromUnsignedLongLong(v);
    if (o == nullptr) return false;
    const int rc = PyDict_SetItemString(d, k, o);
    Py_DECREF(o);
    return rc == 0;
  };
  bool ok = true;
#define SPANPROF_PUT(name) ok = ok && put(#name, stats().name.load(std::memory_order_relaxed));
  SPANPROF_STATS(SPANPROF_PUT)
#undef SPANPROF_PUT
  const Stats& s = stats();
  const uint64_t dropped = s.samples_dropped_ring_full.load() + s.samples_dropped_no_tstate.load() +
                           s.samples_dropped_not_gil.load() + s.samples_dropped_empty.load() +
                           s.samples_dropped_unsettled.load() + s.samples_dropped_fault.load() +
                           s.samples_dropped_no_frames.load();
  ok = ok && put("samples_dropped", dropped);
  ok = ok && put("signal", static_cast<uint64_t>(timers_signal()));
  ok = ok && put("timers_active", timers_active());
  ok = ok && put("code_cache_size", codes_cached());
  ok = ok && put("ring_bytes", ring().capacity());
  ok = ok && put("ring_used_bytes", ring().used_bytes());
  ok = ok && put("max_frames", kMaxFrames);
  ok = ok && put("running", agent_running() ? 1 : 0);
  ok = ok && put("rate_hz", static_cast<uint64_t>(agent_config().rate_hz));
  ok = ok && put("free_threaded", py::kFreeThreaded ? 1 : 0);
  if (!ok) {
    Py_DECREF(d);
    return nullptr;
  }
  return d;
}

PyObject* mod_handler_histogram(PyObject*, PyObject*) {
  PyObject* list = PyList_New(Stats::kHistBuckets);
  if (list == nullptr) return nullptr;
  for (Py_ssize_t i = 0; i < Stats::kHistBuckets; ++i) {
    PyObject* v = PyLong_FromUnsignedLongLong(stats().handler_ns_hist[i].load());
    if (v == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, i, v);
  }
  return list;
}

PyObject* mod_set_span_var(PyObject*, PyObject* var) { return set_span_var(var); }

bool utf8_limited(PyObject* o, const char* what, std::string* out) {
  if (!PyUnicode_Check(o)) {
    PyErr_Format(PyExc_TypeError, "thread tag %s must be str, got %.80s", what,
                 Py_TYPE(o)->tp_name);
    return false;
  }
  Py_ssize_t n = 0;
  const char* s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s == nullptr) return false;
  if (n > kMaxTagBytes) {
    PyErr_Format(PyExc_ValueError, "thread tag %s longer than %zd bytes", what, kMaxTagBytes);
    return false;
  }
  out->assign(s, static_cast<size_t>(n));
  return true;
}

PyObject* mod_set_thread_tags(PyObject*, PyObject* args) {
  unsigned long long ident = 0;
  PyObject* tags = nullptr;
  if (!PyArg_ParseTuple(args, "KO:set_thread_tags", &ident, &tags)) return nullptr;
  TagList list;
  if (tags != Py_None) {
    if (!PyDict_Check(tags)) {
      PyErr_SetString(PyExc_TypeError, "set_thread_tags() takes a dict[str, str] or None");
      return nullptr;
    }
    if (static_cast<size_t>(PyDict_Size(tags)) > kMaxTags) {
      PyErr_Format(PyExc_ValueError, "at most %zu thread tags", kMaxTags);
      return nullptr;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(tags, &pos, &k, &v)) {
      std::string ks, vs;
      if (!utf8_limited(k, "key", &ks) || !utf8_limited(v, "value", &vs)) return nullptr;
      list.emplace_back(std::move(ks), std::move(vs));
    }
  }
  if (!tags_set(ident, std::move(list))) {
    PyErr_SetString(PyExc_RuntimeError, "spanprof: thread tag table is full");
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* mod_after_fork_child(PyObject*, PyObject*) { return agent_after_fork_child(); }

PyObject* mod_atexit(PyObject*, PyObject*) { return agent_stop(); }

PyObject* mod_probe(PyObject*, PyObject* arg) {
  const long n = PyLong_AsLong(arg);
  if (n < 0 || n > 1000000) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "0..1000000 iterations");
    return nullptr;
  }
  return PyLong_FromUnsignedLongLong(agent_probe(static_cast<int>(n)));
}

PyObject* mod_fault_guard_selftest(PyObject*, PyObject*) {
  return PyLong_FromLong(guard_selftest());
}

// Tests: decodes the line of every instruction of `code` from a copy of its line table and
// compares with the interpreter's own PyCode_Addr2Line. Returns (instructions, mismatches).
PyObject* mod_addr2line_check(PyObject*, PyObject* code) {
  if (!PyCode_Check(code)) {
    PyErr_SetString(PyExc_TypeError, "_addr2line_check() takes a code object");
    return nullptr;
  }
  const py::CodeFields f = py::code_fields(code);
  PyObject* co_code = PyObject_GetAttrString(code, "co_code");
  if (co_code == nullptr) return nullptr;
  const Py_ssize_t size = PyBytes_Size(co_code);
  Py_DECREF(co_code);
  if (size < 0) return nullptr;
  long mismatches = 0, n = 0;
  for (int off = -2; off < size; off += 2, ++n) {
    const int ours =
        addr2line(py::kLineTableFormat, f.linetable, f.linetable_size, f.firstlineno, off);
    const int theirs = PyCode_Addr2Line(reinterpret_cast<PyCodeObject*>(code), off);
    if (ours != theirs) ++mismatches;
  }
  return Py_BuildValue("(ll)", n, mismatches);
}

void c_atexit() { agent_emergency_stop(); }

PyMethodDef kMethods[] = {
    {"start", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(mod_start)),
     METH_VARARGS | METH_KEYWORDS,
     "start(rate_hz=100, gil_only=True, report_pid=False, report_thread_id=False, "
     "report_thread_name=False, line_no=0)"},
    {"stop", mod_stop, METH_NOARGS, "stop(): disarm, drain; the aggregate is kept for collect()"},
    {"capabilities", mod_capabilities, METH_NOARGS,
     "capabilities() -> dict[str, str | int]: what the agent can do on this interpreter"},
    {"is_running", mod_is_running, METH_NOARGS, "is_running() -> bool"},
    {"collect", mod_collect, METH_NOARGS, "collect() -> Profile since the last collect()"},
    {"stats", mod_stats, METH_NOARGS, "stats() -> dict[str, int] of self-metrics"},
    {"set_span_var", mod_set_span_var, METH_O,
     "set_span_var(var: ContextVar | None): the variable whose SpanRef labels samples"},
    {"set_thread_tags", mod_set_thread_tags, METH_VARARGS,
     "set_thread_tags(thread_ident, tags: dict[str, str] | None)"},
    {"after_fork_child", mod_after_fork_child, METH_NOARGS,
     "after_fork_child(): re-arm in a fork child with an empty aggregate"},
    {"_atexit", mod_atexit, METH_NOARGS, nullptr},
    {"handler_histogram", mod_handler_histogram, METH_NOARGS,
     "handler_histogram() -> list[int]: samples by handler time; for k >= 4 bucket k covers "
     "[(4 + k % 4) << (k // 4 - 2), (5 + k % 4) << (k // 4 - 2)) ns, buckets 0-3 are 0-3 ns"},
    {"_fault_guard_selftest", mod_fault_guard_selftest, METH_NOARGS,
     "Reads an unmapped page and a mapped one through the handler's fault guard; 3 when the "
     "first fault was caught and the clean read passed."},
    {"_addr2line_check", mod_addr2line_check, METH_O,
     "_addr2line_check(code) -> (instructions, mismatches) against PyCode_Addr2Line"},
    {"_sample_cost_probe", mod_probe, METH_O,
     "_sample_cost_probe(n) -> ns: the handler's sampling path run n times on this thread "
     "(benchmarks only; writes into the ring)"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef kModule = {PyModuleDef_HEAD_INIT,
                       "spanprof._native",
                       "spanprof agent core: in-process CPU sampler and encoders",
                       -1,
                       kMethods,
                       nullptr,
                       nullptr,
                       nullptr,
                       nullptr};

// atexit.register(_native._atexit) and os.register_at_fork(after_in_child=after_fork_child).
bool register_hooks(PyObject* module) {
  PyObject* atexit = PyImport_ImportModule("atexit");
  if (atexit == nullptr) return false;
  PyObject* fn = PyObject_GetAttrString(module, "_atexit");
  PyObject* r = fn != nullptr ? PyObject_CallMethod(atexit, "register", "O", fn) : nullptr;
  Py_XDECREF(fn);
  Py_DECREF(atexit);
  if (r == nullptr) return false;
  Py_DECREF(r);
  PyObject* os = PyImport_ImportModule("os");
  if (os == nullptr) return false;
  PyObject* child = PyObject_GetAttrString(module, "after_fork_child");
  PyObject* reg = PyObject_GetAttrString(os, "register_at_fork");
  PyObject* kw = child != nullptr ? Py_BuildValue("{s:O}", "after_in_child", child) : nullptr;
  PyObject* empty = PyTuple_New(0);
  r = (reg != nullptr && kw != nullptr && empty != nullptr) ? PyObject_Call(reg, empty, kw)
                                                            : nullptr;
  Py_XDECREF(empty);
  Py_XDECREF(kw);
  Py_XDECREF(reg);
  Py_XDECREF(child);
  Py_DECREF(os);
  if (r == nullptr) return false;
  Py_DECREF(r);
  return Py_AtExit(c_atexit) == 0;
}

}  // namespace
}  // namespace spanprof

PyMODINIT_FUNC PyInit__native() {
  using namespace spanprof;
  PyObject* m = PyModule_Create(&kModule);
  if (m == nullptr) return nullptr;
  if (!init_profile_type(m)) goto fail;
  if (!init_spanref_type(m)) goto fail;
  if (PyModule_AddIntConstant(m, "MAX_FRAMES", kMaxFrames) != 0) goto fail;
  if (PyModule_AddIntConstant(m, "FREE_THREADED", py::kFreeThreaded ? 1 : 0) != 0) goto fail;
#ifdef Py_GIL_DISABLED
  // Every entry point is safe without the GIL: importing must not turn it back on.
  if (PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) != 0) goto fail;
#endif
  if (!register_hooks(m)) goto fail;
  return m;
fail:
  Py_DECREF(m);
  return nullptr;
}
