// querier.v1 semantics as Pyroscope defines them (core/querier): selectors that filter samples,
// formats honoured or refused, SelectSeries' top N, point stamps and exemplars, pprof truncation.
#include "core/querier.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/store.h"
#include "core/util.h"
#include "tmp_dir.h"

using namespace spanprof;
namespace q1 = querier::v1;

namespace {
constexpr int64_t kPeriod = 10'000'000;
constexpr const char* kCpu = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";

// One profile of `service` at `time_ms`. Frames: main, a, b, c. Samples (root first):
//   main→a→b  x`n`  trace 1, span 0x11
//   main→a→c  x2    trace 2, span 0x22
//   main→c    x1    no trace
RawProfile profile(const std::string& service, int64_t time_ms, int64_t n) {
  RawProfile p;
  p.series = {{"__name__", "process_cpu"}, {"service_name", service}};
  p.period = kPeriod;
  p.time_ns = time_ms * 1'000'000;
  p.frames = {{"main", "m.py", 1}, {"a", "m.py", 2}, {"b", "m.py", 3}, {"c", "m.py", 4}};
  auto sample = [](std::vector<uint32_t> fr, int64_t k, uint64_t trace, uint64_t span) {
    RawSample s;
    s.frames = std::move(fr);
    s.value = k * kPeriod;
    s.ids.trace_lo = trace;
    s.ids.span_id = span;
    return s;
  };
  p.samples = {sample({0, 1, 2}, n, 1, 0x11), sample({0, 1, 3}, 2, 2, 0x22),
               sample({0, 3}, 1, 0, 0)};
  return p;
}

struct Querying : ::testing::Test {
  TmpDir d;
  std::unique_ptr<Store> store;
  std::unique_ptr<QueryEngine> engine;
  std::unique_ptr<Querier> q;
  // A minute boundary 10 minutes ago: profiles at t0+1 s, t0+31 s, t0+61 s.
  int64_t now_ms = now_ns() / 1'000'000;
  int64_t t0 = now_ms / 60000 * 60000 - 600000;
  void SetUp() override {
    auto s = Store::open({d.path});
    ASSERT_TRUE(s) << s.error.message;
    store = std::move(*s);
    ASSERT_FALSE(
        store->write_profiles({profile("svc-a", t0 + 1000, 1), profile("svc-a", t0 + 31000, 3),
                               profile("svc-a", t0 + 61000, 5)}));
    ASSERT_FALSE(store->write_profiles({profile("svc-b", t0 + 1000, 20)}));
    ASSERT_FALSE(store->write_profiles({profile("svc-c", t0 + 1000, 10)}));
    engine = std::make_unique<QueryEngine>(*store);
    q = std::make_unique<Querier>(*engine);
  }
  q1::SelectMergeStacktracesRequest merge_req(const std::string& selector = "{}") const {
    q1::SelectMergeStacktracesRequest r;
    r.set_profile_typeid(kCpu);
    r.set_label_selector(selector);
    r.set_start(t0 - 60000);
    r.set_end(now_ms);
    return r;
  }
  int64_t total(const q1::SelectMergeStacktracesRequest& r) const {
    auto out = q->select_merge_stacktraces("anonymous", r, now_ms);
    EXPECT_TRUE(out) << out.error.message;
    return out ? out->flamegraph().total() : -1;
  }
  // svc-a over [t0, t0 + 2 min] in 30 s steps.
  q1::SelectHeatmapRequest heatmap_req(q1::HeatmapQueryType type,
                                       types::v1::ExemplarType exemplars) const {
    q1::SelectHeatmapRequest r;
    r.set_profile_typeid(kCpu);
    r.set_label_selector("{service_name=\"svc-a\"}");
    r.set_start(t0);
    r.set_end(t0 + 120000);
    r.set_step(30);
    r.set_query_type(type);
    r.set_exemplar_type(exemplars);
    return r;
  }
  q1::SelectSeriesRequest series_req() const {
    q1::SelectSeriesRequest r;
    r.set_profile_typeid(kCpu);
    r.set_label_selector("{}");
    r.set_start(t0);
    r.set_end(t0 + 120000);
    r.set_step(30);
    r.add_group_by("service_name");
    return r;
  }
};
}  // namespace

