// Pyroscope's render documents (core/render): the timeline's step, its zero-filled samples, and
// the flamebearer metadata.
#include "core/render.h"

#include <gtest/gtest.h>

using namespace spanprof;

TEST(Render, StepIsPyroscopesRoundedInterval) {
  EXPECT_EQ(render_step_s(0, 3'600'000), 15);            // 1 h / 1500 = 2.4 s → at least 15 s
  EXPECT_EQ(render_step_s(0, 24 * 3'600'000), 60);       // 57.6 s → 1 min
  EXPECT_EQ(render_step_s(0, 7 * 86'400'000), 300);      // 403 s → 5 min
  EXPECT_EQ(render_step_s(0, 30LL * 86'400'000), 1800);  // 1728 s → 30 min
}

TEST(Render, TimelineIsZeroFilledOverTheWindow) {
  // Window [60 s, 180 s) in 15 s steps: 8 slots; points at 90 s and 135 s.
  auto t = render_timeline({{90'000, 5}, {135'000, 7}, {200'000, 9}}, 61'000, 180'000, 15);
  EXPECT_EQ(t["startTime"], 60);
  EXPECT_EQ(t["durationDelta"], 15);
  EXPECT_EQ(t["samples"], (std::vector<int64_t>{0, 0, 5, 0, 0, 7, 0, 0}));
  auto empty = render_timeline({}, 0, 60'000, 15);
  EXPECT_EQ(empty["samples"], (std::vector<int64_t>{0, 0, 0, 0}));
}
