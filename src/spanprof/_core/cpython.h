// CPython access for the agent core: one header that pulls in the interpreter's internal layouts
// (compiled against each CPython's own headers with Py_BUILD_CORE) and the few accessors the signal
// handler needs. Everything marked "handler-safe" only reads memory owned by the interrupted thread
// or by the runtime: no allocation, no locks, no C-API calls.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
// pyconfig.h selects <stdatomic.h> for the internal atomics, which g++ 12 cannot compile in C++
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

#include <cstdint>

#if PY_VERSION_HEX < 0x03090000 || PY_VERSION_HEX >= 0x030E0000
#error "spanprof supports CPython 3.9 to 3.13"
#endif

namespace spanprof::py {

// One captured frame: the code object address, the byte offset of the current instruction (or -1
// before the first one) and a key that guards against the address being reused by another object.
struct RawFrame {
  uint64_t code;
  int32_t lasti;
  uint32_t key;
};
static_assert(sizeof(RawFrame) == 16);

inline uint32_t code_key(int firstlineno, const void* name, const void* filename) {
  uint64_t x = static_cast<uint64_t>(static_cast<uint32_t>(firstlineno)) * 0x9E3779B97F4A7C15ull;
  x ^= reinterpret_cast<uintptr_t>(name) * 0xC2B2AE3D27D4EB4Full;
  x ^= reinterpret_cast<uintptr_t>(filename) * 0x165667B19E3779F9ull;
  return static_cast<uint32_t>(x ^ (x >> 32));
}

inline Py_tss_t* auto_tss_key() {
#if PY_VERSION_HEX >= 0x030C0000
  return &_PyRuntime.autoTSSkey;
#else
  return &_PyRuntime.gilstate.autoTSSkey;
#endif
}

// handler-safe: whether `ts` currently holds its interpreter's GIL.
inline bool holds_gil(PyThreadState* ts) {
#if PY_VERSION_HEX >= 0x030D0000
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

struct WalkCounts {
  uint32_t invalid = 0;     // frame whose code pointer is not a code object
  uint32_t incomplete = 0;  // frame still being set up (skipped, as CPython's own tracebacks do)
  uint32_t truncated = 0;   // 1 when the chain was longer than the cap
};

// GIL held. Checks the layouts this build relies on against the running interpreter (3.13+:
// _PyRuntime.debug_offsets). Returns nullptr when they match, else what differs.
const char* layout_mismatch();

// frame_bound()'s answer when the interpreter is part-way through entering or leaving a frame
// (3.11, 3.12; see frames.cc): the chain cannot be trusted, the sample is dropped.
inline constexpr uint32_t kUnsettled = 0xFFFFFFFFu;

// handler-safe: at least the number of frames in the chain (bounded by `cap` + 1; 0 when there is
// no frame; kUnsettled). 3.11+ count the contiguous data-stack frames; 3.9/3.10 chain heap
// objects, so they take the interpreter's own recursion count instead of walking the cold frames
// twice. May read freed memory in a window the checks cannot see: call under the fault guard.
// Where the walk starts, decided once by frame_bound() for walk_frames().
struct WalkStart {
  void* frame = nullptr;    // the newest frame to record (a version-specific frame type)
  bool transition = false;  // caught entering/leaving a frame; `frame` is the caller
};
uint32_t frame_bound(PyThreadState* ts, uint32_t cap, WalkStart* start);
// handler-safe: writes at most `cap` frames leaf-first from `start` into `out`, returns how many.
uint32_t walk_frames(const WalkStart& start, RawFrame* out, uint32_t cap, WalkCounts* counts);

}  // namespace spanprof::py
