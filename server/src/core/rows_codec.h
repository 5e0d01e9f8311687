// The store's compact encodings: varints, and a profile's sample rows as one blob
// (profiles.data). No SQLite here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.h"

namespace spanprof {

struct SampleRow {
  uint32_t stack = 0;
  int64_t value = 0;  // already multiplied by the profile's scale
  SpanIds ids;
};

namespace rows_codec {

inline void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(v | 0x80);
    v >>= 7;
  }
  out += char(v);
}

inline std::vector<uint32_t> get_varints(const std::string& b) {
  std::vector<uint32_t> out;
  uint64_t v = 0;
  int sh = 0;
  for (unsigned char c : b) {
    v |= uint64_t(c & 0x7f) << sh;
    if (c & 0x80) {
      sh += 7;
    } else {
      out.push_back(uint32_t(v));
      v = 0;
      sh = 0;
    }
  }
  return out;
}

inline uint64_t zigzag(int64_t v) { return (uint64_t(v) << 1) ^ uint64_t(v >> 63); }
inline int64_t unzigzag(uint64_t v) { return int64_t(v >> 1) ^ -int64_t(v & 1); }

inline void put_fixed64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += char(uint8_t(v >> (8 * i)));
}

// Reads one varint from [p, end); false on truncation (a corrupt blob stops the scan).
inline bool read_varint(const uint8_t*& p, const uint8_t* end, uint64_t& v) {
  v = 0;
  for (int sh = 0; p < end && sh < 64; sh += 7) {
    uint8_t c = *p++;
    v |= uint64_t(c & 0x7f) << sh;
    if (!(c & 0x80)) return true;
  }
  return false;
}

// A profile's sample rows as one blob (profiles.data):
//   varint n_ids, n_ids × 4 little-endian fixed64 (span_id, active_span_id, trace_hi, trace_lo;
//   0 = absent), then per row: varint stack, varint zigzag(value / scale), varint index into the
//   id table. Rows keep the (stack, ids) order the writer aggregated them in.
// Calls f(row) with value already multiplied by scale; returns false if the blob is malformed.
template <class F>
bool decode_rows(const void* data, size_t size, int64_t scale, F&& f) {
  auto* p = static_cast<const uint8_t*>(data);
  auto* end = p + size;
  uint64_t n_ids;
  if (!read_varint(p, end, n_ids) || n_ids > size_t(end - p) / 32) return false;
  std::vector<SpanIds> ids(n_ids);
  auto fixed = [&] {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
    p += 8;
    return v;
  };
  for (auto& x : ids) {
    x.span_id = fixed();
    x.active_span_id = fixed();
    x.trace_hi = fixed();
    x.trace_lo = fixed();
  }
  SampleRow r;
  while (p < end) {
    uint64_t stack, value, idx;
    if (!read_varint(p, end, stack) || !read_varint(p, end, value) || !read_varint(p, end, idx) ||
        idx >= n_ids)
      return false;
    r.stack = uint32_t(stack);
    r.value = unzigzag(value) * scale;
    r.ids = ids[idx];
    f(r);
  }
  return true;
}

// One row to encode: aggregated by (stack, ids), in the order the rows are given.
struct RowIn {
  uint32_t stack = 0;
  SpanIds ids;
  int64_t value = 0;
};

struct EncodedRows {
  std::string data;
  int64_t scale = 1, total = 0;
  std::vector<uint64_t> span_ids;  // distinct non-zero local-root span ids, sorted
};

// Encodes one profile's rows (the blob format above). Values are stored divided by `period`
// when every value is a multiple of it (cpu: samples × period), as small varints.
void encode_rows(const std::vector<RowIn>& rows, int64_t period, EncodedRows& out);

}  // namespace rows_codec
}  // namespace spanprof
