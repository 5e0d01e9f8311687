#include "profile.h"

#include <algorithm>

namespace spanprof {
namespace {
inline size_t mix(size_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  return h;
}
}  // namespace

size_t SampleKeyHash::operator()(const SampleKey& k) const {
  size_t h = k.label_set;
  for (uint32_t l : k.locations) h = mix(h, l);
  return h;
}
size_t LocationHash::operator()(const Location& l) const {
  size_t h = mix(l.function, l.file);
  h = mix(h, static_cast<uint32_t>(l.line));
  return mix(h, static_cast<uint32_t>(l.start_line));
}
size_t LabelSetHash::operator()(const LabelSet& l) const {
  size_t h = l.size();
  for (auto& kv : l) h = mix(mix(h, kv.first), kv.second);
  return h;
}

Profile::Profile() {
  strings_.emplace_back();
  string_ids_.emplace(std::string(), 0);
  label_sets_.emplace_back();
  label_set_ids_.emplace(LabelSet{}, 0);
}

uint32_t Profile::intern(std::string_view s) {
  auto it = string_ids_.find(std::string(s));
  if (it != string_ids_.end()) return it->second;
  const auto id = static_cast<uint32_t>(strings_.size());
  strings_.emplace_back(s);
  string_ids_.emplace(strings_.back(), id);
  return id;
}

uint32_t Profile::location(const Location& loc) {
  auto it = location_ids_.find(loc);
  if (it != location_ids_.end()) return it->second;
  const auto id = static_cast<uint32_t>(locations_.size());
  locations_.push_back(loc);
  location_ids_.emplace(loc, id);
  return id;
}

uint32_t Profile::label_set(LabelSet labels) {
  std::sort(labels.begin(), labels.end());
  auto it = label_set_ids_.find(labels);
  if (it != label_set_ids_.end()) return it->second;
  const auto id = static_cast<uint32_t>(label_sets_.size());
  label_sets_.push_back(labels);
  label_set_ids_.emplace(std::move(labels), id);
  return id;
}

int64_t* Profile::add(SampleKey key, int64_t count) {
  int64_t& slot = samples_[std::move(key)];
  slot += count;
  total_ += count;
  return &slot;
}

void Profile::merge(const Profile& other) {
  const bool was_empty = total_ == 0;
  if (was_empty) {
    sample_type = other.sample_type;
    values_in_ns = other.values_in_ns;
  }
  if (&other == this) {
    for (auto& kv : samples_) kv.second *= 2;
    total_ *= 2;
    return;
  }
  std::vector<uint32_t> smap(other.strings_.size());
  for (size_t i = 0; i < other.strings_.size(); ++i) smap[i] = intern(other.strings_[i]);
  std::vector<uint32_t> lmap(other.locations_.size());
  for (size_t i = 0; i < other.locations_.size(); ++i) {
    const Location& l = other.locations_[i];
    lmap[i] = location(Location{smap[l.function], smap[l.file], l.line, l.start_line});
  }
  std::vector<uint32_t> lsmap(other.label_sets_.size());
  for (size_t i = 0; i < other.label_sets_.size(); ++i) {
    LabelSet ls;
    for (auto& kv : other.label_sets_[i]) ls.emplace_back(smap[kv.first], smap[kv.second]);
    lsmap[i] = label_set(std::move(ls));
  }
  for (auto& [key, count] : other.samples_) {
    SampleKey k{lsmap[key.label_set], {}};
    k.locations.reserve(key.locations.size());
    for (uint32_t l : key.locations) k.locations.push_back(lmap[l]);
    add(std::move(k), count);
  }
  if (was_empty || period_ns == 0) period_ns = other.period_ns;
  if (other.start_ns != 0 && (start_ns == 0 || other.start_ns < start_ns))
    start_ns = other.start_ns;
  end_ns = std::max(end_ns, other.end_ns);
}

}  // namespace spanprof
