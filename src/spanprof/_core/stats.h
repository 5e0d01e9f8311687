// Self-metrics of the agent core. Plain relaxed atomics: written by signal handlers and the drain,
// read by stats(). Every sample that is not aggregated is counted under exactly one drop reason.
#pragma once

#include <atomic>
#include <cstdint>

namespace spanprof {

#define SPANPROF_STATS(X)                                                                         \
  X(samples_taken) /* records written to the ring */                                              \
  X(samples_dropped_ring_full)                                                                    \
  X(samples_dropped_no_tstate) /* signal on a thread without a PyThreadState */                   \
  X(samples_dropped_not_gil)   /* gil_only and the thread did not hold the GIL */                 \
  X(samples_dropped_empty)     /* no Python frame on the stack */                                 \
  X(samples_dropped_unsettled) /* interpreter part-way into or out of a frame (3.11, 3.12) */     \
  X(samples_dropped_fault)     /* a read of the interpreter's memory faulted; guard caught it */  \
  X(samples_in_transition) /* interpreter entering/leaving a frame: attributed to the caller */   \
  X(samples_truncated)     /* stack deeper than the cap; kept, innermost frames first */          \
  X(samples_aggregated)    /* records the drain turned into profile samples */                    \
  X(samples_dropped_no_frames) /* drain: every frame of the record failed validation */           \
  X(timer_overruns)        /* expiries the kernel merged into an earlier, still pending signal */ \
  X(periods_from_overruns) /* drain: those periods, added to their samples' counts */             \
  X(signals_foreign)       /* our signal arrived but not from one of our timers */                \
  X(frames_invalid)        /* handler: frame's code pointer was not a code object */              \
  X(frames_incomplete)     /* handler: frame still being set up, skipped */                       \
  X(frames_invalid_drain)  /* drain: frame whose code object could not be symbolised */           \
  X(frames_code_lost)      /* drain: its code object died and the death log had overflowed */     \
  X(code_deaths_lost)      /* deaths of sampled code objects not logged (log full) */             \
  X(signal_moves)          /* our signal was taken by another handler; timers moved */            \
  X(sampling_gap_ns)       /* time our signal may have gone to that handler before the move */    \
  X(signal_unavailable)    /* no free signal left to move to: sampling stopped */                 \
  X(span_lookup_ok)                                                                               \
  X(span_lookup_none)   /* no span var set, or no span active */                                  \
  X(span_lookup_failed) /* unknown HAMT node / value type: sample kept without span */            \
  X(tags_lookup_retry_exhausted)                                                                  \
  X(root_names_overflow)                                                                          \
  X(handler_ns_total)                                                                             \
  X(handler_ns_max)                                                                               \
  X(drain_ns_total) /* CPU time of drain rounds */                                                \
  X(drain_runs)                                                                                   \
  X(timers_created)                                                                               \
  X(timers_deleted)                                                                               \
  X(timer_create_failed)                                                                          \
  X(code_cache_evictions)                                                                         \
  X(wall_ticks)         /* wall sampler rounds */                                                 \
  X(wall_ticks_late)    /* rounds that began over a period late (weights carry the time) */       \
  X(wall_threads_read)  /* full stacks read from threads not running Python */                    \
  X(wall_repeats)       /* unchanged stacks counted again without a read */                       \
  X(wall_repeats_lost)  /* repeats that arrived after their profile was swapped */                \
  X(wall_deficit_ns)    /* wall time of threads running Python beyond their CPU time */           \
  X(wall_deficit_lost)  /* deficits with no CPU sample of the thread in the profile yet */        \
  X(wall_reads_torn)    /* reads discarded: the thread ran while it was read */                   \
  X(wall_reads_fault)   /* reads the fault guard stopped */                                       \
  X(wall_state_reads)   /* /proc reads of a blocked thread's system call */                       \
  X(wall_state_skipped) /* over the per-round budget of those reads: state kept from before */    \
  X(wall_tasks_read)    /* suspended asyncio tasks read */                                        \
  X(wall_tasks_skipped) /* over the per-round task cap */                                         \
  X(wall_tasks_unknown) /* registry entries that were not readable tasks */                       \
  X(wall_tasks_layout)  /* 1 when the Task layout was learned (tasks are sampled) */              \
  X(wall_sampler_ns)    /* CPU time of the wall sampler thread */

struct Stats {
#define SPANPROF_DECLARE(name) std::atomic<uint64_t> name{0};
  SPANPROF_STATS(SPANPROF_DECLARE)
#undef SPANPROF_DECLARE
  // Handler time histogram, 4 buckets per power of two: for ns >= 4, e = floor(log2(ns)),
  // m = the two bits below the top one; bucket 4e+m covers [(4+m) << (e-2), (5+m) << (e-2)).
  // Buckets 0..3 are ns = 0..3.
  static constexpr int kHistBuckets = 160;
  std::atomic<uint64_t> handler_ns_hist[kHistBuckets] = {};
  void reset() {
#define SPANPROF_RESET(name) name.store(0, std::memory_order_relaxed);
    SPANPROF_STATS(SPANPROF_RESET)
#undef SPANPROF_RESET
    for (auto& b : handler_ns_hist) b.store(0, std::memory_order_relaxed);
  }
};

Stats& stats();

inline int hist_bucket(uint64_t ns) {
  if (ns < 4) return static_cast<int>(ns);
  const int e = 63 - __builtin_clzll(ns);
  const int b = 4 * e + static_cast<int>((ns >> (e - 2)) & 3);
  return b < Stats::kHistBuckets ? b : Stats::kHistBuckets - 1;
}

inline void stat_max(std::atomic<uint64_t>& slot, uint64_t v) {
  uint64_t cur = slot.load(std::memory_order_relaxed);
  while (v > cur && !slot.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

}  // namespace spanprof
