// The /api/v1 documents the web UI reads beyond Pyroscope's formats: frames with file and line,
// trace search on any span, paging, and traces ranked by time in one function.
#include "core/ui_api.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/export.h"
#include "core/located.h"
#include "core/profile_traces.h"
#include "core/store.h"
#include "core/trace_search.h"
#include "core/util.h"
#include "pprof.pb.h"
#include "tmp_dir.h"

using namespace spanprof;
using json = nlohmann::json;

namespace {
constexpr int64_t kPeriod = 10'000'000;

// Two functions named `run` in different files, `run` in a.py sampled at two lines.
// Trace 1 runs a.py:run (lines 10 and 12) for 3 samples; trace 2 runs b.py:run for 2 samples.
RawProfile profile(int64_t time_ns) {
  RawProfile p;
  p.series = {{"__name__", "process_cpu"}, {"service_name", "svc"}};
  p.period = kPeriod;
  p.time_ns = time_ns;
  p.frames = {{"main", "app.py", 1}, {"run", "a.py", 10}, {"run", "a.py", 12}, {"run", "b.py", 5}};
  auto sample = [](std::vector<uint32_t> fr, int64_t n, uint64_t trace) {
    RawSample s;
    s.frames = std::move(fr);
    s.value = n * kPeriod;
    s.ids.span_id = trace * 16;
    s.ids.trace_lo = trace;
    return s;
  };
  p.samples = {sample({0, 1}, 2, 1), sample({0, 2}, 1, 1), sample({0, 3}, 2, 2), sample({0}, 1, 0)};
  return p;
}

SpanRow span(uint64_t trace, uint64_t id, uint64_t parent, std::string name, int64_t start_ms,
             int64_t dur_ms, std::string attrs = "{}", int status = 0) {
  SpanRow s;
  s.trace_lo = trace;
  s.span_id = id;
  s.parent_span_id = parent;
  s.name = std::move(name);
  s.service = "svc";
  s.start_ns = start_ms * 1'000'000;
  s.end_ns = (start_ms + dur_ms) * 1'000'000;
  s.status_code = status;
  s.detail_json = json{{"attributes", json::parse(attrs)}}.dump();
  return s;
}

struct UiDocs : ::testing::Test {
  TmpDir d;
  std::unique_ptr<Store> store;
  int64_t now_ms = now_ns() / 1'000'000;
  void SetUp() override {
    auto s = Store::open({d.path});
    ASSERT_TRUE(s) << s.error.message;
    store = std::move(*s);
    ASSERT_FALSE(store->write_profiles({profile(now_ms * 1'000'000)}));
  }
  json flame(const std::string& frames) {
    QueryEngine q(*store);
    auto r = UiApi(q).flamegraph("anonymous", {{"service", "svc"}, {"frames", frames}});
    EXPECT_TRUE(r) << r.error.message;
    return *r;
  }
};
}  // namespace

TEST_F(UiDocs, FramesByFunctionKeepFilesApart) {
  json f = flame("function");
  // total, main, run (a.py), run (b.py): two `run` entries, each with its own file.
  std::vector<std::string> names = f["names"];
  std::vector<std::string> files = f["files"];
  std::vector<int64_t> lines = f["lines"];
  ASSERT_EQ(names, (std::vector<std::string>{"total", "main", "run", "run"}));
  // Names in Pyroscope's visit order (last child first): b.py's run before a.py's.
  EXPECT_EQ(files, (std::vector<std::string>{"", "app.py", "b.py", "a.py"}));
  EXPECT_EQ(lines, (std::vector<int64_t>{0, 1, 5, 10}));  // a.py: lowest sampled line
  // Level 2: after main's self sample, a.py:run total 3 samples, b.py:run 2.
  EXPECT_EQ(f["levels"][2], (std::vector<int64_t>{kPeriod, 3 * kPeriod, 3 * kPeriod, 3, 0,
                                                  2 * kPeriod, 2 * kPeriod, 2}));
  EXPECT_EQ(f["frames"], "function");
}

