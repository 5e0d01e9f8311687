// Flame graph data: decodes Pyroscope's FlameGraph level encoding (single and diff), links every
// node to its parent, and answers the questions the views ask (search, top table, paths).
//
// Encoding (see ARCHITECTURE.md): names[0] = "total"; levels[i] is a flat list of nodes, each
// [x_offset, total, self, name_index] (single) or [xl, totalL, selfL, xr, totalR, selfR, name]
// (diff), x offsets relative to the end of the previous node on the same level.
//
// Layout units: a single graph is laid out in value units (0 .. total). A diff graph is laid out
// normalised, each side scaled to its own total, so a node's width is
// totalL/leftTotal + totalR/rightTotal (0 .. 2): two selections of very different size still
// compare shape for shape.

/** What /api/v1/flamegraph answers. */
export interface FlameGraphJSON {
  names: string[];
  levels: number[][];
  /** spanprof's own API: file and line per names entry ("" / 0 where unknown). */
  files?: string[];
  lines?: number[];
  /** How frames were grouped: by function (name + file) or by line. */
  frames?: "function" | "line";
  total: number;
  max_self?: number;
  period_ns?: number;
  sample_count?: number;
}

/** What /api/v1/diff answers (and what diffFlameGraphs() builds). */
export interface DiffJSON {
  names: string[];
  levels: number[][];
  /** Sample counts behind each side (for the significance of differences); absent = unknown. */
  left_samples?: number;
  right_samples?: number;
  files?: string[];
  lines?: number[];
  left_total: number;
  right_total: number;
}

export interface Level {
  /** Layout start and width (see the units above). */
  start: Float64Array;
  width: Float64Array;
  /** Values: for a single graph only `total`/`self` are used; a diff fills all four. */
  total: Float64Array;
  self: Float64Array;
  totalR: Float64Array;
  selfR: Float64Array;
  name: Int32Array;
  /** Index of the parent node on the level above; -1 on level 0. */
  parent: Int32Array;
}

export interface Flame {
  kind: "single" | "diff";
  names: string[];
  /** Per names entry: source file ("" when unknown) and line (0 when unknown). */
  files: string[];
  lines: number[];
  levels: Level[];
  /** Width of the whole graph in layout units: total (single) or up to 2 (diff). */
  layoutWidth: number;
  /** Single: total value. Diff: left total. */
  total: number;
  /** Diff only: right total. */
  totalR: number;
  nodeCount: number;
  maxSelf: number;
  /** Samples behind `total` (and `totalR`); 0 when unknown. */
  samples: number;
  samplesR: number;
}

export class FlameGraphError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FlameGraphError";
  }
}

/** Limits on outside input: bigger answers are refused with a clear error instead of a frozen tab. */
export const MAX_NODES = 2_000_000;
export const MAX_LEVELS = 10_000;

function emptyLevel(n: number): Level {
  return {
    start: new Float64Array(n),
    width: new Float64Array(n),
    total: new Float64Array(n),
    self: new Float64Array(n),
    totalR: new Float64Array(n),
    selfR: new Float64Array(n),
    name: new Int32Array(n),
    parent: new Int32Array(n),
  };
}

function checkShape(json: unknown, totalKeys: string[]): asserts json is { names: unknown[]; levels: unknown[] } {
  if (typeof json !== "object" || json === null) throw new FlameGraphError("flame graph: not a JSON object");
  const o = json as Record<string, unknown>;
  if (!Array.isArray(o.names)) throw new FlameGraphError("flame graph: `names` is not an array");
  if (!Array.isArray(o.levels)) throw new FlameGraphError("flame graph: `levels` is not an array");
  for (const k of totalKeys) {
    if (o[k] !== undefined && (typeof o[k] !== "number" || !Number.isFinite(o[k]) || (o[k] as number) < 0)) {
      throw new FlameGraphError(`flame graph: \`${k}\` is not a non-negative number`);
    }
  }
  if (o.levels.length > MAX_LEVELS) {
    throw new FlameGraphError(`flame graph: ${o.levels.length} levels, more than the ${MAX_LEVELS} this view draws`);
  }
}

function intAt(arr: unknown[], i: number, level: number): number {
  const v = arr[i];
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || Math.floor(v) !== v) {
    throw new FlameGraphError(`flame graph: level ${level} value #${i} is ${JSON.stringify(v)}, not a non-negative integer`);
  }
  return v;
}

