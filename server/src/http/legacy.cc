#include "http/legacy.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>

#include "core/util.h"

namespace spanprof {

namespace {

// A plain decimal integer (optional leading '-'), nothing before or after it; nullopt otherwise,
// also when it does not fit int64.
std::optional<int64_t> parse_int(std::string_view s) {
  int64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// A unix time parameter (s/ms/µs/ns by size): absent = 0; negative or overflowing ns = error.
Status unix_param(const QueryParams& q, const char* key, int64_t& out) {
  std::string v = first_param(q, key);
  out = 0;
  if (v.empty()) return std::nullopt;
  auto t = parse_int(v);
  if (!t || *t < 0)
    return bad_request(std::string(key) + " must be a unix time (a non-negative integer)");
  if (unix_to_ns(*t) == INT64_MAX) return bad_request(std::string(key) + " is out of range");
  out = *t;
  return std::nullopt;
}

// Render time: "", "now", "now-<duration>" or a unix time in any unit; ms since epoch.
Result<int64_t> render_time(const QueryParams& q, const char* key, int64_t now_ms, int64_t def) {
  std::string s = first_param(q, key);
  if (s.empty()) return def;
  if (s == "now") return now_ms;
  if (s.rfind("now-", 0) == 0) {
    int64_t d = parse_duration_s(std::string_view(s).substr(4)), ms;
    if (d < 0 || __builtin_mul_overflow(d, int64_t(1000), &ms))
      return bad_request(std::string(key) + ": bad duration after 'now-' (want e.g. now-1h)");
    return std::max<int64_t>(0, now_ms - ms);  // before 1970 is 1970: no negative times
  }
  auto t = parse_int(s);
  if (!t || *t < 0)
    return bad_request(std::string(key) + " must be now, now-<duration> or a unix time");
  return unix_to_ns(*t) / 1'000'000;
}

// decode_folded multiplies every count by the period and sums the counts of repeated stacks in
// int64: an upload whose counts × period add up past the int64 range is refused here. (The sum
// over the whole body bounds every sample's value and the profile's total.)
Status check_folded_total(std::string_view body, int64_t mult) {
  int64_t total = 0;
  std::string_view line;
  for (size_t pos = 0; next_trimmed_line(body, pos, line);) {
    size_t sp = line.rfind(' ');
    auto n = sp == std::string_view::npos ? std::nullopt : parse_int(line.substr(sp + 1));
    int64_t v;
    if (n && *n > 0 &&
        (__builtin_mul_overflow(*n, mult, &v) || __builtin_add_overflow(total, v, &total)))
      return bad_request("folded counts (times the sampling period) add up past the int64 range");
  }
  return std::nullopt;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

Result<LegacyParams> parse_legacy_params(const QueryParams& q) {
  LegacyParams p;
  p.name = first_param(q, "name");
  if (auto e = unix_param(q, "from", p.from)) return *e;
  if (auto e = unix_param(q, "until", p.until)) return *e;
  std::string rate = first_param(q, "sampleRate");
  if (!rate.empty()) {
    auto r = parse_int(rate);
    if (!r || *r < 1 || *r > 1'000'000'000)
      return bad_request("sampleRate must be an integer in 1..1000000000");
    p.sample_rate = *r;
  }
  p.spy_name = first_param(q, "spyName");
  if (q.count("units")) p.units = first_param(q, "units");
  if (q.count("aggregationType")) p.aggregation = first_param(q, "aggregationType");
  p.format = first_param(q, "format");
  return p;
}

Status legacy_ingest(const QueryParams& q, bool multipart, std::string_view body,
                     const std::vector<FormPart>& parts, const std::string& tenant,
                     const Limits& lim, std::vector<RawProfile>& out) {
  auto pr = parse_legacy_params(q);
  if (!pr) return pr.error;
  const LegacyParams& p = *pr;
  Labels series;
  std::string suffix;
  if (auto e = legacy_series(p, lim, series, suffix)) return e;
  size_t first = out.size();
  if (multipart || !parts.empty()) {
    const FormPart *prof = nullptr, *cfg = nullptr;
    for (auto& part : parts) {
      if (part.name == "profile") prof = &part;
      if (part.name == "sample_type_config") cfg = &part;
    }
    if (!prof) return bad_request("multipart upload needs a 'profile' part");
    std::vector<std::pair<std::string, std::string>> types;
    if (cfg)
      if (auto e = parse_sample_type_config(cfg->content, types)) return e;
    if (auto e = decode_pprof(prof->content, tenant, series, lim, out, cfg ? &types : nullptr))
      return e;
  } else if (p.format == "pprof") {
    if (auto e = decode_pprof(body, tenant, series, lim, out)) return e;
  } else if (p.format == "jfr" || p.format == "trie" || p.format == "tree") {
    return unprocessable("format=" + p.format + " is not supported by spanprof");
  } else {
    std::string inflated;
    if (is_gzip(body)) {
      auto r = gunzip(body, lim.max_decompressed_bytes);
      if (!r) return r.error;
      inflated = std::move(*r);
      body = inflated;
    }
    bool lines = p.format == "lines";
    bool samples = (suffix == "cpu" || suffix == "itimer" || suffix == "wall") &&
                   p.units == "samples";  // decode_folded turns them into ns: × period
    if (!lines)
      if (auto e = check_folded_total(body, samples ? 1'000'000'000 / p.sample_rate : 1)) return e;
    if (auto e = decode_folded(body, lines, p, tenant, lim, out)) return e;
  }
  // Legacy API: from/until (any unit) are the profiles' time range, also for pprof bodies.
  int64_t from_ns = unix_to_ns(p.from), until_ns = unix_to_ns(p.until);
  if (from_ns > 0)
    for (size_t i = first; i < out.size(); ++i) {
      out[i].time_ns = from_ns;
      if (until_ns > from_ns) out[i].duration_ns = until_ns - from_ns;
    }
  return std::nullopt;
}

Result<RenderQuery> parse_render_params(const QueryParams& q, int64_t now_ms,
                                        const std::string& side) {
  auto key = [&side](std::string k) {
    if (side.empty()) return k;
    k[0] = char(std::toupper(static_cast<unsigned char>(k[0])));
    return side + k;
  };
  const std::string query_key = key("query"), from_key = key("from"), until_key = key("until");
  RenderQuery r;
  r.query = first_param(q, query_key);
  if (r.query.empty())
    return bad_request(query_key + " is required (<profile type>{selector} or app.cpu)");
  size_t brace = r.query.find('{');
  std::string head = r.query.substr(0, brace);
  std::string sel = brace == std::string::npos ? "{}" : r.query.substr(brace);
  if (sel.back() != '}') return bad_request("query: the selector must end with '}'");
  if (head.find(':') != std::string::npos) {
    r.profile_type = head;
    r.selector = sel;
  } else {
    // Legacy "app.cpu{...}": the application becomes a service_name matcher.
    std::string app = head, suffix = "cpu";
    size_t dot = head.rfind('.');
    if (dot != std::string::npos) app = head.substr(0, dot), suffix = head.substr(dot + 1);
    if (app.empty()) return bad_request("query: empty application name");
    r.profile_type = suffix == "cpu" ? "process_cpu:cpu:nanoseconds:cpu:nanoseconds" : "";
    std::string inner = sel.substr(1, sel.size() - 2);
    r.selector = "{service_name=\"" + escape_label_value(app) + "\"" +
                 (inner.find_first_not_of(" ") == std::string::npos ? "" : "," + inner) + "}";
  }
  auto from = render_time(q, from_key.c_str(), now_ms, now_ms - 3600'000);
  if (!from) return from.error;
  auto until = render_time(q, until_key.c_str(), now_ms, now_ms);
  if (!until) return until.error;
  r.from_ms = *from;
  r.until_ms = *until;
  std::string mn = first_param(q, "maxNodes");
  if (mn.empty()) mn = first_param(q, "max-nodes");
  if (!mn.empty()) {
    auto n = parse_int(mn);
    if (!n || *n < 0) return bad_request("maxNodes must be a non-negative integer");
    r.max_nodes = *n;
  }
  for (auto [it, end] = q.equal_range("groupBy"); it != end; ++it) r.group_by.push_back(it->second);
  std::string agg = first_param(q, "aggregation"), format = first_param(q, "format");
  if (!agg.empty() && agg != "sum" && agg != "avg")
    return bad_request("aggregation must be sum or avg");
  r.average = agg == "avg";
  if (!format.empty() && format != "json" && format != "dot")
    return bad_request("format must be json or dot");
  r.dot = format == "dot";
  return r;
}

}  // namespace spanprof
