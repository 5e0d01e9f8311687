#include "core/decode.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/jsontext.h"
#include "core/pbwire.h"
#include "core/util.h"
#include "otlp_profiles.pb.h"
#include "otlp_trace.pb.h"
#include "push.pb.h"

namespace spanprof {

using json = nlohmann::json;

std::string profile_type_id(const RawProfile& p) {
  const std::string* n = find_label(p.series, "__name__");
  return (n ? *n : std::string("process_cpu")) + ":" + p.sample_type + ":" + p.sample_unit + ":" +
         p.period_type + ":" + p.period_unit;
}

Status check_labels(const Labels& l, const Limits& lim) {
  size_t n = 0;
  for (auto& [k, v] : l) {
    if (k.rfind("__", 0) != 0) ++n;
    if (k.empty()) return bad_request("empty label name");
    if (k.size() > lim.max_label_name_length)
      return bad_request("label name longer than " + std::to_string(lim.max_label_name_length) +
                         ": " + k.substr(0, 64));
    if (v.size() > lim.max_label_value_length)
      return bad_request("value of label " + k + " longer than " +
                         std::to_string(lim.max_label_value_length));
    for (char c : k)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'))
        return bad_request("invalid character in label name: " + k.substr(0, 64));
  }
  if (n > lim.max_labels_per_series)
    return bad_request("series has " + std::to_string(n) + " labels, limit is " +
                       std::to_string(lim.max_labels_per_series));
  return std::nullopt;
}

// Per-sample labels that are span identity, never series labels: 0 none, 1 span_id (or its
// alias profile_id), 2 active_span_id, 3 trace_id.
static int8_t span_label_kind(const std::string& k) {
  if (k == "span_id" || k == "profile_id") return 1;
  if (k == "active_span_id") return 2;
  if (k == "trace_id") return 3;
  return 0;
}

static void set_span_label(int8_t kind, const std::string& v, SpanIds& ids) {
  uint64_t x, lo;
  if (kind == 1 && parse_hex_u64(v, x)) ids.span_id = x;
  if (kind == 2 && parse_hex_u64(v, x)) ids.active_span_id = x;
  if (kind == 3 && parse_hex_u128(v, x, lo)) ids.trace_hi = x, ids.trace_lo = lo;
}

static bool take_span_label(const std::string& k, const std::string& v, SpanIds& ids) {
  int8_t kind = span_label_kind(k);
  set_span_label(kind, v, ids);
  return kind != 0;
}

namespace {
// Dedups frames and label sets while building one RawProfile family (one per sample type).
struct Builder {
  std::map<std::tuple<std::string, std::string, int64_t>, uint32_t> frame_idx;
  std::map<Labels, uint32_t> label_idx;
  std::vector<RawFrame> frames;
  std::vector<Labels> label_sets{Labels{}};
  Builder() { label_idx[Labels{}] = 0; }
  uint32_t frame(const std::string& f, const std::string& file, int64_t line) {
    auto key = std::make_tuple(f, file, line);
    auto it = frame_idx.find(key);
    if (it != frame_idx.end()) return it->second;
    uint32_t i = uint32_t(frames.size());
    frames.push_back({f, file, line});
    frame_idx.emplace(std::move(key), i);
    return i;
  }
  uint32_t labels(Labels l) {
    sort_labels(l);
    auto it = label_idx.find(l);
    if (it != label_idx.end()) return it->second;
    uint32_t i = uint32_t(label_sets.size());
    label_sets.push_back(l);
    label_idx.emplace(std::move(l), i);
    return i;
  }
};

Status check_all_label_sets(const Labels& series, const std::vector<Labels>& sets,
                            const Limits& lim) {
  for (auto& s : sets) {
    Labels all = series;
    all.insert(all.end(), s.begin(), s.end());
    sort_labels(all);
    if (auto e = check_labels(all, lim)) return e;
  }
  return std::nullopt;
}
}  // namespace

namespace {
// A pprof read in place (views into the input): the tables needed to resolve samples, which may
// come before or after the samples in the message.
struct PprofView {
  struct Func {
    uint64_t id = 0;
    int64_t name = 0, file = 0;
  };
  struct Loc {
    uint64_t id = 0, address = 0;
    uint32_t lines_begin = 0, lines_end = 0;  // [begin, end) in `lines`, as written (callee first)
  };
  struct Line {
    uint64_t function = 0;
    int64_t line = 0;
  };
  std::vector<std::string_view> strings;
  std::vector<std::pair<int64_t, int64_t>> sample_types;  // (type, unit) string indices
  std::vector<std::string_view> samples;                  // undecoded Sample messages
  std::vector<Func> funcs;
  std::vector<Loc> locs;
  std::vector<Line> lines;
  std::pair<int64_t, int64_t> period_type{0, 0};
  bool has_period_type = false;
  int64_t time_nanos = 0, duration_nanos = 0, period = 0;
  std::string over_limit;  // set when reading stopped at a limit
};

// ValueType {1: type, 2: unit}; repeated occurrences merge field by field, as protobuf does.
void read_value_type(std::string_view m, std::pair<int64_t, int64_t>& vt, pb::Reader& outer) {
  pb::Reader r(m);
  uint32_t f, w;
  while (r.next(f, w)) {
    if (f == 1 && w == pb::kVarint)
      vt.first = int64_t(r.varint());
    else if (f == 2 && w == pb::kVarint)
      vt.second = int64_t(r.varint());
    else
      r.skip(w, f);
  }
  if (!r.ok()) outer.fail();
}

// Field numbers from perftools.profiles (profile.proto).
// Stops early (with v.over_limit set) past lim's samples or strings: a 57 KiB body can hold
// 20 M empty strings.
bool read_pprof(std::string_view data, const Limits& lim, PprofView& v) {
  pb::Reader r(data);
  uint32_t f, w;
  while (r.next(f, w)) {
    if (w == pb::kLen && f == 2) {
      if (v.samples.size() >= lim.max_samples_per_profile) {
        v.over_limit = "pprof has more than " + std::to_string(lim.max_samples_per_profile) +
                       " samples (--max-samples-per-profile)";
        return true;
      }
      v.samples.push_back(r.bytes());
    } else if (w == pb::kLen && f == 6) {
      if (v.strings.size() >= lim.max_strings_per_profile) {
        v.over_limit = "pprof string table has more than " +
                       std::to_string(lim.max_strings_per_profile) +
                       " entries (--max-strings-per-profile)";
        return true;
      }
      v.strings.push_back(r.bytes());
    } else if (w == pb::kLen && f == 4) {  // Location {1 id, 3 address, 4 line}
      pb::Reader m(r.bytes());
      PprofView::Loc loc;
      loc.lines_begin = loc.lines_end = uint32_t(v.lines.size());
      uint32_t lf, lw;
      while (m.next(lf, lw)) {
        if (lf == 1 && lw == pb::kVarint) {
          loc.id = m.varint();
        } else if (lf == 3 && lw == pb::kVarint) {
          loc.address = m.varint();
        } else if (lf == 4 && lw == pb::kLen) {  // Line {1 function_id, 2 line}
          pb::Reader ln(m.bytes());
          PprofView::Line line;
          uint32_t nf, nw;
          while (ln.next(nf, nw)) {
            if (nf == 1 && nw == pb::kVarint)
              line.function = ln.varint();
            else if (nf == 2 && nw == pb::kVarint)
              line.line = int64_t(ln.varint());
            else
              ln.skip(nw, nf);
          }
          if (!ln.ok()) m.fail();
          v.lines.push_back(line);
          loc.lines_end = uint32_t(v.lines.size());
        } else {
          m.skip(lw, lf);
        }
      }
      if (!m.ok()) r.fail();
      v.locs.push_back(loc);
    } else if (w == pb::kLen && f == 5) {  // Function {1 id, 2 name, 4 filename}
      pb::Reader m(r.bytes());
      PprofView::Func fn;
      uint32_t ff, fw;
      while (m.next(ff, fw)) {
        if (ff == 1 && fw == pb::kVarint)
          fn.id = m.varint();
        else if (ff == 2 && fw == pb::kVarint)
          fn.name = int64_t(m.varint());
        else if (ff == 4 && fw == pb::kVarint)
          fn.file = int64_t(m.varint());
        else
          m.skip(fw, ff);
      }
      if (!m.ok()) r.fail();
      v.funcs.push_back(fn);
    } else if (w == pb::kLen && f == 1) {
      v.sample_types.emplace_back(0, 0);
      read_value_type(r.bytes(), v.sample_types.back(), r);
    } else if (w == pb::kLen && f == 11) {
      v.has_period_type = true;
      read_value_type(r.bytes(), v.period_type, r);
    } else if (w == pb::kVarint && f == 9) {
      v.time_nanos = int64_t(r.varint());
    } else if (w == pb::kVarint && f == 10) {
      v.duration_nanos = int64_t(r.varint());
    } else if (w == pb::kVarint && f == 12) {
      v.period = int64_t(r.varint());
    } else {
      r.skip(w, f);
    }
  }
  return r.ok();
}

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  return x ^ (x >> 33);
}

// A hash of a byte run (8 bytes per step): for the packed location runs of samples.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  memcpy(&tail, s.data() + i, s.size() - i);
  return mix64(h ^ tail);
}

