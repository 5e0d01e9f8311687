// The in-memory dictionary (strings, functions, locations, stacks, tenants, series): lookups by
// HTTP threads before a write is queued, interning by the writer, and its rollback when a
// transaction fails.
#include <nlohmann/json.hpp>

#include "core/store_internal.h"

namespace spanprof {

using namespace store_detail;  // NOLINT(google-build-using-namespace)
using namespace rows_codec;    // NOLINT(google-build-using-namespace)

using json = nlohmann::json;

void Store::Resolved::reset(const RawProfile& p) {
  locs.assign(p.frames.size(), 0);
  frame_hash.resize(p.frames.size());
  for (size_t i = 0; i < p.frames.size(); ++i)
    frame_hash[i] = store_detail::frame_hash(p.frames[i]);
  frame_hit.assign(p.frames.size(), 0);
  stacks.assign(p.samples.size(), 0);
  stack_hit.assign(p.samples.size(), 0);
}

// Runs on the caller's (HTTP worker's) thread, in parallel with other requests: looks up every
// frame and stack already in the dictionary, so the single writer thread only interns what is
// new, and counts what is new (Job::dict_left). Ids are only trusted by the writer if no
// rollback or collection changed the dictionary since (revalidate()). The shared lock is let go
// every kResolveChunk lookups: a profile of 200k new names must not keep the writer (which
// needs the lock exclusively for every batch) waiting for its whole lookup (a waiting
// writer gets the lock when its last reader lets go).
void Store::resolve(Job& j) {
  constexpr size_t kResolveChunk = 1024;
  std::shared_lock g(dict_mu_);
  size_t since_lock = 0;
  // False when the dictionary changed under a pause: what was found may be stale.
  auto pause = [&] {
    if (++since_lock < kResolveChunk) return true;
    since_lock = 0;
    g.unlock();
    g.lock();
    return j.epoch == dict_epoch_;
  };
  auto attempt = [&]() -> bool {
    j.epoch = dict_epoch_;
    j.resolved.resize(j.profiles.size());
    j.dict_left = 0;
    std::string blob;
    std::vector<uint32_t> locs;
    for (size_t k = 0; k < j.profiles.size(); ++k) {
      const RawProfile& p = j.profiles[k];
      Resolved& r = j.resolved[k];
      r.reset(p);
      for (size_t i = 0; i < p.frames.size(); ++i) {
        if (!pause()) return false;
        const RawFrame& fr = p.frames[i];
        auto fast = frame_locs_.find(r.frame_hash[i]);
        if (fast != frame_locs_.end() && frame_is(fast->second, fr)) {
          r.locs[i] = fast->second;
          r.frame_hit[i] = 1;
          continue;
        }
        r.locs[i] = find_location(fr);
        j.dict_left += !r.locs[i];
      }
      for (size_t i = 0; i < p.samples.size(); ++i) {
        if (size_t d = dup_of(p, i); d != i) {
          r.stacks[i] = r.stacks[d];
          r.stack_hit[i] = r.stack_hit[d];
          continue;
        }
        if (!pause()) return false;
        locs.clear();
        bool known = true;
        for (auto f : p.samples[i].frames) {
          if (!r.locs[f]) {
            known = false;
            break;
          }
          locs.push_back(r.locs[f]);
        }
        if (!known) {
          ++j.dict_left;
          continue;
        }
        auto fast = stack_locs_.find(stack_hash(locs));
        if (fast != stack_locs_.end() && fast->second < stacks_.size() &&
            stacks_[fast->second] == locs) {
          r.stacks[i] = fast->second;
          r.stack_hit[i] = 1;
          continue;
        }
        blob.clear();
        for (auto l : locs) put_varint(blob, l);
        auto it = stack_ids_.find(blob);
        if (it != stack_ids_.end()) r.stacks[i] = it->second;
        j.dict_left += !r.stacks[i];
      }
    }
    return true;
  };
  for (int tries = 0; tries < 3; ++tries)
    if (attempt()) return;
  // The dictionary keeps changing (collection at the disk budget): the writer looks everything
  // up again (revalidate()), counted as new.
  j.dict_left = 0;
  for (auto& p : j.profiles) j.dict_left += p.frames.size() + p.samples.size();
}

uint32_t Store::find_location(const RawFrame& fr) const {
  auto n = string_ids_.find(fr.function);
  if (n == string_ids_.end()) return 0;
  auto f = string_ids_.find(fr.file);
  if (f == string_ids_.end()) return 0;
  auto fn = function_ids_.find(uint64_t(n->second) << 32 | f->second);
  if (fn == function_ids_.end()) return 0;
  auto l = location_ids_.find(loc_key(fn->second, fr.line));
  return l == location_ids_.end() ? 0 : l->second;
}

bool Store::frame_is(uint32_t loc, const RawFrame& f) const {
  if (loc == 0 || loc >= locations_.size()) return false;
  const Loc& l = locations_[loc];
  if (l.line != f.line || l.function >= functions_.size()) return false;
  auto [name, file] = functions_[l.function];
  return strings_[name] == f.function && strings_[file] == f.file;
}

void Store::mark() {
  batch_stack_refs_.clear();
  batch_series_refs_.clear();
  std::shared_lock g(dict_mu_);
  size_t pending;
  {
    std::lock_guard p(pending_mu_);
    pending = pending_spans_.size();
  }
  mark_ = {strings_.size(),     functions_.size(),     locations_.size(), stacks_.size(),
           tenants_.size(),     series_.size(),        pending,           next_profile_id_,
           sample_rows_.load(), profiles_count_.load()};
}

void Store::rollback_memory() {
  decltype(frame_locs_) old_frames, old_stacks;  // freed after the lock is let go
  std::unique_lock g(dict_mu_);
  // Undo the reference counts this batch added (add_new_refs() and write_rows()).
  for (auto s : batch_stack_refs_)
    if (s < stack_refs_.size() && --stack_refs_[s] == 0) stack_cand_.push_back(s);
  for (auto s : batch_series_refs_)
    if (size_t(s) < series_refs_.size() && --series_refs_[size_t(s)] == 0)
      series_cand_.push_back(s);
  batch_stack_refs_.clear();
  batch_series_refs_.clear();
  for (size_t s = mark_.stacks; s < refs_synced_.stacks; ++s)
    for (auto l : stacks_[s])
      if (l < mark_.locations) --loc_refs_[l];
  for (size_t l = mark_.locations; l < refs_synced_.locs; ++l)
    if (locations_[l].function < mark_.functions) --func_refs_[locations_[l].function];
  for (size_t f = mark_.functions; f < refs_synced_.funcs; ++f)
    for (uint32_t x : {functions_[f].first, functions_[f].second})
      if (x < mark_.strings) --string_refs_[x];
  refs_synced_ = {std::min(refs_synced_.stacks, mark_.stacks),
                  std::min(refs_synced_.locs, mark_.locations),
                  std::min(refs_synced_.funcs, mark_.functions)};
  stack_refs_.resize(std::min(stack_refs_.size(), mark_.stacks));
  loc_refs_.resize(std::min(loc_refs_.size(), mark_.locations));
  func_refs_.resize(std::min(func_refs_.size(), mark_.functions));
  string_refs_.resize(std::min(string_refs_.size(), mark_.strings));
  series_refs_.resize(std::min(series_refs_.size(), mark_.series));
  for (size_t i = mark_.strings; i < strings_.size(); ++i) string_ids_.erase(strings_[i]);
  strings_.resize(mark_.strings);
  for (size_t i = mark_.functions; i < functions_.size(); ++i)
    function_ids_.erase(uint64_t(functions_[i].first) << 32 | functions_[i].second);
  functions_.resize(mark_.functions);
  for (size_t i = mark_.locations; i < locations_.size(); ++i)
    location_ids_.erase(loc_key(locations_[i].function, locations_[i].line));
  locations_.resize(mark_.locations);
  for (size_t i = mark_.stacks; i < stacks_.size(); ++i) {
    std::string b;
    for (auto x : stacks_[i]) put_varint(b, x);
    stack_ids_.erase(b);
  }
  stacks_.resize(mark_.stacks);
  frame_locs_.swap(old_frames);
  stack_locs_.swap(old_stacks);
  for (size_t i = mark_.tenants; i < tenants_.size(); ++i) tenant_ids_.erase(tenants_[i]);
  tenants_.resize(mark_.tenants);
  for (size_t i = mark_.series; i < series_.size(); ++i) {
    series_ids_.erase(labels_key(series_[i].tenant, series_[i].labels));
    --tenant_series_[series_[i].tenant];
  }
  series_.resize(mark_.series);
  {
    std::lock_guard p(pending_mu_);
    pending_spans_.resize(std::min(pending_spans_.size(), mark_.pending_spans));
  }
  ++dict_epoch_;
  next_profile_id_ = mark_.next_profile_id;
  sample_rows_ = mark_.sample_rows;
  profiles_count_ = mark_.profiles_count;
}

uint32_t Store::tenant_id_locked(const std::string& t) {
  auto it = tenant_ids_.find(t);
  if (it != tenant_ids_.end()) return it->second;
  uint32_t id = uint32_t(tenants_.size());
  Stmt(wdb_, "INSERT INTO tenants(id, name) VALUES(?, ?)").bind(1, id).bind(2, t).run();
  tenants_.push_back(t);
  tenant_ids_[t] = id;
  return id;
}

int Store::tenant_lookup(const std::string& t) const {
  std::shared_lock g(dict_mu_);
  auto it = tenant_ids_.find(t);
  return it == tenant_ids_.end() ? -1 : int(it->second);
}

namespace {
// The id of `key` in a dictionary (ids: key → id, entries: id → value), appended if new.
template <class Ids, class Key, class Entries, class Value>
uint32_t intern_entry(Ids& ids, const Key& key, Entries& entries, Value&& value) {
  auto [it, added] = ids.try_emplace(key, uint32_t(entries.size()));
  if (added) entries.push_back(std::forward<Value>(value));
  return it->second;
}
}  // namespace

void Store::intern_stacks(const RawProfile& p, Resolved& r, size_t& budget) {
  for (size_t i = 0; i < p.frames.size(); ++i) {
    const RawFrame& fr = p.frames[i];
    if (!r.locs[i]) {
      if (budget == 0) return;
      --budget;
      uint32_t n = intern_entry(string_ids_, fr.function, strings_, fr.function);
      uint32_t f = intern_entry(string_ids_, fr.file, strings_, fr.file);
      uint32_t fid =
          intern_entry(function_ids_, uint64_t(n) << 32 | f, functions_, std::pair{n, f});
      r.locs[i] = intern_entry(location_ids_, loc_key(fid, fr.line), locations_, Loc{fid, fr.line});
    }
    if (!r.frame_hit[i]) {
      frame_locs_.insert_or_assign(r.frame_hash[i], r.locs[i]);
      r.frame_hit[i] = 1;
    }
  }
  std::string blob;
  std::vector<uint32_t> locs;
  for (size_t i = 0; i < p.samples.size(); ++i) {
    if (size_t d = dup_of(p, i); d != i) {
      r.stacks[i] = r.stacks[d];
      continue;
    }
    if (r.stack_hit[i]) continue;
    locs.clear();
    for (auto f : p.samples[i].frames) locs.push_back(r.locs[f]);
    if (!r.stacks[i]) {
      if (budget == 0) return;
      --budget;
      blob.clear();
      for (auto l : locs) put_varint(blob, l);
      r.stacks[i] = intern_entry(stack_ids_, blob, stacks_, locs);
    }
    stack_locs_.insert_or_assign(stack_hash(locs), r.stacks[i]);
    r.stack_hit[i] = 1;
  }
}

Store::DictSizes Store::dict_sizes() const {
  return {strings_.size(), functions_.size(), locations_.size(), stacks_.size()};
}

// Only the writer thread appends to the dictionary, so the entries past `from` are the ones it
// interned since, and it reads them without dict_mu_.
Status Store::insert_new_entries(const DictSizes& from) {
  // Rows [first, end) of one table: bind(statement, id) binds all but the id.
  auto insert = [&](size_t first, size_t end, Stmt& st, const char* what, auto&& bind) -> Status {
    for (size_t i = first; i < end; ++i) {
      bind(st.bind(1, int64_t(i)), i);
      if (st.run() != SQLITE_DONE) return db_error(wdb_, what);
    }
    return std::nullopt;
  };
  if (auto e = insert(from.strings, strings_.size(), ws_->string,
                      "insert string: ", [&](Stmt& st, size_t i) { st.bind(2, strings_[i]); }))
    return e;
  if (auto e = insert(from.functions, functions_.size(), ws_->function,
                      "insert function: ", [&](Stmt& st, size_t i) {
                        st.bind(2, functions_[i].first).bind(3, functions_[i].second);
                      }))
    return e;
  if (auto e = insert(from.locations, locations_.size(), ws_->location,
                      "insert location: ", [&](Stmt& st, size_t i) {
                        st.bind(2, locations_[i].function).bind(3, locations_[i].line);
                      }))
    return e;
  std::string blob;  // bound as a static blob: outlives each run()
  return insert(from.stacks, stacks_.size(), ws_->stack, "insert stack: ", [&](Stmt& st, size_t i) {
    blob.clear();
    for (auto l : stacks_[i]) put_varint(blob, l);
    st.blob(2, blob);
  });
}

// The series of each label set p's samples use (the writer thread, dict_mu_ held), new ones
// counted against the tenant's --max-series-per-tenant.
Status Store::intern_series(const RawProfile& p, uint32_t tenant, const std::string& ptype,
                            std::vector<int64_t>& series_of_set) {
  series_of_set.assign(p.label_sets.size(), 0);
  std::vector<bool> used(p.label_sets.size(), false);
  for (auto& s : p.samples) used[s.label_set] = true;
  for (size_t ls = 0; ls < p.label_sets.size(); ++ls) {
    if (!used[ls]) continue;
    // Defaults first: sort_labels keeps the last of equal names, so given labels win over
    // the defaults and the derived ones win over everything.
    Labels l{{"service_name", "unknown_service"}, {"__name__", "process_cpu"}};
    l.insert(l.end(), p.series.begin(), p.series.end());
    l.insert(l.end(), p.label_sets[ls].begin(), p.label_sets[ls].end());
    l.insert(l.end(), {{"__profile_type__", ptype},
                       {"__type__", p.sample_type},
                       {"__unit__", p.sample_unit},
                       {"__period_type__", p.period_type},
                       {"__period_unit__", p.period_unit}});
    sort_labels(l);
    std::string key = labels_key(tenant, l);
    auto it = series_ids_.find(key);
    if (it != series_ids_.end()) {
      series_of_set[ls] = it->second;
      continue;
    }
    size_t& active = tenant_series_[tenant];
    if (opt_.max_series_per_tenant > 0 && active >= opt_.max_series_per_tenant)
      return Error{429, "resource_exhausted",
                   "tenant " + tenants_[tenant] + " has reached its limit of " +
                       std::to_string(opt_.max_series_per_tenant) +
                       " series (--max-series-per-tenant); profiles of existing series are "
                       "still accepted",
                   60};
    ++active;
    SeriesInfo si;
    si.id = int64_t(series_.size());
    si.tenant = tenant;
    si.profile_type = ptype;
    si.service = *find_label(l, "service_name");
    json j = json::array();
    for (auto& [k, v] : l) j.push_back({k, v});
    si.labels = std::move(l);
    Stmt(wdb_, "INSERT INTO series(id, tenant, labels) VALUES(?,?,?)")
        .bind(1, si.id)
        .bind(2, tenant)
        .bind(3, j.dump(-1, ' ', false, json::error_handler_t::replace))
        .run();
    series_ids_[key] = si.id;
    series_of_set[ls] = si.id;
    series_.push_back(std::move(si));
  }
  return std::nullopt;
}

}  // namespace spanprof