TEST_F(Querying, StackTraceSelectorKeepsStacksWithTheCallSitePrefix) {
  auto r = merge_req("{service_name=\"svc-a\"}");
  EXPECT_EQ(total(r), (1 + 3 + 5 + 3 * (2 + 1)) * kPeriod);
  r.mutable_stack_trace_selector()->add_call_site()->set_name("main");
  r.mutable_stack_trace_selector()->add_call_site()->set_name("a");
  EXPECT_EQ(total(r), (1 + 3 + 5 + 3 * 2) * kPeriod);  // main→c left out
  r.mutable_stack_trace_selector()->add_call_site()->set_name("b");
  EXPECT_EQ(total(r), (1 + 3 + 5) * kPeriod);
  // A prefix, not a substring: "a" alone starts no stack.
  auto s = merge_req("{service_name=\"svc-a\"}");
  s.mutable_stack_trace_selector()->add_call_site()->set_name("a");
  EXPECT_EQ(total(s), 0);
  s.mutable_stack_trace_selector()->mutable_go_pgo()->set_keep_locations(1);
  auto pgo = q->select_merge_stacktraces("anonymous", s, now_ms);
  ASSERT_FALSE(pgo);
  EXPECT_EQ(pgo.error.code, "invalid_argument");
}

TEST_F(Querying, TraceSelectorKeepsThatTracesSamplesAndRefusesASpanSelectorBeside) {
  auto r = merge_req("{service_name=\"svc-a\"}");
  r.add_trace_id_selector(hex_u128(0, 2));
  EXPECT_EQ(total(r), 3 * 2 * kPeriod);
  r.add_trace_id_selector(hex_u128(0, 1));
  EXPECT_EQ(total(r), (3 * 2 + 1 + 3 + 5) * kPeriod);
  r.add_span_selector(hex_u64(0x11));
  auto both = q->select_merge_stacktraces("anonymous", r, now_ms);
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error.status, 400);
  EXPECT_EQ(both.error.code, "invalid_argument");
  auto bad = merge_req();
  bad.add_trace_id_selector("abc");
  EXPECT_FALSE(q->select_merge_stacktraces("anonymous", bad, now_ms));
  // The span selector with a call site: both hold.
  auto sp = merge_req("{service_name=\"svc-a\"}");
  sp.add_span_selector(hex_u64(0x22));
  EXPECT_EQ(total(sp), 3 * 2 * kPeriod);
  sp.mutable_stack_trace_selector()->add_call_site()->set_name("main");
  sp.mutable_stack_trace_selector()->add_call_site()->set_name("c");
  EXPECT_EQ(total(sp), 0);
}

TEST_F(Querying, SelectSeriesKeepsTheTopSeriesByValueAndStampsTheEndOfEachStep) {
  auto r = series_req();
  r.set_limit(2);
  auto out = q->select_series("anonymous", r, now_ms);
  ASSERT_TRUE(out) << out.error.message;
  // Totals: svc-a 9+9 = 18 samples over three points, svc-b 23, svc-c 13: the top 2, largest
  // first (not the first two by label).
  ASSERT_EQ(out->series_size(), 2);
  EXPECT_EQ(out->series(0).labels(0).value(), "svc-b");
  EXPECT_EQ(out->series(1).labels(0).value(), "svc-a");
  auto& a = out->series(1);
  ASSERT_EQ(a.points_size(), 3);
  // Profiles at t0+1 s, +31 s, +61 s land on the step ends t0+30 s, +60 s, +90 s.
  EXPECT_EQ(a.points(0).timestamp(), t0 + 30000);
  EXPECT_EQ(a.points(1).timestamp(), t0 + 60000);
  EXPECT_EQ(a.points(2).timestamp(), t0 + 90000);
  EXPECT_EQ(a.points(0).value(), double(4 * kPeriod));
  EXPECT_EQ(a.points(2).value(), double(8 * kPeriod));
  EXPECT_EQ(a.points(0).exemplars_size(), 0);  // not asked for
  r.clear_limit();
  auto all = q->select_series("anonymous", r, now_ms);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->series_size(), 3);
  EXPECT_EQ(all->series(2).labels(0).value(), "svc-c");
}

