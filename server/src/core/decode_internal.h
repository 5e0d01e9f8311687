// Shared by the per-format decoders (decode_*.cc); the interface is decode.h.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "core/decode.h"
#include "core/util.h"

namespace spanprof {

// Per-sample labels that are span identity, never series labels: 0 none, 1 span_id (or its
// alias profile_id), 2 active_span_id, 3 trace_id.
int8_t span_label_kind(const std::string& k);

// Whether `k` names a span id; if so, `v` (hex) is stored in `ids` when it parses.
bool take_span_label(const std::string& k, const std::string& v, SpanIds& ids);

// Dedups frames and label sets while building one RawProfile family (one per sample type).
struct Builder {
  std::map<std::tuple<std::string, std::string, int64_t>, uint32_t> frame_idx;
  std::map<Labels, uint32_t> label_idx;
  std::vector<RawFrame> frames;
  std::vector<Labels> label_sets{Labels{}};
  Builder() { label_idx[Labels{}] = 0; }
  uint32_t frame(const std::string& f, const std::string& file, int64_t line) {
    auto key = std::make_tuple(f, file, line);
    auto it = frame_idx.find(key);
    if (it != frame_idx.end()) return it->second;
    uint32_t i = uint32_t(frames.size());
    frames.push_back({f, file, line});
    frame_idx.emplace(std::move(key), i);
    return i;
  }
  uint32_t labels(Labels l) {
    sort_labels(l);
    auto it = label_idx.find(l);
    if (it != label_idx.end()) return it->second;
    uint32_t i = uint32_t(label_sets.size());
    label_sets.push_back(l);
    label_idx.emplace(std::move(l), i);
    return i;
  }
};

// check_labels() of `series` joined with each of `sets`.
Status check_all_label_sets(const Labels& series, const std::vector<Labels>& sets,
                            const Limits& lim);

// 413 for a push past --max-profiles-per-push.
Error too_many_profiles(const Limits& lim);

}  // namespace spanprof
