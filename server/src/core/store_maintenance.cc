// Maintenance off the ingest path: retention (age and --max-disk), WAL checkpoints.
#include <sys/stat.h>

#include "core/store_internal.h"

namespace spanprof {

using namespace store_detail;  // NOLINT(google-build-using-namespace)
using namespace rows_codec;    // NOLINT(google-build-using-namespace)

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

}  // namespace spanprof