TEST_F(Querying, ExemplarsNameAProfileThatTheProfileIdSelectorSelects) {
  auto r = series_req();
  r.set_label_selector("{service_name=\"svc-a\"}");
  r.set_exemplar_type(types::v1::EXEMPLAR_TYPE_INDIVIDUAL);
  auto out = q->select_series("anonymous", r, now_ms);
  ASSERT_TRUE(out) << out.error.message;
  ASSERT_EQ(out->series_size(), 1);
  auto& p = out->series(0).points(1);
  ASSERT_EQ(p.exemplars_size(), 1);
  auto& ex = p.exemplars(0);
  EXPECT_EQ(ex.timestamp(), t0 + 31000);  // the profile's own time
  EXPECT_EQ(ex.value(), (3 + 2 + 1) * kPeriod);
  EXPECT_EQ(ex.profile_id().size(), 36u);
  bool has_name = false;
  for (auto& l : ex.labels()) {
    EXPECT_NE(l.name(), "service_name");  // grouped by: on the series, not the exemplar
    has_name = has_name || l.name() == "__name__";
  }
  EXPECT_TRUE(has_name);
  auto m = merge_req();
  m.add_profile_id_selector(ex.profile_id());
  EXPECT_EQ(total(m), (3 + 2 + 1) * kPeriod);
  auto foreign = merge_req();
  foreign.add_profile_id_selector("7c9e6679-7425-40de-944b-e07fc1f90ae7");
  EXPECT_EQ(total(foreign), 0);
  auto bad = merge_req();
  bad.add_profile_id_selector("not-a-uuid");
  EXPECT_EQ(q->select_merge_stacktraces("anonymous", bad, now_ms).error.code, "invalid_argument");
  r.set_exemplar_type(types::v1::EXEMPLAR_TYPE_SPAN);
  auto span = q->select_series("anonymous", r, now_ms);
  ASSERT_FALSE(span);
  EXPECT_EQ(span.error.code, "unimplemented");
}

TEST_F(Querying, SelectSeriesHonoursTheCallSite) {
  auto r = series_req();
  r.set_label_selector("{service_name=\"svc-a\"}");
  r.mutable_stack_trace_selector()->add_call_site()->set_name("main");
  r.mutable_stack_trace_selector()->add_call_site()->set_name("c");
  auto out = q->select_series("anonymous", r, now_ms);
  ASSERT_TRUE(out);
  ASSERT_EQ(out->series_size(), 1);
  for (auto& p : out->series(0).points()) EXPECT_EQ(p.value(), double(kPeriod));
}

TEST_F(Querying, FormatsAreHonouredOrRefused) {
  auto r = merge_req("{service_name=\"svc-b\"}");
  r.set_format(q1::PROFILE_FORMAT_TREE);
  auto tree = q->select_merge_stacktraces("anonymous", r, now_ms);
  ASSERT_TRUE(tree);
  EXPECT_FALSE(tree->has_flamegraph());
  // virtual root → main → {a → {b, c}, c}: the bytes begin with the root and main.
  const std::string& b = tree->tree();
  ASSERT_GE(b.size(), 8u);
  EXPECT_EQ(b.substr(0, 3), std::string("\0\0\1", 3));
  EXPECT_EQ(b.substr(3, 7), std::string("\4main\0\2", 7));
  r.set_format(q1::PROFILE_FORMAT_PPROF);
  auto pp = q->select_merge_stacktraces("anonymous", r, now_ms);
  ASSERT_TRUE(pp);
  int64_t sum = 0;
  for (auto& s : pp->pprof().profile().sample()) sum += s.value(0);
  EXPECT_EQ(sum, 23 * kPeriod);
  r.set_format(q1::PROFILE_FORMAT_DOT);
  EXPECT_EQ(q->select_merge_stacktraces("anonymous", r, now_ms).error.code, "invalid_argument");
  r.set_format(static_cast<q1::ProfileFormat>(9));
  EXPECT_EQ(q->select_merge_stacktraces("anonymous", r, now_ms).error.status, 400);
  r.set_format(q1::PROFILE_FORMAT_FLAMEGRAPH);
  r.set_max_nodes(-1);
  EXPECT_FALSE(q->select_merge_stacktraces("anonymous", r, now_ms));
}

TEST_F(Querying, SelectMergeProfileTruncatesToMaxNodesAndStampsTheRange) {
  q1::SelectMergeProfileRequest r;
  r.set_profile_typeid(kCpu);
  r.set_label_selector("{service_name=\"svc-b\"}");
  r.set_start(t0 - 60000);
  r.set_end(now_ms);
  auto full = q->select_merge_profile("anonymous", r, now_ms);
  ASSERT_TRUE(full);
  EXPECT_EQ(full->sample_size(), 3);
  EXPECT_EQ(full->time_nanos(), now_ms * 1'000'000);
  EXPECT_EQ(full->duration_nanos(), (now_ms - t0 + 60000) * 1'000'000);
  // Function tree: main 23, a 22, b 20, c under a 2, c under main 1. Two nodes: main and a; b
  // and both c's are cut, "other" standing for them.
  r.set_max_nodes(2);
  auto cut = q->select_merge_profile("anonymous", r, now_ms);
  ASSERT_TRUE(cut);
  std::map<std::string, int64_t> leaf;  // leaf function name → value
  int64_t sum = 0;
  for (auto& s : cut->sample()) {
    auto& loc = cut->location(int(s.location_id(0) - 1));
    auto& fn = cut->function(int(loc.line(0).function_id() - 1));
    leaf[cut->string_table(fn.name())] += s.value(0);
    sum += s.value(0);
  }
  EXPECT_EQ(sum, 23 * kPeriod);
  EXPECT_EQ(leaf, (std::map<std::string, int64_t>{{"other", 23 * kPeriod}}));
  EXPECT_EQ(cut->sample_size(), 2);  // main→a→other, main→other
}

