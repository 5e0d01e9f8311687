// The store's dictionary maps: grown by the writer under an exclusive lock that every push's
// lookup and every query waits on. One std::unordered_map rehashes all its entries at once when
// it doubles (1.2 s for 1.4M strings, measured: the victims' push p99 beside pushes of new
// names); split into kShards maps by the key's hash, a rehash moves 1/kShards of them. The
// shards fill evenly, so with equal bucket counts they would all double within a few thousand
// inserts (hundreds of rehashes in one 2,500-entry turn, measured). Bucket counts come from
// one list of primes whatever is asked, so the stagger is in the load factor each shard doubles
// at: 1 to 2 across the shards, one doubling's span.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <unordered_map>
#include <utility>

namespace spanprof {

template <class K, class V, class Hash = std::hash<K>>
class ShardedMap {
  using Inner = std::unordered_map<K, V, Hash>;

  template <class M, class It>
  struct Iter {
    It it{};
    M* m = nullptr;  // nullptr: end()
    auto operator->() const { return it.operator->(); }
    auto& operator*() const { return *it; }
    bool operator==(const Iter& o) const {
      bool e = m == nullptr || it == m->end(), oe = o.m == nullptr || o.it == o.m->end();
      return e || oe ? e == oe : it == o.it;
    }
  };

 public:
  static constexpr size_t kShards = 256;
  ShardedMap() {
    for (size_t i = 0; i < kShards; ++i)
      shards_[i].max_load_factor(1.0f + float(i) / float(kShards));
  }
  using iterator = Iter<Inner, typename Inner::iterator>;
  using const_iterator = Iter<const Inner, typename Inner::const_iterator>;

  iterator end() { return {}; }
  const_iterator end() const { return {}; }
  iterator find(const K& k) {
    Inner& m = shard(k);
    return {m.find(k), &m};
  }
  const_iterator find(const K& k) const {
    const Inner& m = shards_[index(k)];
    return {m.find(k), &m};
  }
  template <class... Args>
  std::pair<iterator, bool> try_emplace(const K& k, Args&&... args) {
    Inner& m = shard(k);
    auto [it, added] = m.try_emplace(k, std::forward<Args>(args)...);
    return {{it, &m}, added};
  }
  template <class M>
  void insert_or_assign(const K& k, M&& v) {
    shard(k).insert_or_assign(k, std::forward<M>(v));
  }
  V& operator[](const K& k) { return shard(k)[k]; }
  size_t erase(const K& k) { return shard(k).erase(k); }
  void erase(iterator it) {
    if (it.m) it.m->erase(it.it);
  }
  size_t size() const {
    size_t n = 0;
    for (auto& m : shards_) n += m.size();
    return n;
  }
  // O(1): a caller under a lock swaps the entries out and frees them after letting it go.
  void swap(ShardedMap& o) noexcept { shards_.swap(o.shards_); }
  void clear() {
    for (auto& m : shards_) m.clear();
  }
  size_t shard_buckets(size_t i) const { return shards_[i].bucket_count(); }

 private:
  // The top bits of a mixed hash: independent of the bucket each shard picks from Hash alone.
  static size_t index(const K& k) {
    uint64_t x = uint64_t(Hash()(k));
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return size_t(x >> 56);
  }
  Inner& shard(const K& k) { return shards_[index(k)]; }
  std::array<Inner, kShards> shards_;
};

}  // namespace spanprof
