// Pyroscope's legacy /ingest: the `name` parameter, folded and lines text, sample_type_config.
#include <nlohmann/json.hpp>

#include "core/decode_internal.h"
#include "core/jsontext.h"

namespace spanprof {

using json = nlohmann::json;

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

}  // namespace spanprof
