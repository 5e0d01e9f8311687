// OTLP: traces (ExportTraceServiceRequest) and profiles (v1development), binary proto or JSON.
#include <map>
#include <nlohmann/json.hpp>

#include "core/decode_internal.h"
#include "core/jsontext.h"
#include "core/pbwire.h"
#include "otlp_profiles.pb.h"
#include "otlp_trace.pb.h"

namespace spanprof {

using json = nlohmann::json;

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

namespace {
namespace common = opentelemetry::proto::common::v1;
using KeyValues = google::protobuf::RepeatedPtrField<common::KeyValue>;
using StringTable = google::protobuf::RepeatedPtrField<std::string>;

// Values nested deeper than this keep their references (any_to_json stops at the same depth).
constexpr int kMaxRefDepth = 16;

Status resolve_refs(common::AnyValue& v, const StringTable& st, int depth);

// The Collector's pdata re-encodes resource and scope attributes of profiles as references into
// the dictionary's string table: key_strindex for keys, string_value_strindex for string values,
// inside arrays and kvlists too. Rewrites references to plain key / string_value in place, so the
// rest reads one form whichever the sender used. A key given both ways is invalid (pdata refuses
// it too).
Status resolve_refs(KeyValues& kvs, const StringTable& st, int depth) {
  for (auto& kv : kvs) {
    if (kv.key_strindex() != 0) {
      if (!kv.key().empty()) return bad_request("OTLP attribute has both key and key_strindex");
      if (kv.key_strindex() < 0 || kv.key_strindex() >= st.size())
        return bad_request("OTLP attribute key_strindex out of range");
      kv.set_key(st.Get(kv.key_strindex()));
      kv.set_key_strindex(0);
    }
    if (kv.has_value())
      if (auto e = resolve_refs(*kv.mutable_value(), st, depth)) return e;
  }
  return std::nullopt;
}

Status resolve_refs(common::AnyValue& v, const StringTable& st, int depth) {
  if (depth > kMaxRefDepth) return std::nullopt;
  switch (v.value_case()) {
    case common::AnyValue::kStringValueStrindex: {
      int32_t i = v.string_value_strindex();
      if (i < 0 || i >= st.size())
        return bad_request("OTLP attribute string_value_strindex out of range");
      v.set_string_value(st.Get(i));
      return std::nullopt;
    }
    case common::AnyValue::kArrayValue:
      for (auto& x : *v.mutable_array_value()->mutable_values())
        if (auto e = resolve_refs(x, st, depth + 1)) return e;
      return std::nullopt;
    case common::AnyValue::kKvlistValue:
      return resolve_refs(*v.mutable_kvlist_value()->mutable_values(), st, depth + 1);
    default:
      return std::nullopt;
  }
}

// Pyroscope's rule for an attribute that becomes a label (pkg/ingester/otlp): a non-empty string,
// an integer (decimal), or a one-element array of either. Anything else (bool, double, bytes,
// kvlist, longer arrays) is no label: false.
bool label_value(const common::AnyValue& v, std::string& out) {
  const common::AnyValue* x = &v;
  if (v.has_array_value() && v.array_value().values_size() == 1) x = &v.array_value().values(0);
  if (x->has_string_value())
    out = x->string_value();
  else if (x->has_int_value())
    out = std::to_string(x->int_value());
  else
    return false;
  return !out.empty();
}

// service_name as Pyroscope derives it from resource attributes: service.name, else
// "unknown_service" (":" + process.executable.name when that is set).
std::string otlp_service_name(const KeyValues& resource) {
  std::string service, exe, v;
  for (auto& kv : resource) {
    if (kv.key() == "service.name" && label_value(kv.value(), v)) service = v;
    if (kv.key() == "process.executable.name" && label_value(kv.value(), v)) exe = v;
  }
  if (!service.empty()) return service;
  return exe.empty() ? "unknown_service" : "unknown_service:" + exe;
}

// Resource then scope attributes → series labels, the first of a key winning, as Pyroscope does.
// Names starting "__" are spanprof's and Pyroscope's own (__name__, __profile_type__, ...) and
// service_name is derived above: an attribute never overrides them.
void add_attr_labels(const KeyValues& kvs, Labels& out) {
  std::string v;
  for (auto& kv : kvs) {
    const std::string& k = kv.key();
    if (k.empty() || k.rfind("__", 0) == 0 || k == "service_name") continue;
    if (find_label(out, k) || !label_value(kv.value(), v)) continue;
    out.emplace_back(k, v);
  }
}

// A sample attribute naming a span id: hex text (spanprof's pprof labels) or the id's raw bytes
// (8 bytes, or 16 for trace_id: what spanprof's agent sends over OTLP, because Pyroscope turns no
// bytes-valued attribute into a series label). false when `k` names no span id.
bool take_span_attr(const std::string& k, const common::AnyValue& v, SpanIds& ids) {
  int8_t kind = span_label_kind(k);
  if (kind == 0) return false;
  if (v.has_bytes_value()) {
    uint64_t x, lo;
    if (kind == 1 && bytes_u64(v.bytes_value(), x)) ids.span_id = x;
    if (kind == 2 && bytes_u64(v.bytes_value(), x)) ids.active_span_id = x;
    if (kind == 3 && bytes_u128(v.bytes_value(), x, lo)) ids.trace_hi = x, ids.trace_lo = lo;
    return true;
  }
  std::string s;
  if (label_value(v, s)) take_span_label(k, s, ids);
  return true;
}

// Counts the string_table entries of a binary ExportProfilesServiceRequest's dictionary (field 2,
// which protobuf merges when repeated; its field 5) in place, before the full parse: 20M empty
// strings are 40 MB of input but over a gigabyte as parsed std::strings.
Status check_otlp_string_table(std::string_view body, size_t max) {
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
}  // namespace

Status decode_otlp_profiles(std::string_view body, bool is_json, const std::string& tenant,
                            const Limits& lim, std::vector<RawProfile>& out) {
  namespace P = opentelemetry::proto::profiles::v1development;
  if (!is_json)
    if (auto e = check_otlp_string_table(body, lim.max_strings_per_profile)) return e;
  P::ExportProfilesServiceRequest req;
  if (auto e = parse_otlp(body, is_json, lim, req, "ExportProfilesServiceRequest")) return e;
  if (size_t(req.dictionary().string_table_size()) > lim.max_strings_per_profile)
    return too_large("OTLP string table has more than " +
                     std::to_string(lim.max_strings_per_profile) +
                     " entries (--max-strings-per-profile)");
  {
    const StringTable& st = req.dictionary().string_table();
    for (auto& rp : *req.mutable_resource_profiles()) {
      if (auto e = resolve_refs(*rp.mutable_resource()->mutable_attributes(), st, 0)) return e;
      for (auto& sp : *rp.mutable_scope_profiles())
        if (auto e = resolve_refs(*sp.mutable_scope()->mutable_attributes(), st, 0)) return e;
    }
    for (auto& a : *req.mutable_dictionary()->mutable_attribute_table())
      if (a.has_value())
        if (auto e = resolve_refs(*a.mutable_value(), st, 0)) return e;
  }
  const auto& d = req.dictionary();
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
    const std::string resource_service = otlp_service_name(rp.resource().attributes());
    for (auto& sp : rp.scope_profiles()) {
      Labels attr_labels;
      add_attr_labels(rp.resource().attributes(), attr_labels);
      add_attr_labels(sp.scope().attributes(), attr_labels);
      for (auto& prof : sp.profiles()) {
        RawProfile r;
        r.tenant = tenant;
        r.sample_type = str(prof.sample_type().type_strindex(), ok);
        r.sample_unit = str(prof.sample_type().unit_strindex(), ok);
        r.period_type = str(prof.period_type().type_strindex(), ok);
        r.period_unit = str(prof.period_type().unit_strindex(), ok);
        if (!ok) return bad_request("OTLP profile string index out of range");
        r.time_ns = prof.time_unix_nano() ? int64_t(prof.time_unix_nano()) : now_ns();
        r.duration_ns = int64_t(prof.duration_nano());
        r.period = prof.period();
        if (size_t(prof.samples_size()) > lim.max_samples_per_profile)
          return too_large("OTLP profile has more than " +
                           std::to_string(lim.max_samples_per_profile) +
                           " samples (--max-samples-per-profile)");
        rows += size_t(prof.samples_size());
        if (rows > lim.max_sample_rows_per_request)
          return too_large("request decodes to more than " +
                           std::to_string(lim.max_sample_rows_per_request) +
                           " sample rows (--max-sample-rows)");
        // One RawProfile per service: a sample's own service.name attribute (an eBPF profiler
        // covering several processes sends one) overrides the resource's, as in Pyroscope.
        struct Part {
          RawProfile r;
          Builder b;
        };
        std::vector<Part> parts;
        std::map<std::string, size_t> part_of;
        auto part = [&](const std::string& service) -> Part* {
          auto [it, added] = part_of.try_emplace(service, parts.size());
          if (added) {
            if (++n_profiles > lim.max_profiles_per_push) return nullptr;
            parts.push_back({r, Builder{}});
            Labels s = attr_labels;
            s.emplace_back("service_name", service);
            s.emplace_back("__name__", r.sample_type == "cpu" || r.sample_type == "samples"
                                           ? "process_cpu"
                                           : r.sample_type);
            sort_labels(s);
            parts.back().r.series = std::move(s);
          }
          return &parts[it->second];
        };
        for (auto& smp : prof.samples()) {
          RawSample rs;
          if (smp.stack_index() < 0 || smp.stack_index() >= d.stack_table_size())
            return bad_request("OTLP sample stack_index out of range");
          auto& stack = d.stack_table(smp.stack_index());
          if (size_t(stack.location_indices_size()) > lim.max_stack_depth)
            return bad_request("stack depth exceeds limit " + std::to_string(lim.max_stack_depth));
          Labels l;
          std::string service = resource_service;
          for (int32_t ai : smp.attribute_indices()) {
            if (ai < 0 || ai >= d.attribute_table_size())
              return bad_request("OTLP attribute index out of range");
            auto& a = d.attribute_table(ai);
            std::string k = str(a.key_strindex(), ok), v;
            if (take_span_attr(k, a.value(), rs.ids)) continue;
            if (!label_value(a.value(), v)) continue;
            if (k == "service.name")
              service = v;
            else
              l.emplace_back(k, v);
          }
          if (!ok) return bad_request("OTLP string index out of range");
          Part* pt = part(service);
          if (!pt) return too_many_profiles(lim);
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
              rs.frames.push_back(pt->b.frame(str(f.name_strindex(), ok),
                                              str(f.filename_strindex(), ok), loc.lines(k).line()));
            }
            if (loc.lines_size() == 0) {
              char buf[32];
              snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(loc.address()));
              rs.frames.push_back(pt->b.frame(buf, "", 0));
            }
          }
          if (rs.frames.size() > lim.max_stack_depth)
            return bad_request("stack depth exceeds limit " + std::to_string(lim.max_stack_depth));
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
          rs.label_set = pt->b.labels(std::move(l));
          int64_t v = 0;
          for (auto x : smp.values()) v += x;
          if (smp.values_size() == 0) v = smp.timestamps_unix_nano_size();
          if (v == 0) continue;
          rs.value = v;
          pt->r.samples.push_back(std::move(rs));
        }
        if (parts.empty() && !part(resource_service)) return too_many_profiles(lim);
        for (auto& pt : parts) {
          if (auto e = check_all_label_sets(pt.r.series, pt.b.label_sets, lim)) return e;
          pt.r.frames = std::move(pt.b.frames);
          pt.r.label_sets = std::move(pt.b.label_sets);
          out.push_back(std::move(pt.r));
        }
      }
    }
  }
  return std::nullopt;
}

}  // namespace spanprof
