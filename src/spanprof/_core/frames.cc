// Per-version frame walking for the signal handler (see cpython.h for the safety contract).
//
// The handler runs on the interrupted thread itself, so the frame chain cannot change under it.
// Frames linked into the chain hold a strong reference to their code object, so reading the code
// object's header is safe; a frame that is still being initialised is recognised the way CPython's
// own traceback code recognises it and skipped.
#include <opcode.h>

#include <cstddef>
#include <cstring>

#include "cpython.h"

namespace spanprof::py {
namespace {

inline bool is_code(const PyObject* o) { return o != nullptr && Py_TYPE(o) == &PyCode_Type; }

#if PY_VERSION_HEX < 0x030F0000
pthread_key_t g_tss_key;
#endif

#if PY_VERSION_HEX >= 0x030B0000
using IFrame = _PyInterpreterFrame;

inline bool plausible(const IFrame* f) {
  const auto a = reinterpret_cast<uintptr_t>(f);
  return a >= 0x10000 && a < (uintptr_t{1} << 47) && (a & 7) == 0;
}

// 3.12+ run a shim frame on the C stack below each entry into the interpreter; it is the top
// while the interpreter enters and leaves, and is recognised by its fixed code.
// 3.14 tag the executable's reference in its low bits (deferred reference counting).
inline PyObject* frame_code(const IFrame* f) {
#if PY_VERSION_HEX >= 0x030E0000
  return reinterpret_cast<PyObject*>(f->f_executable.bits & ~uintptr_t{3});
#elif PY_VERSION_HEX >= 0x030D0000
  return f->f_executable;  // a code object, or None for some C-level frames
#else
  return reinterpret_cast<PyObject*>(f->f_code);
#endif
}

// Frames the interpreter links in for itself: the entry shim below each entry into the
// interpreter (3.12+), 3.14's other interpreter-owned frames.
inline bool interpreter_owned([[maybe_unused]] const IFrame* f) {
#if PY_VERSION_HEX >= 0x030F0000
  return f->owner == FRAME_OWNED_BY_INTERPRETER;
#elif PY_VERSION_HEX >= 0x030E0000
  return f->owner == FRAME_OWNED_BY_INTERPRETER || f->owner == FRAME_OWNED_BY_CSTACK;
#elif PY_VERSION_HEX >= 0x030C0000
  return f->owner == FRAME_OWNED_BY_CSTACK;
#else
  return false;
#endif
}

inline bool is_entry_shim([[maybe_unused]] PyThreadState* ts, [[maybe_unused]] const IFrame* f) {
#if PY_VERSION_HEX >= 0x030D0000
  return interpreter_owned(f) && frame_code(f) == Py_None;
#elif PY_VERSION_HEX >= 0x030C0000
  return f->owner == FRAME_OWNED_BY_CSTACK &&
         f->f_code == reinterpret_cast<PyCodeObject*>(ts->interp->interpreter_trampoline);
#else
  return false;
#endif
}

// A generator's frame, linked to its caller: a stale pointer to a suspended generator (whose
// `previous` the interpreter clears when it yields) must not pass. The stress test also caught
// 3.12 with an executing generator on top whose `previous` was still null (while the interpreter
// entered it from C); such a sample starts at the caller instead.
inline bool is_generator_frame(const IFrame* f) {
  if (f->owner != FRAME_OWNED_BY_GENERATOR) return false;
  const auto* gen = reinterpret_cast<const PyGenObject*>(reinterpret_cast<const char*>(f) -
                                                         offsetof(PyGenObject, gi_iframe));
  const PyTypeObject* t = Py_TYPE(reinterpret_cast<const PyObject*>(gen));
  if (t != &PyGen_Type && t != &PyCoro_Type && t != &PyAsyncGen_Type) return false;
  return f->previous != nullptr;
}

inline uintptr_t addr(const void* p) { return reinterpret_cast<uintptr_t>(p); }

// Where an executing frame can live: the used part of the thread's current data-stack chunk,
// inside a generator or coroutine object, or (3.12+) the entry shim. The last two read memory
// `f` points at, which may be unmapped: the sampler's fault guard covers that.
// A frame can also sit in the previous chunk: 3.12+ publish the caller before they pop (and
// free) the callee's chunk, so a return across a chunk boundary briefly has the top below it.
inline bool settled(PyThreadState* ts, const IFrame* f) {
  const _PyStackChunk* chunk = ts->datastack_chunk;
  if (addr(f) >= addr(chunk) && addr(f) < addr(ts->datastack_top)) return true;
  if (!plausible(f)) return false;
  if (is_generator_frame(f) || is_entry_shim(ts, f)) return true;
  const _PyStackChunk* prev = chunk != nullptr ? chunk->previous : nullptr;
  return prev != nullptr && addr(f) >= addr(prev) && addr(f) < addr(&prev->data[prev->top]);
}

struct Top {
  IFrame* frame = nullptr;  // where the walk starts; null: no Python frame
  bool unsettled = false;   // the chain cannot be trusted: drop the sample
  bool transition = false;  // caught entering or leaving a frame; starts at the caller
};

// The newest frame is not always settled when a signal lands:
// - 3.11 and 3.12 point tstate->cframe at a new _PyCFrame on the C stack before they store its
//   current_frame, which until then holds whatever that stack slot held before (the stress test
//   found C-stack addresses, stale frames and small integers there). The frame being entered
//   has not started; the caller, still current in the previous cframe, is where the time goes.
// - 3.11 pops a returning frame off the data stack before it publishes the caller. The popped
//   frame lies above the data-stack top with its `previous` link intact (_PyFrame_Clear leaves
//   it), and that caller is the frame about to resume. When the popped frame was the first of a
//   chunk, the chunk is freed: that case looks like the one above and is attributed to the
//   previous cframe's frame, missing the frames in between (it needs a return across a chunk
//   boundary, 16 KiB of frames).
// Anything else (3.13 publishes in a safe order) is counted and dropped.
inline Top top_frame(PyThreadState* ts) {
  Top t;
#if PY_VERSION_HEX >= 0x030D0000
  IFrame* f = ts->current_frame;
  if (f == nullptr) return t;
  if (settled(ts, f)) {
    t.frame = f;
  } else {
    t.unsettled = true;
  }
#else
  _PyCFrame* cf = ts->cframe;
  if (cf == nullptr) return t;
  IFrame* f = cf->current_frame;
  if (f == nullptr && cf->previous == nullptr) return t;  // root cframe: no Python frame
  if (settled(ts, f)) {
    t.frame = f;
    return t;
  }
  IFrame* caller = nullptr;
#if PY_VERSION_HEX < 0x030C0000
  if (addr(f) >= addr(ts->datastack_top) && addr(f) < addr(ts->datastack_limit))
    caller = f->previous;  // the 3.11 return window
#endif
  if (!settled(ts, caller) && cf->previous != nullptr) {
    caller = cf->previous->current_frame;
    if (caller == nullptr) return t;  // entering the thread's first Python frame
  }
  if (settled(ts, caller)) {
    t.frame = caller;
    t.transition = true;
  } else {
    t.unsettled = true;
  }
#endif
  return t;
}

// The first instruction of the bytecode `f` executes: free-threaded 3.14+ give each thread its own
// copy of a code object's bytecode (same layout, so offsets agree).
inline const _Py_CODEUNIT* bytecode_start([[maybe_unused]] const IFrame* f, PyCodeObject* co) {
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030E0000
  const _PyCodeArray* tlbc = co->co_tlbc;
  if (f->tlbc_index > 0 && tlbc != nullptr && f->tlbc_index < tlbc->size)
    return reinterpret_cast<const _Py_CODEUNIT*>(tlbc->entries[f->tlbc_index]);
#endif
  return _PyCode_CODE(co);
}

inline const _Py_CODEUNIT* frame_instr(const IFrame* f) {
#if PY_VERSION_HEX >= 0x030D0000
  return f->instr_ptr;  // the instruction executing or about to begin
#else
  return f->prev_instr;  // the last instruction started
#endif
}

static_assert(sizeof(_Py_CODEUNIT) == 2);
#endif

}  // namespace

const char* layout_mismatch() {
#if PY_VERSION_HEX >= 0x030D0000
  // The interpreter publishes its own offsets for out-of-process tools; compare them with the
  // headers this extension was compiled against (a different 3.13.x could move a field).
  const _Py_DebugOffsets& d = _PyRuntime.debug_offsets;
  if ((d.free_threaded != 0) != kFreeThreaded) return "free-threaded (Py_GIL_DISABLED) runtime";
  if (d.thread_state.current_frame != offsetof(PyThreadState, current_frame) ||
      d.thread_state.native_thread_id != offsetof(PyThreadState, native_thread_id) ||
      d.thread_state.thread_id != offsetof(PyThreadState, thread_id)) {
    return "PyThreadState";
  }
  if (d.interpreter_frame.previous != offsetof(_PyInterpreterFrame, previous) ||
      d.interpreter_frame.executable != offsetof(_PyInterpreterFrame, f_executable) ||
      d.interpreter_frame.instr_ptr != offsetof(_PyInterpreterFrame, instr_ptr) ||
      d.interpreter_frame.owner != offsetof(_PyInterpreterFrame, owner)) {
    return "_PyInterpreterFrame";
  }
  if (d.code_object.filename != offsetof(PyCodeObject, co_filename) ||
      d.code_object.name != offsetof(PyCodeObject, co_name) ||
      d.code_object.qualname != offsetof(PyCodeObject, co_qualname) ||
      d.code_object.firstlineno != offsetof(PyCodeObject, co_firstlineno) ||
      d.code_object.co_code_adaptive != offsetof(PyCodeObject, co_code_adaptive)) {
    return "PyCodeObject";
  }
  // (relative to the interpreter state, which embeds its own GIL as _gil)
  if (!kFreeThreaded &&
      (d.interpreter_state.gil_runtime_state_locked != offsetof(PyInterpreterState, _gil.locked) ||
       d.interpreter_state.gil_runtime_state_holder !=
           offsetof(PyInterpreterState, _gil.last_holder))) {
    return "GIL state";
  }
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX >= 0x030E0000
  if (d.interpreter_frame.tlbc_index != offsetof(_PyInterpreterFrame, tlbc_index) ||
      d.code_object.co_tlbc != offsetof(PyCodeObject, co_tlbc)) {
    return "thread-local bytecode";
  }
#endif
#endif
  return nullptr;
}

// Reads another thread's frames (wall sampler): not instrumented, see tasks.cc.
__attribute__((no_sanitize_address)) StackKey stack_key(PyThreadState* ts) {
  StackKey k;
  k.context = reinterpret_cast<uintptr_t>(ts->context);
#if PY_VERSION_HEX >= 0x030D0000
  const IFrame* f = ts->current_frame;
#elif PY_VERSION_HEX >= 0x030B0000
  const _PyCFrame* cf = ts->cframe;
  const IFrame* f = cf != nullptr ? cf->current_frame : nullptr;
#else
  const PyFrameObject* f = ts->frame;
#endif
  k.frame = reinterpret_cast<uintptr_t>(f);
#if PY_VERSION_HEX >= 0x030B0000
  if (plausible(f)) k.instr = reinterpret_cast<uintptr_t>(frame_instr(f));
#else
  if (f != nullptr) k.instr = static_cast<uintptr_t>(f->f_lasti);
#endif
  return k;
}

const void* gil_address([[maybe_unused]] PyThreadState* ts) {
#if defined(Py_GIL_DISABLED)
  return nullptr;
#elif PY_VERSION_HEX >= 0x030C0000
  return ts->interp->ceval.gil;
#else
  return &_PyRuntime.ceval.gil;
#endif
}

void for_each_thread_locked(PyInterpreterState* interp, void (*fn)(PyThreadState*, void*),
                            void* arg) {
#if PY_VERSION_HEX >= 0x030D0000
  PyMutex_Lock(&_PyRuntime.interpreters.mutex);
  for (PyThreadState* ts = interp->threads.head; ts != nullptr; ts = ts->next) fn(ts, arg);
  PyMutex_Unlock(&_PyRuntime.interpreters.mutex);
#elif PY_VERSION_HEX >= 0x030B0000
  PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
  for (PyThreadState* ts = interp->threads.head; ts != nullptr; ts = ts->next) fn(ts, arg);
  PyThread_release_lock(_PyRuntime.interpreters.mutex);
#else
  PyThread_acquire_lock(_PyRuntime.interpreters.mutex, WAIT_LOCK);
  for (PyThreadState* ts = interp->tstate_head; ts != nullptr; ts = ts->next) fn(ts, arg);
  PyThread_release_lock(_PyRuntime.interpreters.mutex);
#endif
}

#if PY_VERSION_HEX >= 0x030B0000
__attribute__((no_sanitize_address)) bool coro_step(PyObject* obj, RawFrame* out,
                                                    PyObject** awaited) {
  *awaited = nullptr;
  const PyTypeObject* t = Py_TYPE(obj);
  if (t != &PyCoro_Type && t != &PyGen_Type) return false;
  auto* gen = reinterpret_cast<PyGenObject*>(obj);
  const int state = gen->gi_frame_state;
#if PY_VERSION_HEX >= 0x030D0000
  if (!FRAME_STATE_SUSPENDED(state)) return false;
#else
  if (state != FRAME_SUSPENDED) return false;
#endif
  auto* f =
      reinterpret_cast<IFrame*>(reinterpret_cast<char*>(gen) + offsetof(PyGenObject, gi_iframe));
  PyObject* exe = frame_code(f);
  if (!is_code(exe)) return false;
  auto* co = reinterpret_cast<PyCodeObject*>(exe);
  const _Py_CODEUNIT* first = bytecode_start(f, co);
  const intptr_t idx = frame_instr(f) - first;
  out->code = reinterpret_cast<uintptr_t>(co);
  out->lasti = idx < 0 ? -1 : static_cast<int32_t>(idx * sizeof(_Py_CODEUNIT));
  out->reserved = 0;
#if PY_VERSION_HEX >= 0x030E0000
  if (state == FRAME_SUSPENDED_YIELD_FROM
#ifdef FRAME_SUSPENDED_YIELD_FROM_LOCKED
      || state == FRAME_SUSPENDED_YIELD_FROM_LOCKED
#endif
  ) {
    // 3.15 keeps a NULL stack reference above the delegate while suspended in it.
    uintptr_t bits = f->stackpointer[-1].bits;
    if ((bits & ~uintptr_t{3}) == 0) bits = f->stackpointer[-2].bits;
    *awaited = reinterpret_cast<PyObject*>(bits & ~uintptr_t{3});
  }
#elif PY_VERSION_HEX >= 0x030D0000
  if (state == FRAME_SUSPENDED_YIELD_FROM && f->stacktop > 0)
    *awaited = f->localsplus[f->stacktop - 1];
#else
  // Suspended inside `await`/`yield from`: the next instruction is RESUME with oparg >= 2.
  uint16_t next;
  std::memcpy(&next, frame_instr(f) + 1, sizeof next);
  const int op = next & 0xFF;
  bool resume = op == RESUME;
#ifdef RESUME_QUICK
  resume = resume || op == RESUME_QUICK;
#endif
#ifdef INSTRUMENTED_RESUME
  resume = resume || op == INSTRUMENTED_RESUME;
#endif
  if (resume && (next >> 8) >= 2 && f->stacktop > 0) *awaited = f->localsplus[f->stacktop - 1];
#endif
  return true;
}
#else
__attribute__((no_sanitize_address)) bool coro_step(PyObject* obj, RawFrame* out,
                                                    PyObject** awaited) {
  *awaited = nullptr;
  const PyTypeObject* t = Py_TYPE(obj);
  if (t != &PyCoro_Type && t != &PyGen_Type) return false;
  PyFrameObject* f = reinterpret_cast<PyGenObject*>(obj)->gi_frame;
  if (f == nullptr || f->f_state != FRAME_SUSPENDED) return false;
  PyCodeObject* co = f->f_code;
  if (!is_code(reinterpret_cast<PyObject*>(co))) return false;
  out->code = reinterpret_cast<uintptr_t>(co);
  out->lasti = f->f_lasti < 0 ? -1 : f->f_lasti * 2;
  out->reserved = 0;
  // Suspended in `yield from`/`await`: the instruction after the last one is YIELD_FROM.
  if (f->f_lasti >= 0 && f->f_stackdepth > 0) {
    const auto* code = reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(co->co_code));
    const Py_ssize_t n = PyBytes_GET_SIZE(co->co_code);
    const Py_ssize_t at = (static_cast<Py_ssize_t>(f->f_lasti) + 1) * 2;
    if (at < n && code[at] == YIELD_FROM) *awaited = f->f_valuestack[f->f_stackdepth - 1];
  }
  return true;
}
#endif