// Key → uint32 for at most `n` keys, chosen up front: open addressing in a power-of-two table
// at most half full, so no allocation per entry (a push inserts thousands).
template <class Key, class Hash>
class FlatMap {
 public:
  explicit FlatMap(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    slots_.assign(cap, kEmpty);
    keys_.reserve(n);
    vals_.reserve(n);
    limit_ = n;
  }
  // The value of `k` and false, or `v` newly stored for it and true. Past `n` keys nothing is
  // stored and the result is {v, true} each time (callers size the map from the input).
  std::pair<uint32_t, bool> try_emplace(const Key& k, uint32_t v) {
    const size_t mask = slots_.size() - 1;
    for (size_t i = size_t(Hash()(k)) & mask;; i = (i + 1) & mask) {
      uint32_t s = slots_[i];
      if (s == kEmpty) {
        if (keys_.size() >= limit_) return {v, true};
        slots_[i] = uint32_t(keys_.size());
        keys_.push_back(k);
        vals_.push_back(v);
        return {v, true};
      }
      if (keys_[s] == k) return {vals_[s], false};
    }
  }

 private:
  static constexpr uint32_t kEmpty = UINT32_MAX;
  std::vector<uint32_t> slots_;
  std::vector<Key> keys_;
  std::vector<uint32_t> vals_;
  size_t limit_ = 0;
};

// Maps the ids a writer chose to positions: a table when ids are dense (writers number 1..n),
// else a hash map. A later entry with the same id replaces an earlier one.
class IdIndex {
 public:
  template <class T>
  void build(const std::vector<T>& items) {
    uint64_t max_id = 0;
    for (auto& x : items) max_id = std::max(max_id, x.id);
    if (max_id <= 2 * items.size() + 64) {
      dense_.assign(max_id + 1, kNone);
      for (size_t i = 0; i < items.size(); ++i) dense_[items[i].id] = uint32_t(i);
    } else {
      sparse_.reserve(items.size());
      for (size_t i = 0; i < items.size(); ++i) sparse_[items[i].id] = uint32_t(i);
    }
  }
  // Position of `id`, or kNone.
  uint32_t find(uint64_t id) const {
    if (!dense_.empty() || sparse_.empty()) return id < dense_.size() ? dense_[id] : kNone;
    auto it = sparse_.find(id);
    return it == sparse_.end() ? kNone : it->second;
  }
  static constexpr uint32_t kNone = UINT32_MAX;

 private:
  std::vector<uint32_t> dense_;
  std::unordered_map<uint64_t, uint32_t> sparse_;
};
}  // namespace

