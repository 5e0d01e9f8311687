// SQLite helpers of the store's files: a prepared statement, exec with logging, and the mapping
// of a failed write to what the client sees. Store-internal (only core/store*.cc include it).
#pragma once
#include <sqlite3.h>

#include <cerrno>
#include <cstdint>
#include <string>

#include "core/log.h"
#include "core/types.h"

namespace spanprof::store_detail {

// A failed write as the client sees it: a full disk is the client's to retry later (507 with
// Retry-After, which the agent honours); anything else is ours (500).
inline Error db_error(sqlite3* db, const char* what) {
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

inline int exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    log_error("sqlite: %s: %s", sql, err ? err : "?");
    sqlite3_free(err);
  }
  return rc;
}

}  // namespace spanprof::store_detail
