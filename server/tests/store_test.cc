#include "core/store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <thread>

#include "core/ui_api.h"
#include "core/util.h"
#include "tmp_dir.h"

using namespace spanprof;

namespace {
// The first column of the first row of `sql` over the data dir's database, read-only.
std::string query_text(const std::string& dir, const char* sql) {
  sqlite3* db = nullptr;
  std::string out = "(error)";
  if (sqlite3_open_v2((dir + "/spanprof.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr) ==
      SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      out = sqlite3_column_text(st, 0) ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0))
                                       : "(null)";
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

RawProfile profile(const std::string& tenant, const std::string& service, int64_t time_ns,
                   uint64_t span) {
  RawProfile p;
  p.tenant = tenant;
  p.series = {{"__name__", "process_cpu"}, {"service_name", service}};
  p.period = 10'000'000;
  p.time_ns = time_ns;
  p.frames = {{"main", "app.py", 1}, {"work", "app.py", 2}, {"idle", "app.py", 3}};
  RawSample a;
  a.frames = {0, 1};
  a.value = 3 * p.period;
  a.ids.span_id = span;
  a.ids.active_span_id = span + 1;
  RawSample b;
  b.frames = {0, 2};
  b.value = 1 * p.period;
  p.samples = {a, b};
  return p;
}
}  // namespace

TEST(Store, RoundTripSurvivesReopen) {
  TmpDir d;
  int64_t now = now_ns();
  {
    auto s = Store::open({d.path});
    ASSERT_TRUE(s) << s.error.message;
    ASSERT_FALSE((*s)->write_profiles({profile("anonymous", "svc", now, 0x1234)}));
  }
  auto s = Store::open({d.path});
  ASSERT_TRUE(s);
  QueryEngine q(**s);
  auto st = q.merge("anonymous", "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
                    R"({service_name="svc"})", 0, now / 1'000'000 + 1000, {});
  ASSERT_TRUE(st);
  auto f = q.flamegraph(*st, 0);
  EXPECT_EQ(f.total, 4 * 10'000'000);
  EXPECT_EQ(f.names, (std::vector<std::string>{"total", "main", "work", "idle"}));
  EXPECT_EQ(st->sample_count, 4);
  // Span selector keeps only the samples of that local root span.
  auto sp = q.merge("anonymous", "", "{}", 0, now / 1'000'000 + 1000, {0x1234});
  ASSERT_TRUE(sp);
  EXPECT_EQ(q.flamegraph(*sp, 0).total, 3 * 10'000'000);
  EXPECT_EQ((*s)->stats().sample_rows, 2);
}

TEST(Store, TenantsAreIsolated) {
  TmpDir d;
  auto s = Store::open({d.path});
  ASSERT_TRUE(s);
  int64_t now = now_ns();
  ASSERT_FALSE((*s)->write_profiles({profile("a", "svc", now, 0x99)}));
  QueryEngine q(**s);
  auto other = q.merge("b", "", "{}", 0, now / 1'000'000 + 1000, {});
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->values.empty());
  auto by_span = q.merge("b", "", "{}", 0, now / 1'000'000 + 1000, {0x99});
  EXPECT_TRUE(by_span->values.empty());
  EXPECT_TRUE((*s)->series_of("b").empty());
  EXPECT_EQ((*s)->series_of("a").size(), 1u);
  SpanRow sr;
  sr.tenant = "a";
  sr.trace_hi = 1, sr.trace_lo = 2, sr.span_id = 3;
  sr.name = "GET /";
  sr.start_ns = now, sr.end_ns = now + 1000;
  ASSERT_FALSE((*s)->write_spans({sr}));
  EXPECT_EQ((*s)->trace_spans("a", 1, 2).size(), 1u);
  EXPECT_TRUE((*s)->trace_spans("b", 1, 2).empty());
}

TEST(Store, RetentionRemovesOldProfiles) {
  TmpDir d;
  StoreOptions o{d.path};
  o.retention_s = 3600;
  o.retention_interval_s = 3600;
  auto s = Store::open(o);
  ASSERT_TRUE(s);
  int64_t now = now_ns();
  ASSERT_FALSE((*s)->write_profiles({profile("anonymous", "old", now - 7200'000'000'000LL, 1),
                                     profile("anonymous", "new", now, 2)}));
  EXPECT_EQ((*s)->stats().profiles, 2);
  ASSERT_FALSE((*s)->run_retention());
  EXPECT_EQ((*s)->stats().profiles, 1);
  EXPECT_EQ((*s)->stats().sample_rows, 2);
  QueryEngine q(**s);
  auto old = q.merge("anonymous", "", R"({service_name="old"})", 0, now / 1'000'000, {});
  EXPECT_TRUE(old->values.empty());
  // The removed profile's span index entry went with it (a stale one would not show in queries,
  // whose profile lookup fails, so count the table itself).
  EXPECT_EQ(query_text(d.path, "SELECT group_concat(span_id) FROM span_index"), "2");
}

TEST(Store, TraceApiCountsSelfAndChildren) {
  TmpDir d;
  auto s = Store::open({d.path});
  ASSERT_TRUE(s);
  int64_t now = now_ns();
  // root 0x10 → child 0x11. Profile: 3 samples active in 0x11, 1 sample with no active span.
  RawProfile p = profile("anonymous", "svc", now, 0x10);
  p.samples[0].ids.active_span_id = 0x11;
  p.samples[1].ids.span_id = 0x10;
  ASSERT_FALSE((*s)->write_profiles({p}));
  SpanRow root, child;
  root.trace_hi = child.trace_hi = 7;
  root.trace_lo = child.trace_lo = 8;
  root.span_id = 0x10;
  child.span_id = 0x11;
  child.parent_span_id = 0x10;
  root.name = "GET /";
  child.name = "work";
  root.start_ns = child.start_ns = now;
  root.end_ns = child.end_ns = now + 1'000'000;
  ASSERT_FALSE((*s)->write_spans({root, child}));
  QueryEngine q(**s);
  auto t = q.trace("anonymous", hex_u128(7, 8));
  ASSERT_TRUE(t) << t.error.message;
  auto& spans = (*t)["spans"];
  ASSERT_EQ(spans.size(), 2u);
  for (auto& sp : spans) {
    if (sp["name"] == "GET /") {
      EXPECT_EQ(sp["self_samples"], 1);
      EXPECT_EQ(sp["total_samples"], 4);
    } else {
      EXPECT_EQ(sp["self_samples"], 3);
      EXPECT_EQ(sp["total_samples"], 3);
    }
  }
  auto fg = UiApi(q).flamegraph(
      "anonymous",
      {{"trace_id", hex_u128(7, 8)}, {"span_id", hex_u64(0x10)}, {"mode", "children"}});
  ASSERT_TRUE(fg);
  EXPECT_EQ((*fg)["sample_count"], 4);
  auto self =
      UiApi(q).flamegraph("anonymous", {{"trace_id", hex_u128(7, 8)}, {"span_id", hex_u64(0x10)}});
  EXPECT_EQ((*self)["sample_count"], 1);
  auto tr = UiApi(q).traces("anonymous", {});
  ASSERT_TRUE(tr);
  ASSERT_EQ((*tr)["traces"].size(), 1u);
  EXPECT_EQ((*tr)["traces"][0]["sample_count"], 4);
  EXPECT_EQ((*tr)["traces"][0]["span_count"], 2);
}

TEST(Store, RefusesADataDirOfAnotherSchema) {
  TmpDir d;
  {
    // Schema 1's tables: a meta table without a 'schema' key and one SQL row per sample.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((d.path + "/spanprof.db").c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID;"
                           "INSERT INTO meta VALUES('sample_rows', 5);"
                           "CREATE TABLE samples(stack INTEGER, value INTEGER);",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = Store::open({d.path});
  ASSERT_FALSE(s);
  EXPECT_NE(s.error.message.find("storage schema 1"), std::string::npos) << s.error.message;
  EXPECT_NE(s.error.message.find("uses 2"), std::string::npos) << s.error.message;
}

TEST(Store, SampleRowsAndSpanIndexRoundTrip) {
  TmpDir d;
  int64_t now = now_ns();
  auto s = Store::open({d.path});
  ASSERT_TRUE(s) << s.error.message;
  // Values that are not multiples of the period (scale 1), a negative one, full trace ids,
  // many spans sharing stacks, and a second profile that shares one span id.
  RawProfile p = profile("anonymous", "svc", now, 0);
  p.samples.clear();
  for (uint64_t sp = 1; sp <= 40; ++sp)
    for (uint32_t k = 0; k < 3; ++k) {
      RawSample r;
      r.frames = {0, k == 0 ? 1u : 2u};
      r.value = int64_t(sp * 1000 + k) * (k == 2 ? -1 : 1);
      r.ids = {0xf000000000000000ull | sp, sp << 8 | k, ~sp, sp};
      p.samples.push_back(r);
    }
  ASSERT_FALSE((*s)->write_profiles({p}));
  RawProfile q = profile("anonymous", "svc", now + 1'000'000, 0xf000000000000007ull);
  ASSERT_FALSE((*s)->write_profiles({q}));

  std::map<uint64_t, int64_t> by_span;
  size_t rows = 0;
  (*s)->scan_span_ids("anonymous", {0xf000000000000007ull, 0xf000000000000028ull}, 0,
                      now / 1'000'000 + 1000, [&](const ProfileMeta&, const SampleRow& r) {
                        ++rows;
                        by_span[r.ids.span_id] += r.value;
                        if (r.ids.trace_lo) EXPECT_EQ(r.ids.trace_hi, ~(r.ids.span_id & 0xff));
                      });
  // Span 7: 3 rows in p (7000 + 7001 - 7002) and one in q (3 periods, same span).
  EXPECT_EQ(rows, 3u + 3u + 1u);
  EXPECT_EQ(by_span[0xf000000000000007ull], 7000 + 7001 - 7002 + 3 * 10'000'000);
  EXPECT_EQ(by_span[0xf000000000000028ull], 40000 + 40001 - 40002);
  // Another tenant sees none of it.
  rows = 0;
  (*s)->scan_span_ids("other", {0xf000000000000007ull}, 0, INT64_MAX,
                      [&](const ProfileMeta&, const SampleRow&) { ++rows; });
  EXPECT_EQ(rows, 0u);
  EXPECT_EQ((*s)->stats().sample_rows, 120 + 2);
}

TEST(Store, StackHintsAreCheckedAndAcksFollowAWalSync) {
  TmpDir d;
  int64_t now = now_ns();
  auto s = Store::open({d.path});
  ASSERT_TRUE(s) << s.error.message;
  RawProfile p = profile("anonymous", "svc", now, 0);
  RawSample c = p.samples[0];  // main;work, like sample 0: a true hint
  c.same_stack_as = 0;
  c.value = 5 * p.period;
  p.samples[1].same_stack_as = 0;  // main;idle: a false hint, must be ignored
  p.samples.push_back(c);
  ASSERT_FALSE((*s)->write_profiles({p}));
  // The push was answered after the WAL holding it was synced.
  auto st = (*s)->stats();
  EXPECT_GE(st.wal_syncs, 1);
  EXPECT_GE(st.synced_batches, st.wal_syncs);
  QueryEngine q(**s);
  auto m = q.merge("anonymous", "process_cpu:cpu:nanoseconds:cpu:nanoseconds",
                   R"({service_name="svc"})", 0, now / 1'000'000 + 1000, {});
  ASSERT_TRUE(m);
  auto f = q.flamegraph(*m, 0);
  EXPECT_EQ(f.total, 9 * 10'000'000);
  // A followed false hint would have put idle's sample under work.
  EXPECT_EQ(f.names, (std::vector<std::string>{"total", "main", "work", "idle"}));
  EXPECT_EQ(st.stacks, 2);
}

namespace {
RawProfile one_stack(const std::string& service, int64_t time_ns, const std::string& leaf,
                     size_t samples = 1) {
  RawProfile p;
  p.tenant = "anonymous";
  p.series = {{"__name__", "process_cpu"}, {"service_name", service}};
  p.period = 10'000'000;
  p.time_ns = time_ns;
  p.frames = {{"main", "app.py", 1}, {leaf, "app.py", 2}};
  RawSample a;
  a.frames = {0, 1};
  a.value = p.period;
  p.samples.assign(samples, a);
  return p;
}
}  // namespace

TEST(Store, RetentionCollectsWhatOnlyDeletedProfilesUsed) {
  TmpDir d;
  StoreOptions o{d.path};
  o.retention_s = 3600;
  o.retention_interval_s = 3600;
  int64_t now = now_ns();
  {
    auto s = Store::open(o);
    ASSERT_TRUE(s);
    ASSERT_FALSE((*s)->write_profiles({one_stack("old", now - 7200'000'000'000LL, "old_fn"),
                                       one_stack("new", now - 10'000'000'000LL, "new_fn")}));
    ASSERT_EQ((*s)->series_of("anonymous").size(), 2u);
    ASSERT_FALSE((*s)->run_retention());
    auto st = (*s)->stats();
    EXPECT_EQ(st.profiles, 1);
    // The old profile's stack, its leaf's location, function and name; "main" and "app.py" are
    // still used by the new profile.
    EXPECT_EQ(st.collected_stacks, 1);
    EXPECT_EQ(st.collected_strings, 1);
    EXPECT_EQ(st.collected_series, 1);
    ASSERT_EQ((*s)->series_of("anonymous").size(), 1u);
    // What was collected is interned again when it comes back.
    ASSERT_FALSE((*s)->write_profiles({one_stack("old", now - 10'000'000'000LL, "old_fn")}));
    QueryEngine q(**s);
    auto m = q.merge("anonymous", "", R"({service_name="old"})", 0, now / 1'000'000 + 1000, {});
    ASSERT_TRUE(m);
    auto f = q.flamegraph(*m, 0);
    EXPECT_EQ(f.names, (std::vector<std::string>{"total", "main", "old_fn"}));
  }
  // Reopened, references are counted from disk: retention still collects (and nothing else).
  o.retention_s = 5;
  auto s = Store::open(o);
  ASSERT_TRUE(s);
  ASSERT_FALSE((*s)->write_profiles({one_stack("later", now + 3600'000'000'000LL, "later_fn")}));
  ASSERT_FALSE((*s)->run_retention());
  auto st = (*s)->stats();
  EXPECT_EQ(st.profiles, 1);
  EXPECT_EQ(st.collected_series, 2);
  EXPECT_EQ(st.collected_strings, 2);  // old_fn and new_fn; main and app.py stay in use
  EXPECT_EQ(
      query_text(d.path, "SELECT group_concat(s, ',') FROM (SELECT s FROM strings ORDER BY s)"),
      "app.py,later_fn,main");
}

TEST(Store, EqualSamplesAreMergedBeforeTheWriter) {
  TmpDir d;
  auto s = Store::open({d.path});
  ASSERT_TRUE(s);
  // No same_stack_as hints: samples are merged by their frames.
  ASSERT_FALSE((*s)->write_profiles({one_stack("svc", now_ns(), "leaf", 100000)}));
  EXPECT_EQ((*s)->stats().sample_rows, 1);
  QueryEngine q(**s);
  auto m = q.merge("anonymous", "", R"({service_name="svc"})", 0, now_ns() / 1'000'000 + 1000, {});
  ASSERT_TRUE(m);
  EXPECT_EQ(q.flamegraph(*m, 0).total, 100000LL * 10'000'000);
}

namespace {
// `frames` new function names (leaf files app.py), `frames / depth` samples whose stacks are
// `depth` consecutive frames each: a profile whose writer work is the dictionary, not its rows.
RawProfile many_new_stacks(const std::string& tenant, const std::string& prefix, size_t frames,
                           size_t depth) {
  RawProfile p = one_stack(prefix, now_ns(), "unused");
  p.tenant = tenant;
  p.frames.clear();
  p.samples.clear();
  for (size_t i = 0; i < frames; ++i)
    p.frames.push_back({prefix + "_" + std::to_string(i), "app.py", 1});
  for (size_t k = 0; k + depth <= frames; k += depth) {
    RawSample s;
    for (size_t j = 0; j < depth; ++j) s.frames.push_back(uint32_t(k + j));
    s.value = p.period;
    p.samples.push_back(s);
  }
  return p;
}
}  // namespace

// A push within every limit but carrying many new names and stacks interns them in turns of its
// own: other tenants' writes commit between those turns, while it is still being written. (How
// long they wait is measured by bench/server_soak.py --heavy-dict, not here.)
TEST(Store, ManyNewStacksTakeTurnsWithOtherWrites) {
  TmpDir d;
  auto s = Store::open({d.path});
  ASSERT_TRUE(s);
  ASSERT_FALSE((*s)->write_profiles({profile("victim", "svc", now_ns(), 0)}));
  const std::string strings_before = query_text(d.path, "SELECT count(*) FROM strings");
  RawProfile heavy = many_new_stacks("heavy", "new_fn", 60000, 20);
  std::atomic<bool> heavy_done{false};
  Status heavy_status;
  std::thread t([&] {
    heavy_status = (*s)->write_profiles({heavy});
    heavy_done = true;
  });
  // Victim writes from the moment the heavy push's first names are committed (without turns,
  // they are committed with its rows, as it is acknowledged).
  while (!heavy_done && query_text(d.path, "SELECT count(*) FROM strings") == strings_before)
    std::this_thread::yield();
  int during = 0, victims = 0;
  while (!heavy_done) {
    ASSERT_FALSE((*s)->write_profiles({profile("victim", "svc", now_ns(), 0)}));
    ++victims;
    during += !heavy_done;
  }
  t.join();
  ASSERT_FALSE(heavy_status) << heavy_status->message;
  EXPECT_GE(during, 3);
  // Everything is stored: the victim's profiles, and every stack of the heavy one, once.
  EXPECT_EQ((*s)->tenant_stats("victim").profiles, 1 + victims);
  EXPECT_EQ((*s)->tenant_stats("heavy").sample_rows, 3000);
  EXPECT_EQ(query_text(d.path, "SELECT count(*) FROM strings WHERE s LIKE 'new_fn_%'"), "60000");
  QueryEngine q(**s);
  auto m = q.merge("heavy", "", R"({service_name="new_fn"})", 0, now_ns() / 1'000'000 + 1000, {});
  ASSERT_TRUE(m);
  auto f = q.flamegraph(*m, 0);
  EXPECT_EQ(f.total, 3000LL * 10'000'000);
  EXPECT_EQ(f.names.size(), 60001u);  // "total" and every frame
}

// A push refused after some of its names were committed in turns of their own (here: a new
// series past the tenant's limit) leaves nothing behind that retention does not collect.
TEST(Store, NamesOfARefusedPushAreCollected) {
  TmpDir d;
  StoreOptions o{d.path};
  o.max_series_per_tenant = 1;
  o.retention_interval_s = 3600;
  auto s = Store::open(o);
  ASSERT_TRUE(s);
  ASSERT_FALSE((*s)->write_profiles({one_stack("first", now_ns(), "kept_fn")}));
  RawProfile heavy = many_new_stacks("anonymous", "refused_fn", 30000, 10);
  Status st = (*s)->write_profiles({heavy});
  ASSERT_TRUE(st);
  EXPECT_EQ(st->status, 429) << st->message;
  ASSERT_FALSE((*s)->run_retention());
  EXPECT_EQ((*s)->stats().collected_strings, 30000);
  EXPECT_EQ(query_text(d.path, "SELECT count(*) FROM strings WHERE s LIKE 'refused_fn_%'"), "0");
  EXPECT_EQ(query_text(d.path, "SELECT count(*) FROM stacks"), "1");
  // The tenant's own data is intact and it can still push to its series.
  ASSERT_FALSE((*s)->write_profiles({one_stack("first", now_ns(), "kept_fn")}));
  EXPECT_EQ((*s)->tenant_stats("anonymous").profiles, 2);
}
