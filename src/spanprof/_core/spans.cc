// SpanRef, the span ContextVar lookup done inside the signal handler, and the root-name table.
//
// The handler reads ts->context (a PyContext owned by the interrupted thread), its ctx_vars HAMT
// and walks bitmap and array nodes to the configured ContextVar. HAMT nodes are immutable once
// published and a context is only modified by the thread that has it entered, so the walk sees a
// consistent tree. The node layouts live in Python/hamt.c, not in a header: they are mirrored here
// and checked at set_span_var() time against real HAMTs built with the GIL (the walk must find
// every value of a 40-variable context), and the node type objects are learned from those HAMTs.
#include "spans.h"

#include <atomic>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "stats.h"

namespace spanprof {
namespace {

constexpr uint64_t kSpanRefMagic = 0x53504E5245463031ull;  // "SPNREF01"
constexpr size_t kMaxRootNames = 65536;

struct SpanRefObject {
  PyObject_HEAD uint64_t magic;
  SpanIds ids;
  PyObject* root_name;  // str, strong
};

struct HamtBitmapNode {  // mirrors PyHamtNode_Bitmap
  PyObject_VAR_HEAD uint32_t b_bitmap;
  PyObject* b_array[1];
};
struct HamtArrayNode {  // mirrors PyHamtNode_Array
  PyObject_HEAD PyObject* a_array[32];
  Py_ssize_t a_count;
};

struct SpanVarConfig {
  PyObject* var;  // compared by address only; never dereferenced by the handler
  uint32_t hash;
};

std::atomic<const SpanVarConfig*> g_span_var{nullptr};
std::atomic<PyTypeObject*> g_bitmap_type{nullptr};
std::atomic<PyTypeObject*> g_array_type{nullptr};

std::mutex g_names_mu;
std::vector<std::string>* g_names = nullptr;  // [0] = ""
std::unordered_map<std::string, uint32_t>* g_name_ids = nullptr;

PyTypeObject* g_spanref_type = nullptr;

uint32_t intern_root_name(const char* s, Py_ssize_t len) {
  std::lock_guard<std::mutex> lock(g_names_mu);
  if (g_names == nullptr) {
    g_names = new std::vector<std::string>{std::string()};
    g_name_ids = new std::unordered_map<std::string, uint32_t>{{std::string(), 0}};
  }
  std::string key(s, static_cast<size_t>(len));
  auto it = g_name_ids->find(key);
  if (it != g_name_ids->end()) return it->second;
  if (g_names->size() >= kMaxRootNames) {
    stats().root_names_overflow.fetch_add(1, std::memory_order_relaxed);
    return 0;
  }
  const auto id = static_cast<uint32_t>(g_names->size());
  g_names->push_back(key);
  g_name_ids->emplace(std::move(key), id);
  return id;
}

// handler-safe core of the lookup: finds the value bound to `var` in context `ctx`.
SpanLookup find_in_context(PyObject* ctx, const SpanVarConfig* cfg, PyObject** value) {
  if (ctx == nullptr) return SpanLookup::kNone;
  if (Py_TYPE(ctx) != &PyContext_Type) return SpanLookup::kFailed;
  PyHamtObject* hamt = reinterpret_cast<PyContext*>(ctx)->ctx_vars;
  if (hamt == nullptr) return SpanLookup::kNone;
  PyObject* node = reinterpret_cast<PyObject*>(hamt->h_root);
  PyTypeObject* bitmap_type = g_bitmap_type.load(std::memory_order_acquire);
  PyTypeObject* array_type = g_array_type.load(std::memory_order_acquire);
  const uint32_t hash = cfg->hash;
  for (uint32_t shift = 0; shift < 35 && node != nullptr; shift += 5) {
    const uint32_t slot = (hash >> shift) & 0x1f;
    PyTypeObject* type = Py_TYPE(node);
    if (type == bitmap_type) {
      auto* b = reinterpret_cast<HamtBitmapNode*>(node);
      const uint32_t bit = 1u << slot;
      if ((b->b_bitmap & bit) == 0) return SpanLookup::kNone;
      const auto idx = static_cast<Py_ssize_t>(__builtin_popcount(b->b_bitmap & (bit - 1)));
      if (2 * idx + 1 >= Py_SIZE(b)) return SpanLookup::kFailed;
      PyObject* key = b->b_array[2 * idx];
      PyObject* val = b->b_array[2 * idx + 1];
      if (key == nullptr) {  // a sub-node
        node = val;
        continue;
      }
      if (key != cfg->var) return SpanLookup::kNone;
      *value = val;
      return SpanLookup::kFound;
    }
    if (type == array_type && array_type != nullptr) {
      node = reinterpret_cast<HamtArrayNode*>(node)->a_array[slot];
      if (node == nullptr) return SpanLookup::kNone;
      continue;
    }
    return SpanLookup::kFailed;  // collision node or a layout we do not know
  }
  return SpanLookup::kFailed;
}

uint32_t hamt_hash(PyObject* o) {
  const Py_hash_t h = PyObject_Hash(o);
  if (h == -1) return static_cast<uint32_t>(-1);
  auto x = static_cast<int32_t>(static_cast<uint32_t>(h & 0xffffffff) ^
                                static_cast<uint32_t>(static_cast<uint64_t>(h) >> 32));
  return static_cast<uint32_t>(x == -1 ? -2 : x);
}

// Builds real contexts, learns the node types and checks find_in_context() against var.get().
// Returns false (with a Python error set) when the layout does not match.
bool verify_hamt_layout() {
  PyObject* empty = PyContext_New();
  if (empty == nullptr) return false;
  PyHamtObject* h = reinterpret_cast<PyContext*>(empty)->ctx_vars;
  if (h == nullptr || h->h_root == nullptr) {
    Py_DECREF(empty);
    PyErr_SetString(PyExc_RuntimeError, "spanprof: unexpected empty context layout");
    return false;
  }
  g_bitmap_type.store(Py_TYPE(reinterpret_cast<PyObject*>(h->h_root)), std::memory_order_release);
  Py_DECREF(empty);

  constexpr int kVars = 40;  // > 16 distinct slots at the root turns it into an array node
  PyObject* ctx = PyContext_New();
  if (ctx == nullptr || PyContext_Enter(ctx) != 0) {
    Py_XDECREF(ctx);
    return false;
  }
  std::vector<PyObject*> vars, values;
  bool ok = true;
  for (int i = 0; i < kVars && ok; ++i) {
    char name[48];
    snprintf(name, sizeof name, "spanprof_layout_probe_%d", i);
    PyObject* v = PyContextVar_New(name, nullptr);
    PyObject* val = PyLong_FromLong(1000 + i);
    if (v == nullptr || val == nullptr) {
      Py_XDECREF(v);
      Py_XDECREF(val);
      ok = false;
      break;
    }
    vars.push_back(v);
    values.push_back(val);
    PyObject* tok = PyContextVar_Set(v, val);
    if (tok == nullptr) ok = false;
    Py_XDECREF(tok);
  }
  if (ok) {
    PyObject* root =
        reinterpret_cast<PyObject*>(reinterpret_cast<PyContext*>(ctx)->ctx_vars->h_root);
    if (Py_TYPE(root) != g_bitmap_type.load()) {
      g_array_type.store(Py_TYPE(root), std::memory_order_release);
    }
    PyObject* cur = PyThreadState_Get()->context;
    for (int i = 0; i < kVars && ok; ++i) {
      SpanVarConfig cfg{vars[i], hamt_hash(vars[i])};
      PyObject* found = nullptr;
      if (find_in_context(cur, &cfg, &found) != SpanLookup::kFound || found != values[i]) {
        ok = false;
      }
    }
    if (!ok) {
      PyErr_SetString(PyExc_RuntimeError,
                      "spanprof: this CPython's context (HAMT) layout is not the one the span "
                      "lookup was built for; span labels are unavailable");
    }
  }
  PyContext_Exit(ctx);
  Py_DECREF(ctx);
  for (PyObject* o : vars) Py_DECREF(o);
  for (PyObject* o : values) Py_DECREF(o);
  if (!ok && !PyErr_Occurred()) {
    PyErr_SetString(PyExc_RuntimeError, "spanprof: could not verify the context layout");
  }
  return ok;
}

// ---- SpanRef type -------------------------------------------------------------------------

PyObject* spanref_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"trace_id", "span_id", "root_span_id", "root_name", nullptr};
  Py_buffer trace{}, span{}, root{};
  PyObject* name = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*y*y*U:SpanRef", const_cast<char**>(kwlist),
                                   &trace, &span, &root, &name)) {
    return nullptr;
  }
  PyObject* result = nullptr;
  if (trace.len != 16 || span.len != 8 || root.len != 8) {
    PyErr_SetString(PyExc_ValueError,
                    "SpanRef: trace_id must be 16 bytes, span_id and root_span_id 8 bytes");
  } else {
    Py_ssize_t len = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(name, &len);
    if (utf8 != nullptr) {
      auto* self = reinterpret_cast<SpanRefObject*>(type->tp_alloc(type, 0));
      if (self != nullptr) {
        std::memcpy(self->ids.trace_id, trace.buf, 16);
        std::memcpy(self->ids.span_id, span.buf, 8);
        std::memcpy(self->ids.root_span_id, root.buf, 8);
        self->ids.root_name_id = intern_root_name(utf8, len);
        Py_INCREF(name);
        self->root_name = name;
        // Published last: the handler trusts an object only when the magic is set.
        __atomic_store_n(&self->magic, kSpanRefMagic, __ATOMIC_RELEASE);
        result = reinterpret_cast<PyObject*>(self);
      }
    }
  }
  PyBuffer_Release(&trace);
  PyBuffer_Release(&span);
  PyBuffer_Release(&root);
  return result;
}

