// A deterministic synthetic profile of N nodes, in two shapes: Pyroscope's level encoding (what
// the server sends our renderer) and the nested {name, value, children} tree d3-flame-graph reads.
// Shape: deep, skewed stacks with shared function names, like a real service's CPU profile.

import { nameTable } from "../src/flame/model";

export interface TreeNode {
  name: string;
  value: number;
  children: TreeNode[];
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function syntheticTree(nodes: number, seed = 42, maxDepth = 60): TreeNode {
  const rand = rng(seed);
  const names = Array.from({ length: 4000 }, (_, i) => `pkg${i % 97}.module${i % 389}:function_${i}`);
  const root: TreeNode = { name: "total", value: 0, children: [] };
  const all: { node: TreeNode; depth: number; self: number }[] = [{ node: root, depth: 0, self: 0 }];
  while (all.length < nodes) {
    // Prefer recent nodes (deep stacks) but sometimes branch near the root (wide graphs).
    const pick = rand() < 0.7 ? all.length - 1 - Math.floor(rand() * Math.min(all.length, 30)) : Math.floor(rand() * all.length);
    const parent = all[pick];
    if (parent.depth >= maxDepth) continue;
    const child: TreeNode = { name: names[Math.floor(rand() ** 2 * names.length)], value: 0, children: [] };
    parent.node.children.push(child);
    all.push({ node: child, depth: parent.depth + 1, self: 1 + Math.floor(rand() ** 3 * 200) });
  }
  // value = self + children (d3-flame-graph's default: values are totals).
  for (let i = all.length - 1; i >= 0; i--) {
    const e = all[i];
    e.node.value = e.self + e.node.children.reduce((a, c) => a + c.value, 0);
  }
  return root;
}

/** Pyroscope FlameGraph levels for the same tree, with spanprof's file and line per name. */
export function toLevels(root: TreeNode): { names: string[]; files: string[]; lines: number[]; levels: number[][]; total: number; max_self: number } {
  const { names, index: idx } = nameTable();
  const levels: number[][] = [];
  let maxSelf = 0;
  let frontier: { node: TreeNode; x: number }[] = [{ node: root, x: 0 }];
  while (frontier.length) {
    const out: number[] = [];
    const next: { node: TreeNode; x: number }[] = [];
    let end = 0;
    for (const { node, x } of frontier) {
      const self = node.value - node.children.reduce((a, c) => a + c.value, 0);
      maxSelf = Math.max(maxSelf, self);
      out.push(x - end, node.value, self, idx(node.name));
      end = x + node.value;
      let cx = x;
      for (const c of node.children) {
        next.push({ node: c, x: cx });
        cx += c.value;
      }
    }
    levels.push(out);
    frontier = next;
  }
  // A place per name, like the server's answer (d3-flame-graph ignores them).
  const files = names.map((n, i) => (i === 0 ? "" : `/srv/app/${n.split(":")[0].replace(/\./g, "/")}.py`));
  const lines = names.map((_, i) => (i === 0 ? 0 : 10 + ((i * 37) % 900)));
  return { names, files, lines, levels, total: root.value, max_self: maxSelf };
}
