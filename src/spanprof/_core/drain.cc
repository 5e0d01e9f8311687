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

#include "clock.h"
#include "codes.h"
#include "record.h"
#include "sampler.h"
#include "stats.h"
#include "tags.h"
#include "threads.h"
#include "timers.h"

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
  uint8_t bytes[sizeof(SpanIds) + 24];
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

struct DrainState {
  Config cfg;
  Profile* profile = new Profile;
  // Per-profile caches, cleared when the profile is swapped. Locations by (symbol id, offset):
  // symbol ids are never reused.
  std::unordered_map<std::pair<uint64_t, uint64_t>, uint32_t, PairHash> loc_cache;
  std::unordered_map<LabelKey, uint32_t, LabelKeyHash> label_cache;
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

uint32_t label_set_for(const RecordHeader& h) {
  DrainState& st = *g_state;
  const Config& cfg = st.cfg;
  LabelKey key{};
  if (h.flags & kHasSpan) std::memcpy(key.bytes, &h.span, sizeof(SpanIds));
  key.bytes[sizeof(SpanIds)] = (h.flags & kHasSpan) ? 1 : 0;
  std::memcpy(key.bytes + sizeof(SpanIds) + 8, &h.ident, 8);
  std::memcpy(key.bytes + sizeof(SpanIds) + 16, &h.tagset, 8);
  auto it = st.label_cache.find(key);
  if (it != st.label_cache.end()) return it->second;

  Profile& p = *st.profile;
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
  if (cfg.report_thread_id) add("thread_id", std::to_string(h.ident));
  if (cfg.report_thread_name) {
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
  if (complete) st.label_cache.emplace(key, id);
  return id;
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
    st.loc_cache.clear();
    st.label_cache.clear();
    if (st.profile->start_ns == 0) st.profile->start_ns = wall_ns();
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
      if (!nameless.empty()) st.label_cache.clear();
    }
    ts = PyEval_SaveThread();
  }

  // 4. Symbolise and aggregate.
  Profile& p = *st.profile;
  SampleKey key;
  for (uint32_t off : st.offsets) {
    auto* h = reinterpret_cast<const RecordHeader*>(st.batch.data() + off);
    auto* f = reinterpret_cast<const py::RawFrame*>(h + 1);
    key.locations.clear();
    for (uint32_t i = 0; i < h->nframes; ++i) {
      const CodeSymbol* sym = codes_resolve(f[i].code, h->code_epoch);
      if (sym == nullptr) {
        stats_.frames_invalid_drain.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      const auto ck =
          std::make_pair(sym->id, static_cast<uint64_t>(static_cast<uint32_t>(f[i].lasti)));
      auto lc = st.loc_cache.find(ck);
      uint32_t loc;
      if (lc != st.loc_cache.end()) {
        loc = lc->second;
      } else {
        int32_t lineno = sym->line_at(f[i].lasti);
        if (lineno < 0) lineno = sym->firstlineno;
        if (st.cfg.line_no == 1) lineno = sym->firstlineno;
        if (st.cfg.line_no == 2) lineno = 0;
        loc = p.location(
            Location{p.intern(sym->name), p.intern(sym->file), lineno, sym->firstlineno});
        st.loc_cache.emplace(ck, loc);
      }
      key.locations.push_back(loc);
    }
    if (key.locations.empty()) {
      stats_.samples_dropped_no_frames.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    key.label_set = label_set_for(*h);
    p.add(key, 1 + static_cast<int64_t>(h->extra_periods));
    stats_.samples_aggregated.fetch_add(1, std::memory_order_relaxed);
    if (h->extra_periods != 0)
      stats_.periods_from_overruns.fetch_add(h->extra_periods, std::memory_order_relaxed);
  }
  stats_.drain_runs.fetch_add(1, std::memory_order_relaxed);
  stats_.drain_ns_total.fetch_add(static_cast<uint64_t>(thread_cpu_ns() - t0),
                                  std::memory_order_relaxed);
}

Profile* drain_take_profile(PyThreadState* ts) {
  drain_once(ts, false);
  std::lock_guard<std::mutex> lock(*g_mu);
  Profile* out = g_state->profile;
  const int64_t now = wall_ns();
  if (out->start_ns == 0) out->start_ns = now;
  out->end_ns = now;
  const int rate = g_state->cfg.rate_hz;
  out->period_ns = 1'000'000'000LL / (rate > 0 ? rate : 100);
  g_state->profile = new Profile;
  g_state->profile->start_ns = now;
  g_state->loc_cache.clear();
  g_state->label_cache.clear();
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
}

}  // namespace spanprof