TEST_F(Querying, DiffComparesTwoSelectionsAndProfileStatsSpanTheData) {
  q1::DiffRequest r;
  *r.mutable_left() = merge_req("{service_name=\"svc-b\"}");
  *r.mutable_right() = merge_req("{service_name=\"svc-c\"}");
  auto d = q->diff("anonymous", r, now_ms);
  ASSERT_TRUE(d) << d.error.message;
  EXPECT_EQ(d->flamegraph().leftticks(), 23 * kPeriod);
  EXPECT_EQ(d->flamegraph().rightticks(), 13 * kPeriod);
  EXPECT_EQ(d->flamegraph().total(), 36 * kPeriod);
  for (auto& l : d->flamegraph().levels()) EXPECT_EQ(l.values_size() % 7, 0);
  r.mutable_right()->add_trace_id_selector("zz");
  EXPECT_FALSE(q->diff("anonymous", r, now_ms));
  auto stats = q->profile_stats("anonymous");
  EXPECT_TRUE(stats.data_ingested());
  EXPECT_EQ(stats.oldest_profile_time(), t0 + 1000);
  EXPECT_EQ(stats.newest_profile_time(), t0 + 61000);
  auto none = q->profile_stats("nobody");
  EXPECT_FALSE(none.data_ingested());
  EXPECT_EQ(none.oldest_profile_time(), 0);
}

TEST_F(Querying, LabelCallsListWhatTheTimeRangeHolds) {
  q1::ProfileTypesRequest pt;
  auto types = q->profile_types("anonymous", pt);
  ASSERT_TRUE(types);
  ASSERT_EQ(types->profile_types_size(), 1);
  EXPECT_EQ(types->profile_types(0).id(), kCpu);
  EXPECT_EQ(types->profile_types(0).sample_type(), "cpu");
  pt.set_start(1);
  pt.set_end(2);
  EXPECT_EQ(q->profile_types("anonymous", pt)->profile_types_size(), 0);
  types::v1::LabelValuesRequest lv;
  lv.set_name("service_name");
  auto vals = q->label_values("anonymous", lv);
  ASSERT_TRUE(vals);
  EXPECT_EQ(std::vector<std::string>(vals->names().begin(), vals->names().end()),
            (std::vector<std::string>{"svc-a", "svc-b", "svc-c"}));
  q1::SeriesRequest sr;
  sr.add_matchers("{service_name=~\"svc-[ab]\"}");
  sr.add_label_names("service_name");
  auto series = q->series("anonymous", sr);
  ASSERT_TRUE(series);
  EXPECT_EQ(series->labels_set_size(), 2);
  types::v1::LabelNamesRequest ln;
  ln.add_matchers("{bad");
  EXPECT_EQ(q->label_names("anonymous", ln).error.status, 400);
}

// SelectHeatmap as Pyroscope's: 20 y buckets between the smallest and largest point, slots
// stamped at their right edge on the start + k * step grid. svc-a's profiles (totals 4, 6 and 8
// periods at t0+1 s, +31 s, +61 s) land in buckets 0, 10 and 19 of slots +30 s, +60 s, +90 s.
TEST_F(Querying, HeatmapOfIndividualProfiles) {
  auto r = heatmap_req(q1::HEATMAP_QUERY_TYPE_INDIVIDUAL, types::v1::EXEMPLAR_TYPE_INDIVIDUAL);
  auto h = q->select_heatmap("anonymous", r, now_ms);
  ASSERT_TRUE(h) << h.error.message;
  ASSERT_EQ(h->series_size(), 1);
  EXPECT_EQ(h->series(0).labels_size(), 0);  // no group_by: one series without labels
  const auto& slots = h->series(0).slots();
  ASSERT_EQ(slots.size(), 3);
  const int buckets[] = {0, 10, 19};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(slots[i].timestamp(), t0 + 30000 * (i + 1));
    ASSERT_EQ(slots[i].counts_size(), 20);
    for (int b = 0; b < 20; ++b) EXPECT_EQ(slots[i].counts(b), b == buckets[i] ? 1 : 0);
    EXPECT_EQ(slots[i].y_min(0), 4 * kPeriod);
    EXPECT_EQ(slots[i].y_min(10), 6 * kPeriod);
    ASSERT_EQ(slots[i].exemplars_size(), 1);
    EXPECT_EQ(slots[i].exemplars(0).value(), (4 + 2 * i) * kPeriod);
    EXPECT_EQ(slots[i].exemplars(0).profile_id().size(), 36u);
  }
  r.set_step(0);
  EXPECT_EQ(q->select_heatmap("anonymous", r, now_ms).error.status, 400);
  r.set_step(30);
  r.set_start(INT64_MIN);  // start - step would overflow
  EXPECT_EQ(q->select_heatmap("anonymous", r, now_ms).error.status, 400);
  r.set_start(t0);
  r.set_query_type(q1::HEATMAP_QUERY_TYPE_UNSPECIFIED);
  EXPECT_EQ(q->select_heatmap("anonymous", r, now_ms).error.status, 400);
  r.set_query_type(q1::HEATMAP_QUERY_TYPE_INDIVIDUAL);
  r.set_exemplar_type(types::v1::EXEMPLAR_TYPE_SPAN);
  EXPECT_EQ(q->select_heatmap("anonymous", r, now_ms).error.status, 400);
}

