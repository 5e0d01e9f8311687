// Aggregated profile: identical (stack, label set) samples merged into one count. Self-contained
// (own string, location and label-set tables) so profiles can be merged, kept and encoded after
// the process state they came from is gone.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace spanprof {

struct Location {
  uint32_t function;  // string id of the qualified name
  uint32_t file;      // string id
  int32_t line;
  int32_t start_line;  // first line of the function
  bool operator==(const Location& o) const {
    return function == o.function && file == o.file && line == o.line && start_line == o.start_line;
  }
};

using LabelSet = std::vector<std::pair<uint32_t, uint32_t>>;  // (key, value) string ids, by key

struct SampleKey {
  uint32_t label_set;
  std::vector<uint32_t> locations;  // leaf first
  bool operator==(const SampleKey& o) const {
    return label_set == o.label_set && locations == o.locations;
  }
};

struct SampleKeyHash {
  size_t operator()(const SampleKey& k) const;
};
struct LocationHash {
  size_t operator()(const Location& l) const;
};
struct LabelSetHash {
  size_t operator()(const LabelSet& l) const;
};

class Profile {
 public:
  Profile();

  uint32_t intern(std::string_view s);
  uint32_t location(const Location& loc);
  uint32_t label_set(LabelSet labels);  // sorts by key
  // Returns the sample's slot: stable until the profile is destroyed (node-based map), so a
  // repeated sample can be added with add_to() without hashing its stack again.
  int64_t* add(SampleKey key, int64_t count);
  void add_to(int64_t* slot, int64_t count) {
    *slot += count;
    total_ += count;
  }
  void merge(const Profile& other);

  int64_t sample_count() const { return total_; }
  const std::string& str(uint32_t id) const { return strings_[id]; }
  const std::vector<std::string>& strings() const { return strings_; }
  const std::vector<Location>& locations() const { return locations_; }
  const std::vector<LabelSet>& label_sets() const { return label_sets_; }
  const std::unordered_map<SampleKey, int64_t, SampleKeyHash>& samples() const { return samples_; }

  int64_t start_ns = 0;
  int64_t end_ns = 0;
  int64_t period_ns = 10'000'000;
  // CPU profiles count samples (one period each); wall profiles hold nanoseconds.
  std::string sample_type = "cpu";
  bool values_in_ns = false;
  int64_t value_of(int64_t count) const { return values_in_ns ? count : count * period_ns; }

 private:
  std::vector<std::string> strings_;  // [0] = ""
  std::unordered_map<std::string, uint32_t> string_ids_;
  std::vector<Location> locations_;
  std::unordered_map<Location, uint32_t, LocationHash> location_ids_;
  std::vector<LabelSet> label_sets_;  // [0] = no labels
  std::unordered_map<LabelSet, uint32_t, LabelSetHash> label_set_ids_;
  std::unordered_map<SampleKey, int64_t, SampleKeyHash> samples_;
  int64_t total_ = 0;
};

// Encoders (encode.cc). Labels whose key is in `drop` are removed before re-aggregation.
using DropSet = std::unordered_set<std::string>;
std::string encode_pprof(const Profile& p, const DropSet& drop);
std::string encode_collapsed(const Profile& p, const DropSet& drop);
std::string encode_speedscope(const Profile& p, std::string_view name);
std::string encode_otlp(const Profile& p,
                        const std::vector<std::pair<std::string, std::string>>& resource,
                        std::string_view scope_name, const DropSet& drop);

}  // namespace spanprof
