// Reads: each on a pooled read-only connection (WAL: concurrent with the writer) or the
// in-memory dictionary under a shared lock.
#include <sys/stat.h>

#include <unordered_map>

#include "core/store_internal.h"

namespace spanprof {

using namespace store_detail;  // NOLINT(google-build-using-namespace)
using namespace rows_codec;    // NOLINT(google-build-using-namespace)

// ---- reads ----

sqlite3* Store::acquire_reader() const {
  {
    std::lock_guard g(readers_mu_);
    if (!readers_.empty()) {
      sqlite3* db = readers_.back();
      readers_.pop_back();
      return db;
    }
  }
  sqlite3* db = nullptr;
  sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  sqlite3_busy_timeout(db, 10000);
  exec(db, "PRAGMA query_only=1");
  exec(db, "PRAGMA cache_size=-32768");
  return db;
}

void Store::release_reader(sqlite3* db) const {
  std::lock_guard g(readers_mu_);
  readers_.push_back(db);
}

namespace {
struct Reader {
  const Store* s;
  sqlite3* db;
  std::function<void(sqlite3*)> rel;
  ~Reader() { rel(db); }
};
}  // namespace

#define READER()                                        \
  sqlite3* db = acquire_reader();                       \
  Reader reader_guard_ {                                \
    this, db, [this](sqlite3* d) { release_reader(d); } \
  }

std::vector<SeriesInfo> Store::series_of(const std::string& tenant) const {
  std::shared_lock g(dict_mu_);
  std::vector<SeriesInfo> out;
  auto it = tenant_ids_.find(tenant);
  if (it == tenant_ids_.end()) return out;
  for (size_t i = 1; i < series_.size(); ++i)
    if (series_[i].tenant == it->second) out.push_back(series_[i]);
  return out;
}

std::vector<ProfileMeta> Store::profiles_of(const std::vector<int64_t>& series, int64_t from_ms,
                                            int64_t to_ms) const {
  READER();
  std::vector<ProfileMeta> out;
  Stmt q(db,
         "SELECT id, time_ms, period, scale, total FROM profiles WHERE series = ? AND time_ms >= ? "
         "AND "
         "time_ms <= ?");
  for (auto s : series) {
    q.bind(1, s).bind(2, from_ms).bind(3, to_ms);
    while (q.step()) out.push_back({q.i(0), s, q.i(1), q.i(2), q.i(3), q.i(4)});
    sqlite3_reset(q.s);
  }
  return out;
}

bool Store::series_active(int64_t series, int64_t from_ms, int64_t to_ms) const {
  READER();
  Stmt q(db, "SELECT 1 FROM profiles WHERE series = ? AND time_ms >= ? AND time_ms <= ? LIMIT 1");
  q.bind(1, series).bind(2, from_ms).bind(3, to_ms);
  return q.step();
}

void Store::scan_profile(const ProfileMeta& p,
                         const std::function<void(const SampleRow&)>& f) const {
  READER();
  Stmt q(db, "SELECT data FROM profiles WHERE id = ?");
  q.bind(1, p.id);
  if (q.step())
    decode_rows(sqlite3_column_blob(q.s, 0), size_t(sqlite3_column_bytes(q.s, 0)), p.scale, f);
}

void Store::scan_profiles(
    const std::vector<ProfileMeta>& ps,
    const std::function<void(const ProfileMeta&, const SampleRow&)>& f) const {
  READER();
  Stmt q(db, "SELECT data FROM profiles WHERE id = ?");
  for (auto& p : ps) {
    q.bind(1, p.id);
    if (q.step())
      decode_rows(sqlite3_column_blob(q.s, 0), size_t(sqlite3_column_bytes(q.s, 0)), p.scale,
                  [&](const SampleRow& r) { f(p, r); });
    sqlite3_reset(q.s);
  }
}

void Store::scan_span_ids(
    const std::string& tenant, const std::vector<uint64_t>& span_ids, int64_t from_ms,
    int64_t to_ms, const std::function<void(const ProfileMeta&, const SampleRow&)>& f) const {
  int t = tenant_lookup(tenant);
  if (t < 0) return;
  READER();
  Stmt q(db, "SELECT profile FROM span_index WHERE span_id = ?");
  Stmt pq(db, "SELECT series, time_ms, period, scale, data FROM profiles WHERE id = ?");
  // A profile holds rows of many spans: fetch (and tenant/time-check) each one once.
  struct Hit {
    ProfileMeta meta;
    std::string data;
  };
  std::unordered_map<int64_t, std::optional<Hit>> hits;
  // Entries not yet in the b-tree first: the writer removes them only after they committed
  // there, and the b-tree read below starts after this (a flush in between shows them twice,
  // never not at all; pids are deduplicated).
  std::vector<std::pair<uint64_t, int64_t>> pending;
  {
    std::vector<uint64_t> wanted(span_ids);
    std::sort(wanted.begin(), wanted.end());
    std::lock_guard p(pending_mu_);
    for (auto& e : pending_spans_)
      if (std::binary_search(wanted.begin(), wanted.end(), e.first)) pending.push_back(e);
  }
  std::vector<int64_t> pids;
  for (auto sid : span_ids) {
    if (!sid) continue;
    pids.clear();
    for (auto& [sp, pid] : pending)
      if (sp == sid) pids.push_back(pid);
    q.bind(1, int64_t(sid));
    while (q.step()) pids.push_back(q.i(0));
    sqlite3_reset(q.s);
    std::sort(pids.begin(), pids.end());
    pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
    for (int64_t pid : pids) {
      auto it = hits.find(pid);
      if (it == hits.end()) {
        std::optional<Hit> h;
        pq.bind(1, pid);
        if (pq.step()) {
          ProfileMeta pm{pid, pq.i(0), pq.i(1), pq.i(2), pq.i(3)};
          bool ok = pm.time_ms >= from_ms && pm.time_ms <= to_ms;
          {
            std::shared_lock g(dict_mu_);
            ok = ok && size_t(pm.series) < series_.size() &&
                 series_[size_t(pm.series)].tenant == uint32_t(t);
          }
          if (ok) h = Hit{pm, pq.b(4)};
        }
        sqlite3_reset(pq.s);
        it = hits.emplace(pid, std::move(h)).first;
      }
      if (!it->second) continue;
      const Hit& h = *it->second;
      decode_rows(h.data.data(), h.data.size(), h.meta.scale, [&](const SampleRow& r) {
        if (r.ids.span_id == sid) f(h.meta, r);
      });
    }
    sqlite3_reset(q.s);
  }
}

void Store::stack_function_names(uint32_t stack, std::vector<uint32_t>& out) const {
  std::shared_lock g(dict_mu_);
  out.clear();
  if (stack >= stacks_.size()) return;
  for (auto l : stacks_[stack]) out.push_back(functions_[locations_[l].function].first);
}

void Store::stack_locations(uint32_t stack, std::vector<uint32_t>& out) const {
  std::shared_lock g(dict_mu_);
  out.clear();
  if (stack < stacks_.size()) out = stacks_[stack];
}

Store::Loc Store::location(uint32_t id) const {
  std::shared_lock g(dict_mu_);
  return id < locations_.size() ? locations_[id] : Loc{0, 0};
}

std::pair<uint32_t, uint32_t> Store::function(uint32_t id) const {
  std::shared_lock g(dict_mu_);
  return id < functions_.size() ? functions_[id] : std::pair<uint32_t, uint32_t>{0, 0};
}

std::string Store::str(uint32_t id) const {
  std::shared_lock g(dict_mu_);
  return id < strings_.size() ? strings_[id] : std::string();
}

static SpanRow span_from(Stmt& q, const std::string& tenant) {
  SpanRow r;
  r.tenant = tenant;
  r.trace_hi = q.u(0);
  r.trace_lo = q.u(1);
  r.span_id = q.u(2);
  r.parent_span_id = q.u(3);
  r.name = q.t(4);
  r.service = q.t(5);
  r.kind = int32_t(q.i(6));
  r.start_ns = q.i(7);
  r.end_ns = q.i(8);
  r.status_code = int32_t(q.i(9));
  r.status_message = q.t(10);
  r.detail_json = q.t(11);
  return r;
}

#define SPAN_COLS                                                                \
  "trace_hi, trace_lo, span_id, parent, name, service, kind, start_ns, end_ns, " \
  "status_code, status_message, detail"

std::vector<SpanRow> Store::find_root_spans(const std::string& tenant, const TraceFilter& f) const {
  std::vector<SpanRow> out;
  int t = tenant_lookup(tenant);
  if (t < 0) return out;
  READER();
  std::string sql = "SELECT " SPAN_COLS
                    " FROM spans WHERE tenant = ?1 AND parent = 0 AND start_ns >= ?2 AND "
                    "start_ns <= ?3";
  if (!f.service.empty()) sql += " AND service = ?4";
  if (!f.name.empty()) sql += " AND name = ?5";
  if (f.min_duration_ns >= 0) sql += " AND end_ns - start_ns >= ?6";
  if (f.max_duration_ns >= 0) sql += " AND end_ns - start_ns <= ?7";
  sql += " ORDER BY start_ns DESC LIMIT ?8";
  Stmt q(db, sql.c_str());
  q.bind(1, t).bind(2, f.from_ns).bind(3, f.to_ns).bind(8, int64_t(f.limit));
  if (!f.service.empty()) q.bind(4, f.service);
  if (!f.name.empty()) q.bind(5, f.name);
  if (f.min_duration_ns >= 0) q.bind(6, f.min_duration_ns);
  if (f.max_duration_ns >= 0) q.bind(7, f.max_duration_ns);
  while (q.step()) out.push_back(span_from(q, tenant));
  return out;
}

std::vector<SpanRow> Store::trace_spans(const std::string& tenant, uint64_t hi, uint64_t lo) const {
  std::vector<SpanRow> out;
  int t = tenant_lookup(tenant);
  if (t < 0) return out;
  READER();
  Stmt q(db, "SELECT " SPAN_COLS
             " FROM spans WHERE tenant = ? AND trace_hi = ? AND trace_lo = ? ORDER BY start_ns");
  q.bind(1, t).bind(2, int64_t(hi)).bind(3, int64_t(lo));
  while (q.step()) out.push_back(span_from(q, tenant));
  return out;
}

std::vector<std::pair<uint64_t, uint64_t>> Store::traces_with_span_name(
    const std::string& tenant, const std::string& service, const std::string& name, int64_t from_ns,
    int64_t to_ns, size_t limit) const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  int t = tenant_lookup(tenant);
  if (t < 0) return out;
  READER();
  Stmt q(db,
         "SELECT DISTINCT trace_hi, trace_lo FROM spans WHERE tenant = ? AND name = ? AND "
         "start_ns >= ? AND start_ns <= ? AND (?5 = '' OR service = ?5) LIMIT ?");
  q.bind(1, t)
      .bind(2, name)
      .bind(3, from_ns)
      .bind(4, to_ns)
      .bind(5, service)
      .bind(6, int64_t(limit));
  while (q.step()) out.emplace_back(q.u(0), q.u(1));
  return out;
}