Status decode_pprof(std::string_view data, const std::string& tenant, const Labels& series,
                    const Limits& lim, std::vector<RawProfile>& out,
                    const std::vector<std::pair<std::string, std::string>>* only_types) {
  // What earlier profiles of this request used of the per-request budgets.
  size_t rows_used = 0, bytes_used = 0;
  for (auto& o : out) rows_used += o.samples.size(), bytes_used += o.source_bytes;
  if (bytes_used >= lim.max_decompressed_bytes)
    return too_large("decoded profiles of this request exceed " +
                     std::to_string(lim.max_decompressed_bytes) +
                     " bytes (--max-decompressed-bytes)");
  std::string inflated;
  if (is_gzip(data)) {
    auto r = gunzip(data, lim.max_decompressed_bytes - bytes_used);
    if (!r) return r.error;
    inflated = std::move(*r);
    data = inflated;
  }
  if (data.size() > lim.max_decompressed_bytes - bytes_used)
    return too_large("decoded profiles of this request exceed " +
                     std::to_string(lim.max_decompressed_bytes) +
                     " bytes (--max-decompressed-bytes)");
  PprofView p;
  if (!read_pprof(data, lim, p)) return bad_request("raw_profile is not a valid pprof protobuf");
  if (!p.over_limit.empty()) return too_large(p.over_limit);
  const size_t out_begin = out.size();
  const auto& st = p.strings;
  bool ok = true;
  auto str = [&](int64_t i) -> std::string_view {
    if (i < 0 || uint64_t(i) >= st.size()) {
      ok = false;
      return {};
    }
    return st[size_t(i)];
  };
  if (p.sample_types.empty()) return bad_request("pprof has no sample_type");
  // Each sample becomes one row per sample type: 1 M samples × 40 types took 3.9 GB.
  if (p.samples.size() * p.sample_types.size() > lim.max_sample_rows_per_request - rows_used ||
      rows_used > lim.max_sample_rows_per_request)
    return too_large("request decodes to more than " +
                     std::to_string(lim.max_sample_rows_per_request) +
                     " sample rows (samples x sample types; --max-sample-rows)");
  IdIndex func_index, loc_index;
  func_index.build(p.funcs);
  loc_index.build(p.locs);
  Builder b;
  b.frames.reserve(p.lines.size() + 1);
  // Location position → [begin, end) in loc_frames: its frame indices, caller first (pprof
  // lists inlined lines callee first).
  using Range = std::pair<uint32_t, uint32_t>;
  std::vector<uint32_t> loc_frames;
  std::vector<Range> loc_range(p.locs.size());
  // Frames deduplicated by (function position, line) — integers, no string copies; the store
  // deduplicates again by name, file and line, so two function ids with equal strings still end
  // up as one location.
  struct PairHash {
    uint64_t operator()(const std::pair<uint32_t, int64_t>& k) const {
      return mix64(uint64_t(k.second) * 0x9E3779B97F4A7C15ull ^ k.first);
    }
  };
  FlatMap<std::pair<uint32_t, int64_t>, PairHash> frame_of(p.lines.size());
  for (size_t li = 0; li < p.locs.size(); ++li) {
    const auto& l = p.locs[li];
    uint32_t begin = uint32_t(loc_frames.size());
    for (uint32_t i = l.lines_end; i > l.lines_begin; --i) {
      const auto& ln = p.lines[i - 1];
      uint32_t fi = func_index.find(ln.function);
      if (fi == IdIndex::kNone) return bad_request("pprof line references an unknown function id");
      auto [frame, added] = frame_of.try_emplace({fi, ln.line}, uint32_t(b.frames.size()));
      if (added) {
        std::string_view name = str(p.funcs[fi].name), file = str(p.funcs[fi].file);
        if (!ok) return bad_request("pprof string index out of range");
        b.frames.push_back({std::string(name), std::string(file), ln.line});
      }
      loc_frames.push_back(frame);
    }
    if (loc_frames.size() == begin) {
      char buf[32];
      snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(l.address));
      loc_frames.push_back(b.frame(buf, "", 0));
    }
    loc_range[li] = {begin, uint32_t(loc_frames.size())};
  }
  // Location id → its frame when it has exactly one (the common case: no inlining), else
  // kMulti and the frames come from loc_range.
  constexpr uint32_t kMulti = UINT32_MAX;
  auto single_frame = [&](uint32_t li) {
    return loc_range[li].second - loc_range[li].first == 1 ? loc_frames[loc_range[li].first]
                                                           : kMulti;
  };
  int64_t time_ns = p.time_nanos > 0 ? p.time_nanos : now_ns();
  std::string ptype, punit;
  if (p.has_period_type) {
    ptype = std::string(str(p.period_type.first));
    punit = std::string(str(p.period_type.second));
  }
  if (!ok) return bad_request("pprof string index out of range");
  const size_t ntypes = p.sample_types.size();
  // Decode samples once, then fan out per value index.
  struct S {
    std::vector<uint32_t> frames;
    uint32_t label_set = 0;
    SpanIds ids;
  };
  std::vector<S> samples(p.samples.size());
  std::vector<int64_t> values(p.samples.size() * ntypes);
  std::vector<std::pair<int64_t, int64_t>> label_key;
  // Whether a label key (string index) names a span id: decided once per key, not per sample
  // label. -1 unknown, else span_label_kind().
  std::vector<int8_t> span_key(st.size(), -1);
  // Span ids repeat across a profile's samples: parse each (kind, value string) once.
  struct Parsed {
    int8_t state = -1;  // -1 not parsed yet, 0 not a valid id, 1 valid
    uint64_t hi = 0, lo = 0;
  };
  std::vector<std::array<Parsed, 2>> parsed_ids(st.size());  // [0] 64-bit, [1] 128-bit
  std::map<std::vector<std::pair<int64_t, int64_t>>, uint32_t> label_cache;
  std::vector<uint64_t> loc_ids;
  // Samples of one stack in different spans repeat the same packed location_id bytes: such a
  // sample copies the frames of the first one (and says so in RawSample::same_stack_as).
  struct RunHash {
    uint64_t operator()(std::string_view r) const { return hash_bytes(r); }
  };
  FlatMap<std::string_view, RunHash> stack_of_run(p.samples.size());
  std::vector<uint32_t> same_stack(p.samples.size(), RawSample::kNoSample);
  for (size_t si = 0; si < p.samples.size(); ++si) {
    S& x = samples[si];
    loc_ids.clear();
    label_key.clear();
    size_t nvalues = 0;
    bool bad_label = false;
    // The first packed location_id run, kept undecoded while it is the only one.
    std::string_view run;
    bool deferred = false;
    auto push_loc = [&loc_ids](uint64_t id) { loc_ids.push_back(id); };
    pb::Reader r(p.samples[si]);
    uint32_t f, w;
    while (r.next(f, w)) {
      if (f == 1) {  // location_id, packed or not; values concatenate in field order
        if (w == pb::kLen && loc_ids.empty() && !deferred && run.empty()) {
          run = r.bytes();
          deferred = true;
          continue;
        }
        if (deferred) r.packed(run, push_loc), deferred = false;
        r.varints(w, push_loc);
      } else if (f == 2) {  // value
        r.varints(w, [&](uint64_t v) {
          if (nvalues < ntypes) values[si * ntypes + nvalues] = int64_t(v);
          ++nvalues;
        });
      } else if (f == 3 && w == pb::kLen) {  // Label {1 key, 2 str, 3 num}
        pb::Reader lr(r.bytes());
        int64_t key = 0, sv = 0;
        uint32_t lf, lw;
        while (lr.next(lf, lw)) {
          if (lf == 1 && lw == pb::kVarint)
            key = int64_t(lr.varint());
          else if (lf == 2 && lw == pb::kVarint)
            sv = int64_t(lr.varint());
          else
            lr.skip(lw, lf);
        }
        if (!lr.ok()) r.fail();
        if (sv == 0) continue;  // numeric labels are not series labels
        if (key < 0 || sv < 0 || uint64_t(key) >= st.size() || uint64_t(sv) >= st.size()) {
          bad_label = true;
          continue;
        }
        int8_t& sk = span_key[size_t(key)];
        if (sk < 0) sk = span_label_kind(std::string(st[size_t(key)]));
        if (sk) {
          // Same effect as set_span_label(sk, v, x.ids), parsing each value string once.
          Parsed& pv = parsed_ids[size_t(sv)][sk == 3];
          if (pv.state < 0) {
            std::string_view v = st[size_t(sv)];
            pv.state = sk == 3 ? parse_hex_u128(v, pv.hi, pv.lo) : parse_hex_u64(v, pv.lo);
          }
          if (pv.state == 1) {
            if (sk == 1) x.ids.span_id = pv.lo;
            if (sk == 2) x.ids.active_span_id = pv.lo;
            if (sk == 3) x.ids.trace_hi = pv.hi, x.ids.trace_lo = pv.lo;
          }
          continue;
        }
        label_key.emplace_back(key, sv);
      } else {
        r.skip(w, f);
      }
    }
    if (!r.ok()) return bad_request("raw_profile is not a valid pprof protobuf");
    if (bad_label) return bad_request("pprof label string index out of range");
    if (deferred) {
      auto [first, added] = stack_of_run.try_emplace(run, uint32_t(si));
      if (!added) {
        same_stack[si] = first;
        x.frames = samples[first].frames;
      } else {
        r.packed(run, push_loc);
        if (!r.ok()) return bad_request("raw_profile is not a valid pprof protobuf");
      }
    }
    if (same_stack[si] == RawSample::kNoSample) x.frames.reserve(loc_ids.size());
    for (size_t i = loc_ids.size(); i-- > 0;) {
      uint32_t li = loc_index.find(loc_ids[i]);
      if (li == IdIndex::kNone)
        return bad_request("pprof sample references an unknown location id");
      uint32_t one = single_frame(li);
      if (one != kMulti) {
        x.frames.push_back(one);
      } else {
        x.frames.insert(x.frames.end(), loc_frames.begin() + loc_range[li].first,
                        loc_frames.begin() + loc_range[li].second);
      }
    }
    if (x.frames.size() > lim.max_stack_depth)
      return bad_request("stack depth " + std::to_string(x.frames.size()) + " exceeds limit " +
                         std::to_string(lim.max_stack_depth));
    // Label sets are looked up by their string indices; strings only on a miss.
    auto cached = label_cache.find(label_key);
    if (cached != label_cache.end()) {
      x.label_set = cached->second;
    } else {
      Labels l;
      for (auto& [k, v] : label_key)
        l.emplace_back(std::string(st[size_t(k)]), std::string(st[size_t(v)]));
      x.label_set = b.labels(std::move(l));
      label_cache.emplace(label_key, x.label_set);
    }
    if (nvalues != ntypes)
      return bad_request("pprof sample has a different number of values than sample types");
  }
  if (auto e = check_all_label_sets(series, b.label_sets, lim)) return e;
  for (size_t vi = 0; vi < ntypes; ++vi) {
    std::string type(str(p.sample_types[vi].first));
    std::string unit(str(p.sample_types[vi].second));
    if (!ok) return bad_request("pprof sample_type string index out of range");
    if (only_types) {
      bool found = false;
      for (auto& [t, display] : *only_types)
        if (t == type) {
          found = true;
          if (!display.empty()) type = display;
        }
      if (!found) continue;
    }
    RawProfile rp;
    rp.tenant = tenant;
    rp.series = series;
    rp.sample_type = type;
    rp.sample_unit = unit;
    rp.period_type = ptype;
    rp.period_unit = punit;
    rp.time_ns = time_ns;
    rp.duration_ns = p.duration_nanos;
    rp.period = p.period;
    bool last = vi + 1 == ntypes;  // the last type may take the buffers
    rp.frames = last ? std::move(b.frames) : b.frames;
    rp.label_sets = last ? std::move(b.label_sets) : b.label_sets;
    rp.samples.reserve(samples.size());
    // Index in rp.samples of the first emitted sample of each stack (samples of value 0 are
    // left out, so the decoder's indices do not carry over).
    std::vector<uint32_t> first_out(samples.size(), RawSample::kNoSample);
    for (size_t i = 0; i < samples.size(); ++i) {
      int64_t v = values[i * ntypes + vi];
      if (v == 0) continue;
      RawSample rs;
      uint32_t& first = first_out[same_stack[i] == RawSample::kNoSample ? i : same_stack[i]];
      if (first == RawSample::kNoSample)
        first = uint32_t(rp.samples.size());
      else
        rs.same_stack_as = first;
      rs.frames = last ? std::move(samples[i].frames) : samples[i].frames;
      rs.value = v;
      rs.ids = samples[i].ids;
      rs.label_set = samples[i].label_set;
      rp.samples.push_back(std::move(rs));
    }
    out.push_back(std::move(rp));
  }
  if (out.size() > out_begin) out[out_begin].source_bytes = std::max<size_t>(data.size(), 1);
  return std::nullopt;
}

