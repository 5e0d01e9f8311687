// OTLP: traces (ExportTraceServiceRequest) and profiles (v1development), binary proto or JSON.
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
