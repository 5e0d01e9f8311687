// See wall.h. ARCHITECTURE.md ("Wall-clock sampling") gives the cost model.
#include "wall.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "clock.h"
#include "guard.h"
#include "record.h"
#include "rounds.h"
#include "sampler.h"
#include "stats.h"
#include "tasks.h"
#include "timers.h"

namespace spanprof {
namespace {

// /proc reads (~9 us each) per round: GIL waiters move every round, idle threads do not; a thread
// over the budget keeps the state of its previous read (a GIL waiter stays one).
constexpr int kStateReadsPerRound = 4;
// A round later than this (the process was stopped, the machine overloaded) carries at most this
// much time: the rest is counted as late, not attributed.
constexpr int64_t kMaxWeightNs = 1'000'000'000;
// After rounds in which nothing moved (no thread or task had to be read again) the sampler wakes
// every 2, 4, then 8 periods; the first round in which something moves brings it back to every
// period. A wake-up costs about half a quiet round's reads on these VMs (bench/wall_sampler_cpu.py,
// ARCHITECTURE.md "Wall-clock sampling"), and
// every weight is the time since the previous check, so nothing is lost by waking less; what a
// thread that moved did during the longer round is split as for any round (the round's own time
// to the new stack, the time before to the old one).
constexpr uint32_t kMaxIdlePeriods = 8;
// An idle thread costs a cache miss or two per round for its quick key (py::QuickKey: the thread
// state only) instead of four for the full one (frame, C stack); the full key is read every this
// many rounds (and whenever the quick one changes).
constexpr uint64_t kFullKeyRounds = 8;

std::atomic<uint32_t> g_generation{1};

struct Control {
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  bool started = false;
  pthread_t thread{};
};
Control* g_ctl = new Control;  // replaced in a fork child (the mutex may have been held)

Config g_cfg;
PyInterpreterState* g_interp = nullptr;

// The sampler thread's memory of each thread it read; owned by that thread alone.
struct Entry {
  py::StackKey key;
  py::QuickKey quick;
  uint64_t ts_id = 0;
  uint32_t generation = 0;
  int64_t pending_ns = 0;  // counted for the unchanged stack since its last record
  int64_t last_ns = 0;     // when it was last checked
  int64_t cpu_ns = -1;     // thread CPU clock at the previous round, while it ran Python
  uint8_t state = kStateBlocked;
  uint16_t leaf = kLeafNone;
  bool valid = false;  // the last full record of this thread is in the current generation
};

struct Round {
  int64_t now;
  int64_t weight_ns;
  uint32_t generation;
  uint64_t number;
  int state_reads_left;
  RoundEntries<Entry>* entries;
  bool moved = false;  // something had to be read in full this round
};

struct Syscall {
  bool running = false;
  long nr = -1;
  uint64_t arg0 = 0;
};

bool read_syscall(pid_t tid, Syscall* out) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/syscall", static_cast<int>(tid));
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[160];
  const ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  buf[n] = '\0';
  if (std::strncmp(buf, "running", 7) == 0) {
    out->running = true;
    return true;
  }
  char* end = nullptr;
  out->nr = std::strtol(buf, &end, 10);
  if (end != nullptr && *end == ' ') out->arg0 = std::strtoull(end + 1, nullptr, 16);
  return true;
}

// What a thread that does not run Python is doing, from the system call it is in.
void classify(const Syscall& sc, const void* gil, uint8_t* state, uint16_t* leaf) {
  *leaf = kLeafNone;
  if (sc.running || sc.nr < 0) {  // on a CPU, or runnable in user space: native code
    *state = kStateRunning;
    return;
  }
  *state = kStateBlocked;
  switch (sc.nr) {
    case SYS_futex: {
      const auto g = reinterpret_cast<uintptr_t>(gil);
      if (g != 0 && sc.arg0 >= g && sc.arg0 < g + py::kGilSize) {
        *state = kStateGilWait;
        *leaf = kLeafGil;
      } else {
        *leaf = kLeafLock;
      }
      return;
    }
    case SYS_nanosleep:
    case SYS_clock_nanosleep:
      *leaf = kLeafSleep;
      return;
    case SYS_recvfrom:
    case SYS_recvmsg:
    case SYS_recvmmsg:
      *leaf = kLeafRecv;
      return;
    case SYS_sendto:
    case SYS_sendmsg:
    case SYS_sendmmsg:
      *leaf = kLeafSend;
      return;
    case SYS_accept:
    case SYS_accept4:
      *leaf = kLeafAccept;
      return;
    case SYS_connect:
      *leaf = kLeafConnect;
      return;
    case SYS_read:
    case SYS_readv:
    case SYS_pread64:
      *leaf = kLeafRead;
      return;
    case SYS_write:
    case SYS_writev:
    case SYS_pwrite64:
      *leaf = kLeafWrite;
      return;
    case SYS_select:
    case SYS_pselect6:
    case SYS_poll:
    case SYS_ppoll:
    case SYS_epoll_wait:
    case SYS_epoll_pwait:
#ifdef SYS_epoll_pwait2
    case SYS_epoll_pwait2:
#endif
      *leaf = kLeafSelect;
      return;
    case SYS_wait4:
    case SYS_waitid:
      *leaf = kLeafChildWait;
      return;
    default:
      *leaf = kLeafSyscall;
      return;
  }
}

}  // namespace