bool tstate_source_ready() {
#if PY_VERSION_HEX >= 0x030F0000
  // Must answer for the calling thread what the handler will see on it.
  return PyGILState_GetThisThreadState() == PyThreadState_Get();
#else
#if PY_VERSION_HEX >= 0x030C0000
  Py_tss_t* key = &_PyRuntime.autoTSSkey;
#else
  Py_tss_t* key = &_PyRuntime.gilstate.autoTSSkey;
#endif
  if (!key->_is_initialized) return false;
  g_tss_key = key->_key;
  return pthread_getspecific(g_tss_key) == PyThreadState_Get();
#endif
}

PyThreadState* this_thread_state() {
#if PY_VERSION_HEX >= 0x030F0000
  return PyGILState_GetThisThreadState();
#else
  return static_cast<PyThreadState*>(pthread_getspecific(g_tss_key));
#endif
}

#if PY_VERSION_HEX >= 0x030B0000

// Frames sit contiguously in the thread's data stack, so counting them is cheap: the exact count.
// Links below a settled top were stored before the frame above them was published; the
// plausibility test on each one is defence in depth (CI once saw a walk fault on 0x3 and
// 0x1000013 before the unsettled-top check existed).
uint32_t frame_bound(PyThreadState* ts, uint32_t cap, WalkStart* start) {
  const Top top = top_frame(ts);
  if (top.unsettled) return kUnsettled;
  start->frame = top.frame;
  start->transition = top.transition;
  uint32_t n = 0;
  for (IFrame* f = top.frame; plausible(f) && n <= cap; f = f->previous) ++n;
  return n;
}

