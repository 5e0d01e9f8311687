// The version seam: every read of the interpreter's memory that differs between CPython versions
// or builds (regular / free-threaded) is here or in frames.cc. Compiled against each CPython's own
// headers with Py_BUILD_CORE. Everything marked "handler-safe" only reads memory owned by the
// interrupted thread or by the runtime: no allocation, no locks.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
// pyconfig.h selects <stdatomic.h> for the internal atomics, which g++ cannot compile in C++
// mode. Without HAVE_STD_ATOMIC the headers fall back to the GCC __atomic builtins on structs of
// the same size and layout (a single word), so field offsets are unchanged.
#undef HAVE_STD_ATOMIC
#include "internal/pycore_context.h"
#include "internal/pycore_hamt.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_pystate.h"
#include "internal/pycore_runtime.h"
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_code.h"
#include "internal/pycore_frame.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_interpframe.h"
#include "internal/pycore_tstate.h"
#endif

#include <pthread.h>

#include <cstdint>

#include "linetable.h"

#if PY_VERSION_HEX < 0x030A0000 || PY_VERSION_HEX >= 0x03100000
#error "spanprof supports CPython 3.10 to 3.15"
#endif
#if defined(Py_GIL_DISABLED) && PY_VERSION_HEX < 0x030D0000
#error "free-threaded builds exist from CPython 3.13"
#endif

