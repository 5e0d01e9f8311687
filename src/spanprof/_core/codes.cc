#include "codes.h"

#include <pthread.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "cpython.h"
#include "stats.h"

namespace spanprof {

std::atomic<uint64_t> g_code_epoch{1};
std::atomic<uint64_t> g_code_marks[(uint64_t{1} << kCodeMarkLog2) / 64] = {};

namespace {

constexpr size_t kMaxLog = 1 << 16;     // deaths logged between two drain rounds
constexpr size_t kMaxLive = 16384;      // symbols of live code objects
constexpr size_t kMaxLedger = 1 << 16;  // symbols of dead ones still needed

struct Death {
  uint64_t addr;
  uint64_t epoch;
  std::unique_ptr<CodeSymbol> symbol;
};

// Shared between the dealloc path (any thread) and the drain; `mu` never taken in a handler.
struct Log {
  std::mutex mu;
  std::vector<Death> deaths;
  uint64_t lost_upto = 0;  // deaths before this epoch may be missing from the log
};
Log* g_log = new Log;
std::atomic<bool> g_tracking{false};
std::atomic<uint64_t> g_next_symbol_id{1};
std::atomic<uint64_t> g_cached{0};
destructor g_orig_dealloc = nullptr;

// Drain-owned.
struct Tables {
  std::unordered_map<uint64_t, std::unique_ptr<CodeSymbol>> live;  // address -> living object
  std::unordered_multimap<uint64_t, Death> dead;                   // address -> logged deaths
  std::vector<std::pair<uint64_t, uint64_t>> checkpoints;  // (ring head, epoch), oldest first
  uint64_t lost_upto = 0;
};
Tables* g_tables = new Tables;

bool marked(uint64_t addr) {
  const uint64_t h = ((addr >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - kCodeMarkLog2);
  return (g_code_marks[h >> 6].load(std::memory_order_seq_cst) >> (h & 63)) & 1;
}

// UTF-8 of a str without the C API (no allocation in the string, no lock): code names and file
// names are exact, ready str objects for as long as their code object lives.
std::string utf8_of(PyObject* s) {
  if (s == nullptr || !PyUnicode_CheckExact(s)) return "<unknown>";
  const Py_ssize_t n = PyUnicode_GET_LENGTH(s);
  const int kind = PyUnicode_KIND(s);
  const void* data = PyUnicode_DATA(s);
  std::string out;
  out.reserve(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    if (c >= 0xD800 && c <= 0xDFFF) c = 0xFFFD;  // lone surrogate
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 63)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 63)));
      out.push_back(static_cast<char>(0x80 | (c & 63)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 63)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 63)));
      out.push_back(static_cast<char>(0x80 | (c & 63)));
    }
  }
  return out;
}

// The code object must be alive for the whole call: its fields are immutable, so no lock of the
// interpreter's is needed.
std::unique_ptr<CodeSymbol> copy_symbol(PyObject* code) {
  auto sym = std::make_unique<CodeSymbol>();
  sym->id = g_next_symbol_id.fetch_add(1, std::memory_order_relaxed);
  const py::CodeFields f = py::code_fields(code);
  sym->name = utf8_of(f.name);
  sym->file = utf8_of(f.file);
  sym->firstlineno = f.firstlineno;
  sym->format = py::kLineTableFormat;
  if (f.linetable != nullptr) sym->linetable.assign(f.linetable, f.linetable + f.linetable_size);
  return sym;
}

