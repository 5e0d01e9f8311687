// Per-version frame walking for the signal handler (see cpython.h for the safety contract).
//
// The handler runs on the interrupted thread itself, so the frame chain cannot change under it.
// Frames linked into the chain hold a strong reference to their code object, so reading the code
// object's header is safe; a frame that is still being initialised is recognised the way CPython's
// own traceback code recognises it and skipped.
#include <cstddef>

#include "cpython.h"

namespace spanprof::py {
namespace {

inline bool is_code(const PyObject* o) { return o != nullptr && Py_TYPE(o) == &PyCode_Type; }

inline uint32_t key_of(const PyCodeObject* co) {
  return code_key(co->co_firstlineno, co->co_name, co->co_filename);
}

#if PY_VERSION_HEX >= 0x030B0000
using IFrame = _PyInterpreterFrame;

inline IFrame* top_frame(PyThreadState* ts) {
#if PY_VERSION_HEX >= 0x030D0000
  return ts->current_frame;
#else
  return ts->cframe != nullptr ? ts->cframe->current_frame : nullptr;
#endif
}

inline PyObject* frame_code(const IFrame* f) {
#if PY_VERSION_HEX >= 0x030D0000
  return f->f_executable;  // a code object, or None for some C-level frames
#else
  return reinterpret_cast<PyObject*>(f->f_code);
#endif
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
  if (d.free_threaded != 0) return "free-threaded runtime";
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
  if (d.interpreter_state.gil_runtime_state_locked != offsetof(PyInterpreterState, _gil.locked) ||
      d.interpreter_state.gil_runtime_state_holder !=
          offsetof(PyInterpreterState, _gil.last_holder)) {
    return "GIL state";
  }
#endif
  return nullptr;
}

#if PY_VERSION_HEX >= 0x030B0000

// The interpreter may publish a new frame as current before it stores the frame's `previous`
// (plain stores, reordered by the compiler), so a handler can find stale data-stack bytes there;
// CI caught count_frames() following such a pointer (0x3, 0x1000013) into a SIGSEGV. Only
// aligned user-space addresses are followed; anything else ends the chain (counted as truncated).
inline bool plausible(const IFrame* f) {
  const auto a = reinterpret_cast<uintptr_t>(f);
  return a >= 0x10000 && a < (uintptr_t{1} << 47) && (a & 7) == 0;
}

// Frames sit contiguously in the thread's data stack, so counting them is cheap: the exact count.
uint32_t frame_bound(PyThreadState* ts, uint32_t cap) {
  uint32_t n = 0;
  for (IFrame* f = top_frame(ts); plausible(f) && n <= cap; f = f->previous) ++n;
  return n;
}

uint32_t walk_frames(PyThreadState* ts, RawFrame* out, uint32_t cap, WalkCounts* counts) {
  uint32_t n = 0;
  IFrame* f = top_frame(ts);
  for (; plausible(f) && n < cap; f = f->previous) {
#if PY_VERSION_HEX >= 0x030C0000
    if (f->owner == FRAME_OWNED_BY_CSTACK) continue;  // shim frame between C and Python
#endif
    PyObject* exe = frame_code(f);
#if PY_VERSION_HEX >= 0x030D0000
    if (exe == Py_None) continue;
#endif
    if (!is_code(exe)) {
      ++counts->invalid;
      continue;
    }
    auto* co = reinterpret_cast<PyCodeObject*>(exe);
    const _Py_CODEUNIT* first = _PyCode_CODE(co);
    const _Py_CODEUNIT* instr = frame_instr(f);
    if (f->owner != FRAME_OWNED_BY_GENERATOR && instr < first + co->_co_firsttraceable) {
      ++counts->incomplete;
      continue;
    }
    const intptr_t idx = instr - first;
    out[n].code = reinterpret_cast<uintptr_t>(co);
    out[n].lasti = idx < 0 ? -1 : static_cast<int32_t>(idx * sizeof(_Py_CODEUNIT));
    out[n].key = key_of(co);
    ++n;
  }
  if (f != nullptr) counts->truncated = 1;  // past the cap, or an implausible link
  return n;
}

#else  // 3.9, 3.10: the PyFrameObject chain

// Every frame on the chain went through _PyEval_EvalFrameDefault, which counts itself in
// recursion_depth before it links the frame as ts->frame and uncounts after unlinking it; C code
// that guards its own recursion counts there too, so the bound can exceed the chain (the record
// then has spare room). A frame evaluator that bypasses the count (PEP 523) could make it short:
// walk_frames() then stops at the bound and the sample is marked truncated and counted.
uint32_t frame_bound(PyThreadState* ts, uint32_t cap) {
  if (ts->frame == nullptr) return 0;
  const int depth = ts->recursion_depth;
  const uint64_t bound = depth < 1 ? 1 : static_cast<uint64_t>(depth) + 1;
  return bound > cap ? cap + 1 : static_cast<uint32_t>(bound);
}

uint32_t walk_frames(PyThreadState* ts, RawFrame* out, uint32_t cap, WalkCounts* counts) {
  uint32_t n = 0;
  PyFrameObject* f = ts->frame;
  for (; f != nullptr && n < cap; f = f->f_back) {
    PyCodeObject* co = f->f_code;
    if (!is_code(reinterpret_cast<PyObject*>(co))) {
      ++counts->invalid;
      continue;
    }
    out[n].code = reinterpret_cast<uintptr_t>(co);
#if PY_VERSION_HEX >= 0x030A0000
    // 3.10 counts f_lasti in code units (-1 before the first instruction).
    out[n].lasti = f->f_lasti < 0 ? -1 : f->f_lasti * 2;
#else
    out[n].lasti = f->f_lasti < 0 ? -1 : f->f_lasti;
#endif
    out[n].key = key_of(co);
    ++n;
  }
  if (f != nullptr) counts->truncated = 1;
  return n;
}

#endif

}  // namespace spanprof::py