// SPAN: one point per (profile, local-root span) summing its samples: span 0x11 holds 1, 3, 5
// periods, span 0x22 two in each profile; the unattributed sample is no point.
TEST_F(Querying, HeatmapOfSpansAndTopSeries) {
  auto r = heatmap_req(q1::HEATMAP_QUERY_TYPE_SPAN, types::v1::EXEMPLAR_TYPE_SPAN);
  auto h = q->select_heatmap("anonymous", r, now_ms);
  ASSERT_TRUE(h) << h.error.message;
  ASSERT_EQ(h->series_size(), 1);
  const auto& slots = h->series(0).slots();
  ASSERT_EQ(slots.size(), 3);
  const int span11[] = {0, 10, 19};  // 1, 3, 5 periods between 1 and 5
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(slots[i].counts(span11[i]), 1);
    EXPECT_EQ(slots[i].counts(5), 1);  // span 0x22: 2 periods
    int sum = 0;
    for (auto c : slots[i].counts()) sum += c;
    EXPECT_EQ(sum, 2);
  }
  ASSERT_EQ(slots[2].exemplars_size(), 2);
  EXPECT_EQ(slots[2].exemplars(1).span_id(), "0000000000000011");
  EXPECT_EQ(slots[2].exemplars(1).trace_id(), hex_u128(0, 1));
  EXPECT_EQ(slots[2].exemplars(1).value(), 5 * kPeriod);
  // group_by with limit: svc-a (3 points) first, then svc-b before svc-c (1 point each, labels).
  r.set_label_selector("{}");
  r.add_group_by("service_name");
  r.set_limit(2);
  r.set_query_type(q1::HEATMAP_QUERY_TYPE_INDIVIDUAL);
  r.set_exemplar_type(types::v1::EXEMPLAR_TYPE_NONE);
  auto top = q->select_heatmap("anonymous", r, now_ms);
  ASSERT_TRUE(top) << top.error.message;
  ASSERT_EQ(top->series_size(), 2);
  EXPECT_EQ(top->series(0).labels(0).value(), "svc-a");
  EXPECT_EQ(top->series(1).labels(0).value(), "svc-b");
  EXPECT_EQ(top->series(0).slots(0).exemplars_size(), 0);
}

TEST_F(Querying, AnalyzeQueryCountsTheRangeAndTheMatchedSeries) {
  q1::AnalyzeQueryRequest r;
  r.set_start(t0);
  r.set_end(t0 + 120000);
  r.set_query(std::string(kCpu) + "{service_name=\"svc-a\"}");
  auto a = q->analyze_query("anonymous", r, now_ms);
  ASSERT_TRUE(a) << a.error.message;
  ASSERT_EQ(a->query_scopes_size(), 1);
  const auto& s = a->query_scopes(0);
  EXPECT_EQ(s.series_count(), 3u);
  EXPECT_EQ(s.profile_count(), 5u);
  EXPECT_EQ(s.sample_count(), 15u);
  EXPECT_EQ(a->query_impact().total_queried_series(), 1u);
  r.set_query("{service_name=~\"svc-[ab]\"}");
  EXPECT_EQ(q->analyze_query("anonymous", r, now_ms)->query_impact().total_queried_series(), 2u);
  r.set_query("{bad");
  EXPECT_EQ(q->analyze_query("anonymous", r, now_ms).error.status, 400);
}