void code_dealloc_hook(PyObject* code) {
  if (g_tracking.load(std::memory_order_acquire)) {
    const auto addr = reinterpret_cast<uint64_t>(code);
    if (marked(addr)) {
      // Copied before the lock: the symbol is this thread's to read (the object is dying here).
      std::unique_ptr<CodeSymbol> sym = copy_symbol(code);
      Log& log = *g_log;
      std::lock_guard<std::mutex> lock(log.mu);
      const uint64_t epoch = g_code_epoch.fetch_add(1, std::memory_order_seq_cst) + 1;
      if (log.deaths.size() < kMaxLog) {
        log.deaths.push_back(Death{addr, epoch, std::move(sym)});
      } else {
        log.lost_upto = epoch;  // the drain must not trust any address from before this death
        stats().code_deaths_lost.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }
  g_orig_dealloc(code);
}

// Log lock held: moves logged deaths into the drain's tables.
void apply_log_locked(Tables& t, Log& log) {
  for (Death& d : log.deaths) {
    t.live.erase(d.addr);
    const uint64_t addr = d.addr;
    t.dead.emplace(addr, std::move(d));
  }
  log.deaths.clear();
  if (log.lost_upto > t.lost_upto) {
    // A death went unlogged: any cached live symbol may be of a freed object.
    t.lost_upto = log.lost_upto;
    t.live.clear();
  }
}

// The log lock is held across fork(): between fork() and the after-fork hooks, CPython deletes the
// other threads' states in the child, which can free code objects and so run the dealloc hook.
// A lock held by a thread that does not exist in the child would block it for good. Holders
// never need the GIL to finish (the drain reads copies; a dying object is this thread's), so the
// forking thread waits only for a short critical section.
void log_prepare() { g_log->mu.lock(); }
void log_unlock() { g_log->mu.unlock(); }
struct AtforkRegistration {
  AtforkRegistration() { pthread_atfork(log_prepare, log_unlock, log_unlock); }
} g_atfork_registration;

}  // namespace

void codes_install() {
  if (g_orig_dealloc != nullptr) return;
  g_orig_dealloc = PyCode_Type.tp_dealloc;
  PyCode_Type.tp_dealloc = code_dealloc_hook;
}

void codes_track(bool on) { g_tracking.store(on, std::memory_order_release); }

void codes_round_begin(uint64_t ring_head, uint64_t ring_tail) {
  Tables& t = *g_tables;
  // Everything below ring_tail has been consumed and resolved. A checkpoint (head, epoch) at or
  // below it says: every record still to come was reserved after `head` was read, and the
  // handler reads the epoch after reserving, so none is older than `epoch`. Deaths logged at or
  // before that epoch cannot be the answer for any of them.
  uint64_t oldest = 0;
  size_t reached = 0;
  while (reached < t.checkpoints.size() && t.checkpoints[reached].first <= ring_tail)
    oldest = t.checkpoints[reached++].second;
  if (reached > 0) t.checkpoints.erase(t.checkpoints.begin(), t.checkpoints.begin() + reached);
  if (oldest != 0) {
    for (auto it = t.dead.begin(); it != t.dead.end();)
      it = it->second.epoch <= oldest ? t.dead.erase(it) : std::next(it);
  }
  if (t.dead.size() > kMaxLedger) {
    // Forget the oldest half; records from before them resolve to nothing (counted).
    std::vector<uint64_t> epochs;
    epochs.reserve(t.dead.size());
    for (auto& kv : t.dead) epochs.push_back(kv.second.epoch);
    std::nth_element(epochs.begin(), epochs.begin() + epochs.size() / 2, epochs.end());
    const uint64_t cut = epochs[epochs.size() / 2];
    for (auto it = t.dead.begin(); it != t.dead.end();)
      it = it->second.epoch <= cut ? t.dead.erase(it) : std::next(it);
    if (cut > t.lost_upto) t.lost_upto = cut;
  }
  if (t.live.size() > kMaxLive) {
    t.live.clear();
    stats().code_cache_evictions.fetch_add(1, std::memory_order_relaxed);
  }
  g_cached.store(t.live.size(), std::memory_order_relaxed);
  t.checkpoints.emplace_back(ring_head, g_code_epoch.load(std::memory_order_seq_cst));
}

void codes_round_consumed() {
  // Deaths logged before the records just consumed were taken are needed to resolve them; the
  // log is applied after the consume so that none of those is still only in the log.
  std::lock_guard<std::mutex> lock(g_log->mu);
  apply_log_locked(*g_tables, *g_log);
}

const CodeSymbol* codes_resolve(uint64_t addr, uint64_t epoch) {
  Tables& t = *g_tables;
  auto find_dead = [&t](uint64_t a, uint64_t e) -> const CodeSymbol* {
    const Death* best = nullptr;
    auto range = t.dead.equal_range(a);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second.epoch > e && (best == nullptr || it->second.epoch < best->epoch))
        best = &it->second;
    }
    return best != nullptr ? best->symbol.get() : nullptr;
  };
  if (const CodeSymbol* s = find_dead(addr, epoch)) return s;
  if (epoch < t.lost_upto) {
    stats().frames_code_lost.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  auto it = t.live.find(addr);
  if (it != t.live.end()) return it->second.get();
  // Not seen yet: the object may die at any moment. Its dealloc takes the log lock before the
  // memory is released, so while we hold it the object is either whole or already logged.
  Log& log = *g_log;
  std::lock_guard<std::mutex> lock(log.mu);
  apply_log_locked(t, log);
  if (const CodeSymbol* s = find_dead(addr, epoch)) return s;
  if (epoch < t.lost_upto) {
    stats().frames_code_lost.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  auto* code = reinterpret_cast<PyObject*>(addr);
  if (Py_TYPE(code) != &PyCode_Type) {  // cannot happen unless the protocol above is broken
    stats().frames_invalid_drain.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  auto& slot = t.live[addr];
  slot = copy_symbol(code);
  g_cached.store(t.live.size(), std::memory_order_relaxed);
  return slot.get();
}

uint64_t codes_cached() { return g_cached.load(std::memory_order_relaxed); }

void codes_after_fork_child() {
  g_tables = new Tables;  // the drain may have been mid-update; leaked
  g_cached.store(0, std::memory_order_relaxed);
}

}  // namespace spanprof