void fill_wall(RecordHeader* h, int64_t weight_ns, uint32_t generation, uint64_t source,
               uint8_t state, uint16_t leaf) {
  h->kind = kKindWall;
  h->state = state;
  h->leaf = leaf;
  h->weight_ns = static_cast<uint64_t>(weight_ns);
  h->source = source;
  h->generation = generation;
}

namespace {

// Writes what an unchanged thread accumulated. Its last full record must be of this generation
// for the drain to find it (otherwise the repeat is counted as lost there).
void flush(Entry& e, uint32_t generation) {
  if (e.valid && e.pending_ns > 0) wall_write_repeat(e.pending_ns, generation, e.ts_id);
  e.pending_ns = 0;
}

pid_t tid_of(PyThreadState* ts) {
  return py::kStateHasNativeTid ? static_cast<pid_t>(py::native_tid(ts)) : timers_tid(ts->id);
}

// The CPU time of another thread (its kernel CPU clock; a system call), -1 when unknown.
int64_t thread_cpu_of(PyThreadState* ts) {
  const pid_t tid = tid_of(ts);
  if (tid <= 0) return -1;
  const auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  struct timespec t;
  if (clock_gettime(clock, &t) != 0) return -1;
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

void visit_thread(PyThreadState* ts, void* arg) {
  Round& r = *static_cast<Round*>(arg);
  Stats& st = stats();
  if (py::runs_python(ts)) {
    // Its CPU samples are its wall samples (wall.h). Wall time it did not get a CPU for
    // (runnable but not scheduled, or blocked holding the GIL) goes to its latest one.
    Entry& e = r.entries->visit(reinterpret_cast<uintptr_t>(ts));
    if (e.valid && e.ts_id == ts->id && e.generation == r.generation) {
      // It left its blocked stack at some point since its last check.
      const int64_t since = e.last_ns > 0 ? r.now - e.last_ns : 0;
      if (since > r.weight_ns) e.pending_ns += since - r.weight_ns;
      flush(e, r.generation);
    }
    e.valid = false;
    e.pending_ns = 0;
    e.last_ns = r.now;
    const int64_t cpu = thread_cpu_of(ts);
    if (cpu < 0) return;
    const int64_t prev = e.ts_id == ts->id ? e.cpu_ns : -1;
    e.ts_id = ts->id;
    e.cpu_ns = cpu;
    if (prev < 0) return;
    const int64_t deficit = r.weight_ns - (cpu - prev);
    if (deficit * 10 < r.weight_ns) return;  // within a tenth: timer granularity
    uint8_t* body = ring().reserve(sizeof(RecordHeader));
    if (body == nullptr) return;
    auto* h = reinterpret_cast<RecordHeader*>(body);
    std::memset(h, 0, sizeof *h);
    h->flags = kDeficit;
    fill_wall(h, deficit, r.generation, ts->thread_id, kStateRunning, kLeafNone);
    Ring::commit(body, sizeof(RecordHeader));
    st.wall_deficit_ns.fetch_add(static_cast<uint64_t>(deficit), std::memory_order_relaxed);
    return;
  }
  Entry& e = r.entries->visit(reinterpret_cast<uintptr_t>(ts));
  const bool same_thread = e.ts_id == ts->id;
  const bool current = e.valid && same_thread && e.generation == r.generation;
  int64_t since = same_thread && e.last_ns > 0 ? r.now - e.last_ns : r.weight_ns;
  e.last_ns = r.now;
  if (same_thread && e.cpu_ns >= 0) {
    // It ran Python at its last check: the CPU it used since is in its CPU samples.
    const int64_t cpu = thread_cpu_of(ts);
    if (cpu >= e.cpu_ns) since = since > cpu - e.cpu_ns ? since - (cpu - e.cpu_ns) : 0;
  }
  e.cpu_ns = -1;
  py::QuickKey quick;
  if (!run_guarded([&] { quick = py::quick_key(ts); })) {
    st.wall_reads_fault.fetch_add(1, std::memory_order_relaxed);
    e.valid = false;
    return;
  }
  if (current && e.quick == quick && (r.number + ts->id) % kFullKeyRounds != 0) {
    e.pending_ns += since;
    if (e.pending_ns >= kWallFlushNs) flush(e, r.generation);
    return;
  }
  py::StackKey key;
  if (!run_guarded([&] { key = py::stack_key(ts); })) {
    st.wall_reads_fault.fetch_add(1, std::memory_order_relaxed);
    e.valid = false;
    return;
  }
  if (key.frame == 0) {  // no Python frame: a thread outside Python (ours, a C library's)
    e.valid = false;
    return;
  }
  if (current && e.key == key) {
    e.quick = quick;
    e.pending_ns += since;
    if (e.pending_ns >= kWallFlushNs) flush(e, r.generation);
    return;
  }
  // Moved: the time before this round belongs to the previous stack. In a new generation that
  // stack has no record yet, so it travels with the new one.
  const int64_t before = since > r.weight_ns ? since - r.weight_ns : 0;
  const int64_t now_part = since - before;
  int64_t carried = 0;
  if (current) {
    e.pending_ns += before;
    flush(e, r.generation);
  } else if (same_thread) {
    carried = e.pending_ns + before;
  }
  e.pending_ns = 0;
  e.valid = false;
  r.moved = true;
  const pid_t tid = tid_of(ts);
  uint8_t state = e.ts_id == ts->id ? e.state : static_cast<uint8_t>(kStateBlocked);
  uint16_t leaf = e.ts_id == ts->id ? e.leaf : static_cast<uint16_t>(kLeafNone);
  if (r.state_reads_left > 0 && tid > 0) {
    --r.state_reads_left;
    Syscall sc;
    if (read_syscall(tid, &sc)) classify(sc, py::gil_address(ts), &state, &leaf);
    st.wall_state_reads.fetch_add(1, std::memory_order_relaxed);
  } else {
    st.wall_state_skipped.fetch_add(1, std::memory_order_relaxed);
  }
  Capture c;
  if (!capture_stack(ts, static_cast<uint64_t>(tid), 0, &c)) {
    st.wall_reads_fault.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.body == nullptr) {
    if (c.nframes != 0 && c.nframes != py::kUnsettled)
      st.samples_dropped_ring_full.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  // The thread must not have run Python while it was read: its frames could have changed (and a
  // code object we marked could have died before the mark).
  py::StackKey after;
  const bool same =
      run_guarded([&] { after = py::stack_key(ts); }) && after == key && !py::runs_python(ts);
  if (!same) {
    Ring::cancel(c.body, c.size);
    st.wall_reads_torn.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  fill_wall(c.header(), now_part + carried, r.generation, ts->id, state, leaf);
  Ring::commit(c.body, c.size);
  st.wall_threads_read.fetch_add(1, std::memory_order_relaxed);
  e.key = key;
  e.quick = quick;
  e.ts_id = ts->id;
  e.generation = r.generation;
  e.state = state;
  e.leaf = leaf;
  e.valid = true;
}

void* wall_main(void*) {
  // Only the fault guard's synchronous signals may arrive here: blocking them would kill the
  // process on a fault; everything else belongs to the application's threads.
  sigset_t all;
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  pthread_setname_np(pthread_self(), "spanprof-wall");
  Control& ctl = *g_ctl;
  Stats& st = stats();
  const int64_t period = 1'000'000'000LL / (g_cfg.rate_hz > 0 ? g_cfg.rate_hz : 100);
  RoundEntries<Entry> entries;
  int64_t last = mono_ns();
  auto next = std::chrono::steady_clock::now();
  uint32_t periods = 1;  // per wake (adaptive, see kMaxIdlePeriods)
  for (uint64_t number = 1;; ++number) {
    next += std::chrono::nanoseconds(period * periods);
    {
      std::unique_lock<std::mutex> lock(ctl.mu);
      if (ctl.cv.wait_until(lock, next, [&ctl] { return ctl.stop; })) break;
    }
    const int64_t cpu0 = thread_cpu_ns();
    const int64_t now = mono_ns();
    int64_t weight = now - last;
    last = now;
    if (weight > 2 * period * periods) {
      st.wall_ticks_late.fetch_add(1, std::memory_order_relaxed);
      next = std::chrono::steady_clock::now();  // no burst of catch-up rounds
      if (weight > kMaxWeightNs) weight = kMaxWeightNs;
    }
    Round r{
        now,     weight, g_generation.load(std::memory_order_acquire), number, kStateReadsPerRound,
        &entries};
    entries.begin(entries.size());
    py::for_each_thread_locked(g_interp, visit_thread, &r);
    entries.end([&](uintptr_t, Entry& gone) {
      // The thread ended (or its state was replaced): it was there until the previous round.
      if (gone.valid && gone.last_ns > 0 && now - gone.last_ns > weight)
        gone.pending_ns += now - gone.last_ns - weight;
      flush(gone, r.generation);
    });
    if (g_cfg.wall_tasks && tasks_sample(r.weight_ns, r.generation)) r.moved = true;
    periods = r.moved ? 1 : (periods < kMaxIdlePeriods ? 2 * periods : kMaxIdlePeriods);
    st.wall_ticks.fetch_add(1, std::memory_order_relaxed);
    st.wall_sampler_ns.fetch_add(static_cast<uint64_t>(thread_cpu_ns() - cpu0),
                                 std::memory_order_relaxed);
  }
  const uint32_t generation = g_generation.load(std::memory_order_acquire);
  for (auto& slot : entries.slots()) flush(slot.e, generation);
  if (g_cfg.wall_tasks) tasks_flush(generation);
  return nullptr;
}

}  // namespace

bool wall_write_repeat(int64_t weight_ns, uint32_t generation, uint64_t source) {
  uint8_t* body = ring().reserve(sizeof(RecordHeader));
  if (body == nullptr) {
    stats().samples_dropped_ring_full.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  auto* h = reinterpret_cast<RecordHeader*>(body);
  std::memset(h, 0, sizeof *h);
  h->flags = kRepeat;
  h->kind = kKindWall;
  h->weight_ns = static_cast<uint64_t>(weight_ns);
  h->source = source;
  h->generation = generation;
  Ring::commit(body, sizeof(RecordHeader));
  return true;
}

bool wall_start(const Config& cfg) {
  Control& ctl = *g_ctl;
  if (ctl.started) return true;
  g_cfg = cfg;
  g_interp = PyInterpreterState_Main();
  if (cfg.wall_tasks) tasks_prepare();
  ctl.stop = false;
  if (pthread_create(&ctl.thread, nullptr, wall_main, nullptr) != 0) return false;
  ctl.started = true;
  return true;
}

void wall_stop_and_join() {
  Control& ctl = *g_ctl;
  if (!ctl.started) return;
  {
    std::lock_guard<std::mutex> lock(ctl.mu);
    ctl.stop = true;
  }
  ctl.cv.notify_all();
  pthread_join(ctl.thread, nullptr);
  ctl.started = false;
}

void wall_after_fork_child() {
  g_ctl = new Control;  // the parent's (its mutex may have been held) is leaked
  tasks_after_fork_child();
}

uint32_t wall_generation() { return g_generation.load(std::memory_order_acquire); }
void wall_bump_generation() { g_generation.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace spanprof