namespace spanprof::py {

#ifdef Py_GIL_DISABLED
inline constexpr bool kFreeThreaded = true;
#else
inline constexpr bool kFreeThreaded = false;
#endif

// One captured frame: the code object address and the byte offset of the current instruction
// (-1 before the first one).
struct RawFrame {
  uint64_t code;
  int32_t lasti;
  uint32_t reserved;
};
static_assert(sizeof(RawFrame) == 16);

// ---- thread states --------------------------------------------------------------------------

// 3.11+ keep the kernel tid in the thread state; 3.10 does not (threads.cc finds it).
inline constexpr bool kStateHasNativeTid = PY_VERSION_HEX >= 0x030B0000;
inline uint64_t native_tid([[maybe_unused]] PyThreadState* ts) {
#if PY_VERSION_HEX >= 0x030B0000
  return ts->native_thread_id;
#else
  return 0;
#endif
}

// Where the handler finds the interrupted thread's own thread state, bound to the OS thread
// whether or not it runs Python at that moment (the "gilstate"). Up to 3.14 a pthread key;
// 3.15 keeps it only in a thread-local of libpython (not exported), read by
// PyGILState_GetThisThreadState(), which there is a single thread-local load (no lock, no
// allocation): the one C-API function the handler calls.
bool tstate_source_ready();  // GIL held; false when the key is not initialised
// handler-safe
PyThreadState* this_thread_state();

// handler-safe: whether `ts` is running Python now: it holds the GIL (regular builds) or is
// attached (free-threaded builds, where threads run Python in parallel).
inline bool runs_python(PyThreadState* ts) {
#if defined(Py_GIL_DISABLED)
  return __atomic_load_n(&ts->state, __ATOMIC_RELAXED) == _Py_THREAD_ATTACHED;
#elif PY_VERSION_HEX >= 0x030D0000
  struct _gil_runtime_state* gil = ts->interp->ceval.gil;
  if (gil == nullptr) return false;
  return __atomic_load_n(&gil->locked, __ATOMIC_RELAXED) != 0 &&
         __atomic_load_n(&gil->last_holder, __ATOMIC_RELAXED) == ts;
#elif PY_VERSION_HEX >= 0x030C0000
  struct _gil_runtime_state* gil = ts->interp->ceval.gil;
  if (gil == nullptr) return false;
  return __atomic_load_n(&gil->locked._value, __ATOMIC_RELAXED) != 0 &&
         reinterpret_cast<PyThreadState*>(
             __atomic_load_n(&gil->last_holder._value, __ATOMIC_RELAXED)) == ts;
#else
  return reinterpret_cast<PyThreadState*>(
             __atomic_load_n(&_PyRuntime.gilstate.tstate_current._value, __ATOMIC_RELAXED)) == ts;
#endif
}

// Attached thread state. Calls fn(ts) for every thread state of `interp`, holding the runtime's
// thread-list lock where the interpreter has one that is not the GIL (3.13+), so no thread state
// is freed meanwhile. fn must not call into Python.
template <typename Fn>
void for_each_thread(PyInterpreterState* interp, Fn&& fn) {
#if PY_VERSION_HEX >= 0x030D0000
  PyMutex_Lock(&_PyRuntime.interpreters.mutex);
  for (PyThreadState* ts = interp->threads.head; ts != nullptr; ts = ts->next) fn(ts);
  PyMutex_Unlock(&_PyRuntime.interpreters.mutex);
#else
  for (PyThreadState* ts = PyInterpreterState_ThreadHead(interp); ts != nullptr;
       ts = PyThreadState_Next(ts))
    fn(ts);
#endif
}

// ---- code objects ---------------------------------------------------------------------------

struct CodeFields {
  PyObject* name;  // co_qualname (3.11+) or co_name
  PyObject* file;
  int firstlineno;
  const uint8_t* linetable;
  size_t linetable_size;
};
// The code object must be alive; only immutable fields are read (no lock needed on any build).
inline CodeFields code_fields(PyObject* code) {
  auto* co = reinterpret_cast<PyCodeObject*>(code);
  CodeFields f{};
#if PY_VERSION_HEX >= 0x030B0000
  f.name = co->co_qualname;
#else
  f.name = co->co_name;
#endif
  f.file = co->co_filename;
  f.firstlineno = co->co_firstlineno;
  PyObject* lt = co->co_linetable;
  if (lt != nullptr && PyBytes_CheckExact(lt)) {
    f.linetable = reinterpret_cast<const uint8_t*>(PyBytes_AS_STRING(lt));
    f.linetable_size = static_cast<size_t>(PyBytes_GET_SIZE(lt));
  }
  return f;
}
inline constexpr LineTableFormat kLineTableFormat =
    PY_VERSION_HEX >= 0x030B0000 ? LineTableFormat::kLocations311 : LineTableFormat::kPairs310;

// ---- frames ---------------------------------------------------------------------------------

struct WalkCounts {
  uint32_t invalid = 0;     // frame whose code pointer is not a code object
  uint32_t incomplete = 0;  // frame still being set up (skipped, as CPython's own tracebacks do)
  uint32_t truncated = 0;   // 1 when the chain was longer than the cap
};

// GIL held. Checks the layouts this build relies on against the running interpreter (3.13+:
// _PyRuntime.debug_offsets, which the interpreter publishes for out-of-process tools). Returns
// nullptr when they match, else what differs.
const char* layout_mismatch();

// frame_bound()'s answer when the interpreter is part-way through entering or leaving a frame
// (3.11, 3.12; see frames.cc): the chain cannot be trusted, the sample is dropped.
inline constexpr uint32_t kUnsettled = 0xFFFFFFFFu;

// Where the walk starts, decided once by frame_bound() for walk_frames().
struct WalkStart {
  void* frame = nullptr;    // the newest frame to record (a version-specific frame type)
  bool transition = false;  // caught entering/leaving a frame; `frame` is the caller
};
// handler-safe: at least the number of frames in the chain (bounded by `cap` + 1; 0 when there is
// no frame; kUnsettled). 3.11+ count the contiguous data-stack frames; 3.10 chains heap objects,
// so it takes the interpreter's own recursion count instead of walking the cold frames twice.
// May read freed memory in a window the checks cannot see: call under the fault guard.
uint32_t frame_bound(PyThreadState* ts, uint32_t cap, WalkStart* start);
// Identifies where a thread is: its newest frame, that frame's instruction and its context. Two
// equal keys read while the thread did not run Python mean the same stack and the same span.
// handler-safe; read under the fault guard.
struct StackKey {
  uintptr_t frame = 0;
  uintptr_t instr = 0;
  uintptr_t context = 0;
  bool operator==(const StackKey& o) const {
    return frame == o.frame && instr == o.instr && context == o.context;
  }
};
StackKey stack_key(PyThreadState* ts);
// A cheaper test of the same, from the thread state alone (no frame, no C stack): the top of its
// frame data stack (3.11+; 3.10: its frame) and its context. Equal when the thread is where it
// was, or returned to the same depth (a different line at the same depth passes: the caller
// checks the full key every few rounds).
struct QuickKey {
  uintptr_t top = 0;
  uintptr_t context = 0;
  bool operator==(const QuickKey& o) const { return top == o.top && context == o.context; }
};
inline QuickKey quick_key(PyThreadState* ts) {
  QuickKey k;
#if PY_VERSION_HEX >= 0x030B0000
  k.top = reinterpret_cast<uintptr_t>(ts->datastack_top);
#else
  k.top = reinterpret_cast<uintptr_t>(ts->frame);
#endif
  k.context = reinterpret_cast<uintptr_t>(ts->context);
  return k;
}
// The GIL this thread state's interpreter uses (its address range identifies a thread waiting
// for it), or nullptr (free-threaded builds).
const void* gil_address(PyThreadState* ts);
inline constexpr size_t kGilSize =
#ifdef Py_GIL_DISABLED
    0;
#else
    sizeof(struct _gil_runtime_state);
#endif
// Every thread state of `interp` under the runtime's thread-list lock (HEAD_LOCK), taken without
// an attached thread state: for the wall sampler thread. fn must not call into Python.
void for_each_thread_locked(PyInterpreterState* interp, void (*fn)(PyThreadState*, void*),
                            void* arg);

// A suspended coroutine or generator: its frame as a RawFrame and the object it awaits (the
// next link of an await chain, or the future at its end), or nullptr. False when `obj` is not
// a suspended coroutine/generator. Reads memory of objects owned by another thread: under the
// fault guard, validated by the caller.
bool coro_step(PyObject* obj, RawFrame* out, PyObject** awaited);

// handler-safe: writes at most `cap` frames leaf-first from `start` into `out`, returns how many.
uint32_t walk_frames(const WalkStart& start, RawFrame* out, uint32_t cap, WalkCounts* counts);

}  // namespace spanprof::py
