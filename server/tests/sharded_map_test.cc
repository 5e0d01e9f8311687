#include "core/sharded_map.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace spanprof {
namespace {

// The same random inserts, overwrites, finds and erases on a ShardedMap and a std::unordered_map
// give the same answers.
TEST(ShardedMap, BehavesAsOneMap) {
  ShardedMap<std::string, uint32_t> s;
  std::unordered_map<std::string, uint32_t> u;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    std::string k = "k" + std::to_string(rng() % 50000);
    uint32_t v = uint32_t(rng());
    switch (rng() % 5) {
      case 0: {
        auto [it, added] = s.try_emplace(k, v);
        auto [uit, uadded] = u.try_emplace(k, v);
        ASSERT_EQ(added, uadded);
        ASSERT_EQ(it->second, uit->second);
        break;
      }
      case 1:
        s.insert_or_assign(k, v);
        u.insert_or_assign(k, v);
        break;
      case 2:
        ASSERT_EQ(s.erase(k), u.erase(k));
        break;
      case 3: {
        auto it = s.find(k);
        if (it != s.end()) s.erase(it);
        u.erase(k);
        break;
      }
      default: {
        auto it = s.find(k);
        auto uit = u.find(k);
        ASSERT_EQ(it == s.end(), uit == u.end());
        if (uit != u.end()) ASSERT_EQ(it->second, uit->second);
        s[k] += 1;
        u[k] += 1;
      }
    }
  }
  ASSERT_EQ(s.size(), u.size());
  for (auto& [k, v] : u) ASSERT_EQ(s.find(k)->second, v);
  const auto& cs = s;
  ASSERT_TRUE(cs.find("absent") == cs.end());
}

// The store grows its maps in turns of 2,500 entries under an exclusive lock: once shards hold
// thousands of entries, a turn may double a few of them, never most of them at once (with equal
// load factors, hundreds doubled in one turn: over a million entries moved, measured).
TEST(ShardedMap, ShardsDoubleAtDifferentTimes) {
  using M = ShardedMap<uint64_t, uint32_t>;
  M m;
  std::vector<size_t> before(M::kShards);
  size_t worst = 0;  // shards doubled in one turn, past 250k entries
  std::mt19937_64 rng(11);
  for (int turn = 0; turn < 800; ++turn) {
    for (size_t i = 0; i < M::kShards; ++i) before[i] = m.shard_buckets(i);
    for (int i = 0; i < 2500; ++i) m.try_emplace(rng(), uint32_t(i));
    size_t doubled = 0;
    for (size_t i = 0; i < M::kShards; ++i) doubled += m.shard_buckets(i) != before[i];
    if (m.size() >= 250000) worst = std::max(worst, doubled);
  }
  EXPECT_EQ(m.size(), 2'000'000u);
  EXPECT_LE(worst, 16u);
  // Swapped out and cleared maps keep working.
  M old;
  m.swap(old);
  EXPECT_EQ(m.size(), 0u);
  EXPECT_EQ(old.size(), 2'000'000u);
  old.clear();
  EXPECT_EQ(old.size(), 0u);
  EXPECT_TRUE(old.try_emplace(1, 2).second);
}

}  // namespace
}  // namespace spanprof
