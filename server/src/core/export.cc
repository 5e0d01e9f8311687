#include "core/export.h"

#include <cmath>

#include "core/util.h"

namespace spanprof {

using json = nlohmann::json;

namespace {

// Frame names as the folded format needs them: ';' separates frames and ' ' ends the stack text
// only at the last space, so only ';' and line breaks are replaced.
std::string folded_name(std::string n) {
  for (char& c : n)
    if (c == ';' || c == '\n' || c == '\r') c = '_';
  return n;
}

std::string collapsed(const Store& s, const StackSet& st) {
  std::string out;
  std::vector<uint32_t> locs;
  std::map<std::string, int64_t> lines;  // sorted output, equal texts summed
  for (auto& [stack, v] : st.values) {
    s.stack_locations(stack, locs);
    std::string text;
    for (auto l : locs) {
      if (!text.empty()) text += ';';
      text += folded_name(s.str(s.function(s.location(l).function).first));
    }
    lines[text] += st.period > 0 ? int64_t(std::llround(double(v) / double(st.period))) : v;
  }
  for (auto& [text, n] : lines)
    if (n > 0) out += text + ' ' + std::to_string(n) + '\n';
  return out;
}

std::string speedscope(const Store& s, const StackSet& st, const std::string& name) {
  json frames = json::array();
  std::unordered_map<uint32_t, size_t> frame_of;  // location → frame index
  json samples = json::array(), weights = json::array();
  std::vector<uint32_t> locs;
  int64_t total = 0;
  for (auto& [stack, v] : st.values) {
    s.stack_locations(stack, locs);
    json smp = json::array();
    for (auto l : locs) {
      auto it = frame_of.find(l);
      if (it == frame_of.end()) {
        auto L = s.location(l);
        auto [fn, file] = s.function(L.function);
        json f = {{"name", s.str(fn)}};
        if (file) f["file"] = s.str(file);
        if (L.line > 0) f["line"] = L.line;
        it = frame_of.emplace(l, frames.size()).first;
        frames.push_back(std::move(f));
      }
      smp.push_back(it->second);
    }
    samples.push_back(std::move(smp));
    weights.push_back(v);
    total += v;
  }
  bool ns = st.sample_unit == "nanoseconds";
  json doc = {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
              {"shared", {{"frames", frames}}},
              {"profiles",
               {{{"type", "sampled"},
                 {"name", name},
                 {"unit", ns ? "nanoseconds" : "none"},
                 {"startValue", 0},
                 {"endValue", total},
                 {"samples", samples},
                 {"weights", weights}}}},
              {"name", name},
              {"exporter", "spanprof " SPANPROF_VERSION}};
  return doc.dump();
}

}  // namespace

Result<ExportFile> export_profile(const QueryEngine& q, const Store& s, const std::string& tenant,
                                  const Params& p) {
  auto it = p.find("format");
  std::string format = it == p.end() ? "" : it->second;
  if (format != "pprof" && format != "speedscope" && format != "collapsed")
    return bad_request("format must be pprof, speedscope or collapsed");
  auto st = UiApi(q).selection(tenant, p);
  if (!st) return st.error;
  auto name_it = p.find("span_name");
  std::string name = name_it != p.end() && !name_it->second.empty() ? name_it->second : "spanprof";
  if (format == "pprof")
    return ExportFile{"application/octet-stream", "profile.pb.gz", gzip(q.to_pprof(*st))};
  if (format == "speedscope")
    return ExportFile{"application/json", "profile.speedscope.json", speedscope(s, *st, name)};
  return ExportFile{"text/plain; charset=utf-8", "profile.collapsed.txt", collapsed(s, *st)};
}

}  // namespace spanprof
