// Symbolisation without touching a code object after it may have been freed.
//
// A ring record holds code object addresses; the drain reads them later, when the object may be
// gone (a module's code dies right after import) and its address reused. So:
// - the handler stamps each record with the code-death epoch (codes_epoch(), read before it reads
//   any code object) and marks every code address it records in a bitset (codes_mark_sampled());
// - PyCode_Type's tp_dealloc is wrapped: when a code object whose address is marked dies, its
//   symbol (name, file, first line, line table) is copied while it is still whole and logged
//   under the log lock with a new epoch, before the original dealloc runs;
// - the drain resolves (address, sample epoch): a logged death of that address with a larger
//   epoch is the sampled object, already copied; otherwise the object at the address is the one
//   sampled, still alive, and is read under the log lock, which its dealloc would have to take
//   first. No GIL is needed for any of it, which is also what free-threaded builds require.
// ARCHITECTURE.md ("Symbolisation") gives the ordering argument step by step.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "linetable.h"

namespace spanprof {

// A copy of what symbolisation needs from one code object. `id` is unique for the process's
// life, so caches may key on it where a pointer could be reused.
struct CodeSymbol {
  uint64_t id = 0;
  std::string name;  // qualified name where the interpreter has one (3.11+)
  std::string file;
  int firstlineno = 0;
  LineTableFormat format = LineTableFormat::kLocations311;
  std::vector<uint8_t> linetable;
  int line_at(int offset) const {
    return addr2line(format, linetable.data(), linetable.size(), firstlineno, offset);
  }
};

extern std::atomic<uint64_t> g_code_epoch;
extern std::atomic<uint64_t> g_code_marks[];
constexpr int kCodeMarkLog2 = 19;

// handler-safe
inline uint64_t codes_epoch() { return g_code_epoch.load(std::memory_order_seq_cst); }
inline void codes_mark_sampled(uint64_t addr) {
  const uint64_t h = ((addr >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - kCodeMarkLog2);
  std::atomic<uint64_t>& word = g_code_marks[h >> 6];
  const uint64_t bit = uint64_t{1} << (h & 63);
  if ((word.load(std::memory_order_relaxed) & bit) == 0)
    word.fetch_or(bit, std::memory_order_seq_cst);
}

// Attached thread state (GIL). Wraps PyCode_Type's tp_dealloc once per process; deaths are
// logged while tracking is on (from before the first sample until the last record is drained).
void codes_install();
void codes_track(bool on);

// Drain thread only. Each round: codes_round_begin() with the ring's head and tail before
// consuming it, codes_round_consumed() after, then codes_resolve() for each frame.
void codes_round_begin(uint64_t ring_head, uint64_t ring_tail);
void codes_round_consumed();
// The symbol of the code object recorded at `addr` by a record stamped `epoch`; nullptr when it
// is not known (deaths lost to the log's bound; counted). Valid until the next round begins.
const CodeSymbol* codes_resolve(uint64_t addr, uint64_t epoch);
uint64_t codes_cached();  // any thread

// Fork child: the log lock may have been held by a thread that does not exist here.
void codes_after_fork_child();

}  // namespace spanprof
