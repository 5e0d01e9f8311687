// Hash containers for the decoders' hot loops (decode_pprof.cc): sized up front from the input,
// so a push of thousands of entries allocates a few vectors, not one node per entry.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace spanprof {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  return x ^ (x >> 33);
}

// A hash of a byte run (8 bytes per step): for the packed location runs of samples.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  memcpy(&tail, s.data() + i, s.size() - i);
  return mix64(h ^ tail);
}

// Key → uint32 for at most `n` keys, chosen up front: open addressing in a power-of-two table
// at most half full, so no allocation per entry (a push inserts thousands).
template <class Key, class Hash>
class FlatMap {
 public:
  explicit FlatMap(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    slots_.assign(cap, kEmpty);
    keys_.reserve(n);
    vals_.reserve(n);
    limit_ = n;
  }
  // The value of `k` and false, or `v` newly stored for it and true. Past `n` keys nothing is
  // stored and the result is {v, true} each time (callers size the map from the input).
  std::pair<uint32_t, bool> try_emplace(const Key& k, uint32_t v) {
    const size_t mask = slots_.size() - 1;
    for (size_t i = size_t(Hash()(k)) & mask;; i = (i + 1) & mask) {
      uint32_t s = slots_[i];
      if (s == kEmpty) {
        if (keys_.size() >= limit_) return {v, true};
        slots_[i] = uint32_t(keys_.size());
        keys_.push_back(k);
        vals_.push_back(v);
        return {v, true};
      }
      if (keys_[s] == k) return {vals_[s], false};
    }
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> slots_;
  std::vector<Key> keys_;
  std::vector<uint32_t> vals_;
  size_t limit_ = 0;
};

// Maps the ids a writer chose to positions: a table when ids are dense (writers number 1..n),
// else a hash map. A later entry with the same id replaces an earlier one.
class IdIndex {
 public:
  template <class T>
  void build(const std::vector<T>& items) {
    uint64_t max_id = 0;
    for (auto& x : items) max_id = std::max(max_id, x.id);
    if (max_id <= 2 * items.size() + 64) {
      dense_.assign(max_id + 1, kNone);
      for (size_t i = 0; i < items.size(); ++i) dense_[items[i].id] = uint32_t(i);
    } else {
      sparse_.reserve(items.size());
      for (size_t i = 0; i < items.size(); ++i) sparse_[items[i].id] = uint32_t(i);
    }
  }
  // Position of `id`, or kNone.
  uint32_t find(uint64_t id) const {
    if (!dense_.empty() || sparse_.empty()) return id < dense_.size() ? dense_[id] : kNone;
    auto it = sparse_.find(id);
    return it == sparse_.end() ? kNone : it->second;
  }
  static constexpr uint32_t kNone = UINT32_MAX;

 private:
  std::vector<uint32_t> dense_;
  std::unordered_map<uint64_t, uint32_t> sparse_;
};

}  // namespace spanprof
