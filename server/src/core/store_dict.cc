// The in-memory dictionary (strings, functions, locations, stacks, tenants, series): lookups by
// HTTP threads before a write is queued, interning by the writer, and its rollback when a
// transaction fails.
#include <nlohmann/json.hpp>

#include "core/store_internal.h"

namespace spanprof {

using namespace store_detail;  // NOLINT(google-build-using-namespace)
using namespace rows_codec;    // NOLINT(google-build-using-namespace)

using json = nlohmann::json;

// Runs on the caller's (HTTP worker's) thread, in parallel with other requests: looks up every
// frame and stack already in the dictionary, so the single writer thread only interns what is
// new. Ids are only trusted by the writer if no rollback truncated the dictionary since.
void Store::resolve(Job& j) {
  std::shared_lock g(dict_mu_);
  j.epoch = dict_epoch_;
  j.resolved.resize(j.profiles.size());
  std::string blob;
  std::vector<uint32_t> locs;
  for (size_t k = 0; k < j.profiles.size(); ++k) {
    const RawProfile& p = j.profiles[k];
    Resolved& r = j.resolved[k];
    r.locs.assign(p.frames.size(), 0);
    r.frame_hash.resize(p.frames.size());
    r.frame_hit.assign(p.frames.size(), 0);
    for (size_t i = 0; i < p.frames.size(); ++i) {
      const RawFrame& fr = p.frames[i];
      uint64_t h = r.frame_hash[i] = frame_hash(fr);
      auto fast = frame_locs_.find(h);
      if (fast != frame_locs_.end() && frame_is(fast->second, fr)) {
        r.locs[i] = fast->second;
        r.frame_hit[i] = 1;
        continue;
      }
      auto n = string_ids_.find(fr.function);
      if (n == string_ids_.end()) continue;
      auto f = string_ids_.find(fr.file);
      if (f == string_ids_.end()) continue;
      auto fn = function_ids_.find(uint64_t(n->second) << 32 | f->second);
      if (fn == function_ids_.end()) continue;
      auto l = location_ids_.find(loc_key(fn->second, fr.line));
      if (l != location_ids_.end()) r.locs[i] = l->second;
    }
    r.stacks.assign(p.samples.size(), 0);
    r.stack_hash.resize(p.samples.size());
    r.stack_hit.assign(p.samples.size(), 0);
    for (size_t i = 0; i < p.samples.size(); ++i) {
      if (size_t d = dup_of(p, i); d != i) {
        r.stacks[i] = r.stacks[d];
        r.stack_hash[i] = r.stack_hash[d];
        r.stack_hit[i] = r.stack_hit[d];
        continue;
      }
      locs.clear();
      bool known = true;
      for (auto f : p.samples[i].frames) {
        if (!r.locs[f]) {
          known = false;
          break;
        }
        locs.push_back(r.locs[f]);
      }
      if (!known) continue;
      uint64_t h = r.stack_hash[i] = stack_hash(locs);
      auto fast = stack_locs_.find(h);
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
    }
  }
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
  frame_locs_.clear();
  stack_locs_.clear();
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

// Interns p's frames and stacks (the writer thread, dict_mu_ held): stack_of_sample[i] = the
// stack id of sample i. `pre` = ids resolve() found, or null.
Status Store::intern_stacks(const RawProfile& p, const Resolved* pre,
                            std::vector<uint32_t>& stack_of_sample) {
  std::vector<uint32_t> loc_of_frame(p.frames.size());
  stack_of_sample.assign(p.samples.size(), 0);
  if (pre) {
    loc_of_frame = pre->locs;
    stack_of_sample = pre->stacks;
  }
  auto intern = [&](const std::string& s) -> uint32_t {
    auto it = string_ids_.find(s);
    if (it != string_ids_.end()) return it->second;
    uint32_t id = uint32_t(strings_.size());
    Stmt(wdb_, "INSERT INTO strings(id, s) VALUES(?, ?)").bind(1, id).bind(2, s).run();
    strings_.push_back(s);
    string_ids_[s] = id;
    return id;
  };
  for (size_t i = 0; i < p.frames.size(); ++i) {
    if (loc_of_frame[i]) continue;
    uint32_t n = intern(p.frames[i].function), f = intern(p.frames[i].file);
    uint64_t fk = uint64_t(n) << 32 | f;
    uint32_t fid;
    auto it = function_ids_.find(fk);
    if (it != function_ids_.end()) {
      fid = it->second;
    } else {
      fid = uint32_t(functions_.size());
      Stmt(wdb_, "INSERT INTO functions(id, name, file) VALUES(?,?,?)")
          .bind(1, fid)
          .bind(2, n)
          .bind(3, f)
          .run();
      functions_.push_back({n, f});
      function_ids_[fk] = fid;
    }
    uint64_t lk = loc_key(fid, p.frames[i].line);
    auto lt = location_ids_.find(lk);
    if (lt != location_ids_.end()) {
      loc_of_frame[i] = lt->second;
    } else {
      uint32_t lid = uint32_t(locations_.size());
      Stmt(wdb_, "INSERT INTO locations(id, function, line) VALUES(?,?,?)")
          .bind(1, lid)
          .bind(2, fid)
          .bind(3, p.frames[i].line)
          .run();
      locations_.push_back({fid, p.frames[i].line});
      location_ids_[lk] = lid;
      loc_of_frame[i] = lid;
    }
  }
  // Frames that missed the fast path (or were resolved without it) are added to it.
  for (size_t i = 0; i < p.frames.size(); ++i)
    if (!pre || !pre->frame_hit[i])
      frame_locs_.insert_or_assign(pre ? pre->frame_hash[i] : frame_hash(p.frames[i]),
                                   loc_of_frame[i]);
  Stmt& ins_stack = ws_->stack;
  std::string blob;
  std::vector<uint32_t> locs;
  for (size_t i = 0; i < p.samples.size(); ++i) {
    if (size_t d = dup_of(p, i); d != i) {
      stack_of_sample[i] = stack_of_sample[d];
      continue;
    }
    if (pre && pre->stack_hit[i]) continue;
    locs.clear();
    for (auto f : p.samples[i].frames) locs.push_back(loc_of_frame[f]);
    if (!stack_of_sample[i]) {
      blob.clear();
      for (auto l : locs) put_varint(blob, l);
      auto it = stack_ids_.find(blob);
      if (it != stack_ids_.end()) {
        stack_of_sample[i] = it->second;
      } else {
        uint32_t sid = uint32_t(stacks_.size());
        ins_stack.bind(1, sid).blob(2, blob);
        if (ins_stack.run() != SQLITE_DONE) return db_error(wdb_, "insert stack: ");
        stacks_.push_back(locs);
        stack_ids_[blob] = sid;
        stack_of_sample[i] = sid;
      }
    }
    stack_locs_.insert_or_assign(stack_hash(locs), stack_of_sample[i]);
  }
  return std::nullopt;
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
