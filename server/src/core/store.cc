#include "core/store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/decode.h"
#include "core/log.h"
#include "core/util.h"

namespace spanprof {

using json = nlohmann::json;

namespace {

// Storage layout version, kept in meta('schema'). 2: a profile's sample rows are one blob in
// profiles.data plus span_index(span_id, profile); 1 had one SQL row per sample (no migration).
constexpr int64_t kSchemaVersion = 2;  // also written by kSchema

// A failed write as the client sees it: a full disk is the client's to retry later (507 with
// Retry-After, which the agent honours); anything else is ours (500).
Error db_error(sqlite3* db, const char* what) {
  int code = sqlite3_errcode(db);
  if (code == SQLITE_FULL || sqlite3_system_errno(db) == ENOSPC)
    return Error{507, "resource_exhausted",
                 std::string(what) + "the disk holding the data directory is full; retry later",
                 30};
  return internal_error(std::string(what) + sqlite3_errmsg(db));
}

struct Stmt {
  sqlite3_stmt* s = nullptr;
  Stmt(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK) s = nullptr;
  }
  ~Stmt() { sqlite3_finalize(s); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s, i, v);
    return *this;
  }
  Stmt& bind_u(int i, uint64_t v) {
    if (v == 0)
      sqlite3_bind_null(s, i);
    else
      sqlite3_bind_int64(s, i, int64_t(v));
    return *this;
  }
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), int(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  // The bytes must outlive the statement's next run() (callers bind buffers they still own).
  Stmt& blob(int i, const std::string& v) {
    sqlite3_bind_blob(s, i, v.data(), int(v.size()), SQLITE_STATIC);
    return *this;
  }
  bool step() { return sqlite3_step(s) == SQLITE_ROW; }
  int run() {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc;
  }
  int64_t i(int c) const { return sqlite3_column_int64(s, c); }
  uint64_t u(int c) const { return uint64_t(sqlite3_column_int64(s, c)); }
  std::string t(int c) const {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, c));
    return p ? std::string(p, size_t(sqlite3_column_bytes(s, c))) : std::string();
  }
  std::string b(int c) const {
    auto p = static_cast<const char*>(sqlite3_column_blob(s, c));
    return p ? std::string(p, size_t(sqlite3_column_bytes(s, c))) : std::string();
  }
};

int exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    log_error("sqlite: %s: %s", sql, err ? err : "?");
    sqlite3_free(err);
  }
  return rc;
}

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += char(v | 0x80);
    v >>= 7;
  }
  out += char(v);
}

std::vector<uint32_t> get_varints(const std::string& b) {
  std::vector<uint32_t> out;
  uint64_t v = 0;
  int sh = 0;
  for (unsigned char c : b) {
    v |= uint64_t(c & 0x7f) << sh;
    if (c & 0x80) {
      sh += 7;
    } else {
      out.push_back(uint32_t(v));
      v = 0;
      sh = 0;
    }
  }
  return out;
}

uint64_t zigzag(int64_t v) { return (uint64_t(v) << 1) ^ uint64_t(v >> 63); }
int64_t unzigzag(uint64_t v) { return int64_t(v >> 1) ^ -int64_t(v & 1); }

void put_fixed64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += char(uint8_t(v >> (8 * i)));
}

// Reads one varint from [p, end); false on truncation (a corrupt blob stops the scan).
bool read_varint(const uint8_t*& p, const uint8_t* end, uint64_t& v) {
  v = 0;
  for (int sh = 0; p < end && sh < 64; sh += 7) {
    uint8_t c = *p++;
    v |= uint64_t(c & 0x7f) << sh;
    if (!(c & 0x80)) return true;
  }
  return false;
}

// A profile's sample rows as one blob (profiles.data):
//   varint n_ids, n_ids × 4 little-endian fixed64 (span_id, active_span_id, trace_hi, trace_lo;
//   0 = absent), then per row: varint stack, varint zigzag(value / scale), varint index into the
//   id table. Rows keep the (stack, ids) order the writer aggregated them in.
// Calls f(row) with value already multiplied by scale; returns false if the blob is malformed.
template <class F>
bool decode_rows(const void* data, size_t size, int64_t scale, F&& f) {
  auto* p = static_cast<const uint8_t*>(data);
  auto* end = p + size;
  uint64_t n_ids;
  if (!read_varint(p, end, n_ids) || n_ids > size_t(end - p) / 32) return false;
  std::vector<SpanIds> ids(n_ids);
  auto fixed = [&] {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(p[i]) << (8 * i);
    p += 8;
    return v;
  };
  for (auto& x : ids) {
    x.span_id = fixed();
    x.active_span_id = fixed();
    x.trace_hi = fixed();
    x.trace_lo = fixed();
  }
  SampleRow r;
  while (p < end) {
    uint64_t stack, value, idx;
    if (!read_varint(p, end, stack) || !read_varint(p, end, value) || !read_varint(p, end, idx) ||
        idx >= n_ids)
      return false;
    r.stack = uint32_t(stack);
    r.value = unzigzag(value) * scale;
    r.ids = ids[idx];
    f(r);
  }
  return true;
}

