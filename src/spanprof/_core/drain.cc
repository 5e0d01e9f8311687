// See drain.h. Symbolisation is codes.h's: the drain never touches a code object itself.
#include "drain.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "callsite.h"
#include "clock.h"
#include "codes.h"
#include "record.h"
#include "sampler.h"
#include "stats.h"
#include "tags.h"
#include "threads.h"
#include "timers.h"
#include "wall.h"

namespace spanprof {
namespace {

constexpr size_t kMaxBatchBytes = kRingBytes;
constexpr int kDrainIntervalMs = 100;
// Taking the GIL from a busy application forces a switch: with a take every round the drain cost
// ~60-80 us of CPU per round on these VMs, ~15-25 us without (bench/agent_drain_cost.py, before and
// after this rule). So the drain takes it only for thread names it lacks, when the interpreter's
// thread list head moved (a thread started or, often, ended), and
// at least once per kForcedScanMs so timers of threads that exited elsewhere in the list are
// deleted and threads started outside `threading` get armed.
constexpr int64_t kForcedScanMs = 1000;

struct PairHash {
  size_t operator()(const std::pair<uint64_t, uint64_t>& p) const {
    return std::hash<uint64_t>()(p.first * 0x9E3779B97F4A7C15ull ^ p.second);
  }
};

struct LabelKey {
  uint8_t bytes[sizeof(SpanIds) + 24 + 2 + 40];
  bool operator==(const LabelKey& o) const {
    return std::memcmp(bytes, o.bytes, sizeof bytes) == 0;
  }
};
struct LabelKeyHash {
  size_t operator()(const LabelKey& k) const {
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : k.bytes) h = (h ^ b) * 1099511628211ull;
    return h;
  }
};

// One aggregate: its profile and the caches keyed into its tables, cleared when it is swapped.
struct Agg {
  Profile* profile = nullptr;
  // Locations by (symbol id, offset): symbol ids are never reused. Synthetic leaves by
  // (0, leaf).
  std::unordered_map<std::pair<uint64_t, uint64_t>, uint32_t, PairHash> loc_cache;
  std::unordered_map<LabelKey, uint32_t, LabelKeyHash> label_cache;
  void reset(Profile* p) {
    profile = p;
    loc_cache.clear();
    label_cache.clear();
  }
};

struct DrainState {
  Config cfg;
  Agg cpu{new Profile};
  Agg wall{nullptr};
  // Wall records marked kRepeat add to the sample slot of their source's last full record.
  // Valid for one wall profile: cleared, and `generation` bumped, when it is swapped.
  std::unordered_map<uint64_t, int64_t*> repeat_slot;
  // The wall slot of each thread's latest CPU sample (by ident), for kDeficit records.
  std::unordered_map<uint64_t, int64_t*> cpu_slot;
  std::unordered_map<uint64_t, std::string> thread_names;  // ident -> name
  // Idents a name scan did not find (threads outside threading): not looked up again until the
  // next periodic scan, so they cost no GIL take per round.
  std::unordered_set<uint64_t> unnamed;
  std::vector<uint8_t> batch;
  std::vector<uint32_t> offsets;  // record starts in batch
  int pid_cached = 0;
};

std::mutex* g_mu = new std::mutex;
DrainState* g_state = new DrainState;
std::atomic<bool> g_restarted{false};  // start() happened: labels/lines config may have changed
Config g_next_cfg;                     // written before g_restarted is set

// Drain thread control. g_ctl_mu guards g_stop_requested; never held with the GIL.
std::mutex* g_ctl_mu = new std::mutex;
std::condition_variable* g_ctl_cv = new std::condition_variable;
bool g_stop_requested = false;
bool g_thread_started = false;
pthread_t g_thread;

bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

}  // namespace

namespace {

std::string hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = d[p[i] >> 4];
    s[2 * i + 1] = d[p[i] & 15];
  }
  return s;
}

Profile* new_wall_profile(int64_t start_ns) {
  auto* p = new Profile;
  p->sample_type = "wall";
  p->values_in_ns = true;
  p->start_ns = start_ns;
  return p;
}

const char* const kStateNames[] = {"running", "gil_wait", "blocked", "awaiting"};

