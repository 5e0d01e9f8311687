// Canvas flame graph renderer. Draws straight from the decoded level arrays: per level, a binary
// search finds the first node in the viewport and drawing stops at its right edge; nodes narrower
// than MIN_PX are skipped (their parent already covers them), labels are cut by a precomputed
// character width instead of measureText. Hover and keyboard focus are drawn on a second canvas
// so moving the mouse never repaints the graph. bench/flamegraph_render.mjs measures it.

import { diffSupported, shareDelta } from "./diff";
import { firstEndingAfter, shortFile, type Flame } from "./model";

export const ROW_PX = 18;
const MIN_PX = 0.35;
const LABEL_MIN_PX = 24;
const FONT = '11px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace';

export interface Viewport {
  /** Layout range shown across the full width. */
  x0: number;
  x1: number;
  /** Level of the zoomed frame: levels above it are its ancestors, drawn faded. */
  zoomLevel: number;
}

export interface DrawOptions {
  width: number;
  dpr: number;
  view: Viewport;
  /** Per level, 1 for nodes matching the search; null when not searching. */
  matches: Uint8Array[] | null;
  /** Most levels drawn (keeps the canvas below browser size limits). */
  maxLevels: number;
  /** Root at the bottom (a sandwich's callers). */
  inverted?: boolean;
  /** Fill of frames a search does not match, and of unchanged diff frames (theme dependent). */
  dim?: string;
}

/** Row of a level on the canvas (top = 0). */
export function rowOf(level: number, levels: number, inverted: boolean | undefined): number {
  return inverted ? levels - 1 - level : level;
}

function hashName(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return h >>> 0;
}

/** Warm palette keyed by the name's module part (before the last "." or ":"), so a package keeps one hue family. */
export function frameColor(name: string): string {
  const cut = Math.max(name.lastIndexOf(":"), name.lastIndexOf("."));
  const mod = cut > 0 ? name.slice(0, cut) : name;
  const h1 = hashName(mod);
  const h2 = hashName(name);
  const hue = 10 + (h1 % 40); // red .. orange .. yellow
  const sat = 55 + (h2 % 25);
  const light = 52 + ((h2 >>> 8) % 14);
  return hslHex(hue, sat / 100, light / 100);
}

/** "#rrggbb" for an HSL colour: the canvas parses hex faster than hsl(), per fillStyle set. */
function hslHex(h: number, s: number, l: number): string {
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    const c = l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1));
    return Math.round(c * 255).toString(16).padStart(2, "0");
  };
  return `#${f(0)}${f(8)}${f(4)}`;
}

/** Diff colour: red where the comparison spends a larger share, green where smaller. */
export function diffColor(deltaPct: number): string {
  const m = Math.min(1, Math.abs(deltaPct) / 20);
  if (m < 0.02) return "hsl(220 10% 82%)";
  return deltaPct > 0 ? `hsl(0 ${40 + 45 * m}% ${84 - 30 * m}%)` : `hsl(130 ${35 + 40 * m}% ${84 - 32 * m}%)`;
}

/** Labels by name index: the function, then where it is ("run  demo/a.py:10"). */
const labelTables = new WeakMap<Flame, string[]>();
export function labelTable(f: Flame): string[] {
  let t = labelTables.get(f);
  if (!t) {
    t = f.names.map((n, i) => (f.files[i] ? `${n}  ${shortFile(f.files[i])}${f.lines[i] > 0 ? ":" + f.lines[i] : ""}` : n));
    labelTables.set(f, t);
  }
  return t;
}

/** Colours by name index, computed once per flame graph. */
const colorTables = new WeakMap<Flame, string[]>();
function colorTable(f: Flame): string[] {
  let t = colorTables.get(f);
  if (!t) {
    t = f.names.map(frameColor);
    colorTables.set(f, t);
  }
  return t;
}

let charWidth = 0;

/** Canvas height in CSS pixels for a flame graph. */
export function heightFor(f: Flame, maxLevels: number): number {
  return Math.max(1, Math.min(f.levels.length, maxLevels)) * ROW_PX;
}

/** Draws the whole graph; returns how many nodes were painted. */
export function drawFlame(ctx: CanvasRenderingContext2D, f: Flame, o: DrawOptions): number {
  const { width, dpr, view, matches } = o;
  const levels = Math.min(f.levels.length, o.maxLevels);
  const height = levels * ROW_PX;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = FONT;
  ctx.textBaseline = "middle";
  if (!charWidth) charWidth = ctx.measureText("mmmmmmmmmm").width / 10 || 6.6;
  const span = view.x1 - view.x0;
  if (span <= 0 || levels === 0) return 0;
  const k = width / span;
  let painted = 0;
  const searching = matches !== null;
  const colors = colorTable(f);
  const labels = labelTable(f);
  const dim = o.dim ?? "#e0e0e0";
  let lastFill = "";
  for (let l = 0; l < levels; l++) {
    const lv = f.levels[l];
    const y = rowOf(l, levels, o.inverted) * ROW_PX;
    const n = lv.start.length;
    let i = firstEndingAfter(lv, view.x0);
    ctx.globalAlpha = l < view.zoomLevel ? 0.55 : 1;
    for (; i < n; i++) {
      const s = lv.start[i];
      if (s >= view.x1) break;
      const w = lv.width[i] * k;
      if (w < MIN_PX) continue;
      let x = (s - view.x0) * k;
      let ww = w;
      if (x < 0) {
        ww += x;
        x = 0;
      }
      if (x + ww > width) ww = width - x;
      let fill: string;
      if (searching && matches[l][i] === 0) fill = dim;
      else if (f.kind === "diff") fill = diffSupported(f, lv.total[i], lv.totalR[i]) ? diffColor(shareDelta(lv.total[i], lv.totalR[i], f.total, f.totalR)) : diffColor(0);
      else fill = colors[lv.name[i]];
      if (fill !== lastFill) {
        ctx.fillStyle = fill;
        lastFill = fill;
      }
      ctx.fillRect(x, y, ww > 1.5 ? ww - 0.5 : ww, ROW_PX - 1);
      painted++;
      if (ww >= LABEL_MIN_PX) {
        const name = labels[lv.name[i]];
        const room = Math.floor((ww - 6) / charWidth);
        if (room >= 2) {
          const label = name.length <= room ? name : name.slice(0, room - 1) + "…";
          ctx.fillStyle = "#1d1d1d";
          ctx.fillText(label, x + 3, y + ROW_PX / 2);
          lastFill = "";
        }
      }
    }
  }
  ctx.globalAlpha = 1;
  return painted;
}

/** Outline of one node (hover / keyboard focus) on the overlay canvas. */
export function drawOutline(ctx: CanvasRenderingContext2D, f: Flame, o: { width: number; dpr: number; view: Viewport; inverted?: boolean; maxLevels: number }, level: number, index: number, color: string): void {
  const lv = f.levels[level];
  if (!lv || index < 0 || index >= lv.start.length) return;
  const k = o.width / (o.view.x1 - o.view.x0);
  let x = (lv.start[index] - o.view.x0) * k;
  let w = lv.width[index] * k;
  if (x < 0) {
    w += x;
    x = 0;
  }
  w = Math.min(w, o.width - x);
  ctx.setTransform(o.dpr, 0, 0, o.dpr, 0, 0);
  ctx.strokeStyle = color;
  ctx.lineWidth = 2;
  const row = rowOf(level, Math.min(f.levels.length, o.maxLevels), o.inverted);
  ctx.strokeRect(x + 1, row * ROW_PX + 1, Math.max(w - 2, 1), ROW_PX - 3);
}