uint32_t walk_frames(const WalkStart& start, RawFrame* out, uint32_t cap, WalkCounts* counts) {
  uint32_t n = 0;
  auto* f = static_cast<IFrame*>(start.frame);
  for (; plausible(f) && n < cap; f = f->previous) {
    if (interpreter_owned(f)) continue;  // shim frame between C and Python
    PyObject* exe = frame_code(f);
#if PY_VERSION_HEX >= 0x030D0000
    if (exe == Py_None) continue;
#endif
    if (!is_code(exe)) {
      ++counts->invalid;
      continue;
    }
    auto* co = reinterpret_cast<PyCodeObject*>(exe);
    const _Py_CODEUNIT* first = bytecode_start(f, co);
    const _Py_CODEUNIT* instr = frame_instr(f);
    if (f->owner != FRAME_OWNED_BY_GENERATOR && instr < first + co->_co_firsttraceable) {
      ++counts->incomplete;
      continue;
    }
    const intptr_t idx = instr - first;
    out[n].code = reinterpret_cast<uintptr_t>(co);
    out[n].lasti = idx < 0 ? -1 : static_cast<int32_t>(idx * sizeof(_Py_CODEUNIT));
    out[n].reserved = 0;
    ++n;
  }
  if (f != nullptr) counts->truncated = 1;  // past the cap, or an implausible link
  return n;
}

