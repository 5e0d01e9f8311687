// See tasks.h.
//
// Where tasks live: 3.10-3.13 keep every task in a WeakSet (asyncio.tasks._all_tasks;
// _asyncio._scheduled_tasks from 3.12), whose backing set of weak references is read; 3.14+
// link each task into a list of the thread that created it (and the interpreter's, for threads
// that ended). The Task object's layout is private to _asynciomodule.c, so tasks_prepare() learns
// it from a real task built for the purpose (_task_probe.py): which word holds the coroutine, the
// future it waits on, its context, its name, its state, its list node.
//
// A task is sampled only while it waits on a future (task_fut_waiter set): then its coroutine
// chain is suspended and owned by a loop that is not running it. The read runs under the fault
// guard and is validated: the same future and coroutine before and after. Running and ready
// tasks are not read (the running one is on its thread's stack).
#include "tasks.h"

#include <time.h>

#include <cstring>
#include <vector>

#include "clock.h"
#include "codes.h"
#include "guard.h"
#include "record.h"
#include "rounds.h"
#include "sampler.h"
#include "spans.h"
#include "stats.h"
#include "wall.h"

namespace spanprof {
namespace {

// Tasks read per round; with more, each is read every ceil(n / cap) rounds and carries the time
// since its previous read (ARCHITECTURE.md: the cost model).
constexpr size_t kTasksPerRound = 128;
// A registry longer than one round's reads is listed again every this many rounds (listing
// 10,000 tasks is ~10,000 cache misses); between listings the rounds walk the last list. A
// shorter one is listed every round, so a task that lives a few rounds is seen from its start.
constexpr uint64_t kListEveryRounds = 8;
constexpr size_t kMaxTasksListed = 100'000;  // a corrupt or cyclic list stops here
constexpr uint32_t kMaxChain = 64;           // await-chain links kept per task
constexpr int64_t kMaxSinceNs = 30'000'000'000;

struct Layout {
  bool ok = false;
  PyTypeObject* task_type = nullptr;
  PyTypeObject* future_type = nullptr;
  PyTypeObject* future_iter_type = nullptr;
  size_t coro = 0, waiter = 0, context = 0, name = 0, state = 0, node = 0;
  PyObject* registry = nullptr;  // the set behind the WeakSet (3.10-3.13), strong
};
Layout g_layout;

struct Entry {
  uintptr_t waiter = 0, coro = 0, context = 0;
  uint32_t generation = 0;
  bool valid = false;
  int64_t pending_ns = 0;  // counted since the last record, not yet written
  int64_t last_ns = 0;     // when it was last read
};
// The last listing of the registry, each task with what the sampler knows of it.
RoundEntries<Entry>* g_entries = new RoundEntries<Entry>;
uint64_t g_round = 0;
std::vector<PyObject*>* g_list = new std::vector<PyObject*>;  // scratch for a listing
uint64_t g_listed_round = 0;
size_t g_cursor = 0;

template <typename T>
T word(const void* base, size_t off) {
  T v;
  std::memcpy(&v, static_cast<const char*>(base) + off, sizeof v);
  return v;
}

uint64_t source_of(uintptr_t task) { return (uint64_t{1} << 63) | task; }

// Offset of the first word of `obj` equal to `value`, else 0.
size_t find_word(PyObject* obj, const void* value) {
  const auto size = static_cast<size_t>(Py_TYPE(obj)->tp_basicsize);
  for (size_t off = sizeof(PyObject); off + sizeof(void*) <= size; off += sizeof(void*))
    if (word<const void*>(obj, off) == value) return off;
  return 0;
}

bool learn_layout(PyObject* objs) {
  auto get = [objs](const char* k) { return PyDict_GetItemString(objs, k); };
  PyObject* task = get("task");
  PyObject* coro = get("coro");
  PyObject* name = get("name");
  PyObject* waiter = get("waiter");
  PyObject* pending = get("pending");
  PyObject* finished = get("finished");
  PyObject* cancelled = get("cancelled");
  PyObject* iter_type = get("future_iter_type");
  if (!task || !coro || !name || !waiter || !pending || !finished || !cancelled || !iter_type)
    return false;
  Layout& l = g_layout;
  l.coro = find_word(task, coro);
  l.waiter = find_word(task, waiter);
  l.name = find_word(task, name);
  // The task's context is a copy made at creation: the one word pointing at a Context object.
  const auto size = static_cast<size_t>(Py_TYPE(task)->tp_basicsize);
  int contexts = 0;
  for (size_t off = sizeof(PyObject); off + sizeof(void*) <= size; off += sizeof(void*)) {
    const auto* p = word<const PyObject*>(task, off);
    PyTypeObject* t = nullptr;
    if (p != nullptr && safe_read(&p->ob_type, &t, sizeof t) && t == &PyContext_Type) {
      l.context = off;
      ++contexts;
    }
  }
  // fut_state: the int that is 0 pending, 1 cancelled, 2 finished (the enum in the C module).
  const auto fsize = static_cast<size_t>(Py_TYPE(pending)->tp_basicsize);
  for (size_t off = sizeof(PyObject); off + 4 <= fsize; off += 4) {
    if (word<int32_t>(pending, off) == 0 && word<int32_t>(cancelled, off) == 1 &&
        word<int32_t>(finished, off) == 2) {
      l.state = off;
      break;
    }
  }
  if (l.coro == 0 || l.waiter == 0 || l.name == 0 || l.state == 0 || contexts != 1) return false;
  if (word<int32_t>(task, l.state) != 0) return false;
#if PY_VERSION_HEX >= 0x030E0000
  // The list node: the one pair of words {next, prev} that its neighbours point back at (the
  // probe task is in the list of the thread that made it, or the interpreter's once it ended).
  for (size_t off = sizeof(PyObject); off + 2 * sizeof(void*) <= size; off += sizeof(void*)) {
    const auto* node = reinterpret_cast<const char*>(task) + off;
    const auto* next = word<const char*>(task, off);
    const auto* prev = word<const char*>(task, off + sizeof(void*));
    const char* next_prev = nullptr;
    const char* prev_next = nullptr;
    if (next != nullptr && prev != nullptr &&
        safe_read(next + sizeof(void*), &next_prev, sizeof next_prev) &&
        safe_read(prev, &prev_next, sizeof prev_next) && next_prev == node && prev_next == node) {
      l.node = off;
      break;
    }
  }
  if (l.node == 0) return false;
#else
  PyObject* reg = get("registry");
  if (reg == nullptr || !PySet_Check(reg)) return false;
  Py_INCREF(reg);
  l.registry = reg;
#endif
  l.task_type = Py_TYPE(task);
  l.future_type = Py_TYPE(pending);
  l.future_iter_type = reinterpret_cast<PyTypeObject*>(iter_type);
  Py_INCREF(l.task_type);
  Py_INCREF(l.future_type);
  Py_INCREF(l.future_iter_type);
  return true;
}

bool is_task_type(const PyTypeObject* t) {
  for (int i = 0; i < 8 && t != nullptr; ++i, t = t->tp_base)
    if (t == g_layout.task_type) return true;
  return false;
}

uint16_t leaf_of(PyObject* awaited) {
  if (awaited == nullptr) return kLeafAwaitOther;
  const PyTypeObject* t = Py_TYPE(awaited);
  if (t == g_layout.future_iter_type || t == g_layout.future_type) return kLeafAwaitFuture;
  if (is_task_type(t)) return kLeafAwaitTask;
  for (const PyTypeObject* b = t; b != nullptr; b = b->tp_base)
    if (b == g_layout.future_type) return kLeafAwaitFuture;
  return kLeafAwaitOther;
}

void copy_name(PyObject* name, RecordHeader* h) {
  h->task_name_len = 0;
  if (name == nullptr) return;
  if (PyLong_CheckExact(name)) {  // 3.12+: "Task-<n>" until someone asks for the name
    std::memcpy(h->task_name, "Task-0", 6);
    h->task_name_len = 6;
    return;
  }
  if (!PyUnicode_CheckExact(name)) return;
  auto* a = reinterpret_cast<PyASCIIObject*>(name);
  if (!a->state.compact || !a->state.ascii) return;
  const size_t n = static_cast<size_t>(a->length) < sizeof h->task_name
                       ? static_cast<size_t>(a->length)
                       : sizeof h->task_name;
  std::memcpy(h->task_name, reinterpret_cast<const char*>(a + 1), n);
  h->task_name_len = static_cast<uint32_t>(n);
}

struct TaskRound {
  int64_t now;
  int64_t weight;
  uint32_t generation;
};

void flush(uint64_t source, Entry& e, uint32_t generation) {
  if (e.pending_ns > 0 && e.valid) wall_write_repeat(e.pending_ns, generation, source);
  e.pending_ns = 0;
}

// Full read of one suspended task into a new record. Under the fault guard.
struct Read {
  uint8_t* volatile body = nullptr;
  volatile uint32_t size = 0;
  bool ok = false;
};

__attribute__((no_sanitize_address, noinline)) void read_task(PyObject* task, uintptr_t waiter,
                                                              uintptr_t coro, int64_t weight,
                                                              uint32_t generation, Read* r) {
  py::RawFrame chain[kMaxChain];
  uint32_t n = 0;
  const uint64_t epoch = codes_epoch();
  PyObject* obj = reinterpret_cast<PyObject*>(coro);
  PyObject* awaited = nullptr;
  while (obj != nullptr && n < kMaxChain) {
    if (!py::coro_step(obj, &chain[n], &awaited)) break;
    ++n;
    obj = awaited;
  }
  if (n == 0) return;
  for (uint32_t i = 0; i < n; ++i) codes_mark_sampled(chain[i].code);
  const auto size = static_cast<uint32_t>(sizeof(RecordHeader) + n * sizeof(py::RawFrame));
  uint8_t* body = ring().reserve(size);
  if (body == nullptr) return;
  r->size = size;
  r->body = body;
  auto* h = reinterpret_cast<RecordHeader*>(body);
  std::memset(h, 0, sizeof *h);
  auto* frames = reinterpret_cast<py::RawFrame*>(h + 1);
  for (uint32_t i = 0; i < n; ++i) frames[i] = chain[n - 1 - i];  // leaf first
  h->nframes = n;
  h->code_epoch = epoch;
  h->flags = kTask;
  PyObject* ctx = word<PyObject*>(task, g_layout.context);
  if (ctx != nullptr && lookup_span_in(ctx, &h->span) == SpanLookup::kFound) h->flags |= kHasSpan;
  copy_name(word<PyObject*>(task, g_layout.name), h);
  fill_wall(h, weight, generation, source_of(reinterpret_cast<uintptr_t>(task)), kStateAwaiting,
            leaf_of(obj != nullptr ? obj : awaited));
  // Still the same suspension: the coroutine chain did not run while it was read.
  r->ok = word<uintptr_t>(task, g_layout.waiter) == waiter &&
          word<uintptr_t>(task, g_layout.coro) == coro && word<int32_t>(task, g_layout.state) == 0;
}

struct Peek {
  bool task = false, pending = false;
  uintptr_t waiter = 0, coro = 0, context = 0;
};

// The listing may be several rounds old: `task` may have been freed (its memory reused or
// unmapped), hence the guard, the type check, and no sanitizer instrumentation of the read.
__attribute__((no_sanitize_address, noinline)) void peek(PyObject* task, Peek* p) {
  if (!is_task_type(Py_TYPE(task))) return;
  p->task = true;
  p->pending = word<int32_t>(task, g_layout.state) == 0;
  p->waiter = word<uintptr_t>(task, g_layout.waiter);
  p->coro = word<uintptr_t>(task, g_layout.coro);
  p->context = word<uintptr_t>(task, g_layout.context);
}

// True when the task was read in full.
bool visit_task(PyObject* task, Entry& e, const TaskRound& tr) {
  Stats& st = stats();
  Peek pk;
  if (!run_guarded([&] { peek(task, &pk); })) {
    st.wall_reads_fault.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (!pk.task) {
    st.wall_tasks_unknown.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  const auto key = reinterpret_cast<uintptr_t>(task);
  // The time since its previous read (a listing counts as one for a task new to it); the cap
  // only guards against a clock or entry gone wrong.
  const int64_t since =
      e.last_ns > 0 && tr.now - e.last_ns < kMaxSinceNs ? tr.now - e.last_ns : tr.weight;
  e.last_ns = tr.now;
  // Done, running or ready to run: not suspended on a future. Its running time is on its
  // thread's samples; what its previous suspension accumulated is written.
  if (!pk.pending || pk.coro == 0 || pk.waiter == 0) {
    if (e.valid && e.generation == tr.generation) flush(source_of(key), e, tr.generation);
    e.valid = false;
    e.pending_ns = 0;
    return false;
  }
  const uintptr_t waiter = pk.waiter, coro = pk.coro, context = pk.context;
  if (e.valid && e.generation == tr.generation && e.waiter == waiter && e.coro == coro &&
      e.context == context) {
    e.pending_ns += since;
    if (e.pending_ns >= kWallFlushNs) flush(source_of(key), e, tr.generation);
    return false;
  }
  // Moved, as for a thread (wall.cc): the time before this round belongs to the previous stack,
  // this round's to the new one. A new generation has no record of the previous stack, and a
  // task new to the listing has none at all: there it all travels with the new record.
  const int64_t before = since > tr.weight ? since - tr.weight : 0;
  const int64_t weight = since - before;
  int64_t carried = 0;
  if (e.valid && e.generation == tr.generation) {
    e.pending_ns += before;
    flush(source_of(key), e, tr.generation);
  } else {
    carried = e.pending_ns + before;
  }
  e.valid = false;
  e.pending_ns = 0;
  Read r;
  if (!run_guarded([&] { read_task(task, waiter, coro, weight + carried, tr.generation, &r); })) {
    if (uint8_t* body = r.body) Ring::cancel(body, r.size);
    st.wall_reads_fault.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (r.body == nullptr) return true;
  if (!r.ok) {
    Ring::cancel(r.body, r.size);
    st.wall_reads_torn.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  Ring::commit(r.body, r.size);
  st.wall_tasks_read.fetch_add(1, std::memory_order_relaxed);
  e.valid = true;
  e.generation = tr.generation;
  e.waiter = waiter;
  e.coro = coro;
  e.context = context;
  return true;
}

#if PY_VERSION_HEX >= 0x030E0000
__attribute__((no_sanitize_address, noinline)) void list_from(const llist_node* head,
                                                              std::vector<PyObject*>* out) {
  size_t n = 0;
  for (const llist_node* node = head->next; node != head && node != nullptr && n < kMaxTasksListed;
       node = node->next, ++n)
    out->push_back(reinterpret_cast<PyObject*>(reinterpret_cast<uintptr_t>(node) - g_layout.node));
}

void list_thread_tasks(PyThreadState* ts, void* arg) {
  auto* tsi = reinterpret_cast<_PyThreadStateImpl*>(ts);
  // A fault mid-list loses only the rest of that list.
  run_guarded(
      [&] { list_from(&tsi->asyncio_tasks_head, static_cast<std::vector<PyObject*>*>(arg)); });
}
#else
// The set's table, then each live weak reference's object.
__attribute__((no_sanitize_address, noinline)) void list_from(PyObject* registry,
                                                              std::vector<PyObject*>* out) {
  auto* set = reinterpret_cast<PySetObject*>(registry);
  const setentry* table = set->table;
  const Py_ssize_t mask = set->mask;
  if (mask <= 0 || static_cast<size_t>(mask) >= 4 * kMaxTasksListed) return;
  for (Py_ssize_t i = 0; i <= mask; ++i) {
    PyObject* key = table[i].key;
    // Skips empty slots and the set's deleted-entry marker (not a weak reference).
    if (key == nullptr || Py_TYPE(key) != &_PyWeakref_RefType) continue;
    PyObject* obj = reinterpret_cast<PyWeakReference*>(key)->wr_object;
    if (obj != nullptr && obj != Py_None) out->push_back(obj);
  }
}
#endif

// Lists the registry. A task appeared or finished at some unknown point since the round that
// last saw it otherwise: half of that gap is counted (the expected share if that point is
// uniformly placed), where counting none would lose about half a round at each end of every
// short task.
void list_tasks(int64_t now, int64_t weight, uint32_t generation) {
  g_list->clear();
#if PY_VERSION_HEX >= 0x030E0000
  PyInterpreterState* interp = PyInterpreterState_Main();
  py::for_each_thread_locked(interp, list_thread_tasks, g_list);
  run_guarded([&] { list_from(&interp->asyncio_tasks_head, g_list); });
#else
  run_guarded([&] { list_from(g_layout.registry, g_list); });
#endif
  g_listed_round = g_round;
  // The cursor keeps its place: the order of a listing is the order of the last one, save the
  // tasks that came and went, so the rounds keep going round the whole registry.
  g_entries->begin(g_list->size());
  for (PyObject* t : *g_list) {
    Entry& e = g_entries->visit(reinterpret_cast<uintptr_t>(t));
    if (e.last_ns == 0) e.last_ns = now - weight / 2;
  }
  // Tasks no longer listed: write what they accumulated and forget them.
  g_entries->end([now, generation](uintptr_t key, Entry& e) {
    if (e.valid && e.generation == generation && now > e.last_ns)
      e.pending_ns += (now - e.last_ns) / 2;
    flush(source_of(key), e, generation);
  });
}

}  // namespace

void tasks_prepare() {
  // Once per process: a layout that was not recognised will not be on the next start() either,
  // and each try builds an event loop in a new thread.
  static bool tried = false;
  if (tried) return;
  tried = true;
  PyObject* mod = PyImport_ImportModule("spanprof._task_probe");
  PyObject* objs = mod != nullptr ? PyObject_CallMethod(mod, "probe", nullptr) : nullptr;
  if (objs != nullptr && PyDict_Check(objs)) g_layout.ok = learn_layout(objs);
  if (objs != nullptr && mod != nullptr) {
    PyObject* r = PyObject_CallMethod(mod, "finish", "O", objs);
    Py_XDECREF(r);
  }
  Py_XDECREF(objs);
  Py_XDECREF(mod);
  if (PyErr_Occurred()) PyErr_Clear();  // tasks are not sampled; threads still are
  stats().wall_tasks_layout.store(g_layout.ok ? 1 : 0, std::memory_order_relaxed);
}

bool tasks_sample(int64_t weight_ns, uint32_t generation) {
  if (!g_layout.ok) return false;
  ++g_round;
  const TaskRound tr{mono_ns(), weight_ns, generation};
  if (g_entries->size() <= kTasksPerRound || g_round - g_listed_round >= kListEveryRounds ||
      g_listed_round == 0)
    list_tasks(tr.now, tr.weight, generation);
  const size_t n = g_entries->size();
  const size_t visits = n < kTasksPerRound ? n : kTasksPerRound;
  if (n > kTasksPerRound)
    stats().wall_tasks_skipped.fetch_add(n - kTasksPerRound, std::memory_order_relaxed);
  bool moved = false;
  for (size_t i = 0; i < visits; ++i) {
    if (g_cursor >= n) g_cursor = 0;
    auto& slot = g_entries->at(g_cursor++);
    moved = visit_task(reinterpret_cast<PyObject*>(slot.key), slot.e, tr) || moved;
  }
  return moved;
}

void tasks_after_fork_child() {
  // The parent's sampler thread may have been mid-update: start over (its copies are leaked).
  g_entries = new RoundEntries<Entry>;
  g_list = new std::vector<PyObject*>;
  g_round = g_listed_round = 0;
  g_cursor = 0;
}

void tasks_flush(uint32_t generation) {
  for (auto& slot : g_entries->slots()) flush(source_of(slot.key), slot.e, generation);
  g_entries->clear();
}

}  // namespace spanprof
