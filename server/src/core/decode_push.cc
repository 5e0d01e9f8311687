// push.v1.PushRequest (Pyroscope's Connect ingest): series labels + raw pprof profiles.
#include <google/protobuf/arena.h>

#include "core/decode_internal.h"
#include "core/pbwire.h"
#include "push.pb.h"

namespace spanprof {

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

}  // namespace spanprof
