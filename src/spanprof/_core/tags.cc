#include "tags.h"

#include <atomic>
#include <mutex>
#include <new>
#include <unordered_map>

#include "stats.h"

namespace spanprof {
namespace {

constexpr size_t kSlots = 4096;  // power of two
constexpr size_t kMaxProbe = 128;

struct Slot {
  std::atomic<uint32_t> seq{0};  // odd while a writer updates the slot
  std::atomic<uint64_t> ident{0};
  std::atomic<uint64_t> set_id{0};
};

Slot g_slots[kSlots];

struct TagSets {
  std::unordered_map<uint64_t, TagList> sets;
  std::vector<std::pair<uint64_t, uint64_t>> retired;  // (id, generation retired)
  uint64_t next_id = 1;
  uint64_t generation = 0;
};

std::mutex* g_mu = new std::mutex;
TagSets* g_sets = new TagSets;

inline size_t slot_of(uint64_t ident) {
  uint64_t x = ident * 0x9E3779B97F4A7C15ull;
  return static_cast<size_t>(x >> 52) & (kSlots - 1);
}

void write_slot(Slot& s, uint64_t ident, uint64_t set_id) {
  const uint32_t q = s.seq.load(std::memory_order_relaxed);
  s.seq.store(q + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  s.ident.store(ident, std::memory_order_relaxed);
  s.set_id.store(set_id, std::memory_order_relaxed);
  s.seq.store(q + 2, std::memory_order_release);
}

void retire_locked(uint64_t id) {
  if (id != 0) g_sets->retired.emplace_back(id, g_sets->generation);
}

}  // namespace

bool tags_set(uint64_t ident, TagList tags) {
  std::lock_guard<std::mutex> lock(*g_mu);
  const size_t h = slot_of(ident);
  Slot* found = nullptr;
  Slot* free_slot = nullptr;
  for (size_t i = 0; i < kMaxProbe; ++i) {
    Slot& s = g_slots[(h + i) & (kSlots - 1)];
    const uint64_t id = s.ident.load(std::memory_order_relaxed);
    if (id == ident && id != 0) {
      found = &s;
      break;
    }
    if (free_slot == nullptr && s.set_id.load(std::memory_order_relaxed) == 0) free_slot = &s;
    if (id == 0) break;  // end of the probe chain
  }
  uint64_t new_id = 0;
  if (!tags.empty()) {
    new_id = g_sets->next_id++;
    g_sets->sets.emplace(new_id, std::move(tags));
  }
  if (found != nullptr) {
    retire_locked(found->set_id.load(std::memory_order_relaxed));
    write_slot(*found, ident, new_id);
    return true;
  }
  if (new_id == 0) return true;
  if (free_slot == nullptr) {
    g_sets->sets.erase(new_id);
    return false;
  }
  write_slot(*free_slot, ident, new_id);
  return true;
}

uint64_t tags_lookup_id(uint64_t ident) {
  const size_t h = slot_of(ident);
  for (size_t i = 0; i < kMaxProbe; ++i) {
    Slot& s = g_slots[(h + i) & (kSlots - 1)];
    for (int attempt = 0; attempt < 4; ++attempt) {
      const uint32_t q1 = s.seq.load(std::memory_order_acquire);
      if (q1 & 1) continue;
      const uint64_t id = s.ident.load(std::memory_order_relaxed);
      const uint64_t set = s.set_id.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_relaxed) != q1) continue;
      if (id == 0) return 0;
      if (id == ident) return set;
      goto next_slot;
    }
    stats().tags_lookup_retry_exhausted.fetch_add(1, std::memory_order_relaxed);
    return 0;
  next_slot:;
  }
  return 0;
}

bool tags_get(uint64_t id, TagList* out) {
  std::lock_guard<std::mutex> lock(*g_mu);
  auto it = g_sets->sets.find(id);
  if (it == g_sets->sets.end()) return false;
  *out = it->second;
  return true;
}

void tags_collect(const std::unordered_set<uint64_t>& alive_idents, uint64_t generation) {
  std::lock_guard<std::mutex> lock(*g_mu);
  g_sets->generation = generation;
  if (g_sets->sets.empty() && g_sets->retired.empty()) return;  // nothing tagged: skip the sweep
  for (Slot& s : g_slots) {
    const uint64_t id = s.ident.load(std::memory_order_relaxed);
    const uint64_t set = s.set_id.load(std::memory_order_relaxed);
    if (id != 0 && set != 0 && alive_idents.count(id) == 0) {
      retire_locked(set);
      write_slot(s, id, 0);
    }
  }
  auto& r = g_sets->retired;
  size_t keep = 0;
  for (auto& e : r) {
    if (e.second + 2 <= generation) {
      g_sets->sets.erase(e.first);
    } else {
      r[keep++] = e;
    }
  }
  r.resize(keep);
}

void tags_after_fork() {
  // The parent's lock may have been held by a thread that does not exist in the child: leak it.
  g_mu = new std::mutex;
}

}  // namespace spanprof