Status parse_proto_message(std::string_view body, bool is_json, const Limits& lim,
                           google::protobuf::Message& m, const char* what) {
  if (is_json) {
    if (auto e = check_json_depth(body, lim.max_json_depth)) return e;
    google::protobuf::util::JsonParseOptions o;
    o.ignore_unknown_fields = true;
    auto st = google::protobuf::util::JsonStringToMessage(
        body.empty() ? std::string("{}") : std::string(body), &m, o);
    if (!st.ok()) return bad_request(std::string("invalid JSON ") + what + ": " + st.ToString());
    return std::nullopt;
  }
  if (!m.ParseFromArray(body.data(), int(body.size())))
    return bad_request(std::string("invalid protobuf ") + what);
  return std::nullopt;
}

namespace {
// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF):
// what protobuf requires of a proto3 string field.
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned c = *p++;
    if (c < 0x80) continue;
    int n;
    unsigned min;
    if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80, c &= 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800, c &= 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000, c &= 0x07;
    } else {
      return false;
    }
    if (end - p < n) return false;
    for (int i = 0; i < n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      c = c << 6 | (p[i] & 0x3f);
    }
    p += n;
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return false;
  }
  return true;
}

Error too_many_profiles(const Limits& lim) {
  return too_large("push carries more than " + std::to_string(lim.max_profiles_per_push) +
                   " profiles (--max-profiles-per-push)");
}

