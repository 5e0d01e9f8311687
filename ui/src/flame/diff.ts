// Builds the diff of two flame graphs in the UI: both are decoded, merged by call path, and the
// merged tree is encoded in the 7-value diff level format that decodeDiff() reads. Children are
// ordered by name so the result does not depend on the order either side listed them in.

import { significant } from "./confidence";
import { decodeFlameGraph, frameKey, samplesOf, type DiffJSON, type Flame } from "./model";

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

/** `index` maps a names entry of `f` to its merged index, shared by both sides. */
function addSide(root: MergedNode, f: Flame, right: boolean, index: (f: Flame, i: number) => number): void {
  const ids = f.names.map((_, i) => index(f, i));
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
  // Frames merge by name and place, so two `run`s in different files stay apart.
  const names = ["total"];
  const files = [""];
  const lines = [0];
  const ids = new Map<string, number>([["total", 0]]);
  const index = (f: Flame, i: number): number => {
    const key = frameKey(f, i);
    let id = ids.get(key);
    if (id === undefined) {
      id = names.length;
      ids.set(key, id);
      names.push(f.names[i]);
      files.push(f.files[i]);
      lines.push(f.lines[i]);
    }
    return id;
  };
  const keyOf = (id: number) => frameKey({ names, files, lines }, id);
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
      const kids = [...node.children.values()].sort((p, q) => (keyOf(p.name) < keyOf(q.name) ? -1 : keyOf(p.name) > keyOf(q.name) ? 1 : 0));
      for (const k of kids) {
        next.push({ node: k, xl: cl, xr: cr });
        cl += k.tl;
        cr += k.tr;
      }
    }
    levels.push(out);
    frontier = next;
  }
  return { names, files, lines, levels, left_total: a.total, right_total: b.total, left_samples: a.samples, right_samples: b.samples };
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

/**
 * Whether the sample counts support a frame's change of share (see confidence.ts). True when the
 * counts are unknown (nothing to test against).
 */
export function diffSupported(f: Pick<Flame, "total" | "totalR" | "samples" | "samplesR">, totalL: number, totalR: number): boolean {
  if (f.samples <= 0 || f.samplesR <= 0) return true;
  return significant(samplesOf(totalL, f.total, f.samples), f.samples, samplesOf(totalR, f.totalR, f.samplesR), f.samplesR);
}
