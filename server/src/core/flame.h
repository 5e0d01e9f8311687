// Call trees and Pyroscope's FlameGraph encoding. No HTTP here.
//
// FlameGraph: names[0] = "total"; levels[d] is a flat list of nodes [x_offset, total, self, name]
// where x_offset is relative to the end of the previous node on the same level; children are
// ordered by name. A diff tree has seven ints per node: [xl, totalL, selfL, xr, totalR, selfR,
// name]. With max_nodes > 0, nodes whose total is below the max_nodes-th largest total are folded
// into one "other" child of their parent.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

namespace spanprof {

struct FlameGraphOut {
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> levels;
  int64_t total = 0, max_self = 0;
  int64_t left_total = 0, right_total = 0;  // diff only
};

class FlameTree {
 public:
  FlameTree();
  // Adds a root-first stack of name keys (any uint32 ids) with value v to side 0 or 1.
  void add(const uint32_t* names, size_t n, int64_t v, int side = 0);
  int64_t total(int side = 0) const { return nodes_[0].total[side]; }
  // `name_of` resolves a key to its display name.
  FlameGraphOut flamegraph(const std::function<std::string(uint32_t)>& name_of,
                           int64_t max_nodes) const;
  FlameGraphOut diff(const std::function<std::string(uint32_t)>& name_of, int64_t max_nodes) const;
  // Pyroscope's tree serialization (querier.v1 PROFILE_FORMAT_TREE), side 0: nodes depth first
  // from a virtual root (empty name), each as uvarint(name length), name, uvarint(self),
  // uvarint(children); children below the max_nodes threshold fold into an "other" child.
  std::string tree_bytes(const std::function<std::string(uint32_t)>& name_of,
                         int64_t max_nodes) const;
  // The total (side 0) a node needs to be kept under max_nodes: the max_nodes-th largest node
  // total; 0 when every node is kept.
  int64_t min_keep(int64_t max_nodes) const;
  // How many leading names of a root-first stack lead through nodes kept under `min_keep`
  // (totals shrink with depth, so the kept part of a stack is a prefix).
  size_t kept_prefix(const uint32_t* names, size_t n, int64_t min_keep) const;

 private:
  struct Node {
    uint32_t name = 0;
    int64_t total[2] = {0, 0}, self[2] = {0, 0};
    std::vector<uint32_t> children;
  };
  FlameGraphOut encode(const std::function<std::string(uint32_t)>& name_of, int64_t max_nodes,
                       bool diff) const;
  int64_t threshold(int64_t max_nodes, bool diff) const;
  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, uint32_t> child_;  // (parent << 32 | name) → node
};

}  // namespace spanprof
