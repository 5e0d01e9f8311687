// pprof (perftools.profiles profile.proto), read in place by core/pbwire.h.
#include <array>
#include <map>

#include "core/decode_internal.h"
#include "core/flat_hash.h"
#include "core/pbwire.h"

namespace spanprof {

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

}  // namespace spanprof
