// Span references: the immutable SpanRef object the span processor stores in a ContextVar, the
// handler-side lookup of that variable in the interrupted thread's current context, and the table
// of interned root-span names.
#pragma once

#include <cstdint>
#include <string>

#include "cpython.h"

namespace spanprof {

struct SpanIds {
  uint8_t trace_id[16];
  uint8_t span_id[8];       // innermost active span
  uint8_t root_span_id[8];  // local root span
  uint32_t root_name_id;    // index into the root-name table
};

enum class SpanLookup : uint8_t { kNone = 0, kFound = 1, kFailed = 2 };

// handler-safe: looks the configured span ContextVar up in ts->context.
SpanLookup lookup_span(PyThreadState* ts, SpanIds* out);
// The same in a given context (an asyncio task's), read under the fault guard by the wall
// sampler: the context is not being modified while its task is suspended.
SpanLookup lookup_span_in(PyObject* context, SpanIds* out);

// GIL held. Registers the SpanRef type on the module.
bool init_spanref_type(PyObject* module);
// GIL held. var is a ContextVar or None. Verifies the HAMT walk against real contexts first.
PyObject* set_span_var(PyObject* var);
// Any thread, never the handler: the name interned under `id` ("" when unknown).
std::string root_name(uint32_t id);

}  // namespace spanprof