void spanref_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<SpanRefObject*>(o);
  self->magic = 0;
  Py_XDECREF(self->root_name);
  Py_TYPE(o)->tp_free(o);
}

PyObject* spanref_trace_id(PyObject* o, void*) {
  return PyBytes_FromStringAndSize(
      reinterpret_cast<const char*>(reinterpret_cast<SpanRefObject*>(o)->ids.trace_id), 16);
}
PyObject* spanref_span_id(PyObject* o, void*) {
  return PyBytes_FromStringAndSize(
      reinterpret_cast<const char*>(reinterpret_cast<SpanRefObject*>(o)->ids.span_id), 8);
}
PyObject* spanref_root_span_id(PyObject* o, void*) {
  return PyBytes_FromStringAndSize(
      reinterpret_cast<const char*>(reinterpret_cast<SpanRefObject*>(o)->ids.root_span_id), 8);
}
PyObject* spanref_root_name(PyObject* o, void*) {
  PyObject* n = reinterpret_cast<SpanRefObject*>(o)->root_name;
  Py_INCREF(n);
  return n;
}

PyObject* spanref_repr(PyObject* o) {
  auto* s = reinterpret_cast<SpanRefObject*>(o);
  char hex[2 * 16 + 1 + 2 * 8 + 1];
  static const char* d = "0123456789abcdef";
  for (int i = 0; i < 16; ++i) {
    hex[2 * i] = d[s->ids.trace_id[i] >> 4];
    hex[2 * i + 1] = d[s->ids.trace_id[i] & 15];
  }
  hex[32] = ':';
  for (int i = 0; i < 8; ++i) {
    hex[33 + 2 * i] = d[s->ids.span_id[i] >> 4];
    hex[33 + 2 * i + 1] = d[s->ids.span_id[i] & 15];
  }
  hex[49] = 0;
  return PyUnicode_FromFormat("SpanRef(%s, root_name=%R)", hex, s->root_name);
}

