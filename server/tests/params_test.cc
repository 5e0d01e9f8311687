// http/params: query strings and tenant ids are hostile input; limits hold and refusals are 400s
// with a message.
#include "http/params.h"

#include <gtest/gtest.h>

#include "http/legacy.h"

using namespace spanprof;

TEST(Params, DecodesPairsRepeatedKeysAndEscapes) {
  QueryParams q;
  ASSERT_FALSE(parse_query("a=1&b=x+y%21&a=2&&flag&c=%zz%4", q));
  EXPECT_EQ(q.count("a"), 2u);
  EXPECT_EQ(first_param(q, "a"), "1");
  EXPECT_EQ(first_param(q, "b"), "x y!");
  EXPECT_EQ(first_param(q, "flag"), "");
  EXPECT_TRUE(q.count("flag"));
  EXPECT_EQ(first_param(q, "c"), "%zz%4");  // malformed escapes stay as sent
  EXPECT_EQ(api_params(q).at("a"), "2");    // /api/v1: the last value wins
}

TEST(Params, RefusesTooManyPairsAndLongNames) {
  std::string qs;
  for (size_t i = 0; i <= kMaxQueryParams; ++i) qs += "k" + std::to_string(i) + "=v&";
  QueryParams q;
  auto e = parse_query(qs, q);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_NE(e->message.find("256 parameters"), std::string::npos) << e->message;
  e = parse_query(std::string(kMaxParamKeyBytes + 1, 'k') + "=1", q);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->status, 400);
  EXPECT_FALSE(parse_query(std::string(kMaxParamKeyBytes, 'k') + "=1", q));
}

TEST(Params, NestedQueryOfDiff) {
  auto p = api_params_of("service=app&from=1&span_name=GET%20%2F");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->at("span_name"), "GET /");
  EXPECT_EQ(p->at("from"), "1");
}

TEST(Params, TenantIdsFollowPyroscopesRule) {
  for (const char* ok : {"anonymous", "team-a_1", "a.b", "x!*'()", "..."})
    EXPECT_FALSE(check_tenant_id(ok)) << ok;
  EXPECT_FALSE(check_tenant_id(std::string(150, 'a')));
  for (std::string bad : {std::string(""), std::string("."), std::string(".."),
                          std::string(151, 'a'), std::string("a/b"), std::string("a b"),
                          std::string("a|b"), std::string("é"), std::string("a:b")}) {
    auto e = check_tenant_id(bad);
    ASSERT_TRUE(e) << bad;
    EXPECT_EQ(e->status, 400);
    EXPECT_NE(e->message.find("X-Scope-OrgID"), std::string::npos);
  }
}

TEST(Params, RenderFormatAggregationAndGroupBy) {
  QueryParams q{{"query", "process_cpu:cpu:nanoseconds:cpu:nanoseconds{}"},
                {"format", "dot"},
                {"aggregation", "avg"},
                {"groupBy", "a"},
                {"groupBy", "b"}};
  auto r = parse_render_params(q, 1'700'000'000'000);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->dot);
  EXPECT_TRUE(r->average);
  EXPECT_EQ(r->group_by, (std::vector<std::string>{"a", "b"}));
  q.emplace("format", "svg");
  q.erase(q.find("format"));  // the first, "dot": "svg" remains
  auto bad = parse_render_params(q, 1'700'000'000'000);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error.status, 400);
}