/** Links each node of `lv` to the node of `up` that contains it; throws if none does. */
function linkParents(up: Level, lv: Level, levelIndex: number, eps: number): void {
  let p = 0;
  const n = lv.start.length;
  for (let i = 0; i < n; i++) {
    const s = lv.start[i];
    const e = s + lv.width[i];
    // A zero-width child may sit exactly at its parent's end; a wider one starts inside it.
    const zero = lv.width[i] === 0;
    while (p < up.start.length && (zero ? up.start[p] + up.width[p] < s - eps : up.start[p] + up.width[p] <= s + eps)) p++;
    if (p >= up.start.length || up.start[p] > s + eps || up.start[p] + up.width[p] < e - eps) {
      throw new FlameGraphError(`flame graph: node ${i} of level ${levelIndex} lies outside every node of level ${levelIndex - 1}`);
    }
    lv.parent[i] = p;
  }
}

/** files/lines parallel to names, checked; absent (Pyroscope's format) = unknown. */
function places(json: Record<string, unknown>, n: number): { files: string[]; lines: number[] } {
  const files = json.files;
  const lines = json.lines;
  if (files === undefined && lines === undefined) return { files: new Array<string>(n).fill(""), lines: new Array<number>(n).fill(0) };
  if (!Array.isArray(files) || files.length !== n || files.some((f) => typeof f !== "string")) throw new FlameGraphError("flame graph: `files` is not one string per name");
  if (!Array.isArray(lines) || lines.length !== n || lines.some((l) => typeof l !== "number" || !Number.isInteger(l))) throw new FlameGraphError("flame graph: `lines` is not one line number per name");
  // Negative lines (agents send -1 for "no line") read as unknown.
  return { files: files as string[], lines: (lines as number[]).map((l) => Math.max(0, l)) };
}

function checkNames(names: unknown[]): string[] {
  for (let i = 0; i < names.length; i++) {
    if (typeof names[i] !== "string") throw new FlameGraphError(`flame graph: names[${i}] is not a string`);
  }
  return names as string[];
}

/** Decodes a single (non-diff) flame graph. */
export function decodeFlameGraph(json: unknown): Flame {
  checkShape(json, ["total", "max_self"]);
  const names = checkNames(json.names);
  const raw = json.levels;
  const levels: Level[] = [];
  let nodeCount = 0;
  let maxSelf = 0;
  for (let l = 0; l < raw.length; l++) {
    const arr = raw[l];
    if (!Array.isArray(arr) || arr.length % 4 !== 0) {
      throw new FlameGraphError(`flame graph: level ${l} does not hold groups of 4 values`);
    }
    const n = arr.length / 4;
    nodeCount += n;
    if (nodeCount > MAX_NODES) throw new FlameGraphError(`flame graph: more than ${MAX_NODES} nodes`);
    const lv = emptyLevel(n);
    let x = 0;
    for (let i = 0; i < n; i++) {
      const off = intAt(arr, i * 4, l);
      const total = intAt(arr, i * 4 + 1, l);
      const self = intAt(arr, i * 4 + 2, l);
      const name = intAt(arr, i * 4 + 3, l);
      if (name >= names.length) throw new FlameGraphError(`flame graph: level ${l} names index ${name} out of range`);
      if (self > total) throw new FlameGraphError(`flame graph: level ${l} node ${i} has self ${self} > total ${total}`);
      x += off;
      lv.start[i] = x;
      lv.width[i] = total;
      lv.total[i] = total;
      lv.self[i] = self;
      lv.name[i] = name;
      lv.parent[i] = -1;
      if (self > maxSelf) maxSelf = self;
      x += total;
    }
    if (l > 0) linkParents(levels[l - 1], lv, l, 0);
    levels.push(lv);
  }
  const o = json as unknown as FlameGraphJSON;
  const total = typeof o.total === "number" ? o.total : levels.length > 0 ? sum(levels[0].total) : 0;
  return { kind: "single", names, ...places(json as Record<string, unknown>, names.length), levels, layoutWidth: total, total, totalR: 0, nodeCount, maxSelf, samples: num(o.sample_count), samplesR: 0 };
}

