// spanprof._native.Profile: the Python object around an aggregated Profile (its encoders,
// merge, samples, and the wall profile of the same window).
#pragma once

#include "cpython.h"
#include "profile.h"

namespace spanprof {

// GIL held. Adds the Profile type to the module.
bool init_profile_type(PyObject* module);
// GIL held. Takes ownership of `p`; nullptr with an error set on failure (p is then deleted).
PyObject* wrap_profile(Profile* p);
// GIL held. `cpu.wall = wall` (steals the reference).
void profile_attach_wall(PyObject* cpu, PyObject* wall);

}  // namespace spanprof
