// Sandwich view data: for one function (a names entry), who calls it (callers, merged by call
// path from the function up to the root) and what it calls (callees, its subtrees merged). Both
// are returned in the FlameGraph encoding with the function as the root node, so the ordinary
// flame graph view draws them (callers inverted, above; callees below). Recursion counts once:
// only the function's outermost frames on each stack are taken.

import { frameKey, type Flame, type FlameGraphJSON } from "./model";

interface TreeNode {
  name: number;
  total: number;
  self: number;
  kids: Map<number, TreeNode>;
}

const node = (name: number): TreeNode => ({ name, total: 0, self: 0, kids: new Map() });

function child(parent: TreeNode, name: number): TreeNode {
  let c = parent.kids.get(name);
  if (!c) {
    c = node(name);
    parent.kids.set(name, c);
  }
  return c;
}

/** Levels of a tree, children in frame-key order, in the 4-value FlameGraph encoding. */
function encode(f: Flame, root: TreeNode): FlameGraphJSON {
  const key = (n: TreeNode) => frameKey(f, n.name);
  const levels: number[][] = [];
  let frontier: { n: TreeNode; x: number }[] = [{ n: root, x: 0 }];
  while (frontier.length) {
    const out: number[] = [];
    const next: { n: TreeNode; x: number }[] = [];
    let end = 0;
    for (const { n, x } of frontier) {
      out.push(x - end, n.total, n.self, n.name);
      end = x + n.total;
      let cx = x;
      for (const k of [...n.kids.values()].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0))) {
        next.push({ n: k, x: cx });
        cx += k.total;
      }
    }
    levels.push(out);
    frontier = next;
  }
  return { names: f.names, files: f.files, lines: f.lines, levels, total: root.total };
}

export interface Sandwich {
  callers: FlameGraphJSON;
  callees: FlameGraphJSON;
  /** Time in the function and below it (outermost frames), and in the function itself. */
  total: number;
  self: number;
}

/** The sandwich of names entry `target` in a single flame graph. */
export function sandwich(f: Flame, target: number): Sandwich {
  // Children lists per node, from the parent links.
  const kids: number[][][] = f.levels.map((lv) => Array.from({ length: lv.name.length }, () => [] as number[]));
  for (let l = 1; l < f.levels.length; l++) {
    const lv = f.levels[l];
    for (let i = 0; i < lv.name.length; i++) kids[l - 1][lv.parent[i]].push(i);
  }
  const callers = node(target);
  const callees = node(target);
  const mergeDown = (into: TreeNode, l: number, i: number) => {
    const lv = f.levels[l];
    into.total += lv.total[i];
    into.self += lv.self[i];
    for (const c of kids[l]?.[i] ?? []) mergeDown(child(into, f.levels[l + 1].name[c]), l + 1, c);
  };
  let self = 0;
  for (let l = 1; l < f.levels.length; l++) {
    const lv = f.levels[l];
    for (let i = 0; i < lv.name.length; i++) {
      if (lv.name[i] !== target) continue;
      self += lv.self[i];
      // Outermost only: skip when an ancestor is the same function.
      let nested = false;
      for (let al = l - 1, ai = lv.parent[i]; al >= 1; ai = f.levels[al].parent[ai], al--) {
        if (f.levels[al].name[ai] === target) {
          nested = true;
          break;
        }
      }
      if (nested) continue;
      mergeDown(callees, l, i);
      const v = lv.total[i];
      callers.total += v;
      let cur = callers;
      for (let al = l - 1, ai = lv.parent[i]; al >= 1; ai = f.levels[al].parent[ai], al--) {
        cur = child(cur, f.levels[al].name[ai]);
        cur.total += v;
      }
      cur.self += v;
    }
  }
  return { callers: encode(f, callers), callees: encode(f, callees), total: callers.total, self };
}
