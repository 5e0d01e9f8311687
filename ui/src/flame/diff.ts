// Builds the diff of two flame graphs in the UI: both are decoded, merged by call path, and the
// merged tree is encoded in the 7-value diff level format that decodeDiff() reads. Children are
// ordered by name so the result does not depend on the order either side listed them in.

import { decodeFlameGraph, nameTable, type DiffJSON, type Flame } from "./model";

interface MergedNode {
  name: number;
  tl: number;
  sl: number;
  tr: number;
  sr: number;
  /** Keyed by merged name index. */
  children: Map<number, MergedNode>;
}

function newNode(name: number): MergedNode {
  return { name, tl: 0, sl: 0, tr: 0, sr: 0, children: new Map() };
}

/** `index` maps a name to its merged index, shared by both sides. */
function addSide(root: MergedNode, f: Flame, right: boolean, index: (name: string) => number): void {
  const ids = f.names.map(index);
  // nodes[l][i] = merged node for node i of level l.
  let prev: MergedNode[] = [];
  for (let l = 0; l < f.levels.length; l++) {
    const lv = f.levels[l];
    const cur: MergedNode[] = new Array<MergedNode>(lv.name.length);
    for (let i = 0; i < lv.name.length; i++) {
      let node: MergedNode;
      if (l === 0) {
        node = root;
      } else {
        const parent = prev[lv.parent[i]];
        const nm = ids[lv.name[i]];
        let child = parent.children.get(nm);
        if (!child) {
          child = newNode(nm);
          parent.children.set(nm, child);
        }
        node = child;
      }
      if (right) {
        node.tr += lv.total[i];
        node.sr += lv.self[i];
      } else {
        node.tl += lv.total[i];
        node.sl += lv.self[i];
      }
      cur[i] = node;
    }
    prev = cur;
  }
}

/** Diff of `left` (baseline) and `right` (comparison), as /api/v1/diff would answer. */
export function diffFlameGraphs(left: unknown, right: unknown): DiffJSON {
  const a = decodeFlameGraph(left);
  const b = decodeFlameGraph(right);
  const { names, index } = nameTable();
  const root = newNode(0);
  addSide(root, a, false, index);
  addSide(root, b, true, index);

  const levels: number[][] = [];
  // Breadth first, keeping each level in left-to-right order; track absolute starts per side.
  let frontier: { node: MergedNode; xl: number; xr: number }[] = [{ node: root, xl: 0, xr: 0 }];
  while (frontier.length > 0) {
    const out: number[] = [];
    let endL = 0;
    let endR = 0;
    const next: { node: MergedNode; xl: number; xr: number }[] = [];
    for (const { node, xl, xr } of frontier) {
      out.push(xl - endL, node.tl, node.sl, xr - endR, node.tr, node.sr, node.name);
      endL = xl + node.tl;
      endR = xr + node.tr;
      let cl = xl;
      let cr = xr;
      const kids = [...node.children.values()].sort((p, q) => (names[p.name] < names[q.name] ? -1 : names[p.name] > names[q.name] ? 1 : 0));
      for (const k of kids) {
        next.push({ node: k, xl: cl, xr: cr });
        cl += k.tl;
        cr += k.tr;
      }
    }
    levels.push(out);
    frontier = next;
  }
  return { names, levels, left_total: a.total, right_total: b.total };
}

/**
 * Change of a frame's share between the two sides, in percentage points of each side's total
 * (positive: the right side spends a larger share there).
 */
export function shareDelta(totalL: number, totalR: number, leftTotal: number, rightTotal: number): number {
  const l = leftTotal > 0 ? totalL / leftTotal : 0;
  const r = rightTotal > 0 ? totalR / rightTotal : 0;
  return (r - l) * 100;
}