std::vector<std::string> Store::span_services(const std::string& tenant) const {
  std::vector<std::string> out;
  int t = tenant_lookup(tenant);
  if (t < 0) return out;
  READER();
  Stmt q(db, "SELECT DISTINCT service FROM spans WHERE tenant = ?");
  q.bind(1, t);
  while (q.step()) out.push_back(q.t(0));
  return out;
}

StoreStats Store::stats() const {
  StoreStats s;
  struct stat st;
  if (::stat(path_.c_str(), &st) == 0) s.db_bytes = st.st_size;
  if (::stat((path_ + "-wal").c_str(), &st) == 0) s.wal_bytes = st.st_size;
  {
    std::shared_lock g(dict_mu_);
    s.stacks = int64_t(stacks_.size()) - 1;
  }
  s.sample_rows = sample_rows_;
  s.profiles = profiles_count_;
  s.max_disk_bytes = opt_.max_disk_bytes;
  s.disk_bytes = disk_bytes();
  s.over_budget = over_budget_;
  {
    std::lock_guard g(budget_mu_);
    s.over_budget_reason = over_budget_reason_;
  }
  s.removed_profiles = removed_profiles_;
  s.collected_stacks = collected_stacks_;
  s.collected_strings = collected_strings_;
  s.collected_series = collected_series_;
  s.wal_syncs = wal_syncs_;
  s.synced_batches = synced_batches_;
  return s;
}

