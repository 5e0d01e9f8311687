// Instruction offset -> line number from a code object's line table, decoded from a copy of the
// table (no Python API, no live code object): the 3.10 (start delta, line delta) pairs and the
// 3.11+ location table. Same answers as PyCode_Addr2Line (checked for every instruction of the
// standard library by tests/agent/test_symbols.py).
#pragma once

#include <cstddef>
#include <cstdint>

namespace spanprof {

enum class LineTableFormat : uint8_t { kPairs310, kLocations311 };

// `offset` in bytes from the first instruction; < 0 means "before the first instruction" and
// answers `firstlineno`. -1 when the instruction has no line.
int addr2line(LineTableFormat format, const uint8_t* table, size_t size, int firstlineno,
              int offset);

// 3.11+ only: the columns (UTF-8 byte offsets) of the instruction at `offset` when the table has
// them and the instruction's source range starts and ends on one line; false otherwise.
bool addr2cols(LineTableFormat format, const uint8_t* table, size_t size, int offset, int* col,
               int* end_col);

}  // namespace spanprof
