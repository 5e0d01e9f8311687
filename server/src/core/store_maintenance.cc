// Maintenance off the ingest path: retention (age and --max-disk), WAL checkpoints.
#include <sys/stat.h>

#include "core/store_internal.h"

namespace spanprof {

using namespace store_detail;  // NOLINT(google-build-using-namespace)
using namespace rows_codec;    // NOLINT(google-build-using-namespace)

Status Store::delete_profiles(const std::vector<int64_t>& ids) {
  Stmt get(wdb_, "SELECT series, rows, data FROM profiles WHERE id = ?");
  Stmt del_s(wdb_, "DELETE FROM span_index WHERE span_id = ? AND profile = ?");
  Stmt del_p(wdb_, "DELETE FROM profiles WHERE id = ?");
  std::vector<uint64_t> spans;
  for (auto id : ids) {
    spans.clear();
    get.bind(1, id);
    if (get.step()) {
      int64_t series = get.i(0);
      sample_rows_ -= get.i(1);
      if (size_t(series) < series_refs_.size() && --series_refs_[size_t(series)] == 0)
        series_cand_.push_back(series);
      decode_rows(sqlite3_column_blob(get.s, 2), size_t(sqlite3_column_bytes(get.s, 2)), 1,
                  [&](const SampleRow& r) {
                    if (r.ids.span_id) spans.push_back(r.ids.span_id);
                    if (r.stack < stack_refs_.size() && --stack_refs_[r.stack] == 0)
                      stack_cand_.push_back(r.stack);
                  });
    }
    sqlite3_reset(get.s);
    std::sort(spans.begin(), spans.end());
    spans.erase(std::unique(spans.begin(), spans.end()), spans.end());
    for (auto sp : spans)
      if (del_s.bind(1, int64_t(sp)).bind(2, id).run() != SQLITE_DONE)
        return db_error(wdb_, "retention: delete span index: ");
    if (del_p.bind(1, id).run() != SQLITE_DONE) return db_error(wdb_, "retention: delete: ");
    --profiles_count_;
  }
  return std::nullopt;
}

// Deletes the rows of dictionary entries no profile refers to any more, cascading down
// (a stack's locations, a location's function, a function's strings). Memory is left to
// forget() after the commit.
Status Store::collect_unreferenced(Dead& dead) {
  auto drop = [&](const char* sql, int64_t id) -> Status {
    Stmt d(wdb_, sql);
    if (d.bind(1, id).run() != SQLITE_DONE) return db_error(wdb_, "retention: collect: ");
    return std::nullopt;
  };
  // One level of the cascade: each candidate still unreferenced is deleted, then down(id)
  // releases what it referred to.
  auto sweep = [&](auto& cand, auto& refs, const char* sql, auto& out, auto&& down) -> Status {
    for (auto id : std::exchange(cand, {})) {
      if (!id || size_t(id) >= refs.size() || refs[size_t(id)] != 0) continue;
      refs[size_t(id)] = -1;  // collected
      if (auto e = drop(sql, int64_t(id))) return e;
      out.push_back(id);
      down(id);
    }
    return std::nullopt;
  };
  auto release = [](std::vector<int64_t>& refs, std::vector<uint32_t>& cand, uint32_t id) {
    if (id < refs.size() && --refs[id] == 0) cand.push_back(id);
  };
  if (auto e = sweep(stack_cand_, stack_refs_, "DELETE FROM stacks WHERE id = ?", dead.stacks,
                     [&](uint32_t s) {
                       for (auto l : stacks_[s]) release(loc_refs_, loc_cand_, l);
                     }))
    return e;
  if (auto e = sweep(loc_cand_, loc_refs_, "DELETE FROM locations WHERE id = ?", dead.locs,
                     [&](uint32_t l) { release(func_refs_, func_cand_, locations_[l].function); }))
    return e;
  if (auto e = sweep(func_cand_, func_refs_, "DELETE FROM functions WHERE id = ?", dead.funcs,
                     [&](uint32_t f) {
                       release(string_refs_, string_cand_, functions_[f].first);
                       release(string_refs_, string_cand_, functions_[f].second);
                     }))
    return e;
  if (auto e = sweep(string_cand_, string_refs_, "DELETE FROM strings WHERE id = ?", dead.strings,
                     [](uint32_t) {}))
    return e;
  if (auto e = sweep(series_cand_, series_refs_, "DELETE FROM series WHERE id = ?", dead.series,
                     [](int64_t) {}))
    return e;
  return std::nullopt;
}

void Store::forget(const Dead& dead) {
  decltype(frame_locs_) old_frames, old_stacks;  // freed after the lock is let go
  std::unique_lock g(dict_mu_);
  for (auto s : dead.stacks) {
    std::string b;
    for (auto l : stacks_[s]) put_varint(b, l);
    if (auto it = stack_ids_.find(b); it != stack_ids_.end() && it->second == s)
      stack_ids_.erase(it);
    std::vector<uint32_t>().swap(stacks_[s]);
  }
  for (auto l : dead.locs) {
    auto it = location_ids_.find(loc_key(locations_[l].function, locations_[l].line));
    if (it != location_ids_.end() && it->second == l) location_ids_.erase(it);
    locations_[l] = {0, 0};
  }
  for (auto f : dead.funcs) {
    auto it = function_ids_.find(uint64_t(functions_[f].first) << 32 | functions_[f].second);
    if (it != function_ids_.end() && it->second == f) function_ids_.erase(it);
    functions_[f] = {0, 0};
  }
  for (auto x : dead.strings) {
    if (auto it = string_ids_.find(strings_[x]); it != string_ids_.end() && it->second == x)
      string_ids_.erase(it);
    std::string().swap(strings_[x]);
  }
  for (auto s : dead.series) {
    SeriesInfo& si = series_[size_t(s)];
    if (auto it = series_ids_.find(labels_key(si.tenant, si.labels));
        it != series_ids_.end() && it->second == s)
      series_ids_.erase(it);
    --tenant_series_[si.tenant];
    si = SeriesInfo{};
  }
  // The fast paths may point at what was dropped; ids resolved before now are not trusted.
  frame_locs_.swap(old_frames);
  stack_locs_.swap(old_stacks);
  ++dict_epoch_;
  collected_stacks_ += int64_t(dead.stacks.size());
  collected_strings_ += int64_t(dead.strings.size());
  collected_series_ += int64_t(dead.series.size());
}

// Counts references from the database: every profile's rows and series, then down the
// dictionary from the stacks that exist. Ids with no reference become candidates.
void Store::count_refs() {
  stack_refs_.assign(stacks_.size(), 0);
  series_refs_.assign(series_.size(), 0);
  {
    Stmt q(wdb_, "SELECT series, data FROM profiles");
    while (q.step()) {
      int64_t s = q.i(0);
      if (s > 0 && size_t(s) < series_refs_.size()) ++series_refs_[size_t(s)];
      decode_rows(sqlite3_column_blob(q.s, 1), size_t(sqlite3_column_bytes(q.s, 1)), 1,
                  [&](const SampleRow& r) {
                    if (r.stack < stack_refs_.size()) ++stack_refs_[r.stack];
                  });
    }
  }
  loc_refs_.assign(locations_.size(), 0);
  func_refs_.assign(functions_.size(), 0);
  string_refs_.assign(strings_.size(), 0);
  stack_cand_.clear(), loc_cand_.clear(), func_cand_.clear(), string_cand_.clear();
  series_cand_.clear();
  // Entries that exist (a collected one is an empty slot; id 0 is never used).
  std::vector<uint8_t> live_stack(stacks_.size(), 0);
  {
    Stmt q(wdb_, "SELECT id FROM stacks");
    while (q.step())
      if (size_t(q.i(0)) < live_stack.size()) live_stack[size_t(q.i(0))] = 1;
  }
  for (size_t s = 1; s < stacks_.size(); ++s) {
    if (!live_stack[s]) {
      stack_refs_[s] = -1;
      continue;
    }
    for (auto l : stacks_[s])
      if (l < loc_refs_.size()) ++loc_refs_[l];
    if (stack_refs_[s] == 0) stack_cand_.push_back(uint32_t(s));
  }
  for (size_t l = 1; l < locations_.size(); ++l)
    if (locations_[l].function) ++func_refs_[locations_[l].function];
  for (size_t f = 1; f < functions_.size(); ++f)
    if (functions_[f].first)
      ++string_refs_[functions_[f].first], ++string_refs_[functions_[f].second];
  // Locations, functions and strings that nothing refers to from the start are left alone:
  // an empty slot and a live entry without references look the same here. Only what loses its
  // last reference to retention is collected.
  for (size_t s = 1; s < series_.size(); ++s) {
    if (series_[s].id == 0)
      series_refs_[s] = -1;
    else if (series_refs_[s] == 0)
      series_cand_.push_back(int64_t(s));
  }
  refs_synced_ = {stacks_.size(), locations_.size(), functions_.size()};
}

// Counts the references of stacks, locations and functions interned since the last call (the
// writer thread, after a profile's interning).
// The writer thread only, without dict_mu_: the counts are the writer's, and the entries it reads
// are appended by the writer alone.
void Store::add_new_refs() {
  stack_refs_.resize(stacks_.size(), 0);
  loc_refs_.resize(locations_.size(), 0);
  func_refs_.resize(functions_.size(), 0);
  string_refs_.resize(strings_.size(), 0);
  series_refs_.resize(series_.size(), 0);
  for (size_t s = refs_synced_.stacks; s < stacks_.size(); ++s)
    for (auto l : stacks_[s]) ++loc_refs_[l];
  for (size_t l = refs_synced_.locs; l < locations_.size(); ++l)
    ++func_refs_[locations_[l].function];
  for (size_t f = refs_synced_.funcs; f < functions_.size(); ++f)
    ++string_refs_[functions_[f].first], ++string_refs_[functions_[f].second];
  refs_synced_ = {stacks_.size(), locations_.size(), functions_.size()};
}

// Copies the WAL into the database and empties it (the writer thread, no transaction open).
// Waits for the checkpoint thread's checkpoint, then at most ~0.5 s for readers, not the
// connection's 10 s: the writer holds up every push meanwhile.
void Store::checkpoint_truncate() {
  std::lock_guard c(ckpt_mu_);  // after the checkpoint thread's current one
  sqlite3_busy_timeout(wdb_, 100);
  for (int i = 0; i < 5; ++i)
    if (sqlite3_wal_checkpoint_v2(wdb_, nullptr, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr) ==
        SQLITE_OK)
      break;
  sqlite3_busy_timeout(wdb_, 10000);
}

int64_t Store::disk_bytes() const {
  int64_t n = 0;
  struct stat st;
  for (const char* suffix : {"", "-wal", "-shm"})
    if (::stat((path_ + suffix).c_str(), &st) == 0) n += st.st_size;
  return n;
}

int64_t Store::protected_from_id() {
  int64_t since = now_ns() - opt_.disk_keep_s * 1'000'000'000;
  while (!acked_.empty() && acked_.front().first < since) acked_.pop_front();
  return acked_.empty() ? next_profile_id_ : acked_.front().second;
}

Status Store::retention_pass(int64_t room) {
  // Counters the pass changes, restored if its transaction fails.
  const int64_t rows0 = sample_rows_, profiles0 = profiles_count_;
  if (!ws_->begin()) return db_error(wdb_, "retention: begin failed: ");
  Dead dead;
  int64_t removed = 0;
  auto select_ids = [&](const char* sql, int64_t a, int64_t b) {
    std::vector<int64_t> ids;
    Stmt q(wdb_, sql);
    q.bind(1, a).bind(2, b);
    while (q.step()) ids.push_back(q.i(0));
    return ids;
  };
  auto pass = [&]() -> Status {
    if (opt_.retention_s > 0) {
      int64_t cutoff_ms = now_ns() / 1'000'000 - opt_.retention_s * 1000;
      auto ids =
          select_ids("SELECT id FROM profiles WHERE time_ms < ? LIMIT ?", cutoff_ms, INT64_MAX);
      if (auto e = delete_profiles(ids)) return e;
      removed += int64_t(ids.size());
      Stmt(wdb_, "DELETE FROM spans WHERE start_ns < ?").bind(1, cutoff_ms * 1'000'000).run();
      if (auto e = collect_unreferenced(dead)) return e;
    }
    if (opt_.max_disk_bytes <= 0) return std::nullopt;
    auto live = [&] {
      Stmt a(wdb_, "PRAGMA page_count"), b(wdb_, "PRAGMA freelist_count"),
          c(wdb_, "PRAGMA page_size");
      a.step(), b.step(), c.step();
      return (a.i(0) - b.i(0)) * c.i(0);
    };
    // Oldest acknowledged first, in small chunks (2% of the profiles, 1..200) so the cut lands
    // close to the target, never into the disk_keep_s window.
    const int64_t keep_from = protected_from_id();
    const int64_t target = opt_.max_disk_bytes * 3 / 4 - room;
    while (live() > target) {
      int64_t chunk = std::clamp<int64_t>(profiles_count_ / 50, 1, 200);
      auto ids =
          select_ids("SELECT id FROM profiles WHERE id < ? ORDER BY id LIMIT ?", keep_from, chunk);
      if (ids.empty()) break;
      if (auto e = delete_profiles(ids)) return e;
      if (auto e = collect_unreferenced(dead)) return e;
      removed += int64_t(ids.size());
    }
    Stmt oldest(wdb_, "SELECT min(time_ms) FROM profiles");
    int64_t spans_from = oldest.step() && sqlite3_column_type(oldest.s, 0) != SQLITE_NULL
                             ? oldest.i(0) * 1'000'000
                             : INT64_MAX;
    if (removed) Stmt(wdb_, "DELETE FROM spans WHERE start_ns < ?").bind(1, spans_from).run();
    return std::nullopt;
  };
  Status st = pass();
  if (!st) {
    ws_->meta.bind(1, sample_rows_).run();
    if (!ws_->commit()) st = db_error(wdb_, "retention: commit failed: ");
  }
  if (st) {
    last_pass_removed_ = false;
    ws_->rollback();
    sample_rows_ = rows0;
    profiles_count_ = profiles0;
    count_refs();  // the counts were decremented for rows that are still there
    return st;
  }
  forget(dead);
  removed_profiles_ += removed;
  last_pass_removed_ = removed > 0;
  exec(wdb_, "PRAGMA incremental_vacuum");
  checkpoint_truncate();
  // At the budget a pass runs every few batches: one line per 10 s with what they did.
  unlogged_.removed += removed;
  unlogged_.stacks += int64_t(dead.stacks.size());
  unlogged_.strings += int64_t(dead.strings.size());
  unlogged_.series += int64_t(dead.series.size());
  if ((unlogged_.removed || unlogged_.stacks || unlogged_.series) &&
      now_ns() - unlogged_.since_ns >= 10'000'000'000) {
    log_info("retention: removed %lld profiles; collected %lld stacks, %lld strings, %lld series",
             static_cast<long long>(unlogged_.removed), static_cast<long long>(unlogged_.stacks),
             static_cast<long long>(unlogged_.strings), static_cast<long long>(unlogged_.series));
    unlogged_ = {};
    unlogged_.since_ns = now_ns();
  }
  return std::nullopt;
}

// Bytes a job may add to the database: new frames (strings, function, location rows and their
// pages) and sample rows, generously; the budget check is made before the batch is written.
static int64_t estimate_bytes(const RawProfile& p, const std::vector<uint32_t>* known_locs) {
  int64_t frames = 0;
  for (size_t i = 0; i < p.frames.size(); ++i)
    frames += !(known_locs && i < known_locs->size() && (*known_locs)[i]);
  return 512 + frames * 96 + int64_t(p.samples.size()) * 16;
}

void Store::admit(std::vector<Job*>& jobs, std::vector<Status>& refused) {
  if (opt_.max_disk_bytes <= 0 || jobs.empty()) return;
  const int64_t budget = opt_.max_disk_bytes;
  std::vector<int64_t> need(jobs.size());
  int64_t total = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    // Twice the estimate: a write takes room in the WAL and again in the database when it is
    // checkpointed, before the WAL is emptied.
    need[i] = int64_t(jobs[i]->spans.size()) * 512;
    for (size_t k = 0; k < jobs[i]->profiles.size(); ++k)
      need[i] +=
          estimate_bytes(jobs[i]->profiles[k],
                         k < jobs[i]->resolved.size() ? &jobs[i]->resolved[k].locs : nullptr);
    need[i] *= 2;
    // A write larger than the whole budget is refused below without deleting anything for it.
    if (need[i] < budget) total += need[i];
  }
  int64_t disk = disk_bytes();
  // The WAL's frames are counted twice until a checkpoint copies them (the WAL, then the pages
  // they replace): checkpoint before deleting anything.
  if (disk + total > budget * 9 / 10) {
    checkpoint_truncate();
    disk = disk_bytes();
  }
  // Past 90% of the budget, make room first (after a pass that removed nothing, at most once a
  // second: with nothing outside the keep window left, a pass per batch only slows the writer).
  if (disk + total > budget * 9 / 10 &&
      (last_pass_removed_ || now_ns() - last_budget_pass_ns_ > 1'000'000'000)) {
    if (auto e = flush_span_index()) log_error("span index flush: %s", e->message.c_str());
    if (auto e = retention_pass(total)) log_error("retention failed: %s", e->message.c_str());
    last_budget_pass_ns_ = now_ns();
    disk = disk_bytes();
  }
  const int retry_s = int(std::clamp<int64_t>(opt_.disk_keep_s, 1, 60));
  std::string reason;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (disk + need[i] <= budget) {
      disk += need[i];
      continue;
    }
    struct stat wal;
    int64_t wal_bytes = ::stat((path_ + "-wal").c_str(), &wal) == 0 ? wal.st_size : 0;
    reason = "the data dir holds " + std::to_string(disk) + " bytes (" + std::to_string(wal_bytes) +
             " in the write-ahead log) of the --max-disk budget of " + std::to_string(budget) +
             "; a write of about " + std::to_string(need[i]) +
             " bytes does not fit and the profiles acknowledged in the last " +
             std::to_string(opt_.disk_keep_s) +
             " s (--max-disk-keep) are not deleted to make room: retry later, or raise --max-disk";
    refused[i] = Error{507, "resource_exhausted", "storage budget exhausted: " + reason, retry_s};
  }
  bool over = !reason.empty();
  if (over != over_budget_.load()) {
    if (over)
      log_error("store: refusing writes (507): %s", reason.c_str());
    else
      log_info("store: within the --max-disk budget again; accepting writes");
  }
  over_budget_ = over;
  std::lock_guard g(budget_mu_);
  over_budget_reason_ = reason;
}

void Store::checkpoint_loop() {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  sqlite3_busy_timeout(db, 5000);
  exec(db, "PRAGMA synchronous=FULL");
  // Under --max-disk the WAL is part of the budget: checkpoint it sooner.
  const int64_t passive_at = wal_limit_bytes() / 16, restart_at = wal_limit_bytes();
  for (;;) {
    {
      std::unique_lock g(ret_mu_);
      if (ret_cv_.wait_for(g, std::chrono::milliseconds(500), [&] { return ret_stop_; })) break;
    }
    struct stat st;
    if (::stat((path_ + "-wal").c_str(), &st) == 0 && st.st_size > passive_at) {
      // PASSIVE never blocks the writer but cannot reset a WAL that is written continuously;
      // past 64 MB, RESTART waits for the current commit and makes the next one start the WAL
      // from its beginning (journal_size_limit then trims the file).
      int mode = st.st_size > restart_at ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE;
      int log = 0, done = 0;
      std::lock_guard c(ckpt_mu_);
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
