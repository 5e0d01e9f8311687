// See pyprofile.h.
#include "pyprofile.h"

#include <string>
#include <vector>

namespace spanprof {
namespace {

PyTypeObject* g_profile_type = nullptr;

struct ProfileObject {
  PyObject_HEAD Profile* profile;
  PyObject* wall;  // collect(): the wall profile of the same window, or nullptr
};

}  // namespace

PyObject* wrap_profile(Profile* p) {
  auto* o = PyObject_New(ProfileObject, g_profile_type);
  if (o != nullptr) o->wall = nullptr;
  if (o == nullptr) {
    delete p;
    return nullptr;
  }
  o->profile = p;
  return reinterpret_cast<PyObject*>(o);
}

void profile_attach_wall(PyObject* cpu, PyObject* wall) {
  auto* o = reinterpret_cast<ProfileObject*>(cpu);
  Py_XDECREF(o->wall);
  o->wall = wall;
}

namespace {

Profile& prof(PyObject* self) { return *reinterpret_cast<ProfileObject*>(self)->profile; }

PyObject* profile_new(PyTypeObject*, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"period_ns", nullptr};
  long long period = 10'000'000;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|L:Profile", const_cast<char**>(kwlist),
                                   &period)) {
    return nullptr;
  }
  if (period <= 0) {
    PyErr_SetString(PyExc_ValueError, "period_ns must be positive");
    return nullptr;
  }
  auto* p = new Profile;
  p->period_ns = period;
  return wrap_profile(p);
}

void profile_dealloc(PyObject* self) {
  Py_XDECREF(reinterpret_cast<ProfileObject*>(self)->wall);
  delete reinterpret_cast<ProfileObject*>(self)->profile;
  PyObject_Free(self);
}

// Parses an optional iterable of str into a DropSet.
bool parse_drop(PyObject* obj, DropSet* out) {
  if (obj == nullptr || obj == Py_None) return true;
  if (PyUnicode_Check(obj)) {
    PyErr_SetString(PyExc_TypeError, "drop_labels must be an iterable of str, not a str");
    return false;
  }
  PyObject* it = PyObject_GetIter(obj);
  if (it == nullptr) return false;
  PyObject* item;
  while ((item = PyIter_Next(it)) != nullptr) {
    const char* s = PyUnicode_Check(item) ? PyUnicode_AsUTF8(item) : nullptr;
    if (s == nullptr) {
      Py_DECREF(item);
      Py_DECREF(it);
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "drop_labels items must be str");
      return false;
    }
    out->insert(s);
    Py_DECREF(item);
  }
  Py_DECREF(it);
  return !PyErr_Occurred();
}

// Parses the single optional `drop_labels` argument shared by to_pprof() and to_collapsed().
bool parse_drop_only(PyObject* args, PyObject* kwargs, const char* format, DropSet* drop) {
  static const char* kwlist[] = {"drop_labels", nullptr};
  PyObject* drop_obj = nullptr;
  return PyArg_ParseTupleAndKeywords(args, kwargs, format, const_cast<char**>(kwlist), &drop_obj) &&
         parse_drop(drop_obj, drop);
}

PyObject* profile_to_pprof(PyObject* self, PyObject* args, PyObject* kwargs) {
  DropSet drop;
  if (!parse_drop_only(args, kwargs, "|O:to_pprof", &drop)) return nullptr;
  const std::string out = encode_pprof(prof(self), drop);
  return PyBytes_FromStringAndSize(out.data(), static_cast<Py_ssize_t>(out.size()));
}

PyObject* profile_to_collapsed(PyObject* self, PyObject* args, PyObject* kwargs) {
  DropSet drop;
  if (!parse_drop_only(args, kwargs, "|O:to_collapsed", &drop)) return nullptr;
  const std::string out = encode_collapsed(prof(self), drop);
  return PyUnicode_DecodeUTF8(out.data(), static_cast<Py_ssize_t>(out.size()), "replace");
}

PyObject* profile_to_speedscope(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"name", nullptr};
  const char* name = "spanprof";
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|s:to_speedscope", const_cast<char**>(kwlist),
                                   &name)) {
    return nullptr;
  }
  const std::string out = encode_speedscope(prof(self), name);
  return PyUnicode_DecodeUTF8(out.data(), static_cast<Py_ssize_t>(out.size()), "replace");
}