// asyncio's default task names ("Task-<n>") count up for the life of the process; as labels
// they would make a series per task, so they are folded into one value.
std::string task_label(const RecordHeader& h) {
  const size_t n = h.task_name_len < sizeof h.task_name ? h.task_name_len : sizeof h.task_name;
  std::string name(h.task_name, n);
  if (name.rfind("Task-", 0) == 0 && name.size() > 5 &&
      name.find_first_not_of("0123456789", 5) == std::string::npos)
    return "Task";
  return name;
}

uint32_t label_set_for(Agg& agg, const RecordHeader& h, bool wall) {
  DrainState& st = *g_state;
  const Config& cfg = st.cfg;
  LabelKey key{};
  if (h.flags & kHasSpan) std::memcpy(key.bytes, &h.span, sizeof(SpanIds));
  key.bytes[sizeof(SpanIds)] = (h.flags & kHasSpan) ? 1 : 0;
  std::memcpy(key.bytes + sizeof(SpanIds) + 8, &h.ident, 8);
  std::memcpy(key.bytes + sizeof(SpanIds) + 16, &h.tagset, 8);
  if (wall) {
    key.bytes[sizeof(SpanIds) + 24] = static_cast<uint8_t>(h.state + 1);
    if (h.flags & kTask) {
      key.bytes[sizeof(SpanIds) + 25] = static_cast<uint8_t>(1 + h.task_name_len);
      std::memcpy(key.bytes + sizeof(SpanIds) + 26, h.task_name, sizeof h.task_name);
    }
  }
  auto it = agg.label_cache.find(key);
  if (it != agg.label_cache.end()) return it->second;

  Profile& p = *agg.profile;
  LabelSet labels;
  std::unordered_set<std::string> keys;
  auto add = [&](const std::string& k, const std::string& v) {
    if (keys.insert(k).second) labels.emplace_back(p.intern(k), p.intern(v));
  };
  bool complete = true;
  if (h.flags & kHasSpan) {
    add("span_id", hex(h.span.root_span_id, 8));
    add("span_name", root_name(h.span.root_name_id));
    add("trace_id", hex(h.span.trace_id, 16));
    add("active_span_id", hex(h.span.span_id, 8));
  }
  if (wall) {
    add("thread_state", kStateNames[h.state < 4 ? h.state : 0]);
    if (h.flags & kTask) add("task_name", task_label(h));
  }
  const bool task = (h.flags & kTask) != 0;
  if (cfg.report_thread_id && !task) add("thread_id", std::to_string(h.ident));
  if (cfg.report_thread_name && !task) {
    auto n = st.thread_names.find(h.ident);
    if (n != st.thread_names.end()) {
      add("thread_name", n->second);
    } else {
      complete = false;  // the next scan will know it; do not cache the incomplete set
    }
  }
  if (cfg.report_pid) {
    if (st.pid_cached == 0) st.pid_cached = getpid();
    add("pid", std::to_string(st.pid_cached));
  }
  if (h.tagset != 0) {
    TagList tags;
    if (tags_get(h.tagset, &tags)) {
      for (auto& [k, v] : tags) add(k, v);
    }
  }
  const uint32_t id = p.label_set(std::move(labels));
  if (complete) agg.label_cache.emplace(key, id);
  return id;
}

const char* const kLeafNames[kLeafCount] = {"",
                                            "<sleep>",
                                            "<lock wait>",
                                            "<socket recv>",
                                            "<socket send>",
                                            "<accept>",
                                            "<connect>",
                                            "<read>",
                                            "<write>",
                                            "<select/poll>",
                                            "<child wait>",
                                            "<GIL wait>",
                                            "<system call>",
                                            "<await Future>",
                                            "<await Task>",
                                            "<await>"};

// The stack of a full record as locations of `agg`'s profile; false when no frame resolved.
// Leaves that stand for a call of the innermost Python frame (a blocking call), which its call
// site can name: `<time.sleep>` rather than `<sleep>`.
bool call_leaf(uint16_t leaf) {
  return leaf != kLeafNone && leaf != kLeafGil && leaf < kLeafAwaitFuture;
}

