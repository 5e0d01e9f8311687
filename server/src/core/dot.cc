#include "core/dot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace spanprof {

namespace {

// |v| without the overflow of llabs(INT64_MIN).
int64_t mag(int64_t v) { return v == INT64_MIN ? INT64_MAX : std::llabs(v); }
// a + b, saturating (hostile pushes can carry values that sum past int64).
int64_t add_sat(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

struct Node {
  std::string name;
  int64_t flat = 0, cum = 0;
};
struct Edge {
  int64_t weight = 0;
  bool residual = false;
};

// Root-first function names of every sample, and its value.
struct Stacks {
  std::vector<std::pair<std::vector<uint32_t>, int64_t>> samples;  // name ids, value
  std::vector<std::string> names;
};

Stacks stacks_of(const perftools::profiles::Profile& p, int vi) {
  Stacks out;
  std::unordered_map<std::string, uint32_t> ids;
  auto str = [&p](int64_t i) -> const std::string& {
    static const std::string empty;
    return i >= 0 && i < p.string_table_size() ? p.string_table(int(i)) : empty;
  };
  std::unordered_map<uint64_t, uint32_t> fn_name;
  for (auto& f : p.function()) {
    const std::string& n = str(f.name());
    auto [it, fresh] = ids.emplace(n, uint32_t(out.names.size()));
    if (fresh) out.names.push_back(n);
    fn_name[f.id()] = it->second;
  }
  std::unordered_map<uint64_t, std::vector<uint32_t>> loc_names;  // leaf (innermost line) first
  for (auto& l : p.location()) {
    auto& v = loc_names[l.id()];
    for (auto& line : l.line()) {
      auto it = fn_name.find(line.function_id());
      if (it != fn_name.end()) v.push_back(it->second);
    }
  }
  for (auto& s : p.sample()) {
    if (vi >= s.value_size()) continue;
    std::vector<uint32_t> st;
    for (int i = s.location_id_size() - 1; i >= 0; --i) {  // pprof: leaf first
      auto it = loc_names.find(s.location_id(i));
      if (it == loc_names.end()) continue;
      for (auto n = it->second.rbegin(); n != it->second.rend(); ++n) st.push_back(*n);
    }
    out.samples.emplace_back(std::move(st), s.value(vi));
  }
  return out;
}

// The call graph of the samples over the kept names (all when `kept` is null).
void build(const Stacks& s, const std::vector<bool>* kept, std::map<uint32_t, Node>& nodes,
           std::map<std::pair<uint32_t, uint32_t>, Edge>& edges) {
  std::unordered_set<uint32_t> seen;
  std::set<std::pair<uint32_t, uint32_t>> seen_edges;
  for (auto& [st, v] : s.samples) {
    seen.clear();
    seen_edges.clear();
    int64_t parent = -1;
    bool residual = false;
    for (uint32_t n : st) {
      if (kept && !(*kept)[n]) {
        residual = true;
        continue;
      }
      Node& node = nodes[n];
      node.name = s.names[n];
      if (seen.insert(n).second) node.cum = add_sat(node.cum, v);
      if (parent >= 0 && uint32_t(parent) != n && seen_edges.emplace(uint32_t(parent), n).second) {
        Edge& e = edges[{uint32_t(parent), n}];
        e.weight = add_sat(e.weight, v);
        e.residual = e.residual || residual;
      }
      parent = n;
      residual = false;
    }
    if (parent >= 0 && !residual)
      nodes[uint32_t(parent)].flat = add_sat(nodes[uint32_t(parent)].flat, v);
  }
}

// Values in one unit for the whole graph, chosen as pprof's report does: the unit of the smallest
// non-zero node value, or of 100 times it when the total needs a larger unit.
class Units {
 public:
  Units(const std::string& unit, int64_t min_value, int64_t total) {
    if (unit == "nanoseconds" || unit == "ns") {
      scales_ = {{1, "ns"}, {1'000, "us"}, {1'000'000, "ms"}, {1'000'000'000, "s"}};
    } else if (unit == "microseconds") {
      scales_ = {{1, "us"}, {1'000, "ms"}, {1'000'000, "s"}};
    } else if (unit == "milliseconds") {
      scales_ = {{1, "ms"}, {1'000, "s"}};
    } else if (unit == "bytes") {
      scales_ = {{1, "B"}, {1 << 10, "kB"}, {1 << 20, "MB"}, {1 << 30, "GB"}};
    } else {
      scales_ = {{1, ""}};
    }
    size_t lo = pick(min_value), hi = pick(total);
    chosen_ = lo != hi && min_value < total / 100 ? pick(min_value * 100) : lo;
  }
  std::string format(int64_t v) const {
    auto [div, name] = scales_[chosen_];
    char buf[64];
    snprintf(buf, sizeof buf, "%.2f", double(v) / double(div));
    std::string s = buf;
    if (s.size() > 3 && s.compare(s.size() - 3, 3, ".00") == 0) s.resize(s.size() - 3);
    if (s == "0" || s == "-0") return "0";
    return s + name;
  }

 private:
  size_t pick(int64_t v) const {
    size_t i = 0;
    while (i + 1 < scales_.size() && mag(v) >= scales_[i + 1].first) ++i;
    return i;
  }
  std::vector<std::pair<int64_t, const char*>> scales_;
  size_t chosen_ = 0;
};

std::string percent(int64_t v, int64_t total) {
  double r = total ? std::fabs(double(v) / double(total)) * 100 : 0;
  char buf[32];
  if (r >= 99.95 && r <= 100.05)
    return "100%";
  else if (r >= 1)
    snprintf(buf, sizeof buf, "%.2f%%", r);
  else
    snprintf(buf, sizeof buf, "%.2g%%", r);
  return buf;
}

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n' || c == '\r') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

// Grey for nothing, red for the whole profile; light for fill, dark for lines.
std::string color(double share, bool fill) {
  double s = std::sqrt(std::clamp(share, 0.0, 1.0));
  auto mix = [s](int from, int to) { return int(std::lround(from + (to - from) * s)); };
  char buf[16];
  if (fill)
    snprintf(buf, sizeof buf, "#%02x%02x%02x", mix(0xed, 0xed), mix(0xed, 0xd8), mix(0xed, 0xd5));
  else
    snprintf(buf, sizeof buf, "#%02x%02x%02x", mix(0xb2, 0xb2), mix(0xb2, 0x1a), mix(0xb2, 0x00));
  return buf;
}

}  // namespace

std::string pprof_to_dot(const perftools::profiles::Profile& p, int64_t max_nodes) {
  if (p.sample_size() == 0 || p.sample_type_size() == 0) return "";
  const int vi = p.sample_type_size() - 1;
  auto str = [&p](int64_t i) {
    return i >= 0 && i < p.string_table_size() ? p.string_table(int(i)) : std::string();
  };
  std::string type = str(p.sample_type(vi).type()), unit = str(p.sample_type(vi).unit());
  std::transform(unit.begin(), unit.end(), unit.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  Stacks s = stacks_of(p, vi);
  int64_t total = 0;
  for (auto& [st, v] : s.samples) total = add_sat(total, mag(v));

  std::map<uint32_t, Node> nodes;
  std::map<std::pair<uint32_t, uint32_t>, Edge> edges;
  build(s, nullptr, nodes, edges);
  auto by_weight = [](const std::pair<uint32_t, Node>& a, const std::pair<uint32_t, Node>& b) {
    if (a.second.cum != b.second.cum) return mag(a.second.cum) > mag(b.second.cum);
    if (a.second.flat != b.second.flat) return mag(a.second.flat) > mag(b.second.flat);
    return a.second.name < b.second.name;
  };
  const size_t all_nodes = nodes.size();
  bool trimmed = max_nodes > 0 && all_nodes > size_t(max_nodes);
  if (trimmed) {
    std::vector<std::pair<uint32_t, Node>> order(nodes.begin(), nodes.end());
    std::sort(order.begin(), order.end(), by_weight);
    std::vector<bool> kept(s.names.size(), false);
    for (size_t i = 0; i < size_t(max_nodes); ++i) kept[order[i].first] = true;
    nodes.clear();
    edges.clear();
    build(s, &kept, nodes, edges);
  }
  std::vector<std::pair<uint32_t, Node>> order(nodes.begin(), nodes.end());
  std::sort(order.begin(), order.end(), by_weight);
  std::unordered_map<uint32_t, size_t> id;
  int64_t flat_sum = 0, min_value = 0, max_flat = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    const Node& n = order[i].second;
    id[order[i].first] = i + 1;
    flat_sum = add_sat(flat_sum, n.flat);
    max_flat = std::max(max_flat, mag(n.flat));
    int64_t v = n.flat ? mag(n.flat) : mag(n.cum);
    if (v > 0 && (min_value == 0 || v < min_value)) min_value = v;
  }
  Units u(unit, min_value ? min_value : total, total);

  std::string out = "digraph \"unnamed\" {\nnode [style=filled fillcolor=\"#f8f8f8\"]\n";
  std::vector<std::string> legend = {
      "Type: " + type, "Showing nodes accounting for " + u.format(flat_sum) + ", " +
                           percent(flat_sum, total) + " of " + u.format(total) + " total"};
  if (trimmed)
    legend.push_back("Showing top " + std::to_string(max_nodes) + " nodes out of " +
                     std::to_string(all_nodes));
  out += "subgraph cluster_L { \"" + escape(legend[0]) + "\" [shape=box fontsize=16 label=\"";
  for (auto& l : legend) out += escape(l) + "\\l";
  out += "\"] }\n";
  for (auto& [k, n] : order) {
    std::string label = escape(n.name) + "\\n";
    label += n.flat ? u.format(n.flat) + " (" + percent(n.flat, total) + ")" : "0";
    if (n.cum != n.flat)
      label += std::string(n.flat ? "\\n" : " ") + "of " + u.format(n.cum) + " (" +
               percent(n.cum, total) + ")";
    int font = 8;
    if (max_flat && n.flat)
      font += int(std::ceil(16.0 * std::sqrt(double(mag(n.flat)) / double(max_flat))));
    double share = total ? double(n.cum) / double(total) : 0;
    out += "N" + std::to_string(id[k]) + " [label=\"" + label + "\" id=\"node" +
           std::to_string(id[k]) + "\" fontsize=" + std::to_string(font) + " shape=box tooltip=\"" +
           escape(n.name) + " (" + u.format(n.cum) + ")\" color=\"" + color(share, false) +
           "\" fillcolor=\"" + color(share, true) + "\"]\n";
  }
  std::vector<std::pair<std::pair<uint32_t, uint32_t>, Edge>> es(edges.begin(), edges.end());
  std::stable_sort(es.begin(), es.end(),
                   [](auto& a, auto& b) { return mag(a.second.weight) > mag(b.second.weight); });
  for (auto& [k, e] : es) {
    std::string w = u.format(e.weight);
    std::string attr = "label=\" " + w + "\"";
    if (total) {
      const double share = std::fabs(double(e.weight) / double(total));
      int64_t weight = 1 + int64_t(std::min(share * 100, 100.0));
      int64_t width = 1 + int64_t(std::min(share * 5, 5.0));
      if (weight > 1) attr += " weight=" + std::to_string(weight);
      if (width > 1) attr += " penwidth=" + std::to_string(width);
      attr += " color=\"" + color(double(e.weight) / double(total), false) + "\"";
    }
    std::string tip = "\"" + escape(s.names[k.first]) + (e.residual ? " ... " : " -> ") +
                      escape(s.names[k.second]) + " (" + w + ")\"";
    attr += " tooltip=" + tip + " labeltooltip=" + tip;
    if (e.residual) attr += " style=\"dotted\"";
    out += "N" + std::to_string(id[k.first]) + " -> N" + std::to_string(id[k.second]) + " [" +
           attr + "]\n";
  }
  out += "}\n";
  return out;
}

}  // namespace spanprof
