// The store's schema and its opening: creating or checking the layout, loading the in-memory
// dictionary, starting the writer, syncer, checkpoint and retention threads; closing.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/store_internal.h"

namespace spanprof {

using namespace store_detail;  // NOLINT(google-build-using-namespace)
using namespace rows_codec;    // NOLINT(google-build-using-namespace)

using json = nlohmann::json;

namespace {

// One transaction: a crash never leaves tables without their schema version.
const char* kSchema = R"(
BEGIN;
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS strings(id INTEGER PRIMARY KEY, s TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS functions(id INTEGER PRIMARY KEY, name INTEGER, file INTEGER);
CREATE TABLE IF NOT EXISTS locations(id INTEGER PRIMARY KEY, function INTEGER, line INTEGER);
CREATE TABLE IF NOT EXISTS stacks(id INTEGER PRIMARY KEY, locs BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tenants(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, tenant INTEGER, labels TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles(id INTEGER PRIMARY KEY, series INTEGER NOT NULL,
  time_ms INTEGER NOT NULL, duration_ns INTEGER, period INTEGER, scale INTEGER, total INTEGER,
  rows INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS profiles_by_series ON profiles(series, time_ms);
CREATE INDEX IF NOT EXISTS profiles_by_time ON profiles(time_ms);
CREATE TABLE IF NOT EXISTS span_index(span_id INTEGER NOT NULL, profile INTEGER NOT NULL,
  PRIMARY KEY(span_id, profile)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spans(tenant INTEGER, trace_hi INTEGER, trace_lo INTEGER,
  span_id INTEGER, parent INTEGER, name TEXT, service TEXT, kind INTEGER, start_ns INTEGER,
  end_ns INTEGER, status_code INTEGER, status_message TEXT, detail TEXT,
  PRIMARY KEY(tenant, trace_hi, trace_lo, span_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS spans_roots ON spans(tenant, start_ns) WHERE parent = 0;
CREATE INDEX IF NOT EXISTS spans_by_name ON spans(tenant, name, start_ns);
CREATE INDEX IF NOT EXISTS spans_by_start ON spans(start_ns);
INSERT OR IGNORE INTO meta(key, value) VALUES('schema', 2);
COMMIT;
)";

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& o) {
  std::error_code ec;
  std::filesystem::create_directories(o.dir, ec);
  if (ec) return internal_error("cannot create data dir " + o.dir + ": " + ec.message());
  std::unique_ptr<Store> s(new Store());
  s->opt_ = o;
  s->path_ = (std::filesystem::path(o.dir) / "spanprof.db").string();
  if (sqlite3_open_v2(s->path_.c_str(), &s->wdb_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK)
    return internal_error("cannot open " + s->path_ + ": " + sqlite3_errmsg(s->wdb_));
  sqlite3_busy_timeout(s->wdb_, 10000);
  // auto_vacuum must be chosen before the first table exists; it lets retention give pages back.
  exec(s->wdb_, "PRAGMA auto_vacuum=INCREMENTAL");
  if (auto e = s->check_schema()) return *e;
  if (exec(s->wdb_, "PRAGMA journal_mode=WAL") != SQLITE_OK ||
      // Commits write the WAL without syncing it; syncer_loop() syncs before acknowledging.
      exec(s->wdb_, "PRAGMA synchronous=NORMAL") != SQLITE_OK ||
      exec(s->wdb_, "PRAGMA cache_size=-65536") != SQLITE_OK || exec(s->wdb_, kSchema) != SQLITE_OK)
    return internal_error("cannot initialise schema in " + s->path_);
  if (auto e = s->load()) return *e;
  // Checkpoints run on their own connection and thread, not inside the writer's commits.
  exec(s->wdb_, "PRAGMA wal_autocheckpoint=0");
  exec(s->wdb_, ("PRAGMA journal_size_limit=" + std::to_string(s->wal_limit_bytes())).c_str());
  s->ws_ = std::make_unique<WriterStmts>(s->wdb_);
  s->checkpoint_thread_ = std::thread([p = s.get()] { p->checkpoint_loop(); });
  s->writer_ = std::thread([p = s.get()] { p->writer_loop(); });
  s->syncer_ = std::thread([p = s.get()] { p->syncer_loop(); });
  s->retention_thread_ = std::thread([p = s.get()] { p->retention_loop(); });
  return s;
}

Store::~Store() {
  {
    std::lock_guard g(q_mu_);
    stopping_ = true;
  }
  q_cv_.notify_all();
  {
    std::lock_guard g(ret_mu_);
    ret_stop_ = true;
  }
  ret_cv_.notify_all();
  if (retention_thread_.joinable()) retention_thread_.join();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard g(sync_mu_);
    sync_stop_ = true;
  }
  sync_cv_.notify_all();
  if (syncer_.joinable()) syncer_.join();
  if (wal_fd_ >= 0) ::close(wal_fd_);
  ws_.reset();
  for (auto* r : readers_) sqlite3_close(r);
  if (wdb_) {
    exec(wdb_, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(wdb_);
  }
}

// Refuses a data dir written with another storage layout (no migration; see kSchemaVersion).
Status Store::check_schema() {
  int64_t found = 0;
  {
    Stmt q(wdb_, "SELECT 1 FROM sqlite_master WHERE name = 'meta'");
    if (!q.step()) {
      Stmt t(wdb_, "SELECT count(*) FROM sqlite_master");
      if (t.step() && t.i(0) == 0) return std::nullopt;  // new database
    } else {
      Stmt v(wdb_, "SELECT value FROM meta WHERE key = 'schema'");
      found = v.step() ? v.i(0) : 1;  // schema 1 did not record its version
    }
  }
  if (found == kSchemaVersion) return std::nullopt;
  return Error{500, "internal",
               path_ + " has storage schema " + std::to_string(found) + ", this server uses " +
                   std::to_string(kSchemaVersion) +
                   " and does not migrate: move the old data dir away or use a new --data-dir"};
}

Status Store::load() {
  std::unique_lock g(dict_mu_);
  // Each row of a dictionary table, in id order, is put at its id (collected ids stay empty).
  auto each_row = [&](const char* sql, auto&& f) {
    Stmt q(wdb_, sql);
    while (q.step()) f(q, uint32_t(q.i(0)));
  };
  auto slot = [](auto& entries, uint32_t id) -> auto& {
    entries.resize(std::max(entries.size(), size_t(id) + 1));
    return entries[id];
  };
  each_row("SELECT id, s FROM strings ORDER BY id",
           [&](Stmt& q, uint32_t id) { string_ids_[slot(strings_, id) = q.t(1)] = id; });
  each_row("SELECT id, name, file FROM functions ORDER BY id", [&](Stmt& q, uint32_t id) {
    slot(functions_, id) = {uint32_t(q.i(1)), uint32_t(q.i(2))};
    function_ids_[uint64_t(q.i(1)) << 32 | uint64_t(q.i(2))] = id;
  });
  each_row("SELECT id, function, line FROM locations ORDER BY id", [&](Stmt& q, uint32_t id) {
    slot(locations_, id) = {uint32_t(q.i(1)), q.i(2)};
    location_ids_[loc_key(uint32_t(q.i(1)), q.i(2))] = id;
  });
  each_row("SELECT id, locs FROM stacks ORDER BY id", [&](Stmt& q, uint32_t id) {
    std::string b = q.b(1);
    slot(stacks_, id) = get_varints(b);
    stack_ids_[b] = id;
  });
  each_row("SELECT id, name FROM tenants ORDER BY id",
           [&](Stmt& q, uint32_t id) { tenant_ids_[slot(tenants_, id) = q.t(1)] = id; });
  {
    Stmt q(wdb_, "SELECT id, tenant, labels FROM series ORDER BY id");
    while (q.step()) {
      SeriesInfo si;
      si.id = q.i(0);
      si.tenant = uint32_t(q.i(1));
      json j = json::parse(q.t(2), nullptr, false);
      if (j.is_array())
        for (auto& kv : j)
          si.labels.emplace_back(kv[0].get<std::string>(), kv[1].get<std::string>());
      if (auto* pt = find_label(si.labels, "__profile_type__")) si.profile_type = *pt;
      if (auto* sv = find_label(si.labels, "service_name")) si.service = *sv;
      series_.resize(size_t(si.id) + 1);
      series_ids_[labels_key(si.tenant, si.labels)] = si.id;
      ++tenant_series_[si.tenant];
      series_[size_t(si.id)] = std::move(si);
    }
  }
  {
    Stmt q(wdb_, "SELECT max(id), count(*) FROM profiles");
    if (q.step()) next_profile_id_ = q.i(0) + 1, profiles_count_ = q.i(1);
  }
  {
    Stmt q(wdb_, "SELECT value FROM meta WHERE key='sample_rows'");
    if (q.step()) sample_rows_ = q.i(0);
  }
  {
    // Profiles committed after the last span index flush (a crash or kill): re-derive their
    // entries from the rows. No 'span_indexed' key: a store written before the deferred index.
    int64_t indexed = next_profile_id_ - 1;
    Stmt m(wdb_, "SELECT value FROM meta WHERE key='span_indexed'");
    if (m.step()) indexed = m.i(0);
    Stmt q(wdb_, "SELECT id, data FROM profiles WHERE id > ? ORDER BY id");
    q.bind(1, indexed);
    std::vector<uint64_t> spans;
    while (q.step()) {
      spans.clear();
      decode_rows(sqlite3_column_blob(q.s, 1), size_t(sqlite3_column_bytes(q.s, 1)), 1,
                  [&](const SampleRow& r) {
                    if (r.ids.span_id) spans.push_back(r.ids.span_id);
                  });
      std::sort(spans.begin(), spans.end());
      spans.erase(std::unique(spans.begin(), spans.end()), spans.end());
      for (auto sp : spans) pending_spans_.emplace_back(sp, q.i(0));
    }
    if (!pending_spans_.empty())
      log_info("store: %zu span index entries re-derived from profiles after id %lld",
               pending_spans_.size(), static_cast<long long>(indexed));
  }
  count_refs();
  log_info("store: opened %s: %zu strings, %zu stacks, %zu series, %lld profiles, %lld sample rows",
           path_.c_str(), strings_.size() - 1, stacks_.size() - 1, series_.size() - 1,
           static_cast<long long>(profiles_count_), static_cast<long long>(sample_rows_));
  return std::nullopt;
}

}  // namespace spanprof
