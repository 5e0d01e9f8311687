// Durable store: SQLite (WAL; each acknowledged commit fdatasynced) with spanprof's own compact
// encoding inside.
// One writer thread group-commits every queued ingest: a caller of write_*() returns only after
// the transaction holding its data has committed (fsync of the WAL), so an acknowledged request
// survives a crash of the process or the machine. Readers use their own connections (WAL lets
// them run concurrently with the writer). No HTTP here.
//
// Layout (see ARCHITECTURE.md "Server"):
//   strings(id, s)  functions(id, name, file)  locations(id, function, line)
//   stacks(id, locs BLOB = varint location ids, root first)       — all deduplicated, in memory
//   tenants(id, name)  series(id, tenant, labels JSON)           — in memory
//   profiles(id, series, time_ms, duration_ns, period, scale, total, rows, data BLOB)
//     data = the profile's sample rows (stack, value / scale, span ids) in one compact blob
//   span_index(span_id, profile) WITHOUT ROWID — one entry per local-root span per profile
//   spans(tenant, trace_hi, trace_lo, span_id, parent, name, service, kind, start_ns, end_ns,
//         status_code, status_message, detail JSON)  WITHOUT ROWID
#pragma once
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/rows_codec.h"
#include "core/sharded_map.h"
#include "core/types.h"

namespace spanprof {

struct StoreOptions {
  std::string dir;
  int64_t retention_s = 7 * 86400;  // 0 = keep forever
  int64_t max_disk_bytes = 0;       // 0 = unlimited
  int64_t retention_interval_s = 60;
  // --max-disk never deletes profiles acknowledged within this many seconds; when they alone do
  // not fit the budget, writes are refused (507 + Retry-After) instead.
  int64_t disk_keep_s = 60;
  // New series per tenant past this are refused (429), as Pyroscope's max_global_series_per_user.
  // 0 = no limit.
  size_t max_series_per_tenant = 50000;
  // Decoded sample rows per tenant queued for the writer or being written; 429 past it (a
  // tenant pushing the largest profiles the limits allow has two in the writer's queue at most).
  // 0 = no limit.
  size_t max_inflight_rows_per_tenant = 4u << 20;
};

struct SeriesInfo {
  int64_t id = 0;
  uint32_t tenant = 0;
  Labels labels;  // includes __profile_type__ and service_name
  std::string profile_type, service;
};

struct ProfileMeta {
  int64_t id = 0, series = 0, time_ms = 0, period = 0, scale = 1, total = 0;
};

struct TraceFilter {
  std::string service, name;
  int64_t min_duration_ns = -1, max_duration_ns = -1;
  int64_t from_ns = 0, to_ns = INT64_MAX;
  size_t limit = 20;
};

struct StoreStats {
  int64_t db_bytes = 0, wal_bytes = 0, sample_rows = 0, profiles = 0, spans = 0, stacks = 0;
  int64_t wal_syncs = 0, synced_batches = 0;  // fdatasyncs of the WAL, group commits they covered
  // --max-disk: the budget, the data dir's files now, and whether writes are being refused.
  int64_t max_disk_bytes = 0, disk_bytes = 0;
  bool over_budget = false;
  std::string over_budget_reason;
  // What retention removed since the start (profiles) and collected once nothing referred to it.
  int64_t removed_profiles = 0, collected_stacks = 0, collected_strings = 0, collected_series = 0;
};

// One tenant's share: what /api/v1/stats shows that tenant.
struct TenantStats {
  int64_t series = 0, profiles = 0, sample_rows = 0;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> open(const StoreOptions& o);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Durable writes: block until committed. Errors are 5xx (input was validated by decoders).
  Status write_profiles(std::vector<RawProfile> profiles);
  Status write_spans(std::vector<SpanRow> spans);
  // Deletes data older than the retention and, past max_disk, the oldest data; frees disk.
  Status run_retention();