// PushRequest {1: RawProfileSeries {1: LabelPair {1 name, 2 value}, 2: RawSample {1 raw_profile,
// 2 ID}, 3: ProfileAnnotation}} (push.proto, types.proto) read in place: each raw profile is a
// view into the body, not a copy. It accepts exactly what the generated parser accepts
// (fuzz_push checks).
Status decode_push_proto(std::string_view body, const std::string& tenant, const Limits& lim,
                         std::vector<RawProfile>& out) {
  const Error invalid = bad_request("invalid protobuf PushRequest");
  size_t n_raw = 0;
  pb::Reader r(body);
  uint32_t f, w;
  std::vector<std::string_view> raws;
  while (r.next(f, w)) {
    if (f != 1 || w != pb::kLen) {
      r.skip(w, f);
      continue;
    }
    pb::Reader s(r.bytes());
    Labels series;
    raws.clear();
    uint32_t sf, sw;
    while (s.next(sf, sw)) {
      if (sf == 1 && sw == pb::kLen) {
        pb::Reader l(s.bytes());
        std::string_view name, value;
        uint32_t lf, lw;
        while (l.next(lf, lw)) {
          if (lf == 1 && lw == pb::kLen)
            name = l.bytes();
          else if (lf == 2 && lw == pb::kLen)
            value = l.bytes();
          else
            l.skip(lw, lf);
        }
        if (!l.ok() || !valid_utf8(name) || !valid_utf8(value)) return invalid;
        if (name.empty()) return bad_request("series label with an empty name");
        series.emplace_back(std::string(name), std::string(value));
      } else if (sf == 2 && sw == pb::kLen) {
        pb::Reader x(s.bytes());
        std::string_view raw;
        uint32_t xf, xw;
        while (x.next(xf, xw)) {
          if (xf == 1 && xw == pb::kLen) {
            raw = x.bytes();
          } else if (xf == 2 && xw == pb::kLen) {
            if (!valid_utf8(x.bytes())) return invalid;
          } else {
            x.skip(xw, xf);
          }
        }
        if (!x.ok()) return invalid;
        raws.push_back(raw);
      } else if (sf == 3 && sw == pb::kLen) {  // ProfileAnnotation {1 key, 2 value}: unused,
        pb::Reader a(s.bytes());               // but held to the same rules as the rest
        uint32_t af, aw;
        while (a.next(af, aw)) {
          if ((af == 1 || af == 2) && aw == pb::kLen) {
            if (!valid_utf8(a.bytes())) return invalid;
          } else {
            a.skip(aw, af);
          }
        }
        if (!a.ok()) return invalid;
      } else {
        s.skip(sw, sf);
      }
    }
    if (!s.ok()) return invalid;
    sort_labels(series);
    if (auto e = check_labels(series, lim)) return e;
    n_raw += raws.size();
    if (n_raw > lim.max_profiles_per_push) return too_many_profiles(lim);
    for (auto raw : raws)
      if (auto e = decode_pprof(raw, tenant, series, lim, out)) return e;
  }
  if (!r.ok()) return invalid;
  return std::nullopt;
}
}  // namespace

Status decode_push(std::string_view body, bool is_json, const std::string& tenant,
                   const Limits& lim, std::vector<RawProfile>& out) {
  if (!is_json) return decode_push_proto(body, tenant, lim, out);
  return decode_push_generated(body, true, tenant, lim, out);
}