#else  // 3.10: the PyFrameObject chain

// Every frame on the chain went through _PyEval_EvalFrameDefault, which counts itself in
// recursion_depth before it links the frame as ts->frame and uncounts after unlinking it; C code
// that guards its own recursion counts there too, so the bound can exceed the chain (the record
// then has spare room). A frame evaluator that bypasses the count (PEP 523) could make it short:
// walk_frames() then stops at the bound and the sample is marked truncated and counted.
uint32_t frame_bound(PyThreadState* ts, uint32_t cap, WalkStart* start) {
  start->frame = ts->frame;
  if (ts->frame == nullptr) return 0;
  const int depth = ts->recursion_depth;
  const uint64_t bound = depth < 1 ? 1 : static_cast<uint64_t>(depth) + 1;
  return bound > cap ? cap + 1 : static_cast<uint32_t>(bound);
}

uint32_t walk_frames(const WalkStart& start, RawFrame* out, uint32_t cap, WalkCounts* counts) {
  uint32_t n = 0;
  auto* f = static_cast<PyFrameObject*>(start.frame);
  for (; f != nullptr && n < cap; f = f->f_back) {
    PyCodeObject* co = f->f_code;
    if (!is_code(reinterpret_cast<PyObject*>(co))) {
      ++counts->invalid;
      continue;
    }
    out[n].code = reinterpret_cast<uintptr_t>(co);
    // 3.10 counts f_lasti in code units (-1 before the first instruction).
    out[n].lasti = f->f_lasti < 0 ? -1 : f->f_lasti * 2;
    out[n].reserved = 0;
    ++n;
  }
  if (f != nullptr) counts->truncated = 1;
  return n;
}

#endif

}  // namespace spanprof::py