TenantStats Store::tenant_stats(const std::string& tenant) const {
  TenantStats t;
  auto series = series_of(tenant);
  t.series = int64_t(series.size());
  READER();
  Stmt q(db, "SELECT count(*), total(rows) FROM profiles WHERE series = ?");
  for (auto& si : series) {
    q.bind(1, si.id);
    if (q.step()) t.profiles += q.i(0), t.sample_rows += q.i(1);
    sqlite3_reset(q.s);
  }
  return t;
}

std::pair<int64_t, int64_t> Store::profile_time_range(const std::string& tenant) const {
  auto series = series_of(tenant);
  READER();
  // Two probes of profiles_by_series(series, time_ms) per series.
  Stmt lo(db, "SELECT min(time_ms) FROM profiles WHERE series = ?");
  Stmt hi(db, "SELECT max(time_ms) FROM profiles WHERE series = ?");
  int64_t oldest = 0, newest = 0;
  bool any = false;
  for (auto& si : series) {
    lo.bind(1, si.id);
    hi.bind(1, si.id);
    if (lo.step() && sqlite3_column_type(lo.s, 0) != SQLITE_NULL && hi.step()) {
      int64_t a = lo.i(0), b = hi.i(0);
      oldest = any ? std::min(oldest, a) : a;
      newest = any ? std::max(newest, b) : b;
      any = true;
    }
    sqlite3_reset(lo.s);
    sqlite3_reset(hi.s);
  }
  return {oldest, newest};
}

}  // namespace spanprof
