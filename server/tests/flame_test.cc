#include "core/flame.h"

#include <gtest/gtest.h>

using spanprof::FlameTree;

namespace {
std::string name_of(uint32_t k) { return std::string(1, char('a' + k)); }
void add(FlameTree& t, std::vector<uint32_t> s, int64_t v, int side = 0) {
  t.add(s.data(), s.size(), v, side);
}
}  // namespace

// Hand-computed: stacks a;b=3 a;c=1 d=2. Names in the order Pyroscope's NewFlameGraph visits the
// nodes (last child first): total, d, a, c, b; levels in x order.
TEST(Flame, EncodingMatchesHandComputedExample) {
  FlameTree t;
  add(t, {0, 1}, 3);  // a;b
  add(t, {3}, 2);     // d
  add(t, {0, 2}, 1);  // a;c
  auto f = t.flamegraph(name_of, 0);
  EXPECT_EQ(f.names, (std::vector<std::string>{"total", "d", "a", "c", "b"}));
  ASSERT_EQ(f.levels.size(), 3u);
  EXPECT_EQ(f.levels[0], (std::vector<int64_t>{0, 6, 0, 0}));
  EXPECT_EQ(f.levels[1], (std::vector<int64_t>{0, 4, 0, 2, 0, 2, 2, 1}));
  EXPECT_EQ(f.levels[2], (std::vector<int64_t>{0, 3, 3, 4, 0, 1, 1, 3}));
  EXPECT_EQ(f.total, 6);
  EXPECT_EQ(f.max_self, 3);
}

// x_offset is relative to the end of the previous node on the same level: a gap appears when a
// parent has self time or a sibling subtree is shallower.
TEST(Flame, OffsetsSkipGapsOnALevel) {
  FlameTree t;
  add(t, {0}, 2);     // a (self 2)
  add(t, {0, 1}, 1);  // a;b
  add(t, {3, 2}, 4);  // d;c
  auto f = t.flamegraph(name_of, 0);
  // names: total, d, c, a, b. Level 2: b at x=2 (after a's self 2), c at x=3 → offset 0.
  EXPECT_EQ(f.levels[2], (std::vector<int64_t>{2, 1, 1, 4, 0, 4, 4, 2}));
}

TEST(Flame, MaxNodesFoldsIntoOther) {
  FlameTree t;
  add(t, {0, 1}, 3);
  add(t, {3}, 2);
  add(t, {0, 2}, 1);
  auto f = t.flamegraph(name_of, 2);
  EXPECT_EQ(f.names, (std::vector<std::string>{"total", "other", "a", "b"}));
  EXPECT_EQ(f.levels[1], (std::vector<int64_t>{0, 4, 0, 2, 0, 2, 2, 1}));
  EXPECT_EQ(f.levels[2], (std::vector<int64_t>{0, 3, 3, 3, 0, 1, 1, 1}));
  EXPECT_EQ(f.total, 6);
}

// Where Pyroscope places a node's self value: at the left of the node, its children after it.
// Stacks main=2 main;x=3 main;y=4 main;y;z=1 q=5, hand-computed:
//   visit order (names): total, q, main, y, z, x
//   level 1: main x=0 total 10 self 2 | q x=10 total 5 self 5
//   level 2: x x=2 (after main's self) total 3 | y x=5 total 5 self 4
//   level 3: z x=9 (after y's self 4) total 1
TEST(Flame, SelfValueSitsBeforeTheChildren) {
  FlameTree t;
  enum : uint32_t { kMain = 12, kQ = 16, kX = 23, kY = 24, kZ = 25 };  // name_of: 'a' + k
  add(t, {kMain}, 2);
  add(t, {kMain, kX}, 3);
  add(t, {kMain, kY}, 4);
  add(t, {kMain, kY, kZ}, 1);
  add(t, {kQ}, 5);
  auto f =
      t.flamegraph([](uint32_t k) { return k == kMain ? std::string("main") : name_of(k); }, 0);
  EXPECT_EQ(f.names, (std::vector<std::string>{"total", "q", "main", "y", "z", "x"}));
  ASSERT_EQ(f.levels.size(), 4u);
  EXPECT_EQ(f.levels[0], (std::vector<int64_t>{0, 15, 0, 0}));
  EXPECT_EQ(f.levels[1], (std::vector<int64_t>{0, 10, 2, 2, 0, 5, 5, 1}));
  EXPECT_EQ(f.levels[2], (std::vector<int64_t>{2, 3, 3, 5, 0, 5, 4, 3}));
  EXPECT_EQ(f.levels[3], (std::vector<int64_t>{9, 1, 1, 4}));
  EXPECT_EQ(f.total, 15);
  EXPECT_EQ(f.max_self, 5);
}

TEST(Flame, DiffHasSevenIntsPerNode) {
  FlameTree t;
  add(t, {0, 1}, 3, 0);
  add(t, {0, 1}, 1, 1);
  add(t, {0, 2}, 2, 1);
  auto f = t.diff(name_of, 0);
  EXPECT_EQ(f.left_total, 3);
  EXPECT_EQ(f.right_total, 3);
  EXPECT_EQ(f.levels[0], (std::vector<int64_t>{0, 3, 0, 0, 3, 0, 0}));
  EXPECT_EQ(f.levels[1], (std::vector<int64_t>{0, 3, 0, 0, 3, 0, 1}));
  EXPECT_EQ(f.levels[2], (std::vector<int64_t>{0, 3, 3, 0, 1, 1, 3, 0, 0, 0, 0, 2, 2, 2}));
}

// Pyroscope's tree bytes (pkg/model/tree.go), hand-computed: virtual root (no name, self 0, one
// child), a (self 0, two children), then the children last-first: c (self 1), b (self 3).
TEST(Flame, TreeBytesMatchPyroscopesSerialization) {
  FlameTree t;
  add(t, {0, 1}, 3);  // a;b
  add(t, {0, 2}, 1);  // a;c
  EXPECT_EQ(t.tree_bytes(name_of, 0), std::string("\0\0\1"
                                                  "\1a\0\2"
                                                  "\1c\1\0"
                                                  "\1b\3\0",
                                                  15));
  // Two nodes: c folds into an "other" child of a, written before b ("b" < "other").
  EXPECT_EQ(t.tree_bytes(name_of, 2), std::string("\0\0\1"
                                                  "\1a\0\2"
                                                  "\5other\1\0"
                                                  "\1b\3\0",
                                                  19));
  EXPECT_EQ(FlameTree().tree_bytes(name_of, 0), "");
}

TEST(Flame, KeptPrefixStopsAtTheFirstNodeBelowTheThreshold) {
  FlameTree t;
  add(t, {0, 1}, 3);
  add(t, {0, 2}, 1);
  EXPECT_EQ(t.min_keep(0), 0);
  EXPECT_EQ(t.min_keep(2), 3);
  std::vector<uint32_t> s{0, 2};
  EXPECT_EQ(t.kept_prefix(s.data(), 2, 3), 1u);
  EXPECT_EQ(t.kept_prefix(s.data(), 2, 1), 2u);
}