  // ---- reads (thread-safe) ----
  std::vector<SeriesInfo> series_of(const std::string& tenant) const;
  std::vector<ProfileMeta> profiles_of(const std::vector<int64_t>& series, int64_t from_ms,
                                       int64_t to_ms) const;
  // Whether the series has a profile in [from_ms, to_ms] (one index probe).
  bool series_active(int64_t series, int64_t from_ms, int64_t to_ms) const;
  void scan_profile(const ProfileMeta& p, const std::function<void(const SampleRow&)>& f) const;
  // Many profiles with one connection and one prepared statement (merges read thousands).
  void scan_profiles(const std::vector<ProfileMeta>& ps,
                     const std::function<void(const ProfileMeta&, const SampleRow&)>& f) const;
  // Samples whose span_id (local root) is one of `span_ids`, restricted to the tenant's series
  // and [from_ms, to_ms]. Calls f(profile, sample).
  void scan_span_ids(const std::string& tenant, const std::vector<uint64_t>& span_ids,
                     int64_t from_ms, int64_t to_ms,
                     const std::function<void(const ProfileMeta&, const SampleRow&)>& f) const;
  // Root-first function-name string ids of a stack (for flame graphs).
  void stack_function_names(uint32_t stack, std::vector<uint32_t>& out) const;
  void stack_locations(uint32_t stack, std::vector<uint32_t>& out) const;
  struct Loc {
    uint32_t function;
    int64_t line;
  };
  Loc location(uint32_t id) const;
  std::pair<uint32_t, uint32_t> function(uint32_t id) const;  // name, file string ids
  std::string str(uint32_t id) const;

  std::vector<SpanRow> find_root_spans(const std::string& tenant, const TraceFilter& f) const;
  std::vector<SpanRow> trace_spans(const std::string& tenant, uint64_t hi, uint64_t lo) const;
  std::vector<std::pair<uint64_t, uint64_t>> traces_with_span_name(const std::string& tenant,
                                                                   const std::string& service,
                                                                   const std::string& name,
                                                                   int64_t from_ns, int64_t to_ns,
                                                                   size_t limit) const;
  std::vector<std::string> span_services(const std::string& tenant) const;
  StoreStats stats() const;  // server-wide
  TenantStats tenant_stats(const std::string& tenant) const;
  // The tenant's oldest and newest profile time (ms); (0, 0) when it has none.
  std::pair<int64_t, int64_t> profile_time_range(const std::string& tenant) const;

 private:
  Store() = default;
  // Dictionary ids of a profile's frames and stacks: found by resolve() before queueing, then
  // filled in by the writer as it interns (0 = not interned yet).
  struct Resolved {
    std::vector<uint32_t> locs, stacks;  // per RawProfile frame / sample
    // Probe keys of frame_locs_, and whether an entry is in frame_locs_ / stack_locs_ (the
    // writer adds the others).
    std::vector<uint64_t> frame_hash;
    std::vector<uint8_t> frame_hit, stack_hit;
    void reset(const RawProfile& p);  // nothing known; frame hashes computed
  };
  struct Job {
    std::vector<RawProfile> profiles;
    std::vector<Resolved> resolved;  // one per profile
    uint64_t epoch = 0;              // dict_epoch_ when `resolved` was last checked
    // Frames and distinct stacks resolve() did not find: what the writer has left to intern.
    // Past kDictTurnEntries the job interns them in turns of its own (see writer_loop).
    size_t dict_left = 0;
    // Stacks and locations [first, end) committed by its intern_turn()s, before its rows.
    std::vector<std::pair<uint32_t, uint32_t>> turn_stacks, turn_locs;
    std::vector<SpanRow> spans;
    bool retention = false;
    std::promise<Status> done;
    size_t weight() const;  // its work for the writer, in sample rows' worth
  };
  Status submit(std::unique_ptr<Job> job);
  void writer_loop();
  void retention_loop();
  Status apply(Job& job);
  void resolve(Job& j);
  // Ids resolved under another dict_epoch_ are forgotten (a rollback or collection may have
  // reused them); the writer thread.
  void revalidate(Job& j);
  // One turn of a job with much to intern: at most kDictTurnEntries new entries, committed in a
  // transaction of their own (the writer thread, no batch open).
  Status intern_turn(Job& j);
  // A job that failed after intern_turn() committed some of its entries: they become candidates
  // for collection (nothing refers to them).
  void release_interned(Job& j);
  // A profile: intern_stacks → intern_series (dict_mu_ held) → write_rows.
  Status apply_profile(RawProfile& p, Resolved& r);
  // Interns what r does not know of p's frames, then of its stacks, in order, at most `budget`
  // new entries (budget is decreased by those interned), in memory only: dict_mu_ is held
  // exclusively, so the rows are written after it is released (insert_new_entries). r.stacks is
  // complete once a call returns with budget left.
  void intern_stacks(const RawProfile& p, Resolved& r, size_t& budget);
  struct DictSizes {
    size_t strings, functions, locations, stacks;
  };
  DictSizes dict_sizes() const;                      // the writer thread
  Status insert_new_entries(const DictSizes& from);  // the writer thread, a transaction open
  Status intern_series(const RawProfile& p, uint32_t tenant, const std::string& ptype,
                       std::vector<int64_t>& series_of_set);
  Status write_rows(const RawProfile& p, const std::vector<int64_t>& series_of_set,
                    const std::vector<uint32_t>& stack_of_sample);
  // Retention in its own transaction on the writer thread (no batch open): deletes by age and,
  // past the budget, the oldest profiles outside disk_keep_s, then collects what no profile
  // refers to any more (stacks → locations → functions → strings; series).
  // `room`: bytes the batch about to be written needs besides the usual 25% headroom.
  Status retention_pass(int64_t room = 0);
  struct Dead {
    std::vector<uint32_t> stacks, locs, funcs, strings;
    std::vector<int64_t> series;
  };
  Status delete_profiles(const std::vector<int64_t>& ids);
  Status collect_unreferenced(Dead& dead);
  void forget(const Dead& dead);  // drops collected entries from memory, after the commit
  void count_refs();              // from the database (load, and after a failed retention)
  void add_new_refs();            // refs of dictionary entries added since the last call
  // Admission against --max-disk, before a batch: refuses (507) jobs the budget cannot hold.
  void admit(std::vector<Job*>& jobs, std::vector<Status>& refused);
  int64_t disk_bytes() const;
  void checkpoint_truncate();
  std::mutex ckpt_mu_;  // one checkpoint at a time: the checkpoint thread's or the writer's
  // The WAL's size past which checkpoints RESTART it: 64 MB, or an eighth of --max-disk.
  int64_t wal_limit_bytes() const {
    int64_t l = 64 << 20;
    return opt_.max_disk_bytes > 0
               ? std::min(l, std::max<int64_t>(opt_.max_disk_bytes / 8, 64 << 10))
               : l;
  }
  int64_t protected_from_id();
  Status load();
  Status check_schema();
  void mark();
  void rollback_memory();
  sqlite3* acquire_reader() const;
  void release_reader(sqlite3* db) const;
  uint32_t tenant_id_locked(const std::string& t);
  int tenant_lookup(const std::string& t) const;  // -1 if unknown

