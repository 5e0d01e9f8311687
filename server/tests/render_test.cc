// Pyroscope's render documents (core/render): the timeline's step, its zero-filled samples, and
// the flamebearer metadata.
#include "core/render.h"

#include <gtest/gtest.h>

#include "core/dot.h"

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

namespace {
// A pprof with functions main, a, b, c (ids 1-4, one location each) and samples (root first)
// main;a;b=3, main;a;c=2, main;c=1, counted in "count".
perftools::profiles::Profile call_graph_profile() {
  perftools::profiles::Profile p;
  for (const char* s : {"", "samples", "count", "main", "a", "b", "c"}) p.add_string_table(s);
  auto* st = p.add_sample_type();
  st->set_type(1);
  st->set_unit(2);
  for (uint64_t i = 1; i <= 4; ++i) {
    auto* f = p.add_function();
    f->set_id(i);
    f->set_name(int64_t(i) + 2);
    auto* l = p.add_location();
    l->set_id(i);
    l->add_line()->set_function_id(i);
  }
  auto sample = [&p](std::vector<uint64_t> leaf_first, int64_t v) {
    auto* s = p.add_sample();
    for (auto l : leaf_first) s->add_location_id(l);
    s->add_value(v);
  };
  sample({3, 2, 1}, 3);
  sample({4, 2, 1}, 2);
  sample({4, 1}, 1);
  return p;
}
}  // namespace

// Hand-computed pprof call graph: flat where a function is the leaf, cum once per sample, edges
// weighted by the samples through the call.
TEST(Render, DotGraphHasFlatCumAndEdgeWeights) {
  std::string dot = pprof_to_dot(call_graph_profile(), 0);
  EXPECT_EQ(dot.rfind("digraph \"unnamed\" {\n", 0), 0u) << dot;
  EXPECT_NE(dot.find("Showing nodes accounting for 6, 100% of 6 total"), std::string::npos);
  // Nodes by cum: main 6, a 5, b 3 (flat 3), c 3 (flat 3; after b by name).
  EXPECT_NE(dot.find("N1 [label=\"main\\n0 of 6 (100%)\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("N2 [label=\"a\\n0 of 5 (83.33%)\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("N3 [label=\"b\\n3 (50.00%)\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("N4 [label=\"c\\n3 (50.00%)\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("N1 -> N2 [label=\" 5\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("N2 -> N3 [label=\" 3\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("N2 -> N4 [label=\" 2\""), std::string::npos) << dot;
  EXPECT_NE(dot.find("N1 -> N4 [label=\" 1\""), std::string::npos) << dot;
  EXPECT_EQ(dot.substr(dot.size() - 2), "}\n");
}

TEST(Render, DotGraphKeepsTheLargestNodes) {
  std::string dot = pprof_to_dot(call_graph_profile(), 3);
  // c dropped: its samples still count in main's and a's cum, nobody's flat.
  EXPECT_NE(dot.find("Showing nodes accounting for 3, 50.00% of 6 total"), std::string::npos)
      << dot;
  EXPECT_NE(dot.find("Showing top 3 nodes out of 4"), std::string::npos);
  EXPECT_NE(dot.find("N1 [label=\"main\\n0 of 6 (100%)\""), std::string::npos) << dot;
  EXPECT_EQ(dot.find("label=\"c\\n"), std::string::npos) << dot;
  EXPECT_EQ(dot.find("N4"), std::string::npos) << dot;
  EXPECT_EQ(pprof_to_dot(perftools::profiles::Profile(), 10), "");
}
