// The callable a blocked thread is in, as its call site names it (`time.sleep`, `sock.recv`,
// `lock.acquire`): the source text of the innermost Python frame's call expression, up to its
// argument list. Drain thread only (it reads source files, cached and bounded).
#pragma once

#include <string>

#include "codes.h"

namespace spanprof {

// "" when unknown: no column information (3.10), the source is not readable, or the expression
// is not a plain dotted name followed by arguments.
std::string call_site_callee(const CodeSymbol& sym, int lasti);
// Forget the cached sources (a new profile may outlive edited files; fork child).
void call_site_reset();

}  // namespace spanprof
