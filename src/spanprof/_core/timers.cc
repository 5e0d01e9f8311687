#include "timers.h"

#include <time.h>

#include <mutex>
#include <unordered_map>

#include "clock.h"
#include "stats.h"

namespace spanprof {
namespace {

struct ThreadTimer {
  timer_t timer;
  pid_t tid;
};

struct Table {
  std::mutex mu;
  std::unordered_map<uint64_t, ThreadTimer> timers;  // thread-state id -> timer
  bool enabled = false;
  int64_t interval_ns = 10'000'000;
  int64_t last_check_ns = 0;
};
// Replaced (the old one leaked) in a fork child, where its mutex may have been held.
Table* g_table = new Table;
std::atomic<int> g_signo{0};
SignalHandler g_handler = nullptr;
bool g_installed[_NSIG] = {};
uint64_t g_rng = 0x2545F4914F6CDD1Dull;

uint64_t next_random() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

bool is_ours(const struct sigaction& sa) {
  return (sa.sa_flags & SA_SIGINFO) && sa.sa_sigaction == g_handler;
}

// The highest real-time signal with no handler, keeping clear of the lowest few that threading
// libraries reserve. `avoid`: a signal just taken from us.
int choose_signal(int avoid) {
  for (int s = SIGRTMAX - 1; s > SIGRTMIN + 2; --s) {
    if (s == avoid) continue;
    struct sigaction old {};
    if (sigaction(s, nullptr, &old) != 0) continue;
    if (is_ours(old) || (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_DFL)) return s;
  }
  return -1;
}

bool install(int signo) {
  struct sigaction cur {};
  if (g_installed[signo] && sigaction(signo, nullptr, &cur) == 0 && is_ours(cur)) return true;
  struct sigaction sa {};
  sa.sa_sigaction = g_handler;
  sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
  // Nothing else blocked while ours runs: blocking other signals delays (and coalesces) theirs.
  sigemptyset(&sa.sa_mask);
  if (sigaction(signo, &sa, nullptr) != 0) return false;
  g_installed[signo] = true;
  return true;
}

bool create_locked(Table& t, uint64_t key, pid_t tid) {
  struct sigevent sev {};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = g_signo.load(std::memory_order_relaxed);
  sev._sigev_un._tid = tid;
  sev.sigev_value.sival_int = tid;  // handed to the handler in siginfo
  // The thread's CPU clock: CPUCLOCK_SCHED (2) | CPUCLOCK_PERTHREAD (4), tid in the high bits.
  const auto clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  timer_t timer;
  if (timer_create(clock, &sev, &timer) != 0) {
    stats().timer_create_failed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const int64_t interval = t.interval_ns;
  // A random first expiry, so threads that live shorter than one period are not all missed.
  const int64_t first = 1 + static_cast<int64_t>(next_random() % static_cast<uint64_t>(interval));
  struct itimerspec its {};
  its.it_interval.tv_sec = interval / 1'000'000'000;
  its.it_interval.tv_nsec = interval % 1'000'000'000;
  its.it_value.tv_sec = first / 1'000'000'000;
  its.it_value.tv_nsec = first % 1'000'000'000;
  if (timer_settime(timer, 0, &its, nullptr) != 0) {
    timer_delete(timer);
    stats().timer_create_failed.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  t.timers[key] = ThreadTimer{timer, tid};
  stats().timers_created.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void delete_all_locked(Table& t) {
  for (auto& kv : t.timers) {
    timer_delete(kv.second.timer);
    stats().timers_deleted.fetch_add(1, std::memory_order_relaxed);
  }
  t.timers.clear();
}

}  // namespace

bool timers_start(int rate_hz, SignalHandler handler) {
  Table& t = *g_table;
  std::lock_guard<std::mutex> lock(t.mu);
  g_handler = handler;
  int signo = g_signo.load(std::memory_order_relaxed);
  struct sigaction cur {};
  if (signo == 0 || sigaction(signo, nullptr, &cur) != 0 || !is_ours(cur)) signo = choose_signal(0);
  if (signo < 0 || !install(signo)) return false;
  g_signo.store(signo, std::memory_order_relaxed);
  g_rng ^= static_cast<uint64_t>(mono_ns()) * 0x9E3779B97F4A7C15ull;
  t.interval_ns = 1'000'000'000LL / rate_hz;
  t.last_check_ns = mono_ns();
  t.enabled = true;
  return true;
}

void timers_stop() {
  Table& t = *g_table;
  std::lock_guard<std::mutex> lock(t.mu);
  t.enabled = false;
  delete_all_locked(t);
}

void timers_ensure(uint64_t key, pid_t tid) {
  Table& t = *g_table;
  std::lock_guard<std::mutex> lock(t.mu);
  if (!t.enabled || tid <= 0 || t.timers.count(key) != 0) return;
  create_locked(t, key, tid);
}

pid_t timers_tid(uint64_t key) {
  Table& t = *g_table;
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.timers.find(key);
  return it != t.timers.end() ? it->second.tid : 0;
}

bool timers_has(uint64_t key) {
  Table& t = *g_table;
  std::lock_guard<std::mutex> lock(t.mu);
  return t.timers.count(key) != 0;
}

void timers_retain_if(bool (*keep)(uint64_t key, void* arg), void* arg) {
  Table& t = *g_table;
  std::lock_guard<std::mutex> lock(t.mu);
  for (auto it = t.timers.begin(); it != t.timers.end();) {
    if (!keep(it->first, arg)) {
      timer_delete(it->second.timer);
      stats().timers_deleted.fetch_add(1, std::memory_order_relaxed);
      it = t.timers.erase(it);
    } else {
      ++it;
    }
  }
}

void timers_check_signal() {
  Table& t = *g_table;
  std::lock_guard<std::mutex> lock(t.mu);
  if (!t.enabled) return;
  const int64_t now = mono_ns();
  const int64_t since = now - t.last_check_ns;
  t.last_check_ns = now;
  const int old = g_signo.load(std::memory_order_relaxed);
  struct sigaction cur {};
  if (sigaction(old, nullptr, &cur) != 0 || is_ours(cur)) return;
  // Someone else handles our signal now: every timer moves to a free one. Until now their handler
  // may have received our expiries (at most one pending per timer, plus those since the last
  // check), which is the interval counted as lost.
  g_installed[old] = false;
  const int signo = choose_signal(old);
  stats().signal_moves.fetch_add(1, std::memory_order_relaxed);
  stats().sampling_gap_ns.fetch_add(static_cast<uint64_t>(since), std::memory_order_relaxed);
  std::unordered_map<uint64_t, ThreadTimer> moved;
  moved.swap(t.timers);
  for (auto& kv : moved) {
    timer_delete(kv.second.timer);
    stats().timers_deleted.fetch_add(1, std::memory_order_relaxed);
  }
  if (signo < 0 || !install(signo)) {
    stats().signal_unavailable.fetch_add(1, std::memory_order_relaxed);
    t.enabled = false;  // nothing left to sample with; stats() shows it
    return;
  }
  g_signo.store(signo, std::memory_order_relaxed);
  for (auto& kv : moved) create_locked(t, kv.first, kv.second.tid);
}

int timers_signal() { return g_signo.load(std::memory_order_relaxed); }

uint64_t timers_active() {
  Table& t = *g_table;
  std::lock_guard<std::mutex> lock(t.mu);
  return t.timers.size();
}

void timers_after_fork_child() { g_table = new Table; }

}  // namespace spanprof