PyGetSetDef kSpanRefGetSet[] = {
    {"trace_id", spanref_trace_id, nullptr, "16-byte trace id", nullptr},
    {"span_id", spanref_span_id, nullptr, "8-byte id of the innermost active span", nullptr},
    {"root_span_id", spanref_root_span_id, nullptr, "8-byte id of the local root span", nullptr},
    {"root_name", spanref_root_name, nullptr, "name of the local root span", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot kSpanRefSlots[] = {
    {Py_tp_new, reinterpret_cast<void*>(spanref_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(spanref_dealloc)},
    {Py_tp_getset, kSpanRefGetSet},
    {Py_tp_repr, reinterpret_cast<void*>(spanref_repr)},
    {Py_tp_doc, const_cast<char*>(
                    "SpanRef(trace_id: bytes, span_id: bytes, root_span_id: bytes, root_name: str)"
                    "\n\nImmutable span reference stored in the span ContextVar; read by the "
                    "sampler's signal handler without the GIL.")},
    {0, nullptr}};

PyType_Spec kSpanRefSpec = {"spanprof._native.SpanRef", sizeof(SpanRefObject), 0,
                            Py_TPFLAGS_DEFAULT, kSpanRefSlots};

}  // namespace

SpanLookup lookup_span(PyThreadState* ts, SpanIds* out) { return lookup_span_in(ts->context, out); }

SpanLookup lookup_span_in(PyObject* context, SpanIds* out) {
  const SpanVarConfig* cfg = g_span_var.load(std::memory_order_acquire);
  if (cfg == nullptr) return SpanLookup::kNone;
  PyObject* value = nullptr;
  const SpanLookup r = find_in_context(context, cfg, &value);
  if (r != SpanLookup::kFound) return r;
  if (value == Py_None) return SpanLookup::kNone;
  if (Py_TYPE(value) != g_spanref_type) return SpanLookup::kFailed;
  auto* ref = reinterpret_cast<SpanRefObject*>(value);
  if (__atomic_load_n(&ref->magic, __ATOMIC_ACQUIRE) != kSpanRefMagic) return SpanLookup::kFailed;
  std::memcpy(out, &ref->ids, sizeof(SpanIds));
  return SpanLookup::kFound;
}

bool init_spanref_type(PyObject* module) {
  g_spanref_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kSpanRefSpec));
  if (g_spanref_type == nullptr) return false;
  Py_INCREF(g_spanref_type);
  return PyModule_AddObject(module, "SpanRef", reinterpret_cast<PyObject*>(g_spanref_type)) == 0;
}

PyObject* set_span_var(PyObject* var) {
  if (var == Py_None) {
    g_span_var.store(nullptr, std::memory_order_release);
    Py_RETURN_NONE;
  }
  if (!PyContextVar_CheckExact(var)) {
    PyErr_SetString(PyExc_TypeError, "set_span_var() takes a contextvars.ContextVar or None");
    return nullptr;
  }
  if (!verify_hamt_layout()) return nullptr;
  const uint32_t hash = hamt_hash(var);
  if (hash == static_cast<uint32_t>(-1) && PyErr_Occurred()) return nullptr;
  Py_INCREF(var);  // kept for the life of the process: handlers compare against its address
  // The previous config is leaked on purpose: a handler on another thread may still read it.
  g_span_var.store(new SpanVarConfig{var, hash}, std::memory_order_release);
  Py_RETURN_NONE;
}

std::string root_name(uint32_t id) {
  std::lock_guard<std::mutex> lock(g_names_mu);
  if (g_names == nullptr || id >= g_names->size()) return std::string();
  return (*g_names)[id];
}

}  // namespace spanprof