// Location dedup key: lines beyond 32 bits (never seen in practice) share a key space slot.
uint64_t loc_key(uint32_t fid, int64_t line) {
  return uint64_t(fid) << 32 | uint32_t(std::clamp<int64_t>(line, 0, INT32_MAX));
}

constexpr int64_t kSpanFlushMs = 1000;
constexpr size_t kSpanFlushEntries = 8192;

uint64_t frame_hash(const RawFrame& f) {
  uint64_t a = std::hash<std::string_view>()(f.function);
  uint64_t b = std::hash<std::string_view>()(f.file);
  return a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2)) ^
         uint64_t(f.line) * 0xC2B2AE3D27D4EB4Full;
}

uint64_t stack_hash(const std::vector<uint32_t>& locs) {
  uint64_t h = 0xcbf29ce484222325ull ^ locs.size();
  for (uint32_t l : locs) h = (h ^ l) * 0x100000001b3ull, h ^= h >> 29;
  return h;
}

std::string labels_key(uint32_t tenant, const Labels& l) {
  std::string k = std::to_string(tenant);
  for (auto& [n, v] : l) {
    k += '\x1f';
    k += n;
    k += '\x1e';
    k += v;
  }
  return k;
}

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

struct Store::WriterStmts {
  explicit WriterStmts(sqlite3* db)
      : stack(db, "INSERT INTO stacks(id, locs) VALUES(?, ?)"),
        prof(db,
             "INSERT INTO profiles(id, series, time_ms, duration_ns, period, scale, total, rows, "
             "data) VALUES(?,?,?,?,?,?,?,?,?)"),
        span(db, "INSERT OR IGNORE INTO span_index(span_id, profile) VALUES(?, ?)"),
        meta(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('sample_rows', ?)"),
        indexed(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('span_indexed', ?)"),
        begin_(db, "BEGIN IMMEDIATE"),
        commit_(db, "COMMIT"),
        rollback_(db, "ROLLBACK") {}
  Stmt stack, prof, span, meta, indexed;
  // Transaction control, prepared once (sqlite3_exec compiles the statement on every call).
  bool begin() { return ok(begin_, "BEGIN IMMEDIATE"); }
  bool commit() { return ok(commit_, "COMMIT"); }
  void rollback() { ok(rollback_, "ROLLBACK"); }

 private:
  Stmt begin_, commit_, rollback_;
  static bool ok(Stmt& st, const char* what) {
    int rc = st.run();
    if (rc == SQLITE_DONE) return true;
    log_error("sqlite: %s: %s", what, sqlite3_errstr(rc));
    return false;
  }
};

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
  exec(s->wdb_, "PRAGMA journal_size_limit=67108864");
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
  {
    Stmt q(wdb_, "SELECT id, s FROM strings ORDER BY id");
    while (q.step()) {
      strings_.resize(size_t(q.i(0)) + 1);
      strings_[size_t(q.i(0))] = q.t(1);
      string_ids_[q.t(1)] = uint32_t(q.i(0));
    }
  }
  {
    Stmt q(wdb_, "SELECT id, name, file FROM functions ORDER BY id");
    while (q.step()) {
      functions_.resize(size_t(q.i(0)) + 1);
      functions_[size_t(q.i(0))] = {uint32_t(q.i(1)), uint32_t(q.i(2))};
      function_ids_[uint64_t(q.i(1)) << 32 | uint64_t(q.i(2))] = uint32_t(q.i(0));
    }
  }
  {
    Stmt q(wdb_, "SELECT id, function, line FROM locations ORDER BY id");
    while (q.step()) {
      locations_.resize(size_t(q.i(0)) + 1);
      locations_[size_t(q.i(0))] = {uint32_t(q.i(1)), q.i(2)};
      location_ids_[loc_key(uint32_t(q.i(1)), q.i(2))] = uint32_t(q.i(0));
    }
  }
  {
    Stmt q(wdb_, "SELECT id, locs FROM stacks ORDER BY id");
    while (q.step()) {
      stacks_.resize(size_t(q.i(0)) + 1);
      std::string b = q.b(1);
      stacks_[size_t(q.i(0))] = get_varints(b);
      stack_ids_[b] = uint32_t(q.i(0));
    }
  }
  {
    Stmt q(wdb_, "SELECT id, name FROM tenants ORDER BY id");
    while (q.step()) {
      tenants_.resize(size_t(q.i(0)) + 1);
      tenants_[size_t(q.i(0))] = q.t(1);
      tenant_ids_[q.t(1)] = uint32_t(q.i(0));
    }
  }
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
  log_info("store: opened %s: %zu strings, %zu stacks, %zu series, %lld profiles, %lld sample rows",
           path_.c_str(), strings_.size() - 1, stacks_.size() - 1, series_.size() - 1,
           static_cast<long long>(profiles_count_), static_cast<long long>(sample_rows_));
  return std::nullopt;
}

// ---- writer ----

Status Store::submit(std::unique_ptr<Job> job) {
  auto fut = job->done.get_future();
  {
    std::lock_guard g(q_mu_);
    if (stopping_) return Error{503, "unavailable", "server is shutting down"};
    if (sync_failed_)
      return internal_error(
          "storage failed: syncing the write-ahead log to disk failed earlier (see the server "
          "log); restart the server after checking the disk");
    queue_.push_back(std::move(job));
  }
  q_cv_.notify_one();
  return fut.get();
}

Status Store::write_profiles(std::vector<RawProfile> profiles) {
  auto j = std::make_unique<Job>();
  j->profiles = std::move(profiles);
  resolve(*j);
  return submit(std::move(j));
}

// The earlier sample whose stack sample i shares (the decoder's hint, checked), else i.
static size_t dup_of(const RawProfile& p, size_t i) {
  uint32_t d = p.samples[i].same_stack_as;
  return d < i && p.samples[d].frames == p.samples[i].frames ? d : i;
}

// Runs on the caller's (HTTP worker's) thread, in parallel with other requests: looks up every
// frame and stack already in the dictionary, so the single writer thread only interns what is
// new. Ids are only trusted by the writer if no rollback truncated the dictionary since.
void Store::resolve(Job& j) {
  std::shared_lock g(dict_mu_);
  j.epoch = dict_epoch_;
  j.resolved.resize(j.profiles.size());
  std::string blob;
  std::vector<uint32_t> locs;
  for (size_t k = 0; k < j.profiles.size(); ++k) {
    const RawProfile& p = j.profiles[k];
    Resolved& r = j.resolved[k];
    r.locs.assign(p.frames.size(), 0);
    r.frame_hash.resize(p.frames.size());
    r.frame_hit.assign(p.frames.size(), 0);
    for (size_t i = 0; i < p.frames.size(); ++i) {
      const RawFrame& fr = p.frames[i];
      uint64_t h = r.frame_hash[i] = frame_hash(fr);
      auto fast = frame_locs_.find(h);
      if (fast != frame_locs_.end() && frame_is(fast->second, fr)) {
        r.locs[i] = fast->second;
        r.frame_hit[i] = 1;
        continue;
      }
      auto n = string_ids_.find(fr.function);
      if (n == string_ids_.end()) continue;
      auto f = string_ids_.find(fr.file);
      if (f == string_ids_.end()) continue;
      auto fn = function_ids_.find(uint64_t(n->second) << 32 | f->second);
      if (fn == function_ids_.end()) continue;
      auto l = location_ids_.find(loc_key(fn->second, fr.line));
      if (l != location_ids_.end()) r.locs[i] = l->second;
    }
    r.stacks.assign(p.samples.size(), 0);
    r.stack_hash.resize(p.samples.size());
    r.stack_hit.assign(p.samples.size(), 0);
    for (size_t i = 0; i < p.samples.size(); ++i) {
      if (size_t d = dup_of(p, i); d != i) {
        r.stacks[i] = r.stacks[d];
        r.stack_hash[i] = r.stack_hash[d];
        r.stack_hit[i] = r.stack_hit[d];
        continue;
      }
      locs.clear();
      bool known = true;
      for (auto f : p.samples[i].frames) {
        if (!r.locs[f]) {
          known = false;
          break;
        }
        locs.push_back(r.locs[f]);
      }
      if (!known) continue;
      uint64_t h = r.stack_hash[i] = stack_hash(locs);
      auto fast = stack_locs_.find(h);
      if (fast != stack_locs_.end() && fast->second < stacks_.size() &&
          stacks_[fast->second] == locs) {
        r.stacks[i] = fast->second;
        r.stack_hit[i] = 1;
        continue;
      }
      blob.clear();
      for (auto l : locs) put_varint(blob, l);
      auto it = stack_ids_.find(blob);
      if (it != stack_ids_.end()) r.stacks[i] = it->second;
    }
  }
}

bool Store::frame_is(uint32_t loc, const RawFrame& f) const {
  if (loc == 0 || loc >= locations_.size()) return false;
  const Loc& l = locations_[loc];
  if (l.line != f.line || l.function >= functions_.size()) return false;
  auto [name, file] = functions_[l.function];
  return strings_[name] == f.function && strings_[file] == f.file;
}

Status Store::write_spans(std::vector<SpanRow> spans) {
  auto j = std::make_unique<Job>();
  j->spans = std::move(spans);
  return submit(std::move(j));
}

Status Store::run_retention() {
  auto j = std::make_unique<Job>();
  j->retention = true;
  return submit(std::move(j));
}

void Store::mark() {
  std::shared_lock g(dict_mu_);
  size_t pending;
  {
    std::lock_guard p(pending_mu_);
    pending = pending_spans_.size();
  }
  mark_ = {strings_.size(),     functions_.size(),     locations_.size(), stacks_.size(),
           tenants_.size(),     series_.size(),        pending,           next_profile_id_,
           sample_rows_.load(), profiles_count_.load()};
}

void Store::rollback_memory() {
  std::unique_lock g(dict_mu_);
  for (size_t i = mark_.strings; i < strings_.size(); ++i) string_ids_.erase(strings_[i]);
  strings_.resize(mark_.strings);
  for (size_t i = mark_.functions; i < functions_.size(); ++i)
    function_ids_.erase(uint64_t(functions_[i].first) << 32 | functions_[i].second);
  functions_.resize(mark_.functions);
  for (size_t i = mark_.locations; i < locations_.size(); ++i)
    location_ids_.erase(loc_key(locations_[i].function, locations_[i].line));
  locations_.resize(mark_.locations);
  for (size_t i = mark_.stacks; i < stacks_.size(); ++i) {
    std::string b;
    for (auto x : stacks_[i]) put_varint(b, x);
    stack_ids_.erase(b);
  }
  stacks_.resize(mark_.stacks);
  frame_locs_.clear();
  stack_locs_.clear();
  for (size_t i = mark_.tenants; i < tenants_.size(); ++i) tenant_ids_.erase(tenants_[i]);
  tenants_.resize(mark_.tenants);
  for (size_t i = mark_.series; i < series_.size(); ++i) {
    series_ids_.erase(labels_key(series_[i].tenant, series_[i].labels));
    --tenant_series_[series_[i].tenant];
  }
  series_.resize(mark_.series);
  {
    std::lock_guard p(pending_mu_);
    pending_spans_.resize(std::min(pending_spans_.size(), mark_.pending_spans));
  }
  ++dict_epoch_;
  next_profile_id_ = mark_.next_profile_id;
  sample_rows_ = mark_.sample_rows;
  profiles_count_ = mark_.profiles_count;
}

bool Store::span_flush_due() const {
  std::lock_guard p(pending_mu_);
  return pending_spans_.size() >= kSpanFlushEntries ||
         (!pending_spans_.empty() && now_ns() - last_span_flush_ns_ >= kSpanFlushMs * 1'000'000);
}

Status Store::flush_span_index() {
  last_span_flush_ns_ = now_ns();
  // One chunk per call, oldest first: a flush holds the writer (and the pushes waiting for it)
  // for a bounded time. Entries are queued in profile id order, so after the chunk every profile
  // below the first remaining entry's is fully indexed (only this thread adds entries, and no
  // batch is open).
  std::vector<std::pair<uint64_t, int64_t>> entries;
  int64_t indexed;
  {
    std::lock_guard p(pending_mu_);
    size_t n = std::min(pending_spans_.size(), kSpanFlushEntries);
    entries.assign(pending_spans_.begin(), pending_spans_.begin() + ptrdiff_t(n));
    indexed = n < pending_spans_.size() ? pending_spans_[n].second - 1 : next_profile_id_ - 1;
  }
  std::sort(entries.begin(), entries.end());
  if (!ws_->begin()) return db_error(wdb_, "begin failed: ");
  for (auto [sp, pid] : entries) {
    ws_->span.bind(1, int64_t(sp)).bind(2, pid);
    if (ws_->span.run() != SQLITE_DONE) {
      Error e = db_error(wdb_, "insert span index: ");
      ws_->rollback();
      return e;
    }
  }
  ws_->indexed.bind(1, indexed).run();
  if (!ws_->commit()) {
    Error e = db_error(wdb_, "commit failed: ");
    ws_->rollback();
    return e;
  }
  std::lock_guard p(pending_mu_);
  pending_spans_.erase(pending_spans_.begin(), pending_spans_.begin() + ptrdiff_t(entries.size()));
  return std::nullopt;
}

void Store::writer_loop() {
  for (;;) {
    std::vector<std::unique_ptr<Job>> batch;
    if (span_flush_due())
      if (auto e = flush_span_index()) log_error("span index flush: %s", e->message.c_str());
    {
      std::unique_lock g(q_mu_);
      q_cv_.wait_for(g, std::chrono::milliseconds(kSpanFlushMs),
                     [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) {
        g.unlock();
        // Index everything before closing (what a failure leaves is re-derived at the next start).
        for (;;) {
          {
            std::lock_guard p(pending_mu_);
            if (pending_spans_.empty()) break;
          }
          if (auto e = flush_span_index()) {
            log_error("span index flush: %s", e->message.c_str());
            break;
          }
        }
        return;
      }
      if (queue_.empty()) continue;
      // Group commit: everything queued so far shares one transaction and one fsync.
      size_t rows = 0;
      while (!queue_.empty() && rows < 200000) {
        for (auto& p : queue_.front()->profiles) rows += p.samples.size();
        rows += queue_.front()->spans.size() + 1;
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    auto run = [&](std::vector<Job*> jobs) -> Status {
      mark();
      if (!ws_->begin()) return db_error(wdb_, "begin failed: ");
      for (auto* j : jobs) {
        if (auto e = apply(*j)) {
          ws_->rollback();
          rollback_memory();
          return e;
        }
      }
      ws_->meta.bind(1, sample_rows_).run();
      if (!ws_->commit()) {
        Error e = db_error(wdb_, "commit failed: ");
        ws_->rollback();
        rollback_memory();
        return e;
      }
      return std::nullopt;
    };
    std::vector<Job*> all;
    bool retention = false;
    for (auto& j : batch) all.push_back(j.get()), retention |= j->retention;
    // Retention deletes span_index entries of the profiles it drops: index everything first.
    if (retention)
      if (auto e = flush_span_index()) log_error("span index flush: %s", e->message.c_str());
    Status st = run(all);
    // After retention deleted rows, give the WAL's pages back too (needs no open transaction).
    if (retention && !st) exec(wdb_, "PRAGMA wal_checkpoint(TRUNCATE)");
    Committed c;
    if (st && all.size() > 1) {
      // One job failed: retry each alone so the others still commit.
      for (auto* j : all) c.status.push_back(run({j}));
    } else {
      c.status.assign(all.size(), st);
    }
    c.jobs = std::move(batch);
    {
      std::lock_guard g(sync_mu_);
      sync_q_.push_back(std::move(c));
    }
    sync_cv_.notify_one();
  }
}

void Store::syncer_loop() {
  for (;;) {
    std::deque<Committed> ready;
    {
      std::unique_lock g(sync_mu_);
      sync_cv_.wait(g, [&] { return sync_stop_ || !sync_q_.empty(); });
      if (sync_q_.empty()) return;  // stopping, and the writer (joined first) queues no more
      ready.swap(sync_q_);
    }
    bool wrote = false;
    for (auto& c : ready)
      for (auto& s : c.status) wrote |= !s;
    Status synced = wrote ? sync_wal() : std::nullopt;
    if (synced) {
      sync_failed_ = true;
      log_error("store: %s; refusing further writes", synced->message.c_str());
    }
    wal_syncs_ += wrote;
    synced_batches_ += int64_t(ready.size());
    for (auto& c : ready)
      for (size_t i = 0; i < c.jobs.size(); ++i)
        c.jobs[i]->done.set_value(c.status[i] ? c.status[i] : synced);
  }
}

Status Store::sync_wal() {
  // The WAL lives as long as the writer connection; it is only truncated (same inode), but a
  // replaced file must never be mistaken for the one SQLite writes, so check it every time.
  const std::string wal = path_ + "-wal";
  struct stat now, held;
  if (::stat(wal.c_str(), &now) != 0)
    return internal_error("cannot find the write-ahead log " + wal + ": " + strerror(errno));
  if (wal_fd_ >= 0 &&
      (::fstat(wal_fd_, &held) != 0 || held.st_ino != now.st_ino || held.st_dev != now.st_dev)) {
    ::close(wal_fd_);
    wal_fd_ = -1;
  }
  if (wal_fd_ < 0) wal_fd_ = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
  if (wal_fd_ < 0)
    return internal_error("cannot open the write-ahead log " + wal + ": " + strerror(errno));
  if (::fdatasync(wal_fd_) != 0)
    return internal_error("fdatasync of the write-ahead log failed: " +
                          std::string(strerror(errno)));
  return std::nullopt;
}

uint32_t Store::tenant_id_locked(const std::string& t) {
  auto it = tenant_ids_.find(t);
  if (it != tenant_ids_.end()) return it->second;
  uint32_t id = uint32_t(tenants_.size());
  Stmt(wdb_, "INSERT INTO tenants(id, name) VALUES(?, ?)").bind(1, id).bind(2, t).run();
  tenants_.push_back(t);
  tenant_ids_[t] = id;
  return id;
}

int Store::tenant_lookup(const std::string& t) const {
  std::shared_lock g(dict_mu_);
  auto it = tenant_ids_.find(t);
  return it == tenant_ids_.end() ? -1 : int(it->second);
}

Status Store::apply(Job& job) {
  if (job.retention) return apply_retention();
  for (size_t k = 0; k < job.profiles.size(); ++k)
    if (auto e = apply_profile(job.profiles[k],
                               k < job.resolved.size() ? &job.resolved[k] : nullptr, job.epoch))
      return e;
  if (!job.spans.empty()) {
    Stmt ins(wdb_,
             "INSERT OR REPLACE INTO spans(tenant, trace_hi, trace_lo, span_id, parent, name, "
             "service, kind, start_ns, end_ns, status_code, status_message, detail) "
             "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
    for (auto& s : job.spans) {
      uint32_t t;
      {
        std::unique_lock g(dict_mu_);
        t = tenant_id_locked(s.tenant);
      }
      ins.bind(1, t)
          .bind(2, int64_t(s.trace_hi))
          .bind(3, int64_t(s.trace_lo))
          .bind(4, int64_t(s.span_id))
          .bind(5, int64_t(s.parent_span_id))
          .bind(6, s.name)
          .bind(7, s.service)
          .bind(8, s.kind)
          .bind(9, s.start_ns)
          .bind(10, s.end_ns)
          .bind(11, s.status_code)
          .bind(12, s.status_message)
          .bind(13, s.detail_json);
      if (ins.run() != SQLITE_DONE) return db_error(wdb_, "insert span: ");
    }
  }
  return std::nullopt;
}

Status Store::apply_profile(RawProfile& p, const Resolved* pre, uint64_t epoch) {
  std::string ptype = profile_type_id(p);
  std::vector<int64_t> series_of_set(p.label_sets.size(), 0);
  std::vector<uint32_t> loc_of_frame(p.frames.size());
  std::vector<uint32_t> stack_of_sample(p.samples.size());
  {
    std::unique_lock g(dict_mu_);
    if (epoch != dict_epoch_) pre = nullptr;  // a rollback may have reused the ids it saw
    if (pre) {
      loc_of_frame = pre->locs;
      stack_of_sample = pre->stacks;
    }
    uint32_t tenant = tenant_id_locked(p.tenant);
    auto intern = [&](const std::string& s) -> uint32_t {
      auto it = string_ids_.find(s);
      if (it != string_ids_.end()) return it->second;
      uint32_t id = uint32_t(strings_.size());
      Stmt(wdb_, "INSERT INTO strings(id, s) VALUES(?, ?)").bind(1, id).bind(2, s).run();
      strings_.push_back(s);
      string_ids_[s] = id;
      return id;
    };
    for (size_t i = 0; i < p.frames.size(); ++i) {
      if (loc_of_frame[i]) continue;
      uint32_t n = intern(p.frames[i].function), f = intern(p.frames[i].file);
      uint64_t fk = uint64_t(n) << 32 | f;
      uint32_t fid;
      auto it = function_ids_.find(fk);
      if (it != function_ids_.end()) {
        fid = it->second;
      } else {
        fid = uint32_t(functions_.size());
        Stmt(wdb_, "INSERT INTO functions(id, name, file) VALUES(?,?,?)")
            .bind(1, fid)
            .bind(2, n)
            .bind(3, f)
            .run();
        functions_.push_back({n, f});
        function_ids_[fk] = fid;
      }
      uint64_t lk = loc_key(fid, p.frames[i].line);
      auto lt = location_ids_.find(lk);
      if (lt != location_ids_.end()) {
        loc_of_frame[i] = lt->second;
      } else {
        uint32_t lid = uint32_t(locations_.size());
        Stmt(wdb_, "INSERT INTO locations(id, function, line) VALUES(?,?,?)")
            .bind(1, lid)
            .bind(2, fid)
            .bind(3, p.frames[i].line)
            .run();
        locations_.push_back({fid, p.frames[i].line});
        location_ids_[lk] = lid;
        loc_of_frame[i] = lid;
      }
    }
    // Frames that missed the fast path (or were resolved without it) are added to it.
    for (size_t i = 0; i < p.frames.size(); ++i)
      if (!pre || !pre->frame_hit[i])
        frame_locs_.insert_or_assign(pre ? pre->frame_hash[i] : frame_hash(p.frames[i]),
                                     loc_of_frame[i]);
    Stmt& ins_stack = ws_->stack;
    std::string blob;
    std::vector<uint32_t> locs;
    for (size_t i = 0; i < p.samples.size(); ++i) {
      if (size_t d = dup_of(p, i); d != i) {
        stack_of_sample[i] = stack_of_sample[d];
        continue;
      }
      if (pre && pre->stack_hit[i]) continue;
      locs.clear();
      for (auto f : p.samples[i].frames) locs.push_back(loc_of_frame[f]);
      if (!stack_of_sample[i]) {
        blob.clear();
        for (auto l : locs) put_varint(blob, l);
        auto it = stack_ids_.find(blob);
        if (it != stack_ids_.end()) {
          stack_of_sample[i] = it->second;
        } else {
          uint32_t sid = uint32_t(stacks_.size());
          ins_stack.bind(1, sid).blob(2, blob);
          if (ins_stack.run() != SQLITE_DONE) return db_error(wdb_, "insert stack: ");
          stacks_.push_back(locs);
          stack_ids_[blob] = sid;
          stack_of_sample[i] = sid;
        }
      }
      stack_locs_.insert_or_assign(stack_hash(locs), stack_of_sample[i]);
    }
    std::vector<bool> used(p.label_sets.size(), false);
    for (auto& s : p.samples) used[s.label_set] = true;
    for (size_t ls = 0; ls < p.label_sets.size(); ++ls) {
      if (!used[ls]) continue;
      // Defaults first: sort_labels keeps the last of equal names, so given labels win over
      // the defaults and the derived ones win over everything.
      Labels l{{"service_name", "unknown_service"}, {"__name__", "process_cpu"}};
      l.insert(l.end(), p.series.begin(), p.series.end());
      l.insert(l.end(), p.label_sets[ls].begin(), p.label_sets[ls].end());
      l.insert(l.end(), {{"__profile_type__", ptype},
                         {"__type__", p.sample_type},
                         {"__unit__", p.sample_unit},
                         {"__period_type__", p.period_type},
                         {"__period_unit__", p.period_unit}});
      sort_labels(l);
      std::string key = labels_key(tenant, l);
      auto it = series_ids_.find(key);
      if (it != series_ids_.end()) {
        series_of_set[ls] = it->second;
        continue;
      }
      size_t& active = tenant_series_[tenant];
      if (opt_.max_series_per_tenant > 0 && active >= opt_.max_series_per_tenant)
        return Error{429, "resource_exhausted",
                     "tenant " + tenants_[tenant] + " has reached its limit of " +
                         std::to_string(opt_.max_series_per_tenant) +
                         " series (--max-series-per-tenant); profiles of existing series are "
                         "still accepted",
                     60};
      ++active;
      SeriesInfo si;
      si.id = int64_t(series_.size());
      si.tenant = tenant;
      si.profile_type = ptype;
      si.service = *find_label(l, "service_name");
      json j = json::array();
      for (auto& [k, v] : l) j.push_back({k, v});
      si.labels = std::move(l);
      Stmt(wdb_, "INSERT INTO series(id, tenant, labels) VALUES(?,?,?)")
          .bind(1, si.id)
          .bind(2, tenant)
          .bind(3, j.dump(-1, ' ', false, json::error_handler_t::replace))
          .run();
      series_ids_[key] = si.id;
      series_of_set[ls] = si.id;
      series_.push_back(std::move(si));
    }
  }
  // One profile row per series; samples aggregated by (stack, ids), rows ordered by them.
  struct Row {
    int64_t series;
    uint32_t stack;
    SpanIds ids;
    int64_t value;
    auto key() const {
      return std::tie(series, stack, ids.span_id, ids.active_span_id, ids.trace_hi, ids.trace_lo);
    }
  };
  std::vector<Row> all;
  all.reserve(p.samples.size());
  for (size_t i = 0; i < p.samples.size(); ++i)
    all.push_back({series_of_set[p.samples[i].label_set], stack_of_sample[i], p.samples[i].ids,
                   p.samples[i].value});
  std::sort(all.begin(), all.end(), [](const Row& x, const Row& y) { return x.key() < y.key(); });
  size_t merged = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (merged > 0 && all[merged - 1].key() == all[i].key()) {
      all[merged - 1].value += all[i].value;
    } else {
      all[merged++] = all[i];
    }
  }
  all.resize(merged);
  Stmt& ins_prof = ws_->prof;
  std::string data;
  std::vector<uint64_t> span_ids;
  struct IdsHash {
    size_t operator()(const SpanIds& x) const {
      return size_t((x.span_id * 0x9E3779B97F4A7C15ull) ^ (x.active_span_id * 31) ^ x.trace_hi ^
                    (x.trace_lo << 1));
    }
  };
  struct IdsEq {
    bool operator()(const SpanIds& x, const SpanIds& y) const {
      return x.span_id == y.span_id && x.active_span_id == y.active_span_id &&
             x.trace_hi == y.trace_hi && x.trace_lo == y.trace_lo;
    }
  };
  std::unordered_map<SpanIds, uint32_t, IdsHash, IdsEq> id_index;
  std::vector<uint32_t> row_id;
  std::vector<const SpanIds*> table;
  for (size_t begin = 0, end; begin < all.size(); begin = end) {
    const int64_t sid = all[begin].series;
    for (end = begin; end < all.size() && all[end].series == sid;) ++end;
    int64_t pid = next_profile_id_++;
    int64_t total = 0;
    // Store value / period when every value is a multiple of it (cpu: samples × period):
    // small varints instead of nanoseconds.
    int64_t scale = p.period > 0 ? p.period : 1;
    for (size_t i = begin; i < end; ++i) {
      total += all[i].value;
      if (all[i].value % scale) scale = 1;
    }
    // The id table: distinct (span, active span, trace) tuples in first-seen order.
    id_index.clear();
    row_id.clear();
    table.clear();
    for (size_t i = begin; i < end; ++i) {
      auto [it, added] = id_index.try_emplace(all[i].ids, uint32_t(table.size()));
      if (added) table.push_back(&all[i].ids);
      row_id.push_back(it->second);
    }
    data.clear();
    put_varint(data, table.size());
    span_ids.clear();
    for (auto* x : table) {
      put_fixed64(data, x->span_id);
      put_fixed64(data, x->active_span_id);
      put_fixed64(data, x->trace_hi);
      put_fixed64(data, x->trace_lo);
      if (x->span_id) span_ids.push_back(x->span_id);
    }
    for (size_t i = begin; i < end; ++i) {
      put_varint(data, all[i].stack);
      put_varint(data, zigzag(all[i].value / scale));
      put_varint(data, row_id[i - begin]);
    }
    ins_prof.bind(1, pid)
        .bind(2, sid)
        .bind(3, p.time_ns / 1'000'000)
        .bind(4, p.duration_ns)
        .bind(5, p.period)
        .bind(6, scale)
        .bind(7, total)
        .bind(8, int64_t(end - begin))
        .blob(9, data);
    if (ins_prof.run() != SQLITE_DONE) return db_error(wdb_, "insert profile: ");
    // One span index entry per (local-root span, profile), queued for the writer's bulk insert
    // (see pending_spans_).
    std::sort(span_ids.begin(), span_ids.end());
    span_ids.erase(std::unique(span_ids.begin(), span_ids.end()), span_ids.end());
    {
      std::lock_guard g(pending_mu_);
      for (auto sp : span_ids) pending_spans_.emplace_back(sp, pid);
    }
    sample_rows_ += int64_t(end - begin);
    ++profiles_count_;
  }
  return std::nullopt;
}

Status Store::apply_retention() {
  auto delete_profiles = [&](const char* select_sql, int64_t arg) -> int64_t {
    std::vector<int64_t> ids;
    {
      Stmt q(wdb_, select_sql);
      q.bind(1, arg);
      while (q.step()) ids.push_back(q.i(0));
    }
    Stmt get(wdb_, "SELECT rows, data FROM profiles WHERE id = ?");
    Stmt del_s(wdb_, "DELETE FROM span_index WHERE span_id = ? AND profile = ?");
    Stmt del_p(wdb_, "DELETE FROM profiles WHERE id = ?");
    std::vector<uint64_t> spans;
    for (auto id : ids) {
      spans.clear();
      get.bind(1, id);
      if (get.step()) {
        sample_rows_ -= get.i(0);
        decode_rows(sqlite3_column_blob(get.s, 1), size_t(sqlite3_column_bytes(get.s, 1)), 1,
                    [&](const SampleRow& r) {
                      if (r.ids.span_id) spans.push_back(r.ids.span_id);
                    });
      }
      sqlite3_reset(get.s);
      std::sort(spans.begin(), spans.end());
      spans.erase(std::unique(spans.begin(), spans.end()), spans.end());
      for (auto sp : spans) del_s.bind(1, int64_t(sp)).bind(2, id).run();
      del_p.bind(1, id).run();
      --profiles_count_;
    }
    return int64_t(ids.size());
  };
  int64_t removed = 0;
  if (opt_.retention_s > 0) {
    int64_t cutoff_ms = now_ns() / 1'000'000 - opt_.retention_s * 1000;
    removed += delete_profiles("SELECT id FROM profiles WHERE time_ms < ?", cutoff_ms);
    Stmt(wdb_, "DELETE FROM spans WHERE start_ns < ?").bind(1, cutoff_ms * 1'000'000).run();
  }
  if (opt_.max_disk_bytes > 0) {
    auto used = [&] {
      Stmt a(wdb_, "PRAGMA page_count"), b(wdb_, "PRAGMA freelist_count"),
          c(wdb_, "PRAGMA page_size");
      a.step(), b.step(), c.step();
      return (a.i(0) - b.i(0)) * c.i(0);
    };
    // Oldest first, in chunks, until used pages fall below 90% of the budget.
    for (int rounds = 0; rounds < 5000 && used() > opt_.max_disk_bytes * 9 / 10; ++rounds) {
      // Small chunks (2% of the profiles, 1..200) so the cut lands close to the budget.
      int64_t chunk = std::clamp<int64_t>(profiles_count_ / 50, 1, 200);
      int64_t n = delete_profiles("SELECT id FROM profiles ORDER BY time_ms LIMIT ?", chunk);
      Stmt oldest(wdb_, "SELECT min(time_ms) FROM profiles");
      int64_t keep_from = oldest.step() && sqlite3_column_type(oldest.s, 0) != SQLITE_NULL
                              ? oldest.i(0) * 1'000'000
                              : INT64_MAX;
      Stmt(wdb_, "DELETE FROM spans WHERE start_ns < ?").bind(1, keep_from).run();
      removed += n;
      if (n == 0) break;
    }
  }
  exec(wdb_, "PRAGMA incremental_vacuum");
  if (removed) log_info("retention: removed %lld profiles", static_cast<long long>(removed));
  return std::nullopt;
}

void Store::checkpoint_loop() {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  sqlite3_busy_timeout(db, 5000);
  exec(db, "PRAGMA synchronous=FULL");
  for (;;) {
    {
      std::unique_lock g(ret_mu_);
      if (ret_cv_.wait_for(g, std::chrono::milliseconds(500), [&] { return ret_stop_; })) break;
    }
    struct stat st;
    if (::stat((path_ + "-wal").c_str(), &st) == 0 && st.st_size > (4 << 20)) {
      // PASSIVE never blocks the writer but cannot reset a WAL that is written continuously;
      // past 64 MB, RESTART waits for the current commit and makes the next one start the WAL
      // from its beginning (journal_size_limit then trims the file).
      int mode = st.st_size > (64 << 20) ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE;
      int log = 0, done = 0;
      sqlite3_wal_checkpoint_v2(db, nullptr, mode, &log, &done);
    }
  }
  sqlite3_close(db);
}

void Store::retention_loop() {
  for (;;) {
    {
      std::unique_lock g(ret_mu_);
      if (ret_cv_.wait_for(g, std::chrono::seconds(std::max<int64_t>(1, opt_.retention_interval_s)),
                           [&] { return ret_stop_; }))
        return;
    }
    {
      std::lock_guard g(q_mu_);
      if (stopping_) return;
    }
    if (auto e = run_retention()) log_error("retention failed: %s", e->message.c_str());
  }
}

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

}  // namespace spanprof
