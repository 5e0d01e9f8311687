// Shared by the store's files (core/store_*.cc) only: dictionary keys and hashes, the writer's
// prepared statements and its span index flush constants.
#pragma once
#include <algorithm>
#include <climits>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/decode.h"
#include "core/sqlite_stmt.h"
#include "core/store.h"
#include "core/util.h"

namespace spanprof {
namespace store_detail {

// Storage layout version, kept in meta('schema'). 2: a profile's sample rows are one blob in
// profiles.data plus span_index(span_id, profile); 1 had one SQL row per sample (no migration).
constexpr int64_t kSchemaVersion = 2;  // also written by kSchema (store_schema.cc)

// Location dedup key: lines beyond 32 bits (never seen in practice) share a key space slot.
inline uint64_t loc_key(uint32_t fid, int64_t line) {
  return uint64_t(fid) << 32 | uint32_t(std::clamp<int64_t>(line, 0, INT32_MAX));
}

constexpr int64_t kSpanFlushMs = 1000;
constexpr size_t kSpanFlushEntries = 8192;

inline uint64_t frame_hash(const RawFrame& f) {
  uint64_t a = std::hash<std::string_view>()(f.function);
  uint64_t b = std::hash<std::string_view>()(f.file);
  return a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull + (a << 6) + (a >> 2)) ^
         uint64_t(f.line) * 0xC2B2AE3D27D4EB4Full;
}

inline uint64_t stack_hash(const std::vector<uint32_t>& locs) {
  uint64_t h = 0xcbf29ce484222325ull ^ locs.size();
  for (uint32_t l : locs) h = (h ^ l) * 0x100000001b3ull, h ^= h >> 29;
  return h;
}

inline std::string labels_key(uint32_t tenant, const Labels& l) {
  std::string k = std::to_string(tenant);
  for (auto& [n, v] : l) {
    k += '\x1f';
    k += n;
    k += '\x1e';
    k += v;
  }
  return k;
}

// The earlier sample whose stack sample i shares (the decoder's hint, checked), else i.
inline size_t dup_of(const RawProfile& p, size_t i) {
  uint32_t d = p.samples[i].same_stack_as;
  return d < i && p.samples[d].frames == p.samples[i].frames ? d : i;
}

// Ingest jobs past this many sample rows are heavy: the writer runs each in a batch of its own,
// never two in a row while smaller jobs wait.
constexpr size_t kHeavyJobRows = 20000;
constexpr size_t kBatchRows = 200000;  // a group commit stops taking jobs past this
// What a new dictionary entry (a frame's strings, function and location rows, or a stack row)
// counts for in sample rows: an estimate, not a measurement (an entry is up to four inserts into
// indexed tables plus hash-map work; a row is a sort entry and a few bytes of blob).
constexpr size_t kDictEntryRows = 8;
// A job with more new entries than this interns them in turns of its own, this many per turn,
// taking turns with the other jobs as heavy jobs do; its rows follow in its last turn.
constexpr size_t kDictTurnEntries = kHeavyJobRows / kDictEntryRows;

}  // namespace store_detail

struct Store::WriterStmts {
  explicit WriterStmts(sqlite3* db)
      : stack(db, "INSERT INTO stacks(id, locs) VALUES(?, ?)"),
        string(db, "INSERT INTO strings(id, s) VALUES(?, ?)"),
        function(db, "INSERT INTO functions(id, name, file) VALUES(?,?,?)"),
        location(db, "INSERT INTO locations(id, function, line) VALUES(?,?,?)"),
        prof(db,
             "INSERT INTO profiles(id, series, time_ms, duration_ns, period, scale, total, rows, "
             "data) VALUES(?,?,?,?,?,?,?,?,?)"),
        span(db, "INSERT OR IGNORE INTO span_index(span_id, profile) VALUES(?, ?)"),
        meta(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('sample_rows', ?)"),
        indexed(db, "INSERT OR REPLACE INTO meta(key, value) VALUES('span_indexed', ?)"),
        begin_(db, "BEGIN IMMEDIATE"),
        commit_(db, "COMMIT"),
        rollback_(db, "ROLLBACK") {}
  store_detail::Stmt stack, string, function, location, prof, span, meta, indexed;
  // Transaction control, prepared once (sqlite3_exec compiles the statement on every call).
  bool begin() { return ok(begin_, "BEGIN IMMEDIATE"); }
  bool commit() { return ok(commit_, "COMMIT"); }
  void rollback() { ok(rollback_, "ROLLBACK"); }

 private:
  store_detail::Stmt begin_, commit_, rollback_;
  static bool ok(store_detail::Stmt& st, const char* what) {
    int rc = st.run();
    if (rc == SQLITE_DONE) return true;
    log_error("sqlite: %s: %s", what, sqlite3_errstr(rc));
    return false;
  }
};

}  // namespace spanprof
