// Which threads are sampled: the scan of the interpreter's thread list (timers for new threads,
// none for gone ones), kernel-tid discovery, and threading's profile hook that arms a new
// threading.Thread at its first Python call. All with an attached thread state (the GIL on
// regular builds).
#pragma once

#include <cstdint>

#include "cpython.h"

namespace spanprof {

// Arms timers for every thread of the main interpreter except `exclude` (the drain's own) and
// deletes those of threads that are gone; then lets the tag table forget gone threads.
void threads_scan(PyThreadState* exclude, uint64_t generation);
// Arms the calling thread now.
void threads_register_current();
void threads_install_hook();
// A copy of threading._active's items, [(ident, Thread)], or nullptr (no error set) when threading
// was never imported. Never imports threading; iterating the copy runs no Python code.
PyObject* threads_active_items();
void threads_remove_hook();

}  // namespace spanprof
