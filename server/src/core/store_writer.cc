// The single writer: group commits of queued jobs, a profile applied as intern → series → rows,
// the deferred span index, and the syncer that acknowledges a batch once its WAL frames are on
// disk.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <unordered_map>

#include "core/store_internal.h"

namespace spanprof {

using namespace store_detail;  // NOLINT(google-build-using-namespace)
using namespace rows_codec;    // NOLINT(google-build-using-namespace)

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

namespace {
struct AggKey {
  const std::vector<uint32_t>* frames;
  uint64_t frames_hash;
  uint32_t label_set;
  SpanIds ids;
  bool operator==(const AggKey& o) const {
    return frames_hash == o.frames_hash && label_set == o.label_set &&
           ids.span_id == o.ids.span_id && ids.active_span_id == o.ids.active_span_id &&
           ids.trace_hi == o.ids.trace_hi && ids.trace_lo == o.ids.trace_lo &&
           (frames == o.frames || *frames == *o.frames);
  }
};
struct AggHash {
  size_t operator()(const AggKey& k) const {
    uint64_t h = k.frames_hash ^ (uint64_t(k.label_set) << 32);
    h ^= k.ids.span_id * 0xC2B2AE3D27D4EB4Full ^ k.ids.active_span_id ^ (k.ids.trace_lo << 1);
    return size_t(h ^ (h >> 29));
  }
};

// Merges samples of equal frames, label set and span ids on the caller's thread, so the writer
// sorts and encodes distinct rows only: a push of a million equal samples costs the single
// writer one row, not a million-entry sort. Equal samples mostly come in runs (or carry the
// decoder's same_stack_as hint), so the previous key is tried before the map.
void pre_aggregate(RawProfile& p) {
  if (p.samples.size() < 2) return;
  std::unordered_map<AggKey, uint32_t, AggHash> at;
  std::vector<uint32_t> new_index(p.samples.size());
  std::vector<uint64_t> hashes(p.samples.size());
  std::vector<RawSample> out;
  std::optional<AggKey> last;
  uint32_t last_at = 0;
  for (size_t i = 0; i < p.samples.size(); ++i) {
    size_t d = dup_of(p, i);
    const RawSample& x = p.samples[i];
    hashes[i] = d != i ? hashes[d] : stack_hash(x.frames);
    AggKey key{&x.frames, hashes[i], x.label_set, x.ids};
    if (last && key == *last) {
      out[last_at].value += x.value;
      new_index[i] = last_at;
      continue;
    }
    auto [it, added] = at.try_emplace(key, uint32_t(out.size()));
    last = key;
    last_at = it->second;
    if (!added) {
      out[it->second].value += x.value;
      new_index[i] = it->second;
      continue;
    }
    new_index[i] = uint32_t(out.size());
    // A hinted sample d is kept or merged into a kept one with the same frames.
    uint32_t hint = d != i ? new_index[d] : RawSample::kNoSample;
    out.push_back(x);  // a copy: the keys point into p.samples
    out.back().same_stack_as = hint;
  }
  p.samples = std::move(out);
}
}  // namespace

Status Store::write_profiles(std::vector<RawProfile> profiles) {
  auto j = std::make_unique<Job>();
  j->profiles = std::move(profiles);
  size_t rows = 0;
  for (auto& p : j->profiles) pre_aggregate(p), rows += p.samples.size();
  const std::string tenant = j->profiles.empty() ? std::string() : j->profiles[0].tenant;
  if (opt_.max_inflight_rows_per_tenant > 0) {
    std::lock_guard g(inflight_mu_);
    size_t& n = inflight_rows_[tenant];
    // One push larger than the whole allowance still goes through when it would be alone.
    if (n > 0 && n + rows > opt_.max_inflight_rows_per_tenant)
      return Error{429, "resource_exhausted",
                   "tenant " + tenant + " has " + std::to_string(n) +
                       " sample rows waiting to be stored (--max-inflight-rows-per-tenant)",
                   1};
    n += rows;
  }
  resolve(*j);
  Status st = submit(std::move(j));
  if (opt_.max_inflight_rows_per_tenant > 0) {
    std::lock_guard g(inflight_mu_);
    if ((inflight_rows_[tenant] -= rows) == 0) inflight_rows_.erase(tenant);
  }
  return st;
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
      // Group commit: what is queued shares one transaction and one fsync. A heavy job runs
      // alone, and takes turns with batches of the others: a tenant pushing the largest
      // profiles the limits allow holds everyone else up for one such job at most. A job with
      // much to intern (new stacks and names, not rows) takes several such turns.
      auto is_heavy = [](auto& j) { return j->weight() > kHeavyJobRows; };
      auto heavy = std::find_if(queue_.begin(), queue_.end(), is_heavy);
      size_t rows = 0;
      if (!heavy_turn_ || heavy == queue_.end())
        for (auto it = queue_.begin(); it != queue_.end() && rows < kBatchRows;) {
          if (is_heavy(*it)) {
            ++it;
            continue;
          }
          rows += (*it)->weight();
          batch.push_back(std::move(*it));
          it = queue_.erase(it);
        }
      if (batch.empty()) {
        heavy = std::find_if(queue_.begin(), queue_.end(), is_heavy);
        batch.push_back(std::move(*heavy));
        queue_.erase(heavy);
      }
      heavy_turn_ = !is_heavy(batch.front());
    }
    if (batch.front()->dict_left > kDictTurnEntries) {
      // One turn of its interning; it goes back in the queue (behind other heavy jobs) until
      // what is left fits a turn with its rows.
      std::vector<Job*> one{batch.front().get()};
      std::vector<Status> refused(1);
      admit(one, refused);
      Status st = refused[0] ? refused[0] : intern_turn(*one[0]);
      if (!st) {
        std::lock_guard g(q_mu_);
        queue_.push_back(std::move(batch.front()));
        continue;
      }
      release_interned(*one[0]);
      Committed c;
      c.status = {st};
      c.jobs = std::move(batch);
      std::lock_guard g(sync_mu_);
      sync_q_.push_back(std::move(c));
      sync_cv_.notify_one();
      continue;
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
    Committed c;
    c.status.resize(batch.size());
    std::vector<Job*> writes;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!batch[i]->retention) {
        writes.push_back(batch[i].get());
        continue;
      }
      // Retention deletes span_index entries of the profiles it drops: index them first.
      if (auto e = flush_span_index()) log_error("span index flush: %s", e->message.c_str());
      c.status[i] = retention_pass();
      last_budget_pass_ns_ = now_ns();
    }
    std::vector<Status> refused(writes.size());
    admit(writes, refused);
    std::vector<Job*> admitted;
    for (size_t i = 0; i < writes.size(); ++i)
      if (!refused[i]) admitted.push_back(writes[i]);
    const int64_t first_pid = next_profile_id_;
    Status st = admitted.empty() ? std::nullopt : run(admitted);
    std::vector<Status> done(admitted.size(), st);
    if (st && admitted.size() > 1)
      // One job failed: retry each alone so the others still commit.
      for (size_t i = 0; i < admitted.size(); ++i) done[i] = run({admitted[i]});
    if (next_profile_id_ > first_pid) acked_.emplace_back(now_ns(), first_pid);
    for (size_t i = 0, w = 0, a = 0; i < batch.size(); ++i) {
      if (batch[i]->retention) continue;
      c.status[i] = refused[w] ? refused[w] : done[a++];
      ++w;
      if (c.status[i]) release_interned(*batch[i]);
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

size_t Store::Job::weight() const {
  size_t r = spans.size() + 1 + dict_left * kDictEntryRows;
  for (auto& p : profiles) r += p.samples.size();
  return r;
}

void Store::revalidate(Job& j) {
  if (j.epoch == dict_epoch_ && j.resolved.size() == j.profiles.size()) return;
  j.resolved.resize(j.profiles.size());
  for (size_t k = 0; k < j.profiles.size(); ++k) j.resolved[k].reset(j.profiles[k]);
  j.epoch = dict_epoch_;
}

Status Store::intern_turn(Job& j) {
  revalidate(j);
  mark();
  if (!ws_->begin()) return db_error(wdb_, "begin failed: ");
  size_t budget = kDictTurnEntries;
  const DictSizes from = dict_sizes();
  {
    std::unique_lock g(dict_mu_);
    for (size_t k = 0; k < j.profiles.size() && budget > 0; ++k)
      intern_stacks(j.profiles[k], j.resolved[k], budget);
  }
  add_new_refs();
  Status st = insert_new_entries(from);
  if (!st && !ws_->commit()) st = db_error(wdb_, "commit failed: ");
  if (st) {
    ws_->rollback();
    rollback_memory();
    return st;
  }
  j.turn_stacks.emplace_back(uint32_t(mark_.stacks), uint32_t(stacks_.size()));
  j.turn_locs.emplace_back(uint32_t(mark_.locations), uint32_t(locations_.size()));
  j.dict_left = budget > 0 ? 0 : j.dict_left - std::min(j.dict_left, kDictTurnEntries);
  return std::nullopt;
}

void Store::release_interned(Job& j) {
  // Ids below a later batch's mark are never reused (collected ones stay empty slots).
  auto release = [](auto& ranges, std::vector<int64_t>& refs, std::vector<uint32_t>& cand) {
    for (auto [first, end] : ranges)
      for (uint32_t id = first; id < end; ++id)
        if (id < refs.size() && refs[id] == 0) cand.push_back(id);
    ranges.clear();
  };
  release(j.turn_stacks, stack_refs_, stack_cand_);
  release(j.turn_locs, loc_refs_, loc_cand_);
}

Status Store::apply(Job& job) {
  revalidate(job);
  for (size_t k = 0; k < job.profiles.size(); ++k)
    if (auto e = apply_profile(job.profiles[k], job.resolved[k])) return e;
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

Status Store::apply_profile(RawProfile& p, Resolved& r) {
  std::vector<int64_t> series_of_set;
  const DictSizes from = dict_sizes();
  {
    std::unique_lock g(dict_mu_);
    uint32_t tenant = tenant_id_locked(p.tenant);
    size_t unbounded = SIZE_MAX;
    intern_stacks(p, r, unbounded);
    if (auto e = intern_series(p, tenant, profile_type_id(p), series_of_set)) return e;
  }
  add_new_refs();
  if (auto e = insert_new_entries(from)) return e;
  return write_rows(p, series_of_set, r.stacks);
}

// One profile row per series; samples aggregated by (stack, ids), rows ordered by them.
Status Store::write_rows(const RawProfile& p, const std::vector<int64_t>& series_of_set,
                         const std::vector<uint32_t>& stack_of_sample) {
  struct Keyed {
    int64_t series;
    RowIn row;
    auto key() const {
      return std::tie(series, row.stack, row.ids.span_id, row.ids.active_span_id, row.ids.trace_hi,
                      row.ids.trace_lo);
    }
  };
  std::vector<Keyed> all;
  all.reserve(p.samples.size());
  for (size_t i = 0; i < p.samples.size(); ++i)
    all.push_back({series_of_set[p.samples[i].label_set],
                   {stack_of_sample[i], p.samples[i].ids, p.samples[i].value}});
  std::sort(all.begin(), all.end(),
            [](const Keyed& x, const Keyed& y) { return x.key() < y.key(); });
  size_t merged = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (merged > 0 && all[merged - 1].key() == all[i].key()) {
      all[merged - 1].row.value += all[i].row.value;
    } else {
      all[merged++] = all[i];
    }
  }
  all.resize(merged);
  std::vector<RowIn> rows;
  EncodedRows enc;
  for (size_t begin = 0, end; begin < all.size(); begin = end) {
    const int64_t sid = all[begin].series;
    rows.clear();
    for (end = begin; end < all.size() && all[end].series == sid; ++end)
      rows.push_back(all[end].row);
    encode_rows(rows, p.period, enc);
    int64_t pid = next_profile_id_++;
    ws_->prof.bind(1, pid)
        .bind(2, sid)
        .bind(3, p.time_ns / 1'000'000)
        .bind(4, p.duration_ns)
        .bind(5, p.period)
        .bind(6, enc.scale)
        .bind(7, enc.total)
        .bind(8, int64_t(rows.size()))
        .blob(9, enc.data);
    if (ws_->prof.run() != SQLITE_DONE) return db_error(wdb_, "insert profile: ");
    // One span index entry per (local-root span, profile), queued for the writer's bulk insert
    // (see pending_spans_).
    {
      std::lock_guard g(pending_mu_);
      for (auto sp : enc.span_ids) pending_spans_.emplace_back(sp, pid);
    }
    for (auto& r : rows) {
      ++stack_refs_[r.stack];
      if (r.stack < mark_.stacks) batch_stack_refs_.push_back(r.stack);
    }
    ++series_refs_[size_t(sid)];
    if (size_t(sid) < mark_.series) batch_series_refs_.push_back(sid);
    sample_rows_ += int64_t(rows.size());
    ++profiles_count_;
  }
  return std::nullopt;
}

}  // namespace spanprof
