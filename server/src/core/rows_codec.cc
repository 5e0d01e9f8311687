#include "core/rows_codec.h"

#include <algorithm>
#include <unordered_map>

namespace spanprof::rows_codec {

namespace {
struct IdsHash {
  size_t operator()(const SpanIds& x) const {
    return size_t((x.span_id * 0x9E3779B97F4A7C15ull) ^ (x.active_span_id * 31) ^ x.trace_hi ^
                  (x.trace_lo << 1));
  }
};
struct IdsEq {
  bool operator()(const SpanIds& x, const SpanIds& y) const {
    return x.span_id == y.span_id && x.active_span_id == y.active_span_id &&
           x.trace_hi == y.trace_hi && x.trace_lo == y.trace_lo;
  }
};
}  // namespace

void encode_rows(const std::vector<RowIn>& rows, int64_t period, EncodedRows& out) {
  out.total = 0;
  out.scale = period > 0 ? period : 1;
  for (auto& r : rows) {
    out.total += r.value;
    if (r.value % out.scale) out.scale = 1;
  }
  // The id table: distinct (span, active span, trace) tuples in first-seen order.
  std::unordered_map<SpanIds, uint32_t, IdsHash, IdsEq> id_index;
  std::vector<uint32_t> row_id;
  std::vector<const SpanIds*> table;
  row_id.reserve(rows.size());
  for (auto& r : rows) {
    auto [it, added] = id_index.try_emplace(r.ids, uint32_t(table.size()));
    if (added) table.push_back(&r.ids);
    row_id.push_back(it->second);
  }
  out.data.clear();
  out.span_ids.clear();
  put_varint(out.data, table.size());
  for (auto* x : table) {
    put_fixed64(out.data, x->span_id);
    put_fixed64(out.data, x->active_span_id);
    put_fixed64(out.data, x->trace_hi);
    put_fixed64(out.data, x->trace_lo);
    if (x->span_id) out.span_ids.push_back(x->span_id);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    put_varint(out.data, rows[i].stack);
    put_varint(out.data, zigzag(rows[i].value / out.scale));
    put_varint(out.data, row_id[i]);
  }
  std::sort(out.span_ids.begin(), out.span_ids.end());
  out.span_ids.erase(std::unique(out.span_ids.begin(), out.span_ids.end()), out.span_ids.end());
}

}  // namespace spanprof::rows_codec