  StoreOptions opt_;
  std::string path_;
  sqlite3* wdb_ = nullptr;
  mutable std::mutex readers_mu_;
  mutable std::vector<sqlite3*> readers_;

  // In-memory dictionary (dense ids from 1; index 0 unused). Guarded by dict_mu_, which the
  // writer holds exclusively while it appends: growing must not move what is there (deques, not
  // vectors; sharded maps, see sharded_map.h), or readers wait for a copy of millions of entries.
  mutable std::shared_mutex dict_mu_;
  std::deque<std::string> strings_{""};
  ShardedMap<std::string, uint32_t> string_ids_;
  std::deque<std::pair<uint32_t, uint32_t>> functions_{{0, 0}};
  ShardedMap<uint64_t, uint32_t> function_ids_;
  std::deque<Loc> locations_{{0, 0}};
  ShardedMap<uint64_t, uint32_t> location_ids_;  // loc_key(function, line)
  std::deque<std::vector<uint32_t>> stacks_{{}};
  ShardedMap<std::string, uint32_t> stack_ids_;
  // Ingest fast path: one probe per frame, (name, file, line) hash → location, and one per
  // sample, location-ids hash → stack, instead of four string/id lookups and a varint key. A hit
  // is checked against the dictionary (hash collisions fall back to the exact maps above).
  // Filled by the writer; cleared by rollback_memory().
  ShardedMap<uint64_t, uint32_t> frame_locs_, stack_locs_;
  bool frame_is(uint32_t loc, const RawFrame& f) const;
  uint32_t find_location(const RawFrame& f) const;  // by the exact maps; 0 = not interned
  std::vector<std::string> tenants_{""};
  std::unordered_map<std::string, uint32_t> tenant_ids_;
  std::deque<SeriesInfo> series_{SeriesInfo{}};
  std::unordered_map<std::string, int64_t> series_ids_;
  std::unordered_map<uint32_t, size_t> tenant_series_;  // tenant id → its series
  // Reference counts for collection (writer thread only): profile rows per stack, stack
  // entries per location, locations per function, function name/file uses per string, profiles
  // per series. *_cand_ = ids whose count reached 0, checked by the next retention pass.
  std::vector<int64_t> stack_refs_, loc_refs_, func_refs_, string_refs_, series_refs_;
  std::vector<uint32_t> stack_cand_, loc_cand_, func_cand_, string_cand_;
  std::vector<int64_t> series_cand_;
  // Counts this batch added to entries older than the batch, undone by rollback_memory().
  std::vector<uint32_t> batch_stack_refs_;
  std::vector<int64_t> batch_series_refs_;
  // (acknowledgement time, first profile id of that batch): the disk_keep_s window.
  std::deque<std::pair<int64_t, int64_t>> acked_;
  struct RefsSynced {
    size_t stacks = 0, locs = 0, funcs = 0;
  } refs_synced_;
  int64_t last_budget_pass_ns_ = 0;
  bool last_pass_removed_ = true;
  struct {
    int64_t removed = 0, stacks = 0, strings = 0, series = 0, since_ns = 0;
  } unlogged_;  // retention's log line, at most one per 10 s
  std::atomic<bool> over_budget_{false};
  mutable std::mutex budget_mu_;
  std::string over_budget_reason_;  // guarded by budget_mu_
  std::atomic<int64_t> removed_profiles_{0}, collected_stacks_{0}, collected_strings_{0},
      collected_series_{0};
  uint64_t dict_epoch_ = 0;  // bumped by every rollback_memory(): ids may have been reused
  int64_t next_profile_id_ = 1;
  std::atomic<int64_t> sample_rows_{0}, profiles_count_{0};
  struct Mark {
    size_t strings, functions, locations, stacks, tenants, series, pending_spans;
    int64_t next_profile_id, sample_rows, profiles_count;
  } mark_{};