/** Decodes a diff flame graph (7 values per node). */
export function decodeDiff(json: unknown): Flame {
  checkShape(json, ["left_total", "right_total"]);
  const names = checkNames(json.names);
  const o = json as unknown as DiffJSON;
  const raw = json.levels;
  const lt = typeof o.left_total === "number" ? o.left_total : 0;
  const rt = typeof o.right_total === "number" ? o.right_total : 0;
  const sl = lt > 0 ? 1 / lt : 0;
  const sr = rt > 0 ? 1 / rt : 0;
  const levels: Level[] = [];
  let nodeCount = 0;
  let maxSelf = 0;
  for (let l = 0; l < raw.length; l++) {
    const arr = raw[l];
    if (!Array.isArray(arr) || arr.length % 7 !== 0) {
      throw new FlameGraphError(`diff flame graph: level ${l} does not hold groups of 7 values`);
    }
    const n = arr.length / 7;
    nodeCount += n;
    if (nodeCount > MAX_NODES) throw new FlameGraphError(`diff flame graph: more than ${MAX_NODES} nodes`);
    const lv = emptyLevel(n);
    let xl = 0;
    let xr = 0;
    for (let i = 0; i < n; i++) {
      xl += intAt(arr, i * 7, l);
      const tl = intAt(arr, i * 7 + 1, l);
      const sfl = intAt(arr, i * 7 + 2, l);
      xr += intAt(arr, i * 7 + 3, l);
      const tr = intAt(arr, i * 7 + 4, l);
      const sfr = intAt(arr, i * 7 + 5, l);
      const name = intAt(arr, i * 7 + 6, l);
      if (name >= names.length) throw new FlameGraphError(`diff flame graph: level ${l} names index ${name} out of range`);
      lv.start[i] = xl * sl + xr * sr;
      lv.width[i] = tl * sl + tr * sr;
      lv.total[i] = tl;
      lv.self[i] = sfl;
      lv.totalR[i] = tr;
      lv.selfR[i] = sfr;
      lv.name[i] = name;
      lv.parent[i] = -1;
      maxSelf = Math.max(maxSelf, sfl, sfr);
      xl += tl;
      xr += tr;
    }
    if (l > 0) linkParents(levels[l - 1], lv, l, 1e-9);
    levels.push(lv);
  }
  return { kind: "diff", names, ...places(json as Record<string, unknown>, names.length), levels, layoutWidth: (lt > 0 ? 1 : 0) + (rt > 0 ? 1 : 0), total: lt, totalR: rt, nodeCount, maxSelf, samples: num(o.left_samples), samplesR: num(o.right_samples) };
}

function num(v: unknown): number {
  return typeof v === "number" && Number.isFinite(v) && v > 0 ? v : 0;
}

/** Samples behind a value of a flame graph side (values may be ns). */
export function samplesOf(value: number, total: number, samples: number): number {
  return total > 0 ? (value / total) * samples : 0;
}

function sum(a: Float64Array): number {
  let s = 0;
  for (const v of a) s += v;
  return s;
}

/** "file:line" of a names entry ("file" without a line, "" when unknown). */
export function placeOf(f: Pick<Flame, "files" | "lines">, nameIndex: number): string {
  const file = f.files[nameIndex] ?? "";
  const line = f.lines[nameIndex] ?? 0;
  return file ? (line > 0 ? `${file}:${line}` : file) : "";
}

/** The last two parts of a path: "demo/service.py" for "/usr/lib/python3/site-packages/demo/service.py". */
export function shortFile(file: string): string {
  const parts = file.split(/[\\/]/);
  return parts.length <= 2 ? file : parts.slice(-2).join("/");
}

/** What tells two frames apart: the name, plus the place when known ("run a.py:10"). */
export function frameKey(f: Pick<Flame, "names" | "files" | "lines">, nameIndex: number): string {
  const place = placeOf(f, nameIndex);
  return place ? `${f.names[nameIndex]} ${place}` : f.names[nameIndex];
}

/** Frame keys from the root ("total" excluded) down to the node. */
export function pathOf(f: Flame, level: number, index: number): string[] {
  const out: string[] = [];
  for (let l = level, i = index; l >= 0; i = f.levels[l].parent[i], l--) out.push(frameKey(f, f.levels[l].name[i]));
  out.reverse();
  return out.slice(1);
}