Status decode_push_generated(std::string_view body, bool is_json, const std::string& tenant,
                             const Limits& lim, std::vector<RawProfile>& out) {
  google::protobuf::Arena arena;
  auto& req = *google::protobuf::Arena::CreateMessage<push::v1::PushRequest>(&arena);
  if (auto e = parse_proto_message(body, is_json, lim, req, "PushRequest")) return e;
  size_t n_raw = 0;
  for (auto& s : req.series()) {
    Labels series;
    for (auto& lp : s.labels()) {
      if (lp.name().empty()) return bad_request("series label with an empty name");
      series.emplace_back(lp.name(), lp.value());
    }
    sort_labels(series);
    if (auto e = check_labels(series, lim)) return e;
    n_raw += size_t(s.samples_size());
    if (n_raw > lim.max_profiles_per_push) return too_many_profiles(lim);
    for (auto& raw : s.samples())
      if (auto e = decode_pprof(raw.raw_profile(), tenant, series, lim, out)) return e;
  }
  return std::nullopt;
}

Status legacy_series(const LegacyParams& p, const Limits& lim, Labels& series,
                     std::string& suffix) {
  std::string_view n = p.name;
  if (n.empty()) return bad_request("query parameter 'name' is required");
  size_t brace = n.find('{');
  std::string_view app = n.substr(0, brace);
  Labels l;
  if (brace != std::string_view::npos) {
    if (n.back() != '}') return bad_request("name: tags must end with '}'");
    std::string_view tags = n.substr(brace + 1, n.size() - brace - 2);
    while (!tags.empty()) {
      size_t comma = tags.find(',');
      std::string_view kv = tags.substr(0, comma);
      size_t eq = kv.find('=');
      if (eq == std::string_view::npos) return bad_request("name: tag without '='");
      std::string k(kv.substr(0, eq)), v(kv.substr(eq + 1));
      if (k.empty()) return bad_request("name: empty tag key");
      l.emplace_back(k, v);
      if (comma == std::string_view::npos) break;
      tags = tags.substr(comma + 1);
    }
  }
  size_t dot = app.rfind('.');
  static const char* known[] = {"cpu",         "alloc_objects",  "alloc_space", "inuse_objects",
                                "inuse_space", "itimer",         "wall",        "goroutines",
                                "mutex_count", "mutex_duration", "block_count", "block_duration"};
  suffix = "cpu";
  if (dot != std::string_view::npos) {
    std::string_view s = app.substr(dot + 1);
    for (auto* k : known)
      if (s == k) {
        suffix = std::string(s);
        app = app.substr(0, dot);
        break;
      }
  }
  if (app.empty()) return bad_request("name: empty application name");
  l.emplace_back("service_name", std::string(app));
  l.emplace_back("__name__", suffix == "cpu" || suffix == "itimer" ? "process_cpu" : suffix);
  if (!p.spy_name.empty()) l.emplace_back("pyroscope_spy", p.spy_name);
  sort_labels(l);
  if (auto e = check_labels(l, lim)) return e;
  series = std::move(l);
  return std::nullopt;
}

Status decode_folded(std::string_view body, bool lines_format, const LegacyParams& p,
                     const std::string& tenant, const Limits& lim, std::vector<RawProfile>& out) {
  Labels series;
  std::string suffix;
  if (auto e = legacy_series(p, lim, series, suffix)) return e;
  if (p.sample_rate <= 0) return bad_request("sampleRate must be positive");
  RawProfile rp;
  rp.tenant = tenant;
  rp.series = series;
  bool cpu = suffix == "cpu" || suffix == "itimer" || suffix == "wall";
  int64_t mult = 1;
  if (cpu && p.units == "samples") {
    // Samples become nanoseconds so that legacy and push data merge: value × period.
    rp.period = 1'000'000'000LL / p.sample_rate;
    mult = rp.period;
  } else {
    rp.sample_type = suffix;
    rp.sample_unit = p.units == "bytes" ? "bytes" : p.units == "objects" ? "count" : p.units;
    rp.period_type = rp.sample_type;
    rp.period_unit = rp.sample_unit;
    rp.period = 1;
  }
  int64_t from = unix_to_ns(p.from), until = unix_to_ns(p.until);
  rp.time_ns = from > 0 ? from : now_ns();
  rp.duration_ns = until > from ? until - from : 0;
  Builder b;
  std::map<std::vector<uint32_t>, size_t> seen;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    std::string_view line = body.substr(pos, nl == std::string_view::npos ? body.npos : nl - pos);
    pos = nl == std::string_view::npos ? body.size() : nl + 1;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.remove_suffix(1);
    if (line.empty()) continue;
    int64_t count = 1;
    std::string_view stack = line;
    if (!lines_format) {
      size_t sp = line.rfind(' ');
      if (sp == std::string_view::npos) return bad_request("folded line without a count");
      std::string_view num = line.substr(sp + 1);
      count = 0;
      if (num.empty() || num.size() > 18) return bad_request("folded line has a bad count");
      for (char c : num) {
        if (c < '0' || c > '9') return bad_request("folded line has a bad count");
        count = count * 10 + (c - '0');
      }
      stack = line.substr(0, sp);
    }
    std::vector<uint32_t> frames;
    size_t s = 0;
    while (s <= stack.size()) {
      size_t semi = stack.find(';', s);
      std::string_view f = stack.substr(s, semi == std::string_view::npos ? stack.npos : semi - s);
      if (!f.empty()) frames.push_back(b.frame(std::string(f), "", 0));
      if (semi == std::string_view::npos) break;
      s = semi + 1;
    }
    if (frames.empty() || count == 0) continue;
    int64_t value;
    if (__builtin_mul_overflow(count, mult, &value))
      return bad_request("folded line: count x period exceeds int64");
    if (frames.size() > lim.max_stack_depth)
      return bad_request("stack depth " + std::to_string(frames.size()) + " exceeds limit " +
                         std::to_string(lim.max_stack_depth));
    auto it = seen.find(frames);
    if (it != seen.end()) {
      if (__builtin_add_overflow(rp.samples[it->second].value, value,
                                 &rp.samples[it->second].value))
        return bad_request("folded stack: summed value exceeds int64");
      continue;
    }
    if (rp.samples.size() >= lim.max_samples_per_profile)
      return too_large("too many distinct stacks in one upload");
    seen.emplace(frames, rp.samples.size());
    RawSample rs;
    rs.frames = std::move(frames);
    rs.value = value;
    rp.samples.push_back(std::move(rs));
  }
  rp.frames = std::move(b.frames);
  out.push_back(std::move(rp));
  return std::nullopt;
}