  std::mutex q_mu_;
  std::condition_variable q_cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  bool stopping_ = false;
  bool heavy_turn_ = false;
  std::mutex inflight_mu_;
  std::unordered_map<std::string, size_t>
      inflight_rows_;  // guarded by inflight_mu_  // writer thread: the next batch may be a heavy
                       // job (see writer_loop)
  std::thread writer_, retention_thread_, checkpoint_thread_;
  struct WriterStmts;
  std::unique_ptr<WriterStmts> ws_;  // statements prepared once on the writer connection
  // span_index entries of committed profiles not yet in the b-tree. Inserting 50 random keys per
  // push into the b-tree in every group commit dirtied ~one page per key per commit (the writer's
  // largest serial cost); the writer instead inserts them sorted, in chunks of
  // kSpanFlushEntries between batches (and at least every kSpanFlushMs). The profile rows (which
  // hold the span ids) are durable when a push is acknowledged; meta 'span_indexed' = the highest
  // profile id whose entries are in the b-tree, and load() re-derives the entries of later
  // profiles. Readers look here first, then in the b-tree (the writer empties this only after the
  // flush committed).
  mutable std::mutex pending_mu_;
  std::vector<std::pair<uint64_t, int64_t>> pending_spans_;  // (span id, profile id)
  int64_t last_span_flush_ns_ = 0;                           // writer thread
  Status flush_span_index();                                 // writer thread, no open txn
  bool span_flush_due() const;
  void checkpoint_loop();
  // Acknowledgement after durability, off the writer's critical path: the writer commits with
  // synchronous=NORMAL (WAL frames written, not synced) and hands each batch here; this thread
  // fdatasyncs the WAL once for every batch committed since its last sync and only then answers
  // them, while the writer applies the next batch. A sync covers all earlier commits (the WAL is
  // written in commit order), so an acknowledged push survives power loss as with
  // synchronous=FULL. After a failed sync the store refuses writes: what the kernel dropped
  // cannot be told apart from what it kept.
  struct Committed {
    std::vector<std::unique_ptr<Job>> jobs;
    std::vector<Status> status;
  };
  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  std::deque<Committed> sync_q_;
  bool sync_stop_ = false;  // guarded by sync_mu_
  std::thread syncer_;
  int wal_fd_ = -1;  // syncer thread
  std::atomic<bool> sync_failed_{false};
  std::atomic<int64_t> wal_syncs_{0}, synced_batches_{0};
  void syncer_loop();
  Status sync_wal();
  std::mutex ret_mu_;
  std::condition_variable ret_cv_;
  bool ret_stop_ = false;  // guarded by ret_mu_
};

}  // namespace spanprof