bool locations_for(Agg& agg, const RecordHeader& h, std::vector<uint32_t>* out) {
  DrainState& st = *g_state;
  Stats& stats_ = stats();
  Profile& p = *agg.profile;
  out->clear();
  const bool has_leaf = h.leaf != kLeafNone && h.leaf < kLeafCount;
  if (has_leaf) out->push_back(0);  // the leaf's location, known once the first frame is
  const CodeSymbol* innermost = nullptr;
  int32_t innermost_lasti = -1;
  auto* f = reinterpret_cast<const py::RawFrame*>(&h + 1);
  for (uint32_t i = 0; i < h.nframes; ++i) {
    const CodeSymbol* sym = codes_resolve(f[i].code, h.code_epoch);
    if (sym == nullptr) {
      stats_.frames_invalid_drain.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (innermost == nullptr) innermost = sym, innermost_lasti = f[i].lasti;
    const auto ck =
        std::make_pair(sym->id, static_cast<uint64_t>(static_cast<uint32_t>(f[i].lasti)));
    auto lc = agg.loc_cache.find(ck);
    uint32_t loc;
    if (lc != agg.loc_cache.end()) {
      loc = lc->second;
    } else {
      int32_t lineno = sym->line_at(f[i].lasti);
      if (lineno < 0) lineno = sym->firstlineno;
      if (st.cfg.line_no == 1) lineno = sym->firstlineno;
      if (st.cfg.line_no == 2) lineno = 0;
      loc =
          p.location(Location{p.intern(sym->name), p.intern(sym->file), lineno, sym->firstlineno});
      agg.loc_cache.emplace(ck, loc);
    }
    out->push_back(loc);
  }
  if (has_leaf) {
    const bool named = call_leaf(h.leaf) && innermost != nullptr;
    const auto ck =
        named ? std::make_pair((uint64_t{1} << 63) | (uint64_t{h.leaf} << 48) |
                                   (innermost->id & ((uint64_t{1} << 48) - 1)),
                               static_cast<uint64_t>(static_cast<uint32_t>(innermost_lasti)))
              : std::make_pair(uint64_t{0}, static_cast<uint64_t>(h.leaf));
    auto lc = agg.loc_cache.find(ck);
    if (lc == agg.loc_cache.end()) {
      std::string name = kLeafNames[h.leaf];
      if (named) {
        const std::string callee = call_site_callee(*innermost, innermost_lasti);
        if (!callee.empty()) name = "<" + callee + ">";
      }
      lc =
          agg.loc_cache.emplace(ck, p.location(Location{p.intern(name), p.intern(""), 0, 0})).first;
    }
    (*out)[0] = lc->second;
  }
  return out->size() > (has_leaf ? 1u : 0u);
}

// GIL held: thread names from threading._active (never imports threading).
void scan_thread_names() {
  DrainState& st = *g_state;
  PyObject* items = threads_active_items();
  if (items == nullptr) return;
  st.thread_names.clear();
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); ++i) {
    PyObject* kv = PyList_GET_ITEM(items, i);
    PyObject* ident = PyTuple_GET_ITEM(kv, 0);
    PyObject* thread = PyTuple_GET_ITEM(kv, 1);
    const unsigned long long id = PyLong_AsUnsignedLongLong(ident);
    PyObject* tname = PyObject_GetAttrString(thread, "_name");
    if (tname != nullptr && PyUnicode_Check(tname) && !PyErr_Occurred()) {
      const char* s = PyUnicode_AsUTF8(tname);
      if (s != nullptr) st.thread_names[id] = s;
    }
    Py_XDECREF(tname);
    PyErr_Clear();
  }
  Py_DECREF(items);
}

void* drain_main(void*);

}  // namespace

