#include "linetable.h"

namespace spanprof {
namespace {

// 3.10: pairs (unsigned bytes of bytecode, signed line delta); a line delta of -128 means the
// range has no line. Zero-length ranges still move the line.
int pairs_310(const uint8_t* t, size_t n, int line, int offset) {
  int end = 0;
  for (size_t i = 0; i + 1 < n; i += 2) {
    const int start = end;
    end += t[i];
    const auto delta = static_cast<int8_t>(t[i + 1]);
    const bool none = delta == -128;
    if (!none) line += delta;
    if (start <= offset && offset < end) return none ? -1 : line;
  }
  return -1;
}

// 3.11+: entries start with a byte whose top bit is set; bits 3-6 are the kind, bits 0-2 the
// length in code units minus one. Kinds 13 and 14 carry a signed varint line delta, 10-12 mean
// deltas 0-2, 15 means no line, 0-9 stay on the line.
int varint(const uint8_t* p, const uint8_t* end, const uint8_t** next) {
  unsigned value = 0, shift = 0;
  uint8_t b = 0x40;
  while ((b & 0x40) && p < end && shift < 30) {
    b = *p++;
    value |= static_cast<unsigned>(b & 63) << shift;
    shift += 6;
  }
  *next = p;
  return static_cast<int>(value);
}

int locations_311(const uint8_t* t, size_t n, int line, int offset) {
  const uint8_t* p = t;
  const uint8_t* const end = t + n;
  int addr_end = 0;
  while (p < end) {
    const uint8_t first = *p;
    if (!(first & 0x80)) return -1;  // not an entry start: the table is not what we expect
    const int kind = (first >> 3) & 15;
    const int start = addr_end;
    addr_end += ((first & 7) + 1) * 2;
    int delta = 0;
    if (kind == 13 || kind == 14) {
      const uint8_t* q;
      const auto u = static_cast<unsigned>(varint(p + 1, end, &q));
      delta = (u & 1) ? -static_cast<int>(u >> 1) : static_cast<int>(u >> 1);
    } else if (kind >= 10 && kind <= 12) {
      delta = kind - 10;
    }
    line += delta;
    if (start <= offset && offset < addr_end) return kind == 15 ? -1 : line;
    do {
      ++p;
    } while (p < end && (*p & 0x80) == 0);
  }
  return -1;
}

}  // namespace

bool addr2cols(LineTableFormat format, const uint8_t* t, size_t n, int offset, int* col,
               int* end_col) {
  if (format != LineTableFormat::kLocations311 || offset < 0) return false;
  const uint8_t* p = t;
  const uint8_t* const end = t + n;
  int addr_end = 0;
  while (p < end) {
    const uint8_t first = *p;
    if (!(first & 0x80)) return false;
    const int kind = (first >> 3) & 15;
    const int start = addr_end;
    addr_end += ((first & 7) + 1) * 2;
    if (start <= offset && offset < addr_end) {
      const uint8_t* q = p + 1;
      if (kind <= 9 && q < end) {  // short form: one line
        *col = kind * 8 + (*q >> 4);
        *end_col = *col + (*q & 15);
        return true;
      }
      if (kind >= 10 && kind <= 12 && q + 1 < end) {  // one-line form
        *col = q[0];
        *end_col = q[1];
        return true;
      }
      if (kind == 14) {  // long form: line delta, end-line delta, column + 1, end column + 1
        varint(q, end, &q);
        const int end_line_delta = varint(q, end, &q);
        const int c = varint(q, end, &q) - 1;
        const int e = varint(q, end, &q) - 1;
        if (end_line_delta != 0 || c < 0 || e < c) return false;
        *col = c;
        *end_col = e;
        return true;
      }
      return false;
    }
    do {
      ++p;
    } while (p < end && (*p & 0x80) == 0);
  }
  return false;
}

int addr2line(LineTableFormat format, const uint8_t* table, size_t size, int firstlineno,
              int offset) {
  if (offset < 0) return firstlineno;
  return format == LineTableFormat::kPairs310 ? pairs_310(table, size, firstlineno, offset)
                                              : locations_311(table, size, firstlineno, offset);
}

}  // namespace spanprof
