#include "core/flame.h"

#include <algorithm>
#include <map>

namespace spanprof {

FlameTree::FlameTree() { nodes_.emplace_back(); }

void FlameTree::add(const uint32_t* names, size_t n, int64_t v, int side) {
  uint32_t cur = 0;
  nodes_[0].total[side] += v;
  for (size_t i = 0; i < n; ++i) {
    uint64_t key = uint64_t(cur) << 32 | names[i];
    auto it = child_.find(key);
    uint32_t next;
    if (it == child_.end()) {
      next = uint32_t(nodes_.size());
      Node nd;
      nd.name = names[i];
      nodes_.push_back(std::move(nd));
      nodes_[cur].children.push_back(next);
      child_.emplace(key, next);
    } else {
      next = it->second;
    }
    nodes_[next].total[side] += v;
    cur = next;
  }
  nodes_[cur].self[side] += v;
}

FlameGraphOut FlameTree::flamegraph(const std::function<std::string(uint32_t)>& name_of,
                                    int64_t max_nodes) const {
  return encode(name_of, max_nodes, false);
}

FlameGraphOut FlameTree::diff(const std::function<std::string(uint32_t)>& name_of,
                              int64_t max_nodes) const {
  return encode(name_of, max_nodes, true);
}

// Keep nodes whose weight is >= the max_nodes-th largest weight.
int64_t FlameTree::threshold(int64_t max_nodes, bool diff) const {
  if (max_nodes <= 0 || int64_t(nodes_.size()) - 1 <= max_nodes) return 0;
  std::vector<int64_t> w;
  w.reserve(nodes_.size());
  for (size_t i = 1; i < nodes_.size(); ++i)
    w.push_back(diff ? std::max(nodes_[i].total[0], nodes_[i].total[1]) : nodes_[i].total[0]);
  std::nth_element(w.begin(), w.begin() + (max_nodes - 1), w.end(), std::greater<>());
  return std::max<int64_t>(1, w[size_t(max_nodes - 1)]);
}

int64_t FlameTree::min_keep(int64_t max_nodes) const { return threshold(max_nodes, false); }

size_t FlameTree::kept_prefix(const uint32_t* names, size_t n, int64_t min_keep) const {
  uint32_t cur = 0;
  for (size_t i = 0; i < n; ++i) {
    auto it = child_.find(uint64_t(cur) << 32 | names[i]);
    if (it == child_.end() || nodes_[it->second].total[0] < min_keep) return i;
    cur = it->second;
  }
  return n;
}

std::string FlameTree::tree_bytes(const std::function<std::string(uint32_t)>& name_of,
                                  int64_t max_nodes) const {
  std::string out;
  if (nodes_[0].children.empty()) return out;  // Pyroscope: an empty tree is no bytes
  auto uvarint = [&out](uint64_t v) {
    for (; v >= 0x80; v >>= 7) out += char(v | 0x80);
    out += char(v);
  };
  auto node = [&](const std::string& name, int64_t self, size_t children) {
    uvarint(name.size());
    out += name;
    uvarint(uint64_t(std::max<int64_t>(0, self)));
    uvarint(children);
  };
  const int64_t keep = threshold(max_nodes, false);
  // A node to write: a stored node, or (index -1) the "other" child holding `extra` folded total.
  struct Item {
    int64_t index;
    std::string name;
    int64_t extra;
  };
  std::vector<Item> stack{{0, "", 0}};
  while (!stack.empty()) {
    Item it = std::move(stack.back());
    stack.pop_back();
    if (it.index < 0) {
      node(it.name, it.extra, 0);
      continue;
    }
    const Node& n = nodes_[size_t(it.index)];
    std::vector<Item> kids;
    int64_t folded = 0;
    for (auto c : n.children) {
      std::string nm = name_of(nodes_[c].name);
      if (nodes_[c].total[0] >= keep || nm == "other")
        kids.push_back({int64_t(c), std::move(nm), 0});
      else
        folded += nodes_[c].total[0];
    }
    std::sort(kids.begin(), kids.end(), [](auto& a, auto& b) { return a.name < b.name; });
    if (folded > 0) {
      auto o = std::find_if(kids.begin(), kids.end(), [](auto& k) { return k.name == "other"; });
      if (o != kids.end())
        o->extra = folded;
      else
        kids.insert(std::lower_bound(kids.begin(), kids.end(), std::string("other"),
                                     [](auto& k, const std::string& v) { return k.name < v; }),
                    Item{-1, "other", folded});
    }
    node(it.index == 0 ? std::string() : it.name, it.index == 0 ? 0 : n.self[0] + it.extra,
         kids.size());
    // Children in name order on a stack: the last one is written first, as Pyroscope does.
    for (auto& k : kids) stack.push_back(std::move(k));
  }
  return out;
}

FlameGraphOut FlameTree::encode(const std::function<std::string(uint32_t)>& name_of,
                                int64_t max_nodes, bool diff) const {
  FlameGraphOut out;
  auto weight = [&](const Node& n) { return diff ? std::max(n.total[0], n.total[1]) : n.total[0]; };
  const int64_t min_keep = threshold(max_nodes, diff);
  std::map<std::string, int64_t> name_idx;
  out.names.push_back("total");
  name_idx["total"] = 0;
  auto idx_of = [&](const std::string& s) {
    auto it = name_idx.find(s);
    if (it != name_idx.end()) return it->second;
    int64_t i = int64_t(out.names.size());
    out.names.push_back(s);
    name_idx.emplace(s, i);
    return i;
  };
  // Resolved names, cached per key.
  std::unordered_map<uint32_t, std::string> resolved;
  auto name = [&](uint32_t k) -> const std::string& {
    auto it = resolved.find(k);
    if (it == resolved.end()) it = resolved.emplace(k, name_of(k)).first;
    return it->second;
  };
  struct Item {
    int64_t total[2], self[2];
    int64_t name;  // output name index; -1 = not yet named (named when it is taken)
    int64_t x[2];  // absolute start
    size_t depth;
    int32_t node;  // -1 for a synthetic "other" leaf
  };
  // As Pyroscope's NewFlameGraph: children are pushed in name order and taken from the top, so
  // the last child is visited (and named) first; each level is then put back in x order and its
  // x turned into offsets from the end of the previous node.
  std::vector<std::vector<Item>> levels;
  std::vector<Item> stack;
  const Node& root = nodes_[0];
  stack.push_back({{root.total[0], root.total[1]}, {root.self[0], root.self[1]}, 0, {0, 0}, 0, 0});
  const int sides = diff ? 2 : 1;
  while (!stack.empty()) {
    Item it = stack.back();
    stack.pop_back();
    if (it.node > 0) it.name = idx_of(name(nodes_[size_t(it.node)].name));
    if (it.node < 0) it.name = idx_of("other");
    for (int s = 0; s < sides; ++s) out.max_self = std::max(out.max_self, it.self[s]);
    if (levels.size() <= it.depth) levels.emplace_back();
    levels[it.depth].push_back(it);
    if (it.node < 0) continue;
    const Node& n = nodes_[size_t(it.node)];
    // Children in name order; below-threshold ones, and a child named "other", fold into the
    // one "other" leaf after them.
    std::vector<std::pair<const std::string*, uint32_t>> kids;
    int64_t other[2] = {0, 0};
    for (auto c : n.children) {
      const Node& cn = nodes_[c];
      if (weight(cn) < min_keep || name(cn.name) == "other") {
        other[0] += cn.total[0];
        other[1] += cn.total[1];
      } else {
        kids.emplace_back(&name(cn.name), c);
      }
    }
    std::sort(kids.begin(), kids.end(), [](auto& a, auto& b) { return *a.first < *b.first; });
    // As Pyroscope places it: a node's self value first (left), its children after it.
    int64_t x[2] = {it.x[0] + it.self[0], it.x[1] + it.self[1]};
    for (auto& [nm, c] : kids) {
      const Node& cn = nodes_[c];
      stack.push_back({{cn.total[0], cn.total[1]},
                       {cn.self[0], cn.self[1]},
                       -1,
                       {x[0], x[1]},
                       it.depth + 1,
                       int32_t(c)});
      x[0] += cn.total[0];
      x[1] += cn.total[1];
    }
    if (other[0] || other[1])
      stack.push_back(
          {{other[0], other[1]}, {other[0], other[1]}, -1, {x[0], x[1]}, it.depth + 1, -1});
  }
  for (auto& lvl : levels) {
    std::reverse(lvl.begin(), lvl.end());
    std::vector<int64_t>& enc = out.levels.emplace_back();
    int64_t end[2] = {0, 0};
    for (auto& it : lvl) {
      for (int s = 0; s < sides; ++s) {
        enc.push_back(it.x[s] - end[s]);
        enc.push_back(it.total[s]);
        enc.push_back(it.self[s]);
        end[s] = it.x[s] + it.total[s];
      }
      enc.push_back(it.name);
    }
  }
  out.total = root.total[0];
  out.left_total = root.total[0];
  out.right_total = root.total[1];
  return out;
}

}  // namespace spanprof