Status parse_sample_type_config(std::string_view text,
                                std::vector<std::pair<std::string, std::string>>& out) {
  constexpr size_t kConfigDepth = 8;  // {"type": {"display-name": ...}} needs 2
  if (auto e = check_json_depth(text, kConfigDepth)) return e;
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return bad_request("sample_type_config must be a JSON object");
  for (auto& [k, v] : j.items()) {
    std::string display;
    if (v.is_object() && v.contains("display-name") && v["display-name"].is_string())
      display = v["display-name"].get<std::string>();
    out.emplace_back(k, display);
  }
  return std::nullopt;
}

// ---- OTLP ----

static json any_to_json(const opentelemetry::proto::common::v1::AnyValue& v, int depth = 0) {
  using V = opentelemetry::proto::common::v1::AnyValue;
  if (depth > 16) return nullptr;
  switch (v.value_case()) {
    case V::kStringValue:
      return v.string_value();
    case V::kBoolValue:
      return v.bool_value();
    case V::kIntValue:
      return v.int_value();
    case V::kDoubleValue:
      return v.double_value();
    case V::kArrayValue: {
      json a = json::array();
      for (auto& x : v.array_value().values()) a.push_back(any_to_json(x, depth + 1));
      return a;
    }
    case V::kKvlistValue: {
      json o = json::object();
      for (auto& kv : v.kvlist_value().values()) o[kv.key()] = any_to_json(kv.value(), depth + 1);
      return o;
    }
    case V::kBytesValue:
      return base64_encode(v.bytes_value());
    default:
      return nullptr;
  }
}

static json attrs_to_json(
    const google::protobuf::RepeatedPtrField<opentelemetry::proto::common::v1::KeyValue>& kvs) {
  json o = json::object();
  for (auto& kv : kvs) o[kv.key()] = any_to_json(kv.value());
  return o;
}

static std::string any_to_string(const opentelemetry::proto::common::v1::AnyValue& v) {
  if (v.has_string_value()) return v.string_value();
  json j = any_to_json(v);
  return j.is_string() ? j.get<std::string>() : j.dump();
}

static Status parse_otlp(std::string_view body, bool is_json, const Limits& lim,
                         google::protobuf::Message& m, const char* what) {
  if (!is_json) return parse_proto_message(body, false, lim, m, what);
  std::string text;
  if (auto e = otlp_json_ids_to_base64(body, lim.max_json_depth, text)) return e;
  return parse_proto_message(text, true, lim, m, what);
}

Status decode_otlp_traces(std::string_view body, bool is_json, const std::string& tenant,
                          const Limits& lim, std::vector<SpanRow>& out) {
  opentelemetry::proto::trace::v1::ExportTraceServiceRequest req;
  if (auto e = parse_otlp(body, is_json, lim, req, "ExportTraceServiceRequest")) return e;
  for (auto& rs : req.resource_spans()) {
    std::string service = "unknown_service";
    for (auto& kv : rs.resource().attributes())
      if (kv.key() == "service.name") service = any_to_string(kv.value());
    json resource = attrs_to_json(rs.resource().attributes());
    for (auto& ss : rs.scope_spans()) {
      json scope = {{"name", ss.scope().name()}, {"version", ss.scope().version()}};
      for (auto& sp : ss.spans()) {
        SpanRow r;
        r.tenant = tenant;
        if (!bytes_u128(sp.trace_id(), r.trace_hi, r.trace_lo) || (r.trace_hi | r.trace_lo) == 0)
          return bad_request("span has an invalid trace_id (need 16 bytes, not all zero)");
        if (!bytes_u64(sp.span_id(), r.span_id) || r.span_id == 0)
          return bad_request("span has an invalid span_id (need 8 bytes, not all zero)");
        if (!sp.parent_span_id().empty() && !bytes_u64(sp.parent_span_id(), r.parent_span_id))
          return bad_request("span has an invalid parent_span_id");
        if (sp.name().size() > lim.max_label_value_length)
          return bad_request("span name longer than " + std::to_string(lim.max_label_value_length));
        r.name = sp.name();
        r.service = service;
        r.kind = sp.kind();
        r.start_ns = int64_t(sp.start_time_unix_nano());
        r.end_ns = int64_t(sp.end_time_unix_nano());
        r.status_code = sp.status().code();
        r.status_message = sp.status().message();
        json events = json::array();
        for (auto& ev : sp.events())
          events.push_back({{"name", ev.name()},
                            {"time_unix_nano", std::to_string(ev.time_unix_nano())},
                            {"attributes", attrs_to_json(ev.attributes())}});
        json d = {{"attributes", attrs_to_json(sp.attributes())},
                  {"events", events},
                  {"resource", resource},
                  {"scope", scope}};
        r.detail_json = d.dump(-1, ' ', false, json::error_handler_t::replace);
        out.push_back(std::move(r));
      }
    }
  }
  return std::nullopt;
}

// Counts the string_table entries of a binary ExportProfilesServiceRequest's dictionary (field 2,
// which protobuf merges when repeated; its field 5) in place, before the full parse: 20M empty
// strings are 40 MB of input but over a gigabyte as parsed std::strings.
static Status check_otlp_string_table(std::string_view body, size_t max) {
  size_t n = 0;
  pb::Reader r(body);
  uint32_t f, w;
  while (r.next(f, w)) {
    if (f != 2 || w != pb::kLen) {
      r.skip(w, f);
      continue;
    }
    pb::Reader d(r.bytes());
    while (d.next(f, w)) {
      if (f == 5 && w == pb::kLen) {
        d.bytes();
        if (++n > max)
          return too_large("OTLP string table has more than " + std::to_string(max) +
                           " entries (--max-strings-per-profile)");
      } else {
        d.skip(w, f);
      }
    }
  }
  return std::nullopt;  // malformed input is the full parse's to report
}

