#include "core/selector.h"

#include <gtest/gtest.h>

using namespace spanprof;

static Labels L(std::initializer_list<std::pair<std::string, std::string>> l) {
  Labels x(l);
  sort_labels(x);
  return x;
}

TEST(Selector, AllOperators) {
  auto s = parse_selector(R"({service_name="api", env!="dev", pod=~"web-.*", region!~"eu|us"})");
  ASSERT_TRUE(s) << s.error.message;
  ASSERT_EQ(s->size(), 4u);
  EXPECT_TRUE(matches_all(
      *s, L({{"service_name", "api"}, {"env", "prod"}, {"pod", "web-1"}, {"region", "ap"}})));
  EXPECT_FALSE(matches_all(*s, L({{"service_name", "api"}, {"env", "dev"}, {"pod", "web-1"}})));
  // Regexes are anchored: "xweb-1" does not match web-.*
  EXPECT_FALSE(matches_all(*s, L({{"service_name", "api"}, {"pod", "xweb-1"}})));
  EXPECT_FALSE(matches_all(*s, L({{"service_name", "api"}, {"pod", "web-1"}, {"region", "eu"}})));
}

TEST(Selector, EmptyAndMissingLabels) {
  auto s = parse_selector("{}");
  ASSERT_TRUE(s);
  EXPECT_TRUE(matches_all(*s, L({{"a", "b"}})));
  auto e = parse_selector("");
  ASSERT_TRUE(e);
  auto m = parse_selector(R"({missing=""})");
  ASSERT_TRUE(m);
  EXPECT_TRUE(matches_all(*m, L({{"a", "b"}})));
}

TEST(Selector, EscapesAndTrailingComma) {
  auto s = parse_selector(R"({a="x\"y",})");
  ASSERT_TRUE(s) << s.error.message;
  EXPECT_EQ((*s)[0].value, "x\"y");
}

TEST(Selector, Errors) {
  for (const char* bad : {"service_name=\"x\"", "{a=b}", "{a=\"x\"", "{=\"x\"}", "{a~\"x\"}",
                          "{a=~\"(\"}", "{a=\"x\"} junk", "{a=\"x\" b=\"y\"}"}) {
    auto s = parse_selector(bad);
    EXPECT_FALSE(s) << bad;
    if (!s) EXPECT_EQ(s.error.status, 400);
  }
  EXPECT_FALSE(parse_selector(std::string(5000, '{')));
}

TEST(Selector, RegexRepeatCountsAndBackreferencesAreBounded) {
  // libstdc++ would overflow an int reading these numbers (UB) or build a huge automaton.
  for (const char* bad :
       {R"({a=~"x{1001}"})", R"({a=~"x{1,99999999999}"})", R"({a=~"(x)\\2222222222222222222"})"}) {
    auto s = parse_selector(bad);
    EXPECT_FALSE(s) << bad;
    if (!s) EXPECT_NE(s.error.message.find("repeat counts"), std::string::npos);
  }
  for (const char* good :
       {R"({a=~"x{2,1000}"})", R"({a=~"\\d123456789"})", R"({a=~"user-12345678"})"}) {
    auto s = parse_selector(good);
    EXPECT_TRUE(s) << good << ": " << s.error.message;
  }
  auto s = parse_selector(R"({a=~"\\d123456789"})");
  ASSERT_TRUE(s);
  EXPECT_TRUE(matches_all(*s, {{"a", "7123456789"}}));
}

TEST(Selector, RegexMatchingIsPolynomial) {
  // 30 nested stars: the backtracking executor never returned; the NFA executor is immediate.
  std::string nested = std::string(30, '(') + "p*";
  for (int i = 0; i < 30; ++i) nested += ")*";
  auto s = parse_selector("{a=~\"" + nested + "x\"}");
  ASSERT_TRUE(s) << s.error.message;
  EXPECT_FALSE(matches_all(*s, {{"a", "prod"}}));
  auto b = parse_selector(R"({a=~"(x)\\1"})");  // backreferences: not in Prometheus' syntax
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error.status, 400);
}
