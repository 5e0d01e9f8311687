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
#include <unordered_map>
#include <vector>

#include "clock.h"
#include "codes.h"
#include "guard.h"
#include "record.h"
#include "sampler.h"
#include "spans.h"
#include "stats.h"
#include "wall.h"

namespace spanprof {
namespace {

// Tasks read per round; with more, each is read every ceil(n / cap) rounds and carries the time
// since its previous read (ARCHITECTURE.md: the cost model).
constexpr size_t kTasksPerRound = 256;
constexpr size_t kMaxTasksListed = 100'000;  // a corrupt or cyclic list stops here
constexpr uint32_t kMaxChain = 64;           // await-chain links kept per task
// An unchanged task's time is accumulated and written at most this often.
constexpr int64_t kFlushNs = 100'000'000;

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
  uint64_t round = 0;
};
std::unordered_map<uintptr_t, Entry>* g_entries = new std::unordered_map<uintptr_t, Entry>;
uint64_t g_round = 0;
size_t g_rotate = 0;

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
  auto* tsi = reinterpret_cast<_PyThreadStateImpl*>(PyThreadState_Get());
  const llist_node* tail = tsi->asyncio_tasks_head.prev;
  const auto off = reinterpret_cast<const char*>(tail) - reinterpret_cast<const char*>(task);
  if (off <= 0 || static_cast<size_t>(off) >= size) return false;
  l.node = static_cast<size_t>(off);
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
  size_t seen = 0;  // suspended-or-not tasks enumerated this round
  size_t read = 0;  // tasks handled (budget)
  size_t stride = 1;
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

__attribute__((noinline)) void read_task(PyObject* task, uintptr_t waiter, uintptr_t coro,
                                         int64_t weight, uint32_t generation, Read* r) {
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

void visit_task(PyObject* task, TaskRound& tr) {
  Stats& st = stats();
  ++tr.seen;
  // Rotate through the tasks when there are more than the round's budget.
  if (tr.stride > 1 && (tr.seen + g_rotate) % tr.stride != 0) return;
  if (tr.read >= kTasksPerRound) {
    st.wall_tasks_skipped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uintptr_t waiter = 0, coro = 0, context = 0;
  bool pending = false;
  if (!run_guarded([&] {
        if (!is_task_type(Py_TYPE(task))) {
          st.wall_tasks_unknown.fetch_add(1, std::memory_order_relaxed);
          return;
        }
        pending = word<int32_t>(task, g_layout.state) == 0;
        waiter = word<uintptr_t>(task, g_layout.waiter);
        coro = word<uintptr_t>(task, g_layout.coro);
        context = word<uintptr_t>(task, g_layout.context);
      })) {
    st.wall_reads_fault.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!pending || coro == 0) return;
  if (waiter == 0) return;  // running or ready to run: not suspended on a future
  ++tr.read;
  const auto key = reinterpret_cast<uintptr_t>(task);
  Entry& e = (*g_entries)[key];
  const int64_t weight =
      e.last_ns > 0 && tr.now - e.last_ns < 1'000'000'000 ? tr.now - e.last_ns : tr.weight;
  e.last_ns = tr.now;
  e.round = g_round;
  if (e.valid && e.generation == tr.generation && e.waiter == waiter && e.coro == coro &&
      e.context == context) {
    e.pending_ns += weight;
    if (e.pending_ns >= kFlushNs) flush(source_of(key), e, tr.generation);
    return;
  }
  // Moved (or a new generation): what was accumulated belongs to the previous stack; a new
  // generation has no record of it, so there it travels with the new record.
  int64_t carried = 0;
  if (e.valid && e.generation == tr.generation) {
    flush(source_of(key), e, tr.generation);
  } else {
    carried = e.pending_ns;
  }
  e.valid = false;
  e.pending_ns = 0;
  Read r;
  if (!run_guarded([&] { read_task(task, waiter, coro, weight + carried, tr.generation, &r); })) {
    if (uint8_t* body = r.body) Ring::cancel(body, r.size);
    st.wall_reads_fault.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (r.body == nullptr) return;
  if (!r.ok) {
    Ring::cancel(r.body, r.size);
    st.wall_reads_torn.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  Ring::commit(r.body, r.size);
  st.wall_tasks_read.fetch_add(1, std::memory_order_relaxed);
  e.valid = true;
  e.generation = tr.generation;
  e.waiter = waiter;
  e.coro = coro;
  e.context = context;
}

#if PY_VERSION_HEX >= 0x030E0000
void visit_list(const llist_node* head, TaskRound& tr) {
  // Collected first (guarded), visited after: a fault mid-list loses only the rest of the list.
  std::vector<PyObject*> tasks;
  tasks.reserve(64);
  run_guarded([&] {
    size_t n = 0;
    for (const llist_node* node = head->next;
         node != head && node != nullptr && n < kMaxTasksListed; node = node->next, ++n)
      tasks.push_back(
          reinterpret_cast<PyObject*>(reinterpret_cast<uintptr_t>(node) - g_layout.node));
  });
  for (PyObject* t : tasks) visit_task(t, tr);
}

void visit_thread_tasks(PyThreadState* ts, void* arg) {
  auto* tsi = reinterpret_cast<_PyThreadStateImpl*>(ts);
  visit_list(&tsi->asyncio_tasks_head, *static_cast<TaskRound*>(arg));
}
#endif

size_t g_last_seen = 0;

}  // namespace

void tasks_prepare() {
  if (g_layout.ok) return;
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

void tasks_sample(int64_t weight_ns, uint32_t generation) {
  if (!g_layout.ok) return;
  ++g_round;
  ++g_rotate;
  TaskRound tr{mono_ns(), weight_ns, generation};
  tr.stride =
      g_last_seen > kTasksPerRound ? (g_last_seen + kTasksPerRound - 1) / kTasksPerRound : 1;
#if PY_VERSION_HEX >= 0x030E0000
  PyInterpreterState* interp = PyInterpreterState_Main();
  py::for_each_thread_locked(interp, visit_thread_tasks, &tr);
  visit_list(&interp->asyncio_tasks_head, tr);
#else
  // The set's table, copied under the guard, then each live weak reference's object.
  std::vector<PyObject*> tasks;
  run_guarded([&] {
    auto* set = reinterpret_cast<PySetObject*>(g_layout.registry);
    const setentry* table = set->table;
    const Py_ssize_t mask = set->mask;
    if (mask <= 0 || static_cast<size_t>(mask) >= 4 * kMaxTasksListed) return;
    tasks.reserve(static_cast<size_t>(set->used));
    for (Py_ssize_t i = 0; i <= mask; ++i) {
      PyObject* key = table[i].key;
      // Skips empty slots and the set's deleted-entry marker (not a weak reference).
      if (key == nullptr || Py_TYPE(key) != &_PyWeakref_RefType) continue;
      PyObject* obj = reinterpret_cast<PyWeakReference*>(key)->wr_object;
      if (obj != nullptr && obj != Py_None) tasks.push_back(obj);
    }
  });
  for (PyObject* t : tasks) visit_task(t, tr);
#endif
  g_last_seen = tr.seen;
  // Tasks not read for a while are gone (or done): write what they accumulated and forget them.
  const uint64_t horizon = 4 * tr.stride + 4;
  for (auto it = g_entries->begin(); it != g_entries->end();) {
    if (g_round - it->second.round > horizon) {
      flush(source_of(it->first), it->second, generation);
      it = g_entries->erase(it);
    } else {
      ++it;
    }
  }
}

void tasks_flush(uint32_t generation) {
  for (auto& [key, e] : *g_entries) flush(source_of(key), e, generation);
  g_entries->clear();
}

}  // namespace spanprof
