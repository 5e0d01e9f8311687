// The drain: a native thread that every 100 ms consumes the ring, symbolises frames and aggregates
// (stack, labels) -> count into the current Profile; each round it also rescans the interpreter's
// thread list (timers for new threads, timer_delete for gone ones), in the same GIL hold.
//
// Symbolisation and address reuse (ABA): a record carries (code address, key) where the key mixes
// co_firstlineno, co_name and co_filename. The cache maps (address, key) to a CodeInfo that holds a
// strong reference, so a cached address cannot be reused while cached. On a miss the drain, holding
// the GIL (so no code object can be freed meanwhile), reads the object's header through
// process_vm_readv on itself (a dead, unmapped address fails the read instead of crashing), checks
// the type, a sane reference count and the key, and only then takes a reference.
//
// Locking: g_mu (drain state) is never acquired while holding the GIL; the GIL may be taken while
// holding g_mu. Callers of drain_once() must therefore have released the GIL.
#include <pthread.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "agent.h"
#include "stats.h"
#include "tags.h"

namespace spanprof {
namespace {

constexpr size_t kMaxCachedCodes = 16384;
constexpr size_t kMaxBatchBytes = kRingBytes;
constexpr int kDrainIntervalMs = 100;
// Taking the GIL from a busy application forces a switch: with a take every round the drain cost
// ~60-80 us of CPU per round on these VMs, ~15-25 us without (bench/agent_drain_cost.py, before and
// after this rule). So the drain takes it only for new code
// objects, when the interpreter's thread list head moved (a thread started or, often, ended), and
// at least once per kForcedScanMs so timers of threads that exited elsewhere in the list are
// deleted and threads started outside `threading` get armed.
constexpr int64_t kForcedScanMs = 1000;

struct CodeInfo {
  PyObject* code;  // strong reference
  std::string name;
  std::string file;
  int firstlineno;
  std::unordered_map<int32_t, int32_t> lines;  // byte offset -> line
};

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
  std::unordered_map<std::pair<uint64_t, uint64_t>, CodeInfo*, PairHash> codes;
  std::unordered_set<std::pair<uint64_t, uint64_t>, PairHash> bad_codes;  // failed validation
  Profile* profile = new Profile;
  // Per-profile caches, cleared when the profile is swapped or the code cache is evicted.
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
std::atomic<uint64_t> g_code_cache_size{0};  // readable without g_mu (stats() holds the GIL)
std::atomic<bool> g_restarted{false};  // start() happened: labels/lines config may have changed

// Drain thread control. g_ctl_mu guards g_stop_requested; never held with the GIL.
std::mutex* g_ctl_mu = new std::mutex;
std::condition_variable* g_ctl_cv = new std::condition_variable;
bool g_stop_requested = false;
bool g_thread_started = false;
pthread_t g_thread;

int64_t thread_cpu_ns() {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

bool finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing() != 0;
#else
  return _Py_IsFinalizing() != 0;
#endif
}

int g_vm_readv_works = -1;  // -1 unknown, 0 no (seccomp), 1 yes

}  // namespace

bool safe_read(const void* addr, void* out, size_t n) {
  if (g_vm_readv_works != 0) {
    struct iovec local {
      out, n
    };
    struct iovec remote {
      const_cast<void*>(addr), n
    };
    const ssize_t r = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    if (r == static_cast<ssize_t>(n)) {
      g_vm_readv_works = 1;
      return true;
    }
    if (r < 0 && (errno == ENOSYS || errno == EPERM) && g_vm_readv_works == -1) {
      g_vm_readv_works = 0;
    } else {
      return false;
    }
  }
  // Fallback: the kernel reports EFAULT instead of faulting when write() reads a bad address.
  int fds[2];
  if (pipe(fds) != 0) return false;
  bool ok = write(fds[1], addr, n) == static_cast<ssize_t>(n) &&
            read(fds[0], out, n) == static_cast<ssize_t>(n);
  close(fds[0]);
  close(fds[1]);
  return ok;
}

namespace {

// GIL held. Validates the address as a live code object with the recorded key.
CodeInfo* load_code(uint64_t addr, uint32_t key) {
  alignas(PyCodeObject) unsigned char copy[sizeof(PyCodeObject)];
  if (addr == 0 || (addr & 7) != 0 ||
      !safe_read(reinterpret_cast<void*>(addr), copy, sizeof copy)) {
    return nullptr;
  }
  auto* co = reinterpret_cast<PyCodeObject*>(copy);
  const Py_ssize_t refcnt = reinterpret_cast<PyObject*>(copy)->ob_refcnt;
  if (Py_TYPE(reinterpret_cast<PyObject*>(copy)) != &PyCode_Type || refcnt <= 0 ||
      refcnt > (Py_ssize_t{1} << 40)) {
    return nullptr;
  }
  if (py::code_key(co->co_firstlineno, co->co_name, co->co_filename) != key) return nullptr;
  auto* live = reinterpret_cast<PyCodeObject*>(addr);
  auto* info = new CodeInfo;
  Py_INCREF(reinterpret_cast<PyObject*>(live));
  info->code = reinterpret_cast<PyObject*>(live);
#if PY_VERSION_HEX >= 0x030B0000
  PyObject* name = live->co_qualname;
#else
  PyObject* name = live->co_name;
#endif
  const char* s = name != nullptr && PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : nullptr;
  info->name = s != nullptr ? s : "<unknown>";
  s = live->co_filename != nullptr && PyUnicode_Check(live->co_filename)
          ? PyUnicode_AsUTF8(live->co_filename)
          : nullptr;
  info->file = s != nullptr ? s : "<unknown>";
  if (PyErr_Occurred()) PyErr_Clear();
  info->firstlineno = live->co_firstlineno;
  return info;
}

void evict_codes_locked() {  // GIL held
  for (auto& kv : g_state->codes) {
    Py_DECREF(kv.second->code);
    delete kv.second;
  }
  g_state->codes.clear();
  g_state->bad_codes.clear();
  g_state->loc_cache.clear();
  stats().code_cache_evictions.fetch_add(1, std::memory_order_relaxed);
}

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
  const Config& cfg = config();
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
  PyObject* name = PyUnicode_FromString("threading");
  if (name == nullptr) {
    PyErr_Clear();
    return;
  }
  PyObject* mod = PyImport_GetModule(name);
  Py_DECREF(name);
  if (mod == nullptr) {
    PyErr_Clear();
    return;
  }
  PyObject* active = PyObject_GetAttrString(mod, "_active");
  Py_DECREF(mod);
  if (active == nullptr || !PyDict_Check(active)) {
    Py_XDECREF(active);
    PyErr_Clear();
    return;
  }
  PyObject* items = PyDict_Items(active);  // a copy: iterating it runs no Python code
  Py_DECREF(active);
  if (items == nullptr) {
    PyErr_Clear();
    return;
  }
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

struct Miss {
  uint64_t code;
  uint32_t key;
  int32_t lasti;
};

void* drain_main(void*);

}  // namespace

void drain_once(PyThreadState* ts, bool scan) {
  std::lock_guard<std::mutex> lock(*g_mu);
  const int64_t t0 = thread_cpu_ns();  // CPU spent, not time spent waiting for the GIL
  DrainState& st = *g_state;
  Stats& stats_ = stats();
  if (g_restarted.exchange(false, std::memory_order_acq_rel)) {
    st.loc_cache.clear();
    st.label_cache.clear();
    if (st.profile->start_ns == 0) st.profile->start_ns = wall_ns();
  }

  // 1. Copy committed records out of the ring (frees ring space immediately).
  st.batch.clear();
  st.offsets.clear();
  ring().consume(
      [&st](const uint8_t* body, uint32_t size) {
        st.offsets.push_back(static_cast<uint32_t>(st.batch.size()));
        st.batch.insert(st.batch.end(), body, body + size);
      },
      kMaxBatchBytes);

  // 2. Find frames whose code or line is not cached yet, and threads whose name is not known
  //    (a thread sampled before the scan that follows its start).
  std::vector<Miss> misses;
  std::vector<uint64_t> nameless;
  const bool names = config().report_thread_name;
  for (uint32_t off : st.offsets) {
    auto* h = reinterpret_cast<const RecordHeader*>(st.batch.data() + off);
    auto* f = reinterpret_cast<const py::RawFrame*>(h + 1);
    if (names && st.thread_names.count(h->ident) == 0 && st.unnamed.count(h->ident) == 0)
      nameless.push_back(h->ident);
    for (uint32_t i = 0; i < h->nframes; ++i) {
      auto it = st.codes.find({f[i].code, f[i].key});
      if (it == st.codes.end()) {
        if (st.bad_codes.count({f[i].code, f[i].key}) == 0) {
          misses.push_back({f[i].code, f[i].key, f[i].lasti});
        }
      } else if (it->second->lines.count(f[i].lasti) == 0) {
        misses.push_back({f[i].code, f[i].key, f[i].lasti});
      }
    }
  }

  // 3. With the GIL (once per batch): thread scan, validate and symbolise misses.
  if ((!misses.empty() || scan || !nameless.empty()) && ts != nullptr && !finalizing()) {
    PyEval_RestoreThread(ts);
    if (scan) sampler_scan_threads(ts);
    if (names && (scan || !nameless.empty())) {
      if (scan) st.unnamed.clear();
      scan_thread_names();
      for (uint64_t id : nameless)
        if (st.thread_names.count(id) == 0) st.unnamed.insert(id);
      // Label sets built while a name was missing are cached without it.
      if (!nameless.empty()) st.label_cache.clear();
    }
    if (st.codes.size() + misses.size() > kMaxCachedCodes) evict_codes_locked();
    for (const Miss& m : misses) {
      auto it = st.codes.find({m.code, m.key});
      CodeInfo* info = nullptr;
      if (it == st.codes.end()) {
        if (st.bad_codes.count({m.code, m.key})) continue;
        info = load_code(m.code, m.key);
        if (info == nullptr) {
          st.bad_codes.insert({m.code, m.key});
          continue;
        }
        st.codes.emplace(std::make_pair(m.code, uint64_t{m.key}), info);
      } else {
        info = it->second;
      }
      if (info->lines.count(m.lasti) == 0) {
        info->lines[m.lasti] =
            PyCode_Addr2Line(reinterpret_cast<PyCodeObject*>(info->code), m.lasti);
      }
    }
    g_code_cache_size.store(st.codes.size(), std::memory_order_relaxed);
    ts = PyEval_SaveThread();
  }
  // Addresses that failed validation may be reused by a valid object later: forget them per batch.
  st.bad_codes.clear();

  // 4. Aggregate.
  Profile& p = *st.profile;
  SampleKey key;
  for (uint32_t off : st.offsets) {
    auto* h = reinterpret_cast<const RecordHeader*>(st.batch.data() + off);
    auto* f = reinterpret_cast<const py::RawFrame*>(h + 1);
    key.locations.clear();
    for (uint32_t i = 0; i < h->nframes; ++i) {
      auto it = st.codes.find({f[i].code, f[i].key});
      if (it == st.codes.end()) {
        stats_.frames_invalid_drain.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      CodeInfo* info = it->second;
      const auto ck = std::make_pair(reinterpret_cast<uint64_t>(info),
                                     static_cast<uint64_t>(static_cast<uint32_t>(f[i].lasti)));
      auto lc = st.loc_cache.find(ck);
      uint32_t loc;
      if (lc != st.loc_cache.end()) {
        loc = lc->second;
      } else {
        auto line = info->lines.find(f[i].lasti);
        int32_t lineno = line != info->lines.end() ? line->second : info->firstlineno;
        if (config().line_no == 1) lineno = info->firstlineno;
        if (config().line_no == 2) lineno = 0;
        loc = p.location(
            Location{p.intern(info->name), p.intern(info->file), lineno, info->firstlineno});
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
  out->period_ns = 1'000'000'000LL / (config().rate_hz > 0 ? config().rate_hz : 100);
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

void drain_start() {
  // GIL held here, so g_mu may not be taken: the next drain_once() applies the new configuration.
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
  // (the parent's copies are leaked, including their code-object references).
  g_mu = new std::mutex;
  g_ctl_mu = new std::mutex;
  g_ctl_cv = new std::condition_variable;
  g_thread_started = false;
  g_stop_requested = false;
  g_state = new DrainState;
}

uint64_t drain_code_cache_size() { return g_code_cache_size.load(std::memory_order_relaxed); }

}  // namespace spanprof