void drain_once(PyThreadState* ts, bool scan) {
  std::lock_guard<std::mutex> lock(*g_mu);
  const int64_t t0 = thread_cpu_ns();  // CPU spent, not time spent waiting for the GIL
  DrainState& st = *g_state;
  Stats& stats_ = stats();
  if (g_restarted.exchange(false, std::memory_order_acq_rel)) {
    st.cfg = g_next_cfg;
    st.cpu.reset(st.cpu.profile);
    if (st.cpu.profile->start_ns == 0) st.cpu.profile->start_ns = wall_ns();
    if (st.cfg.wall && st.wall.profile == nullptr) {
      st.wall.reset(new_wall_profile(st.cpu.profile->start_ns));
      st.repeat_slot.clear();
      st.cpu_slot.clear();
      wall_bump_generation();
    } else {
      st.wall.reset(st.wall.profile);
    }
  }
  timers_check_signal();  // one sigaction(2) read; moves the timers if our signal was taken

  // 1. Copy committed records out of the ring (frees ring space immediately).
  Ring& r = ring();
  codes_round_begin(r.head_pos(), r.tail_pos());
  st.batch.clear();
  st.offsets.clear();
  r.consume(
      [&st](const uint8_t* body, uint32_t size) {
        st.offsets.push_back(static_cast<uint32_t>(st.batch.size()));
        st.batch.insert(st.batch.end(), body, body + size);
      },
      kMaxBatchBytes);
  codes_round_consumed();

  // 2. Threads whose name is not known (sampled before the scan that follows their start).
  std::vector<uint64_t> nameless;
  const bool names = st.cfg.report_thread_name;
  if (names) {
    for (uint32_t off : st.offsets) {
      auto* h = reinterpret_cast<const RecordHeader*>(st.batch.data() + off);
      if (st.thread_names.count(h->ident) == 0 && st.unnamed.count(h->ident) == 0)
        nameless.push_back(h->ident);
    }
  }

  // 3. With the GIL (only when needed): thread scan and names.
  if ((scan || !nameless.empty()) && ts != nullptr && !finalizing()) {
    PyEval_RestoreThread(ts);
    if (scan) threads_scan(ts, stats_.drain_runs.load(std::memory_order_relaxed));
    if (names) {
      if (scan) st.unnamed.clear();
      scan_thread_names();
      for (uint64_t id : nameless)
        if (st.thread_names.count(id) == 0) st.unnamed.insert(id);
      // Label sets built while a name was missing are cached without it.
      if (!nameless.empty()) st.cpu.label_cache.clear(), st.wall.label_cache.clear();
    }
    ts = PyEval_SaveThread();
  }

  // 4. Symbolise and aggregate.
  SampleKey key;
  const int64_t period = 1'000'000'000LL / (st.cfg.rate_hz > 0 ? st.cfg.rate_hz : 100);
  for (uint32_t off : st.offsets) {
    auto* h = reinterpret_cast<const RecordHeader*>(st.batch.data() + off);
    if (h->kind == kKindWall) {
      if (st.wall.profile == nullptr) continue;  // wall was switched off by a restart
      if (h->flags & kDeficit) {                 // to the thread's latest CPU sample (by ident)
        auto it = st.cpu_slot.find(h->source);
        if (it == st.cpu_slot.end()) {
          stats_.wall_deficit_lost.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        st.wall.profile->add_to(it->second, static_cast<int64_t>(h->weight_ns));
        continue;
      }
      if (h->flags & kRepeat) {
        // The map is cleared when the wall profile is swapped: an entry is a full record of this
        // source in this profile, the latest one (records of one source arrive in order).
        auto it = st.repeat_slot.find(h->source);
        if (it == st.repeat_slot.end()) {
          stats_.wall_repeats_lost.fetch_add(1, std::memory_order_relaxed);
          continue;
        }
        st.wall.profile->add_to(it->second, static_cast<int64_t>(h->weight_ns));
        stats_.wall_repeats.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      if (!locations_for(st.wall, *h, &key.locations)) {
        stats_.samples_dropped_no_frames.fetch_add(1, std::memory_order_relaxed);
        st.repeat_slot.erase(h->source);
        continue;
      }
      key.label_set = label_set_for(st.wall, *h, true);
      int64_t* slot = st.wall.profile->add(key, static_cast<int64_t>(h->weight_ns));
      st.repeat_slot[h->source] = slot;
      stats_.samples_aggregated.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!locations_for(st.cpu, *h, &key.locations)) {
      stats_.samples_dropped_no_frames.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const int64_t periods = 1 + static_cast<int64_t>(h->extra_periods);
    if (st.cfg.cpu) {
      key.label_set = label_set_for(st.cpu, *h, false);
      st.cpu.profile->add(key, periods);
    }
    // A thread running Python is not read by the wall sampler: its CPU samples are its wall
    // samples while it runs.
    if (st.wall.profile != nullptr && (h->flags & kRanPython)) {
      if (!locations_for(st.wall, *h, &key.locations)) continue;
      key.label_set = label_set_for(st.wall, *h, true);
      st.cpu_slot[h->ident] = st.wall.profile->add(key, periods * period);
    }
    stats_.samples_aggregated.fetch_add(1, std::memory_order_relaxed);
    if (h->extra_periods != 0)
      stats_.periods_from_overruns.fetch_add(h->extra_periods, std::memory_order_relaxed);
  }
  stats_.drain_runs.fetch_add(1, std::memory_order_relaxed);
  stats_.drain_ns_total.fetch_add(static_cast<uint64_t>(thread_cpu_ns() - t0),
                                  std::memory_order_relaxed);
}

ProfilePair drain_take_profiles(PyThreadState* ts) {
  drain_once(ts, false);
  std::lock_guard<std::mutex> lock(*g_mu);
  DrainState& st = *g_state;
  const int64_t now = wall_ns();
  const int rate = st.cfg.rate_hz;
  const int64_t period = 1'000'000'000LL / (rate > 0 ? rate : 100);
  auto finish = [now, period](Profile* p) {
    if (p->start_ns == 0) p->start_ns = now;
    p->end_ns = now;
    p->period_ns = period;
    return p;
  };
  ProfilePair out{finish(st.cpu.profile), nullptr};
  st.cpu.reset(new Profile);
  st.cpu.profile->start_ns = now;
  if (st.wall.profile != nullptr) {
    out.wall = finish(st.wall.profile);
    st.wall.reset(st.cfg.wall ? new_wall_profile(now) : nullptr);
    st.repeat_slot.clear();
    st.cpu_slot.clear();
    wall_bump_generation();
  }
  return out;
}

namespace {
void* drain_main(void*) {
  PyGILState_STATE gs = PyGILState_Ensure();
  PyThreadState* ts = PyEval_SaveThread();
  PyInterpreterState* interp = PyInterpreterState_Main();
  // Read without the GIL: only a hint that the thread list changed (a torn or stale value costs
  // one scan more or one round of delay, never a wrong timer; the scan itself holds the GIL).
  const void* last_head = nullptr;
  int64_t last_scan_ns = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(*g_ctl_mu);
      g_ctl_cv->wait_for(lock, std::chrono::milliseconds(kDrainIntervalMs),
                         [] { return g_stop_requested; });
      if (g_stop_requested) break;
    }
    if (finalizing()) break;
    const void* head = PyInterpreterState_ThreadHead(interp);
    const int64_t now = mono_ns();
    const bool scan = head != last_head || now - last_scan_ns >= kForcedScanMs * 1'000'000;
    if (scan) last_head = head, last_scan_ns = now;
    drain_once(ts, scan);
  }
  if (!finalizing()) {
    PyEval_RestoreThread(ts);
    PyGILState_Release(gs);
  }
  return nullptr;
}
}  // namespace

void drain_start(const Config& cfg) {
  // GIL held here, so g_mu may not be taken: the next drain_once() applies the new configuration.
  g_next_cfg = cfg;
  g_restarted.store(true, std::memory_order_release);
  g_stop_requested = false;
  if (pthread_create(&g_thread, nullptr, drain_main, nullptr) == 0) g_thread_started = true;
}

void drain_stop_and_join() {
  if (!g_thread_started) return;
  {
    std::lock_guard<std::mutex> lock(*g_ctl_mu);
    g_stop_requested = true;
  }
  g_ctl_cv->notify_all();
  pthread_join(g_thread, nullptr);
  g_thread_started = false;
}

void drain_after_fork_child() {
  // The drain thread does not exist in the child and may have left these mid-update: replace them
  // (the parent's copies are leaked).
  g_mu = new std::mutex;
  g_ctl_mu = new std::mutex;
  g_ctl_cv = new std::condition_variable;
  g_thread_started = false;
  g_stop_requested = false;
  const Config cfg = g_state->cfg;
  g_state = new DrainState;
  g_state->cfg = cfg;
  codes_after_fork_child();
  call_site_reset();
}

}  // namespace spanprof