Status decode_otlp_profiles(std::string_view body, bool is_json, const std::string& tenant,
                            const Limits& lim, std::vector<RawProfile>& out) {
  namespace P = opentelemetry::proto::profiles::v1development;
  if (!is_json)
    if (auto e = check_otlp_string_table(body, lim.max_strings_per_profile)) return e;
  P::ExportProfilesServiceRequest req;
  if (auto e = parse_otlp(body, is_json, lim, req, "ExportProfilesServiceRequest")) return e;
  const auto& d = req.dictionary();
  if (size_t(d.string_table_size()) > lim.max_strings_per_profile)
    return too_large("OTLP string table has more than " +
                     std::to_string(lim.max_strings_per_profile) +
                     " entries (--max-strings-per-profile)");
  size_t n_profiles = 0, rows = 0;
  auto str = [&](int32_t i, bool& ok) -> std::string {
    if (i < 0 || i >= d.string_table_size()) {
      ok = false;
      return "";
    }
    return d.string_table(i);
  };
  bool ok = true;
  for (auto& rp : req.resource_profiles()) {
    Labels series;
    std::string service = "unknown_service";
    for (auto& kv : rp.resource().attributes())
      if (kv.key() == "service.name") service = any_to_string(kv.value());
    series.emplace_back("service_name", service);
    for (auto& sp : rp.scope_profiles()) {
      for (auto& prof : sp.profiles()) {
        RawProfile r;
        r.tenant = tenant;
        r.sample_type = str(prof.sample_type().type_strindex(), ok);
        r.sample_unit = str(prof.sample_type().unit_strindex(), ok);
        r.period_type = str(prof.period_type().type_strindex(), ok);
        r.period_unit = str(prof.period_type().unit_strindex(), ok);
        if (!ok) return bad_request("OTLP profile string index out of range");
        Labels s = series;
        s.emplace_back("__name__", r.sample_type == "cpu" || r.sample_type == "samples"
                                       ? "process_cpu"
                                       : r.sample_type);
        sort_labels(s);
        r.series = s;
        r.time_ns = prof.time_unix_nano() ? int64_t(prof.time_unix_nano()) : now_ns();
        r.duration_ns = int64_t(prof.duration_nano());
        r.period = prof.period();
        if (size_t(prof.samples_size()) > lim.max_samples_per_profile)
          return too_large("OTLP profile has more than " +
                           std::to_string(lim.max_samples_per_profile) +
                           " samples (--max-samples-per-profile)");
        if (++n_profiles > lim.max_profiles_per_push) return too_many_profiles(lim);
        rows += size_t(prof.samples_size());
        if (rows > lim.max_sample_rows_per_request)
          return too_large("request decodes to more than " +
                           std::to_string(lim.max_sample_rows_per_request) +
                           " sample rows (--max-sample-rows)");
        Builder b;
        for (auto& smp : prof.samples()) {
          RawSample rs;
          if (smp.stack_index() < 0 || smp.stack_index() >= d.stack_table_size())
            return bad_request("OTLP sample stack_index out of range");
          auto& stack = d.stack_table(smp.stack_index());
          if (size_t(stack.location_indices_size()) > lim.max_stack_depth)
            return bad_request("stack depth exceeds limit " + std::to_string(lim.max_stack_depth));
          for (int i = stack.location_indices_size() - 1; i >= 0; --i) {
            int32_t li = stack.location_indices(i);
            if (li < 0 || li >= d.location_table_size())
              return bad_request("OTLP location index out of range");
            auto& loc = d.location_table(li);
            for (int k = loc.lines_size() - 1; k >= 0; --k) {
              int32_t fi = loc.lines(k).function_index();
              if (fi < 0 || fi >= d.function_table_size())
                return bad_request("OTLP function index out of range");
              auto& f = d.function_table(fi);
              rs.frames.push_back(b.frame(str(f.name_strindex(), ok),
                                          str(f.filename_strindex(), ok), loc.lines(k).line()));
            }
            if (loc.lines_size() == 0) {
              char buf[32];
              snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(loc.address()));
              rs.frames.push_back(b.frame(buf, "", 0));
            }
          }
          if (rs.frames.size() > lim.max_stack_depth)
            return bad_request("stack depth exceeds limit " + std::to_string(lim.max_stack_depth));
          Labels l;
          for (int32_t ai : smp.attribute_indices()) {
            if (ai < 0 || ai >= d.attribute_table_size())
              return bad_request("OTLP attribute index out of range");
            auto& a = d.attribute_table(ai);
            std::string k = str(a.key_strindex(), ok);
            std::string v = a.value().has_string_value_strindex()
                                ? str(a.value().string_value_strindex(), ok)
                                : any_to_string(a.value());
            if (take_span_label(k, v, rs.ids)) continue;
            l.emplace_back(k, v);
          }
          if (smp.link_index() > 0) {
            if (smp.link_index() >= d.link_table_size())
              return bad_request("OTLP link_index out of range");
            auto& link = d.link_table(smp.link_index());
            uint64_t hi, lo, sid;
            if (bytes_u128(link.trace_id(), hi, lo)) rs.ids.trace_hi = hi, rs.ids.trace_lo = lo;
            if (bytes_u64(link.span_id(), sid)) {
              if (!rs.ids.active_span_id) rs.ids.active_span_id = sid;
              if (!rs.ids.span_id) rs.ids.span_id = sid;
            }
          }
          if (!ok) return bad_request("OTLP string index out of range");
          rs.label_set = b.labels(std::move(l));
          int64_t v = 0;
          for (auto x : smp.values()) v += x;
          if (smp.values_size() == 0) v = smp.timestamps_unix_nano_size();
          if (v == 0) continue;
          // OTLP values are event counts when the period is set: convert to the sample unit.
          rs.value = v;
          r.samples.push_back(std::move(rs));
        }
        if (auto e = check_all_label_sets(r.series, b.label_sets, lim)) return e;
        r.frames = std::move(b.frames);
        r.label_sets = std::move(b.label_sets);
        out.push_back(std::move(r));
      }
    }
  }
  return std::nullopt;
}

}  // namespace spanprof
