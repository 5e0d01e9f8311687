// What every decoder shares: label checks, span-id labels, protobuf / proto3 JSON parsing.
#include "core/decode.h"

#include <google/protobuf/util/json_util.h>

#include "core/decode_internal.h"
#include "core/jsontext.h"

namespace spanprof {

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

int8_t span_label_kind(const std::string& k) {
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

bool take_span_label(const std::string& k, const std::string& v, SpanIds& ids) {
  int8_t kind = span_label_kind(k);
  set_span_label(kind, v, ids);
  return kind != 0;
}

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

Error too_many_profiles(const Limits& lim) {
  return too_large("push carries more than " + std::to_string(lim.max_profiles_per_push) +
                   " profiles (--max-profiles-per-push)");
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

}  // namespace spanprof