/** Finds the node at the end of a path of frame keys (or bare names), or null. */
export function findPath(f: Flame, path: string[]): { level: number; index: number } | null {
  if (f.levels.length === 0) return null;
  let parent = 0;
  for (let depth = 0; depth < path.length; depth++) {
    const lv = f.levels[depth + 1];
    if (!lv) return null;
    let found = -1;
    for (let i = 0; i < lv.name.length; i++) {
      if (lv.parent[i] === parent && (frameKey(f, lv.name[i]) === path[depth] || f.names[lv.name[i]] === path[depth])) {
        found = i;
        break;
      }
    }
    if (found < 0) return null;
    parent = found;
  }
  return { level: path.length, index: parent };
}

/**
 * Marks the nodes whose name contains `query` (case-insensitive) and sums the total of the
 * outermost matches, so recursion is not counted twice.
 */
export function search(f: Flame, query: string): { matches: Uint8Array[]; matchedTotal: number; matchedTotalR: number; count: number } {
  const q = query.trim().toLowerCase();
  const nameHit = new Uint8Array(f.names.length);
  if (q) for (let i = 0; i < f.names.length; i++) nameHit[i] = frameKey(f, i).toLowerCase().includes(q) ? 1 : 0;
  const matches: Uint8Array[] = [];
  // covered[l][i] = 1 when the node or an ancestor matched.
  let prevCovered = new Uint8Array(0);
  let matchedTotal = 0;
  let matchedTotalR = 0;
  let count = 0;
  for (let l = 0; l < f.levels.length; l++) {
    const lv = f.levels[l];
    const m = new Uint8Array(lv.name.length);
    const covered = new Uint8Array(lv.name.length);
    for (let i = 0; i < lv.name.length; i++) {
      const hit = q !== "" && nameHit[lv.name[i]] === 1;
      const above = l > 0 && prevCovered[lv.parent[i]] === 1;
      m[i] = hit ? 1 : 0;
      if (hit) count++;
      if (hit && !above) {
        matchedTotal += lv.total[i];
        matchedTotalR += lv.totalR[i];
      }
      covered[i] = hit || above ? 1 : 0;
    }
    matches.push(m);
    prevCovered = covered;
  }
  return { matches, matchedTotal, matchedTotalR, count };
}

export interface TopRow {
  name: string;
  /** Index into names (also files/lines): one row per frame key. */
  index: number;
  self: number;
  total: number;
  selfR: number;
  totalR: number;
}

/**
 * Self and total per function name. Total counts a function once per stack even when it recurses
 * (only its outermost frame adds to the total).
 */
export function topTable(f: Flame): TopRow[] {
  const rows = new Map<number, TopRow>();
  for (let l = 1; l < f.levels.length; l++) {
    const lv = f.levels[l];
    for (let i = 0; i < lv.name.length; i++) {
      const nm = lv.name[i];
      let row = rows.get(nm);
      if (!row) {
        row = { name: f.names[nm], index: nm, self: 0, total: 0, selfR: 0, totalR: 0 };
        rows.set(nm, row);
      }
      row.self += lv.self[i];
      row.selfR += lv.selfR[i];
      let recursive = false;
      for (let al = l - 1, ai = lv.parent[i]; al >= 1; ai = f.levels[al].parent[ai], al--) {
        if (f.levels[al].name[ai] === nm) {
          recursive = true;
          break;
        }
      }
      if (!recursive) {
        row.total += lv.total[i];
        row.totalR += lv.totalR[i];
      }
    }
  }
  return [...rows.values()];
}

/** Index of the node on `lv` covering layout position x, or -1 (binary search; starts ascend). */
export function nodeAt(lv: Level, x: number): number {
  let lo = 0;
  let hi = lv.start.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (lv.start[mid] > x) hi = mid - 1;
    else if (lv.start[mid] + lv.width[mid] <= x) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** First node on `lv` whose end is past x (for drawing only what a viewport shows). */
export function firstEndingAfter(lv: Level, x: number): number {
  let lo = 0;
  let hi = lv.start.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (lv.start[mid] + lv.width[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** A growing names table (names[0] = "total") and a function giving a name's index in it. */
export function nameTable(): { names: string[]; index: (name: string) => number } {
  const names: string[] = ["total"];
  const map = new Map<string, number>([["total", 0]]);
  const index = (n: string): number => {
    let i = map.get(n);
    if (i === undefined) {
      i = names.length;
      names.push(n);
      map.set(n, i);
    }
    return i;
  };
  return { names, index };
}
