// spanprof._native: the CPython binding of the agent core. Placeholder until the sampler lands.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

namespace {
PyModuleDef kModule = {PyModuleDef_HEAD_INIT, "spanprof._native", nullptr, -1, nullptr,
                       nullptr,         nullptr,            nullptr, nullptr};
}  // namespace

PyMODINIT_FUNC PyInit__native() { return PyModule_Create(&kModule); }