PyObject* profile_to_otlp(PyObject* self, PyObject* args, PyObject* kwargs) {
  static const char* kwlist[] = {"resource_attrs", "scope_name", "drop_labels", nullptr};
  PyObject* attrs = nullptr;
  const char* scope = "spanprof";
  PyObject* drop_obj = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OsO:to_otlp", const_cast<char**>(kwlist), &attrs,
                                   &scope, &drop_obj)) {
    return nullptr;
  }
  std::vector<std::pair<std::string, std::string>> resource;
  if (attrs != nullptr && attrs != Py_None) {
    if (!PyDict_Check(attrs)) {
      PyErr_SetString(PyExc_TypeError, "resource_attrs must be a dict[str, str]");
      return nullptr;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(attrs, &pos, &k, &v)) {
      PyObject* vs = PyObject_Str(v);
      const char* ks = PyUnicode_Check(k) ? PyUnicode_AsUTF8(k) : nullptr;
      const char* vss = vs != nullptr ? PyUnicode_AsUTF8(vs) : nullptr;
      if (ks == nullptr || vss == nullptr) {
        Py_XDECREF(vs);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "resource_attrs keys must be str");
        return nullptr;
      }
      resource.emplace_back(ks, vss);
      Py_DECREF(vs);
    }
  }
  DropSet drop;
  if (!parse_drop(drop_obj, &drop)) return nullptr;
  const std::string out = encode_otlp(prof(self), resource, scope, drop);
  return PyBytes_FromStringAndSize(out.data(), static_cast<Py_ssize_t>(out.size()));
}

PyObject* profile_merge(PyObject* self, PyObject* other) {
  if (!PyObject_TypeCheck(other, g_profile_type)) {
    PyErr_SetString(PyExc_TypeError, "merge() takes a Profile");
    return nullptr;
  }
  prof(self).merge(prof(other));
  Py_RETURN_NONE;
}

PyObject* str_or_none(const std::string& s) {
  return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
}

PyObject* profile_samples(PyObject* self, PyObject*) {
  const Profile& p = prof(self);
  PyObject* list = PyList_New(0);
  if (list == nullptr) return nullptr;
  for (auto& [key, count] : p.samples()) {
    PyObject* frames = PyList_New(static_cast<Py_ssize_t>(key.locations.size()));
    PyObject* labels = PyDict_New();
    if (frames == nullptr || labels == nullptr) goto fail_item;
    for (size_t i = 0; i < key.locations.size(); ++i) {
      const Location& l = p.locations()[key.locations[i]];
      PyObject* t = Py_BuildValue("(NNi)", str_or_none(p.str(l.function)),
                                  str_or_none(p.str(l.file)), l.line);
      if (t == nullptr) goto fail_item;
      PyList_SET_ITEM(frames, static_cast<Py_ssize_t>(i), t);
    }
    for (auto& kv : p.label_sets()[key.label_set]) {
      PyObject* k = str_or_none(p.str(kv.first));
      PyObject* v = str_or_none(p.str(kv.second));
      const int rc = (k && v) ? PyDict_SetItem(labels, k, v) : -1;
      Py_XDECREF(k);
      Py_XDECREF(v);
      if (rc != 0) goto fail_item;
    }
    {
      PyObject* item = Py_BuildValue("(NNL)", frames, labels, static_cast<long long>(count));
      if (item == nullptr || PyList_Append(list, item) != 0) {
        Py_XDECREF(item);
        Py_DECREF(list);
        return nullptr;
      }
      Py_DECREF(item);
    }
    continue;
  fail_item:
    Py_XDECREF(frames);
    Py_XDECREF(labels);
    Py_DECREF(list);
    return nullptr;
  }
  return list;
}

PyObject* profile_get(PyObject* self, void* which) {
  const Profile& p = prof(self);
  switch (reinterpret_cast<intptr_t>(which)) {
    case 0:
      return PyLong_FromLongLong(p.sample_count());
    case 1:
      return PyLong_FromLongLong(p.start_ns);
    case 2:
      return PyLong_FromLongLong(p.end_ns);
    default:
      return PyLong_FromLongLong(p.period_ns);
  }
}

