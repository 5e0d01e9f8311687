// Encoders for Profile: pprof (perftools.profiles.Profile), collapsed stacks, speedscope JSON and
// OTLP profiles (ExportProfilesServiceRequest, opentelemetry.proto.profiles.v1development as of
// opentelemetry-proto commit ac2c4b5, Aug 2026). The protobuf writer is minimal and hand-written:
// only the wire types these messages use.
#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>

#include "profile.h"

namespace spanprof {
namespace {

class Pb {
 public:
  void varint(uint64_t v) {
    while (v >= 0x80) {
      buf_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    buf_.push_back(static_cast<char>(v));
  }
  void key(uint32_t field, uint32_t wire) { varint((static_cast<uint64_t>(field) << 3) | wire); }
  void u64(uint32_t field, uint64_t v) {  // omitted when zero (proto3 default)
    if (v == 0) return;
    key(field, 0);
    varint(v);
  }
  void i64(uint32_t field, int64_t v) { u64(field, static_cast<uint64_t>(v)); }
  void fixed64(uint32_t field, uint64_t v) {
    if (v == 0) return;
    key(field, 1);
    for (int i = 0; i < 8; ++i) buf_.push_back(static_cast<char>(v >> (8 * i)));
  }
  void bytes(uint32_t field, std::string_view s) {
    key(field, 2);
    varint(s.size());
    buf_.append(s);
  }
  void bytes_always(uint32_t field, std::string_view s) { bytes(field, s); }
  void message(uint32_t field, const Pb& m) { bytes(field, m.buf_); }
  template <typename It>
  void packed(uint32_t field, It begin, It end) {
    if (begin == end) return;
    Pb tmp;
    for (It it = begin; it != end; ++it) tmp.varint(static_cast<uint64_t>(*it));
    bytes(field, tmp.buf_);
  }
  const std::string& data() const { return buf_; }
  std::string take() { return std::move(buf_); }

 private:
  std::string buf_;
};

// Samples re-aggregated after dropping labels; label sets are vectors of (key, value) string ids.
// `extra[i]` (optional) is a per-original-label-set value kept in the key (the OTLP link index).
struct Flat {
  std::vector<LabelSet> label_sets;
  // (flat label set, extra, locations) -> count; ordered for stable output
  std::map<std::tuple<uint32_t, int32_t, std::vector<uint32_t>>, int64_t> samples;
};

Flat flatten(const Profile& p, const DropSet& drop, const std::vector<int32_t>* extra = nullptr) {
  Flat f;
  std::vector<uint32_t> remap(p.label_sets().size());
  std::map<LabelSet, uint32_t> ids;
  for (size_t i = 0; i < p.label_sets().size(); ++i) {
    LabelSet ls;
    for (auto& kv : p.label_sets()[i]) {
      if (drop.count(p.str(kv.first)) == 0) ls.push_back(kv);
    }
    auto it = ids.find(ls);
    if (it == ids.end()) {
      it = ids.emplace(ls, static_cast<uint32_t>(f.label_sets.size())).first;
      f.label_sets.push_back(ls);
    }
    remap[i] = it->second;
  }
  for (auto& [key, count] : p.samples()) {
    const int32_t x = extra != nullptr ? (*extra)[key.label_set] : 0;
    f.samples[{remap[key.label_set], x, key.locations}] += count;
  }
  return f;
}

// Function identity for pprof/OTLP: (name, file, start_line).
struct Functions {
  std::map<std::tuple<uint32_t, uint32_t, int32_t>, uint32_t> ids;  // -> index (0-based)
  std::vector<std::tuple<uint32_t, uint32_t, int32_t>> list;
  std::vector<uint32_t> of_location;
  explicit Functions(const Profile& p) {
    for (const Location& l : p.locations()) {
      auto k = std::make_tuple(l.function, l.file, l.start_line);
      auto it = ids.find(k);
      if (it == ids.end()) {
        it = ids.emplace(k, static_cast<uint32_t>(list.size())).first;
        list.push_back(k);
      }
      of_location.push_back(it->second);
    }
  }
};

std::string frame_text(const Profile& p, uint32_t loc) {
  const Location& l = p.locations()[loc];
  std::string s = p.str(l.function);
  s += " (";
  s += p.str(l.file);
  s += ':';
  s += std::to_string(l.line);
  s += ')';
  return s;
}

void json_string(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool unhex(const std::string& s, size_t n, std::string* out) {
  if (s.size() != 2 * n) return false;
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const int a = hexval(s[2 * i]), b = hexval(s[2 * i + 1]);
    if (a < 0 || b < 0) return false;
    (*out)[i] = static_cast<char>(a * 16 + b);
  }
  return true;
}

}  // namespace

std::string encode_pprof(const Profile& p, const DropSet& drop) {
  const Flat f = flatten(p, drop);
  const Functions fn(p);
  // Our string table is reused as is; pprof's [0] = "" matches ours. Type strings appended.
  std::vector<std::string> strings = p.strings();
  auto add_string = [&strings](const char* s) {
    strings.emplace_back(s);
    return static_cast<int64_t>(strings.size() - 1);
  };
  const int64_t s_cpu = add_string(p.sample_type.c_str());
  const int64_t s_ns = add_string("nanoseconds");

  Pb out;
  Pb vt;
  vt.i64(1, s_cpu);
  vt.i64(2, s_ns);
  out.message(1, vt);  // sample_type
  for (auto& [key, count] : f.samples) {
    const auto& [label_set, unused, stack] = key;
    (void)unused;
    Pb s;
    std::vector<uint64_t> ids;
    ids.reserve(stack.size());
    for (uint32_t l : stack) ids.push_back(l + 1);
    s.packed(1, ids.begin(), ids.end());
    const int64_t value = p.value_of(count);
    s.packed(2, &value, &value + 1);
    for (auto& kv : f.label_sets[label_set]) {
      Pb lab;
      lab.i64(1, kv.first);
      lab.i64(2, kv.second);
      s.message(3, lab);
    }
    out.message(2, s);
  }
  for (size_t i = 0; i < p.locations().size(); ++i) {  // location
    const Location& l = p.locations()[i];
    Pb loc;
    loc.u64(1, i + 1);
    Pb line;
    line.u64(1, fn.of_location[i] + 1);
    line.i64(2, l.line);
    loc.message(4, line);
    out.message(4, loc);
  }
  for (size_t i = 0; i < fn.list.size(); ++i) {  // function
    auto [name, file, start] = fn.list[i];
    Pb m;
    m.u64(1, i + 1);
    m.i64(2, name);
    m.i64(3, name);
    m.i64(4, file);
    m.i64(5, start);
    out.message(5, m);
  }
  for (auto& s : strings) out.bytes_always(6, s);  // string_table, [0] = ""
  out.i64(9, p.start_ns);                          // time_nanos
  out.i64(10, p.end_ns > p.start_ns ? p.end_ns - p.start_ns : 0);
  out.message(11, vt);       // period_type
  out.i64(12, p.period_ns);  // period
  return out.take();
}

std::string encode_collapsed(const Profile& p, const DropSet&) {
  // Labels do not exist in this format: samples are merged by stack.
  std::map<std::string, int64_t> lines;
  std::vector<std::string> text(p.locations().size());
  for (size_t i = 0; i < text.size(); ++i) text[i] = frame_text(p, static_cast<uint32_t>(i));
  for (auto& [key, count] : p.samples()) {
    std::string line;
    for (auto it = key.locations.rbegin(); it != key.locations.rend(); ++it) {
      if (!line.empty()) line.push_back(';');
      line += text[*it];
    }
    lines[line] += count;
  }
  std::string out;
  for (auto& [line, count] : lines) {
    out += line;
    out.push_back(' ');
    out += std::to_string(count);
    out.push_back('\n');
  }
  return out;
}

std::string encode_speedscope(const Profile& p, std::string_view name) {
  std::string out =
      R"({"$schema":"https://www.speedscope.app/file-format-schema.json","shared":{"frames":[)";
  for (size_t i = 0; i < p.locations().size(); ++i) {
    const Location& l = p.locations()[i];
    if (i) out.push_back(',');
    out += R"({"name":)";
    json_string(&out, p.str(l.function));
    out += R"(,"file":)";
    json_string(&out, p.str(l.file));
    out += R"(,"line":)";
    out += std::to_string(l.line);
    out.push_back('}');
  }
  std::map<std::vector<uint32_t>, int64_t> stacks;
  int64_t total = 0;
  for (auto& [key, count] : p.samples()) {
    stacks[key.locations] += count;
    total += p.value_of(count);
  }
  out += R"(]},"profiles":[{"type":"sampled","name":)";
  json_string(&out, name);
  out += R"(,"unit":"nanoseconds","startValue":0,"endValue":)";
  out += std::to_string(total);
  out += R"(,"samples":[)";
  bool first = true;
  for (auto& [stack, count] : stacks) {
    if (!first) out.push_back(',');
    first = false;
    out.push_back('[');
    for (size_t i = 0; i < stack.size(); ++i) {  // speedscope wants root first
      if (i) out.push_back(',');
      out += std::to_string(stack[stack.size() - 1 - i]);
    }
    out.push_back(']');
  }
  out += R"(],"weights":[)";
  first = true;
  for (auto& [stack, count] : stacks) {
    if (!first) out.push_back(',');
    first = false;
    out += std::to_string(p.value_of(count));
  }
  out += R"(]}],"name":)";
  json_string(&out, name);
  out += R"(,"activeProfileIndex":0,"exporter":"spanprof"})";
  return out;
}

std::string encode_otlp(const Profile& p,
                        const std::vector<std::pair<std::string, std::string>>& resource,
                        std::string_view scope_name, const DropSet& drop) {
  const Functions fn(p);
  std::vector<std::string> strings = p.strings();  // [0] = ""
  auto add_string = [&strings](std::string_view s) {
    strings.emplace_back(s);
    return static_cast<int64_t>(strings.size() - 1);
  };
  const int64_t s_cpu = add_string(p.sample_type.c_str());
  const int64_t s_ns = add_string("nanoseconds");

  // Dictionary tables; index 0 of each is the zero value.
  std::map<std::pair<uint32_t, uint32_t>, int32_t> attr_ids;  // (key, value) -> attribute index
  std::vector<std::pair<uint32_t, uint32_t>> attrs{{0, 0}};
  std::map<std::vector<uint32_t>, int32_t> stack_ids;
  std::vector<const std::vector<uint32_t>*> stacks{nullptr};
  std::map<std::pair<std::string, std::string>, int32_t> link_ids;
  std::vector<std::pair<std::string, std::string>> links{
      {std::string(16, '\0'), std::string(8, '\0')}};

  // The link of each original label set: trace id + local root span (else the active span).
  // Pyroscope files a sample under its link's span as its `span_id` (pkg/ingester/otlp), the id
  // pyroscope-otel labels samples with and Grafana's traces-to-profiles asks for: the root.
  // span_id and trace_id are in the link only; as attributes they became duplicate span labels in
  // Pyroscope.
  std::vector<int32_t> link_of(p.label_sets().size(), 0);
  for (size_t i = 0; i < p.label_sets().size(); ++i) {
    std::string trace_hex, span_hex, active_hex;
    for (auto& kv : p.label_sets()[i]) {
      const std::string& k = p.str(kv.first);
      if (k == "trace_id") trace_hex = p.str(kv.second);
      if (k == "span_id") span_hex = p.str(kv.second);
      if (k == "active_span_id") active_hex = p.str(kv.second);
    }
    std::string tid, sid;
    if (!trace_hex.empty() && unhex(trace_hex, 16, &tid) &&
        unhex(span_hex.empty() ? active_hex : span_hex, 8, &sid)) {
      auto l = link_ids.find({tid, sid});
      if (l == link_ids.end()) {
        l = link_ids.emplace(std::make_pair(tid, sid), static_cast<int32_t>(links.size())).first;
        links.emplace_back(tid, sid);
      }
      link_of[i] = l->second;
    }
  }
  DropSet link_only = drop;
  link_only.insert("span_id");
  link_only.insert("trace_id");
  const Flat f = flatten(p, link_only, &link_of);

  Pb prof;
  Pb vt;
  vt.i64(1, s_cpu);
  vt.i64(2, s_ns);
  prof.message(1, vt);  // sample_type
  for (auto& [key, count] : f.samples) {
    const auto& [label_set, link, stack] = key;
    Pb s;
    auto st = stack_ids.find(stack);
    if (st == stack_ids.end()) {
      st = stack_ids.emplace(stack, static_cast<int32_t>(stacks.size())).first;
      stacks.push_back(&st->first);
    }
    s.i64(1, st->second);  // stack_index
    std::vector<int32_t> attr_idx;
    for (auto& kv : f.label_sets[label_set]) {
      auto a = attr_ids.find(kv);
      if (a == attr_ids.end()) {
        a = attr_ids.emplace(kv, static_cast<int32_t>(attrs.size())).first;
        attrs.push_back(kv);
      }
      attr_idx.push_back(a->second);
    }
    s.packed(2, attr_idx.begin(), attr_idx.end());
    s.i64(3, link);  // link_index (0 = no link)
    const int64_t value = p.value_of(count);
    s.packed(4, &value, &value + 1);
    prof.message(2, s);
  }
  prof.fixed64(3, static_cast<uint64_t>(p.start_ns));
  prof.u64(4, static_cast<uint64_t>(p.end_ns > p.start_ns ? p.end_ns - p.start_ns : 0));
  prof.message(5, vt);  // period_type
  prof.i64(6, p.period_ns);

  Pb dict;
  dict.message(1, Pb());  // mapping_table[0]
  dict.message(2, Pb());  // location_table[0]
  for (size_t i = 0; i < p.locations().size(); ++i) {
    Pb loc, line;
    line.i64(1, fn.of_location[i] + 1);
    line.i64(2, p.locations()[i].line);
    loc.message(3, line);
    dict.message(2, loc);
  }
  dict.message(3, Pb());  // function_table[0]
  for (auto& [name, file, start] : fn.list) {
    Pb m;
    m.i64(1, name);
    m.i64(2, name);
    m.i64(3, file);
    m.i64(4, start);
    dict.message(3, m);
  }
  for (auto& [tid, sid] : links) {
    Pb l;
    l.bytes(1, tid);
    l.bytes(2, sid);
    dict.message(4, l);
  }
  for (auto& s : strings) dict.bytes_always(5, s);
  for (size_t i = 0; i < attrs.size(); ++i) {
    Pb kv;
    if (i != 0) {
      kv.i64(1, attrs[i].first);
      Pb any;
      // The active span as its 8 bytes (bytes_value): Pyroscope makes series labels of string
      // and integer attributes only, so one series per span is avoided there, and spanprof's
      // server reads it as the sample's active span.
      std::string active;
      if (p.str(attrs[i].first) == "active_span_id" && unhex(p.str(attrs[i].second), 8, &active))
        any.bytes(7, active);  // bytes_value
      else
        any.bytes(1, p.str(attrs[i].second));  // string_value
      kv.message(2, any);
    }
    dict.message(6, kv);
  }
  for (size_t i = 0; i < stacks.size(); ++i) {
    Pb st;
    if (stacks[i] != nullptr) {
      std::vector<uint64_t> idx;
      for (uint32_t l : *stacks[i]) idx.push_back(l + 1);
      st.packed(1, idx.begin(), idx.end());
    }
    dict.message(7, st);
  }

  Pb resource_msg;
  for (auto& [k, v] : resource) {
    Pb kv, any;
    kv.bytes(1, k);
    any.bytes(1, v);
    kv.message(2, any);
    resource_msg.message(1, kv);
  }
  Pb scope;
  scope.bytes(1, scope_name);
  Pb scope_profiles;
  scope_profiles.message(1, scope);
  scope_profiles.message(2, prof);
  Pb rp;
  rp.message(1, resource_msg);
  rp.message(2, scope_profiles);
  Pb req;
  req.message(1, rp);
  req.message(2, dict);
  return req.take();
}

}  // namespace spanprof