TEST_F(UiDocs, FramesByLineSplitALineFromAnother) {
  json f = flame("line");
  std::vector<int64_t> lines = f["lines"];
  EXPECT_EQ(f["names"].size(), 5u);
  EXPECT_EQ(lines, (std::vector<int64_t>{0, 1, 5, 12, 10}));
  QueryEngine q(*store);
  auto bad = UiApi(q).flamegraph("anonymous", {{"service", "svc"}, {"frames", "file"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error.status, 400);
}

TEST_F(UiDocs, TracesThroughAFunctionAreRankedWithTheirShare) {
  QueryEngine q(*store);
  auto r = traces_through(*store, q, "anonymous",
                          {{"service", "svc"}, {"function", "run"}, {"file", "a.py"}});
  ASSERT_TRUE(r) << r.error.message;
  ASSERT_EQ((*r)["traces"].size(), 1u);
  EXPECT_EQ((*r)["traces"][0]["trace_id"], hex_u128(0, 1));
  EXPECT_EQ((*r)["traces"][0]["value"], 3 * kPeriod);
  EXPECT_EQ((*r)["function_value"], 3 * kPeriod);
  // Any file: both traces, the longer first; the root-only sample has no trace.
  auto any = traces_through(*store, q, "anonymous", {{"service", "svc"}, {"function", "run"}});
  ASSERT_TRUE(any);
  ASSERT_EQ((*any)["traces"].size(), 2u);
  EXPECT_EQ((*any)["traces"][1]["trace_id"], hex_u128(0, 2));
  // A line narrows to the samples at it.
  auto ln = traces_through(*store, q, "anonymous",
                           {{"service", "svc"}, {"function", "run"}, {"line", "12"}});
  ASSERT_TRUE(ln);
  EXPECT_EQ((*ln)["traces"][0]["value"], 1 * kPeriod);
  // Without a function: all the time of each trace (exemplars), and the unattributed sample.
  auto all = traces_through(*store, q, "anonymous", {{"service", "svc"}});
  ASSERT_TRUE(all);
  EXPECT_EQ((*all)["traces"][0]["value"], 3 * kPeriod);
  EXPECT_EQ((*all)["total"], 6 * kPeriod);
  EXPECT_EQ((*all)["unattributed"], 1 * kPeriod);
  EXPECT_FALSE(traces_through(*store, q, "anonymous", {{"service", "svc"}, {"line", "3"}}));
}

TEST_F(UiDocs, SearchMatchesChildSpansAttributesStatusAndPages) {
  std::vector<SpanRow> spans;
  for (uint64_t t = 1; t <= 25; ++t) {
    spans.push_back(span(t, t * 16, 0, "GET /x", now_ms - 1000 + int64_t(t), int64_t(t),
                         t % 5 == 0 ? R"({"user":"ann","n":7})" : R"({"user":"bob"})"));
    spans.push_back(
        span(t, t * 16 + 1, t * 16, t % 2 ? "db.query" : "cache", now_ms, 1, "{}", t == 7 ? 2 : 0));
  }
  ASSERT_FALSE(store->write_spans(spans));
  QueryEngine q(*store);
  auto run = [&](Params p) {
    auto tq = parse_trace_query(p);
    EXPECT_TRUE(tq) << tq.error.message;
    auto r = TraceSearch(*store, q).run("anonymous", *tq);
    EXPECT_TRUE(r) << r.error.message;
    return *r;
  };
  json ann = run({{"attributes", "user=ann"}});
  EXPECT_EQ(ann["total"], 5);
  json num = run({{"attributes", "user=ann;n=7"}, {"sort", "duration"}});
  EXPECT_EQ(num["traces"][0]["trace_id"], hex_u128(0, 25));
  json db = run({{"span_name", "db.query"}});
  EXPECT_EQ(db["total"], 13);
  json err = run({{"status", "error"}});
  ASSERT_EQ(err["total"], 1);
  EXPECT_EQ(err["traces"][0]["trace_id"], hex_u128(0, 7));
  EXPECT_TRUE(err["traces"][0]["error"]);
  // Paging by duration: 10 per page, the third page holds the last 5, and no next page.
  json p1 = run({{"sort", "duration"}, {"limit", "10"}});
  EXPECT_EQ(p1["next_offset"], 10);
  EXPECT_EQ(p1["traces"][0]["trace_id"], hex_u128(0, 25));
  json p3 = run({{"sort", "duration"}, {"limit", "10"}, {"offset", "20"}});
  ASSERT_EQ(p3["traces"].size(), 5u);
  EXPECT_EQ(p3["traces"][4]["trace_id"], hex_u128(0, 1));
  EXPECT_TRUE(p3["next_offset"].is_null());
  int64_t n = 0;
  for (auto& c : p1["histogram"]["counts"]) n += c.get<int64_t>();
  EXPECT_EQ(n, 25);
  EXPECT_FALSE(parse_trace_query({{"attributes", "novalue"}}));
  EXPECT_FALSE(parse_trace_query({{"status", "bad"}}));
  EXPECT_FALSE(parse_trace_query({{"offset", "-1"}}));
}

TEST_F(UiDocs, ExportsCarryTheProfileInEachFormat) {
  QueryEngine q(*store);
  Params sel{{"service", "svc"}};
  auto fmt = [&](const char* f) {
    Params p = sel;
    p["format"] = f;
    auto r = export_profile(q, *store, "anonymous", p);
    EXPECT_TRUE(r) << r.error.message;
    return *r;
  };
  // Collapsed: one line per distinct name path (the format has names only, so both `run`s fold
  // into one line), counts in samples (the period is known), sorted.
  EXPECT_EQ(fmt("collapsed").body, "main 1\nmain;run 5\n");
  // speedscope: frames with file and line; weights sum to the total.
  json sp = json::parse(fmt("speedscope").body);
  EXPECT_EQ(sp["profiles"][0]["type"], "sampled");
  int64_t sum = 0;
  for (auto& w : sp["profiles"][0]["weights"]) sum += w.get<int64_t>();
  EXPECT_EQ(sum, 6 * kPeriod);
  bool b_run = false;
  for (auto& f : sp["shared"]["frames"])
    b_run |= f["name"] == "run" && f["file"] == "b.py" && f["line"] == 5;
  EXPECT_TRUE(b_run);
  // pprof: gzipped; the perftools Profile decodes and keeps the samples.
  auto pb = fmt("pprof");
  auto raw = gunzip(pb.body, 1 << 20);
  ASSERT_TRUE(raw);
  perftools::profiles::Profile prof;
  ASSERT_TRUE(prof.ParseFromString(*raw));
  int64_t v = 0;
  for (auto& s : prof.sample()) v += s.value(0);
  EXPECT_EQ(v, 6 * kPeriod);
  Params bad = sel;
  bad["format"] = "svg";
  EXPECT_FALSE(export_profile(q, *store, "anonymous", bad));
}

// Wall-clock profiles (issue #15): a wall RawProfile with thread_state label sets beside the CPU
// one. Trace 9: root span 0x90 (local root), child 0x91 an active span inside it.
TEST_F(UiDocs, TraceSumsWallTimeByThreadStateAndSpanSelectionsTakeTheType) {
  const uint64_t trace = 9, root = 0x90, child = 0x91;
  RawProfile w;
  w.series = {{"__name__", "wall"}, {"service_name", "svc"}};
  w.sample_type = w.period_type = "wall";
  w.period = kPeriod;
  w.time_ns = now_ms * 1'000'000;
  w.frames = {{"main", "app.py", 1}, {"wait", "app.py", 20}, {"<sleep>", "", 0}};
  w.label_sets = {{{"thread_state", "awaiting"}, {"task_name", "Task-1"}},
                  {{"thread_state", "blocked"}},
                  {{"thread_state", "running"}},
                  {}};
  auto sample = [&](std::vector<uint32_t> fr, int64_t n, uint64_t active, uint32_t set) {
    RawSample s;
    s.frames = std::move(fr);
    s.value = n * kPeriod;
    s.ids.span_id = root;
    s.ids.active_span_id = active;
    s.ids.trace_lo = trace;
    s.label_set = set;
    return s;
  };
  w.samples = {sample({0, 1}, 7, root, 0), sample({0, 1, 2}, 4, child, 1), sample({0}, 1, root, 2),
               sample({0}, 2, root, 3)};
  RawProfile c = profile(now_ms * 1'000'000);
  c.samples = {sample({0}, 1, root, 0)};
  c.samples[0].label_set = 0;
  ASSERT_FALSE(store->write_profiles({w, c}));
  ASSERT_FALSE(store->write_spans({span(trace, root, 0, "GET /slow", now_ms - 200, 200),
                                   span(trace, child, root, "charge", now_ms - 100, 50)}));
  QueryEngine q(*store);
  auto t = q.trace("anonymous", hex_u128(0, trace));
  ASSERT_TRUE(t) << t.error.message;
  EXPECT_EQ((*t)["wall_profile_type"], kWallProfileType);
  EXPECT_EQ((*t)["wall_period_ns"], kPeriod);
  json r, ch;
  for (auto& s : (*t)["spans"]) (s["span_id"] == hex_u64(root) ? r : ch) = s;
  EXPECT_EQ(r["wall_ns"]["self"], (json{{"running", kPeriod},
                                        {"gil_wait", 0},
                                        {"blocked", 0},
                                        {"awaiting", 7 * kPeriod},
                                        {"other", 2 * kPeriod}}));
  EXPECT_EQ(ch["wall_ns"]["self"]["blocked"], 4 * kPeriod);
  EXPECT_EQ(r["wall_ns"]["total"]["blocked"], 4 * kPeriod);
  EXPECT_EQ(r["self_samples"], 1);
  EXPECT_EQ(r["self_cpu_ns"], kPeriod);
  EXPECT_EQ(ch["total_cpu_ns"], 0);

  auto fg = [&](Params p) {
    p["trace_id"] = hex_u128(0, trace);
    p["span_id"] = hex_u64(root);
    auto out = UiApi(q).flamegraph("anonymous", p);
    EXPECT_TRUE(out) << out.error.message;
    return out ? (*out)["total"].get<int64_t>() : -1;
  };
  EXPECT_EQ(fg({}), kPeriod);  // CPU by default
  EXPECT_EQ(fg({{"profile_type", kWallProfileType}}), 10 * kPeriod);
  EXPECT_EQ(fg({{"profile_type", kWallProfileType}, {"mode", "children"}}), 14 * kPeriod);
  EXPECT_EQ(fg({{"profile_type", kWallProfileType},
                {"mode", "children"},
                {"selector", R"({thread_state=~"blocked|awaiting"})"}}),
            11 * kPeriod);
  auto bad = UiApi(q).flamegraph("anonymous", {{"trace_id", hex_u128(0, trace)},
                                               {"span_id", hex_u64(root)},
                                               {"selector", "{thread_state="}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error.status, 400);
  // The exported pprof of a wall selection says wall.
  auto pp = export_profile(q, *store, "anonymous",
                           {{"format", "pprof"},
                            {"trace_id", hex_u128(0, trace)},
                            {"span_id", hex_u64(root)},
                            {"profile_type", kWallProfileType}});
  ASSERT_TRUE(pp);
  auto raw = gunzip(pp->body, 1 << 20);
  ASSERT_TRUE(raw);
  perftools::profiles::Profile prof;
  ASSERT_TRUE(prof.ParseFromString(*raw));
  EXPECT_EQ(prof.string_table(prof.sample_type(0).type()), "wall");
}