PyObject* profile_get_wall(PyObject* self, void*) {
  PyObject* w = reinterpret_cast<ProfileObject*>(self)->wall;
  return Py_NewRef(w != nullptr ? w : Py_None);
}

PyObject* profile_get_type(PyObject* self, void*) {
  return PyUnicode_FromString(prof(self).sample_type.c_str());
}

// pyroscope-io's oncpu=False sends wall-clock time as its CPU type: the values stay nanoseconds.
int profile_set_type(PyObject* self, PyObject* value, void*) {
  if (value == nullptr || !PyUnicode_Check(value)) {
    PyErr_SetString(PyExc_TypeError, "sample_type must be a str");
    return -1;
  }
  const char* s = PyUnicode_AsUTF8(value);
  if (s == nullptr) return -1;
  reinterpret_cast<ProfileObject*>(self)->profile->sample_type = s;
  return 0;
}

PyObject* profile_repr(PyObject* self) {
  const Profile& p = prof(self);
  return PyUnicode_FromFormat("<spanprof Profile samples=%lld period_ns=%lld>",
                              static_cast<long long>(p.sample_count()),
                              static_cast<long long>(p.period_ns));
}

PyMethodDef kProfileMethods[] = {
    {"to_pprof", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(profile_to_pprof)),
     METH_VARARGS | METH_KEYWORDS,
     "to_pprof(drop_labels=()) -> bytes: uncompressed perftools.profiles.Profile"},
    {"to_collapsed",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(profile_to_collapsed)),
     METH_VARARGS | METH_KEYWORDS, "to_collapsed(drop_labels=()) -> str: 'root;...;leaf N' lines"},
    {"to_speedscope",
     reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(profile_to_speedscope)),
     METH_VARARGS | METH_KEYWORDS, "to_speedscope(name) -> str: speedscope file format JSON"},
    {"to_otlp", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(profile_to_otlp)),
     METH_VARARGS | METH_KEYWORDS,
     "to_otlp(resource_attrs, scope_name, drop_labels=()) -> bytes: ExportProfilesServiceRequest"},
    {"merge", profile_merge, METH_O, "merge(other): adds other's samples to this profile"},
    {"samples", profile_samples, METH_NOARGS,
     "samples() -> [(frames leaf-first [(function, file, line)], labels, count)]"},
    {nullptr, nullptr, 0, nullptr}};

PyGetSetDef kProfileGetSet[] = {
    {"sample_count", profile_get, nullptr, "number of samples", reinterpret_cast<void*>(0)},
    {"start_ns", profile_get, nullptr, "window start, ns since epoch", reinterpret_cast<void*>(1)},
    {"end_ns", profile_get, nullptr, "window end, ns since epoch", reinterpret_cast<void*>(2)},
    {"period_ns", profile_get, nullptr, "ns of CPU per sample", reinterpret_cast<void*>(3)},
    {"wall", profile_get_wall, nullptr, "the wall-clock profile of the same window, or None",
     nullptr},
    {"sample_type", profile_get_type, profile_set_type,
     "pprof sample type: 'cpu' (values are periods) or 'wall' (values are ns)", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr}};

PyType_Slot kProfileSlots[] = {
    {Py_tp_new, reinterpret_cast<void*>(profile_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(profile_dealloc)},
    {Py_tp_methods, kProfileMethods},
    {Py_tp_getset, kProfileGetSet},
    {Py_tp_repr, reinterpret_cast<void*>(profile_repr)},
    {Py_tp_doc, const_cast<char*>("Aggregated CPU profile: identical (stack, labels) merged.")},
    {0, nullptr}};

PyType_Spec kProfileSpec = {"spanprof._native.Profile", sizeof(ProfileObject), 0,
                            Py_TPFLAGS_DEFAULT, kProfileSlots};

// ---- module functions ----------------------------------------------------------------------

}  // namespace

bool init_profile_type(PyObject* module) {
  g_profile_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kProfileSpec));
  if (g_profile_type == nullptr) return false;
  Py_INCREF(g_profile_type);
  return PyModule_AddObject(module, "Profile", reinterpret_cast<PyObject*>(g_profile_type)) == 0;
}

}  // namespace spanprof
