#include "sampler.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "clock.h"
#include "codes.h"
#include "guard.h"
#include "record.h"
#include "stats.h"
#include "tags.h"

namespace spanprof {
namespace {

Ring g_ring;
std::atomic<bool> g_active{false};  // the handler samples only while set
std::atomic<int> g_in_flight{0};    // handlers currently past their entry
std::atomic<bool> g_gil_only{true};

// Everything that reads the interpreter's memory; runs under the fault guard.
__attribute__((noinline)) void capture(PyThreadState* ts, uint64_t native_tid,
                                       uint32_t extra_frames, Capture* c) {
  py::WalkStart start;
  uint32_t n = py::frame_bound(ts, kMaxFrames, &start);
  c->nframes = n;
  if (n == 0 || n == py::kUnsettled) return;
  if (n > kMaxFrames) n = kMaxFrames;
  const auto size = static_cast<uint32_t>(sizeof(RecordHeader) + n * sizeof(py::RawFrame));
  uint8_t* body = g_ring.reserve(size);
  if (body == nullptr) return;
  c->size = size;
  c->body = body;
  // After reserving (the drain's checkpoints rely on it) and while every code object on this
  // stack is alive: a death of any of them is logged later, with a larger epoch (codes.h).
  const uint64_t epoch = codes_epoch();
  auto* h = reinterpret_cast<RecordHeader*>(body);
  std::memset(h, 0, sizeof *h);
  auto* frames = reinterpret_cast<py::RawFrame*>(body + sizeof(RecordHeader));
  h->nframes = py::walk_frames(start, frames, n, &c->wc);
  for (uint32_t i = 0; i < h->nframes; ++i) codes_mark_sampled(frames[i].code);
  c->transition = start.transition;
  h->flags = c->wc.truncated ? kTruncated : 0;
  h->native_tid = native_tid;
  h->ident = ts->thread_id;
  h->tagset = tags_lookup_id(ts->thread_id);
  h->extra_periods = extra_frames;
  h->code_epoch = epoch;
  c->span = lookup_span(ts, &h->span);
  if (c->span == SpanLookup::kFound) h->flags |= kHasSpan;
}

}  // namespace

bool capture_stack(PyThreadState* ts, uint64_t native_tid, uint32_t extra_periods, Capture* c) {
  if (!run_guarded([&] { capture(ts, native_tid, extra_periods, c); })) {
    if (uint8_t* body = c->body) Ring::cancel(body, c->size);
    c->body = nullptr;
    return false;
  }
  return true;
}

namespace {

// `tid`: the kernel id of this thread, carried in the timer's sigval (the timer is created for
// one thread and signals only it), so versions whose thread state lacks it need no gettid system
// call per sample.
void sample_this_thread(pid_t tid, uint32_t extra_periods) {
  const int64_t t0 = mono_ns();
  Stats& st = stats();
  PyThreadState* ts = py::this_thread_state();
  if (ts == nullptr) {
    st.samples_dropped_no_tstate.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const bool ran_python = py::runs_python(ts);
  if (g_gil_only.load(std::memory_order_relaxed) && !ran_python) {
    st.samples_dropped_not_gil.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Capture c;
  const uint64_t native = py::kStateHasNativeTid ? py::native_tid(ts) : static_cast<uint64_t>(tid);
  if (!capture_stack(ts, native, extra_periods, &c)) {
    st.samples_dropped_fault.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.nframes == 0) {
    st.samples_dropped_empty.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (c.nframes == py::kUnsettled) {
    st.samples_dropped_unsettled.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint8_t* body = c.body;
  if (body == nullptr) {
    st.samples_dropped_ring_full.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  switch (c.span) {
    case SpanLookup::kFound:
      st.span_lookup_ok.fetch_add(1, std::memory_order_relaxed);
      break;
    case SpanLookup::kNone:
      st.span_lookup_none.fetch_add(1, std::memory_order_relaxed);
      break;
    case SpanLookup::kFailed:
      st.span_lookup_failed.fetch_add(1, std::memory_order_relaxed);
      break;
  }
  if (ran_python) c.header()->flags |= kRanPython;
  Ring::commit(body, c.size);
  st.samples_taken.fetch_add(1, std::memory_order_relaxed);
  if (c.wc.truncated) st.samples_truncated.fetch_add(1, std::memory_order_relaxed);
  if (c.transition) st.samples_in_transition.fetch_add(1, std::memory_order_relaxed);
  if (c.wc.invalid) st.frames_invalid.fetch_add(c.wc.invalid, std::memory_order_relaxed);
  if (c.wc.incomplete) st.frames_incomplete.fetch_add(c.wc.incomplete, std::memory_order_relaxed);
  const auto dt = static_cast<uint64_t>(mono_ns() - t0);
  st.handler_ns_total.fetch_add(dt, std::memory_order_relaxed);
  stat_max(st.handler_ns_max, dt);
  st.handler_ns_hist[hist_bucket(dt)].fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

Ring& ring() { return g_ring; }

void sampler_configure(bool gil_only) { g_gil_only.store(gil_only, std::memory_order_relaxed); }

void sampler_activate() { g_active.store(true, std::memory_order_seq_cst); }

void sampler_deactivate_and_wait() {
  g_active.store(false, std::memory_order_seq_cst);
  while (g_in_flight.load(std::memory_order_seq_cst) != 0) sched_yield();
}

void sampler_reset_after_fork() {
  g_active.store(false, std::memory_order_seq_cst);
  g_in_flight.store(0, std::memory_order_seq_cst);
  g_ring.reset();
}

void sampler_on_signal(int, siginfo_t* info, void*) {
  const int saved_errno = errno;
  g_in_flight.fetch_add(1, std::memory_order_seq_cst);
  if (g_active.load(std::memory_order_seq_cst)) {
    if (info != nullptr && info->si_code == SI_TIMER) {
      const uint32_t extra = info->si_overrun > 0 ? static_cast<uint32_t>(info->si_overrun) : 0;
      if (extra != 0) stats().timer_overruns.fetch_add(extra, std::memory_order_relaxed);
      sample_this_thread(static_cast<pid_t>(info->si_value.sival_int), extra);
    } else {
      stats().signals_foreign.fetch_add(1, std::memory_order_relaxed);
    }
  }
  g_in_flight.fetch_sub(1, std::memory_order_seq_cst);
  errno = saved_errno;
}

uint64_t sampler_probe(int iterations) {
  const auto tid = static_cast<pid_t>(syscall(SYS_gettid));
  const int64_t t0 = mono_ns();
  for (int i = 0; i < iterations; ++i) sample_this_thread(tid, 0);
  return static_cast<uint64_t>(mono_ns() - t0);
}

}  // namespace spanprof
