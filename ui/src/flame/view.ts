// Interactive flame graph: canvas drawing (render.ts), search/highlight, click-to-zoom, tooltips
// with self/total absolute and %, keyboard navigation, and an accessible list of the frames that
// are wide enough to be seen (also what the browser test reads instead of pixels).

import { clear, h } from "../dom";
import { fmtPct } from "../format";
import { shareMargin } from "./confidence";
import { diffSupported, shareDelta } from "./diff";
import { findPath, firstEndingAfter, frameKey, nodeAt, pathOf, placeOf, samplesOf, search, type Flame } from "./model";
import { drawFlame, drawOutline, heightFor, ROW_PX, rowOf, type Viewport } from "./render";

export interface FlameViewOptions {
  /** Formats a value (CPU ns or samples) for tooltips. */
  format: (v: number) => string;
  /** Called when the user zooms (path of frame names) or resets (null). */
  onZoom?: (path: string[] | null) => void;
  /** Called when the search text changes. */
  onSearch?: (q: string) => void;
  /** Labels for the two sides of a diff. */
  sides?: [string, string];
  maxLevels?: number;
  /** How many frames the accessible list names at most (widest first). */
  maxListed?: number;
  /** Root at the bottom (a sandwich's callers). */
  inverted?: boolean;
  /** Called when a frame is clicked or chosen with Enter (its names index), e.g. to show its source. */
  onPick?: (nameIndex: number) => void;
  /** Accessible name of the canvas. */
  label?: string;
}

/** Margin of a share at the profile's sample count, when it is worth saying (few samples). */
function marginText(f: Flame, value: number, total: number): string {
  if (f.kind !== "single" || f.samples <= 0) return "";
  const m = shareMargin(samplesOf(value, total, f.samples), f.samples);
  return m >= 0.5 ? ` ± ${m.toFixed(m >= 10 ? 0 : 1)} pt` : "";
}

/** A CSS custom property of the page (theme colours for the canvas). */
function cssVar(name: string, fallback: string): string {
  const v = typeof getComputedStyle === "function" ? getComputedStyle(document.documentElement).getPropertyValue(name).trim() : "";
  return v || fallback;
}

interface NodeRef {
  level: number;
  index: number;
}

export class FlameGraphView {
  readonly el: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly overlay: HTMLCanvasElement;
  private readonly tooltip: HTMLElement;
  private readonly searchInput: HTMLInputElement;
  private readonly searchInfo: HTMLElement;
  private readonly resetBtn: HTMLButtonElement;
  private readonly crumbs: HTMLElement;
  private readonly list: HTMLOListElement;
  private readonly live: HTMLElement;
  private readonly wrap: HTMLElement;
  private flame: Flame | null = null;
  private view: Viewport = { x0: 0, x1: 1, zoomLevel: 0 };
  private zoom: NodeRef | null = null;
  private matches: Uint8Array[] | null = null;
  private hover: NodeRef | null = null;
  private focus: NodeRef | null = null;
  private width = 0;
  /** Levels the last draw() painted (rows of the canvas). */
  private drawnLevels = 1;
  private resize: ResizeObserver | null = null;
  private raf = 0;

  constructor(private readonly opts: FlameViewOptions) {
    this.canvas = h("canvas", {
      class: "flame-canvas",
      tabindex: "0",
      // "application": screen readers pass the arrow keys through to the frame navigation.
      role: "application",
      "aria-roledescription": "flame graph",
      "aria-label": `${opts.label ?? "Flame graph"}. Arrow keys move between frames, Enter zooms, Escape resets the zoom.`,
      "data-testid": "flame-canvas",
    });
    this.overlay = h("canvas", { class: "flame-overlay", "aria-hidden": "true" });
    this.tooltip = h("div", { class: "flame-tooltip", role: "tooltip", hidden: true });
    this.searchInput = h("input", {
      type: "search",
      class: "flame-search",
      placeholder: "Search frames…",
      "aria-label": "Search frames by name",
      oninput: () => this.applySearch(this.searchInput.value, true),
    });
    this.searchInfo = h("span", { class: "flame-search-info", "aria-live": "polite" });
    this.resetBtn = h("button", { type: "button", class: "btn small", disabled: true, onclick: () => this.setZoom(null, true) }, "Reset zoom");
    this.crumbs = h("div", { class: "flame-crumbs", "aria-label": "Zoomed frame" });
    this.list = h("ol", { class: "sr-only flame-frames", "data-testid": "flame-frames", "aria-label": "Frames in view, widest first" });
    this.live = h("div", { class: "sr-only", "aria-live": "polite" });
    this.wrap = h("div", { class: "flame-wrap" }, this.canvas, this.overlay, this.tooltip);
    this.el = h(
      "div",
      { class: "flame" },
      h("div", { class: "flame-toolbar" }, this.searchInput, this.searchInfo, this.resetBtn, opts.sides ? this.legend(opts.sides) : null),
      this.crumbs,
      this.wrap,
      this.list,
      this.live,
    );
    this.canvas.addEventListener("mousemove", (e) => this.onMove(e));
    this.canvas.addEventListener("mouseleave", () => this.setHover(null));
    this.canvas.addEventListener("click", (e) => this.onClick(e));
    this.canvas.addEventListener("keydown", (e) => this.onKey(e));
    this.canvas.addEventListener("blur", () => {
      this.focus = null;
      this.drawOverlay();
      this.tooltip.hidden = true;
    });
    window.addEventListener("themechange", this.onTheme);
    if (typeof ResizeObserver !== "undefined") {
      this.resize = new ResizeObserver(() => this.schedule());
      this.resize.observe(this.wrap);
    }
  }

  private legend(sides: [string, string]): HTMLElement {
    return h(
      "span",
      { class: "flame-legend" },
      h("span", { class: "swatch", style: { background: "hsl(130 70% 55%)" } }),
      `smaller share in ${sides[1]}`,
      h("span", { class: "swatch", style: { background: "hsl(220 10% 82%)" } }),
      "same",
      h("span", { class: "swatch", style: { background: "hsl(0 80% 58%)" } }),
      `larger share in ${sides[1]}`,
    );
  }

  setFlame(f: Flame, zoomPath?: string[] | null, query?: string): void {
    this.flame = f;
    this.hover = null;
    this.focus = null;
    this.searchInput.value = query ?? this.searchInput.value;
    this.applySearch(this.searchInput.value, false);
    const z = zoomPath && zoomPath.length ? findPath(f, zoomPath) : null;
    this.setZoom(z, false);
  }

  /** Sets the search text (e.g. from the top table). */
  setQuery(q: string, notify = true): void {
    this.searchInput.value = q;
    this.applySearch(q, notify);
  }

  private readonly onTheme = () => this.schedule();

  destroy(): void {
    window.removeEventListener("themechange", this.onTheme);
    this.resize?.disconnect();
    cancelAnimationFrame(this.raf);
  }

  private applySearch(q: string, notify: boolean): void {
    const f = this.flame;
    if (!f) return;
    if (q.trim() === "") {
      this.matches = null;
      this.searchInfo.textContent = "";
    } else {
      const r = search(f, q);
      this.matches = r.matches;
      const share = f.kind === "diff" ? `${fmtPct(r.matchedTotal, f.total)} → ${fmtPct(r.matchedTotalR, f.totalR)}` : fmtPct(r.matchedTotal, f.total);
      this.searchInfo.textContent = r.count === 0 ? "no frame matches" : `${r.count} ${r.count === 1 ? "frame" : "frames"}, ${share} of total`;
    }
    if (notify) this.opts.onSearch?.(q);
    this.schedule();
  }

  private setZoom(z: NodeRef | null, notify: boolean): void {
    const f = this.flame;
    if (!f) return;
    if (z && z.level === 0) z = null;
    this.zoom = z;
    if (z) {
      const lv = f.levels[z.level];
      this.view = { x0: lv.start[z.index], x1: lv.start[z.index] + lv.width[z.index], zoomLevel: z.level };
    } else {
      this.view = { x0: 0, x1: f.layoutWidth || 1, zoomLevel: 0 };
    }
    this.resetBtn.disabled = !z;
    clear(this.crumbs);
    if (z) {
      const path = pathOf(f, z.level, z.index);
      this.crumbs.append("Zoomed into ", h("code", null, path[path.length - 1] ?? ""), ` (depth ${z.level})`);
    }
    if (notify) this.opts.onZoom?.(z ? pathOf(f, z.level, z.index) : null);
    this.schedule();
  }

  private schedule(): void {
    cancelAnimationFrame(this.raf);
    this.raf = requestAnimationFrame(() => this.draw());
  }

  /** Paints the graph now (the benchmark calls this directly). Returns the number of nodes painted. */
  draw(): number {
    const f = this.flame;
    cancelAnimationFrame(this.raf);
    if (!f) return 0;
    const width = this.wrap.clientWidth || 800;
    this.width = width;
    const dpr = window.devicePixelRatio || 1;
    const maxLevels = this.levelsInView();
    this.drawnLevels = maxLevels;
    const height = heightFor(f, maxLevels);
    for (const c of [this.canvas, this.overlay]) {
      // Resizing reallocates the backing store: only when the size really changed.
      const w = Math.round(width * dpr);
      const hh = Math.round(height * dpr);
      if (c.width !== w || c.height !== hh) {
        c.width = w;
        c.height = hh;
        c.style.width = `${width}px`;
        c.style.height = `${height}px`;
      }
    }
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return 0;
    const painted = drawFlame(ctx, f, { width, dpr, view: this.view, matches: this.matches, maxLevels, inverted: this.opts.inverted, dim: cssVar("--flame-dim", "#e0e0e0") });
    this.updateList(width, maxLevels);
    this.drawOverlay();
    return painted;
  }

  /**
   * Levels to draw: up to the deepest one with a frame inside the viewport (a zoomed frame's
   * subtree is often shallower than the whole graph), at most maxLevels.
   */
  private levelsInView(): number {
    const f = this.flame!;
    const max = Math.min(f.levels.length, this.opts.maxLevels ?? 1500);
    let last = Math.min(this.view.zoomLevel, max - 1);
    for (let l = last + 1; l < max; l++) {
      const lv = f.levels[l];
      const i = firstEndingAfter(lv, this.view.x0);
      if (i < lv.start.length && lv.start[i] < this.view.x1) last = l;
      else break;
    }
    return Math.max(1, last + 1);
  }

  private drawOverlay(): void {
    const f = this.flame;
    const ctx = this.overlay.getContext("2d");
    if (!f || !ctx) return;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    const o = { width: this.width, dpr, view: this.view, inverted: this.opts.inverted, maxLevels: this.drawnLevels };
    if (this.hover) drawOutline(ctx, f, o, this.hover.level, this.hover.index, cssVar("--flame-hover", "#222"));
    if (this.focus) drawOutline(ctx, f, o, this.focus.level, this.focus.index, "#1a5fd0");
  }

  /** The accessible list: the widest frames in view, with their values. */
  private updateList(width: number, maxLevels: number): void {
    const f = this.flame!;
    const max = this.opts.maxListed ?? 300;
    const k = width / (this.view.x1 - this.view.x0);
    // Visible width of every frame at least 2 px wide; then the `max` widest, found through a
    // numeric sort of the widths alone (cheap) rather than sorting the candidates.
    const ls: number[] = [];
    const is: number[] = [];
    const ws: number[] = [];
    const minW = 2 / k;
    for (let l = 1; l < Math.min(f.levels.length, maxLevels); l++) {
      const lv = f.levels[l];
      for (let i = firstEndingAfter(lv, this.view.x0); i < lv.start.length; i++) {
        const s = lv.start[i];
        if (s >= this.view.x1) break;
        const w = Math.min(s + lv.width[i], this.view.x1) - Math.max(s, this.view.x0);
        if (w >= minW) {
          ls.push(l);
          is.push(i);
          ws.push(w);
        }
      }
    }
    let threshold = 0;
    if (ws.length > max) threshold = Float64Array.from(ws).sort()[ws.length - max];
    const cands: { l: number; i: number; w: number }[] = [];
    for (let j = 0; j < ws.length && cands.length < max * 2; j++) if (ws[j] >= threshold) cands.push({ l: ls[j], i: is[j], w: ws[j] });
    cands.sort((a, b) => b.w - a.w);
    const total = ws.length;
    const frag = document.createDocumentFragment();
    for (const c of cands.slice(0, max)) {
      const lv = f.levels[c.l];
      const name = f.names[lv.name[c.i]];
      frag.appendChild(
        h(
          "li",
          {
            "data-name": name,
            "data-file": f.files[lv.name[c.i]] || undefined,
            "data-line": f.lines[lv.name[c.i]] || undefined,
            "data-key": frameKey(f, lv.name[c.i]),
            "data-depth": c.l,
            "data-total": lv.total[c.i],
            "data-self": lv.self[c.i],
            "data-match": this.matches ? this.matches[c.l][c.i] : undefined,
            // Where the frame is drawn (CSS px from the canvas's top left), for pointer tests.
            "data-x": Math.round(Math.max(0, (lv.start[c.i] - this.view.x0) * k)),
            "data-y": rowOf(c.l, Math.min(f.levels.length, maxLevels), this.opts.inverted) * ROW_PX,
            "data-w": Math.round(c.w * k),
          },
          this.describe(c.l, c.i),
        ),
      );
    }
    clear(this.list);
    this.list.appendChild(frag);
    this.list.setAttribute("data-count", String(total));
  }

  private describe(level: number, index: number): string {
    const f = this.flame!;
    const lv = f.levels[level];
    const place = placeOf(f, lv.name[index]);
    const name = f.names[lv.name[index]] + (place ? ` (${place})` : "");
    const fmt = this.opts.format;
    if (f.kind === "diff") {
      const [a, b] = this.opts.sides ?? ["baseline", "comparison"];
      const d = shareDelta(lv.total[index], lv.totalR[index], f.total, f.totalR);
      const ok = diffSupported(f, lv.total[index], lv.totalR[index]);
      return `${name}: ${a} ${fmtPct(lv.total[index], f.total)}, ${b} ${fmtPct(lv.totalR[index], f.totalR)} (${d >= 0 ? "+" : ""}${d.toFixed(1)} points${ok ? "" : ", within sampling error"})`;
    }
    return `${name}: total ${fmt(lv.total[index])} (${fmtPct(lv.total[index], f.total)}${marginText(f, lv.total[index], f.total)}), self ${fmt(lv.self[index])} (${fmtPct(lv.self[index], f.total)})`;
  }

  private nodeFromEvent(e: MouseEvent): NodeRef | null {
    const f = this.flame;
    if (!f) return null;
    const r = this.canvas.getBoundingClientRect();
    const rows = Math.min(f.levels.length, this.drawnLevels);
    const row = Math.floor((e.clientY - r.top) / ROW_PX);
    if (row < 0 || row >= rows) return null;
    const level = rowOf(row, rows, this.opts.inverted);
    const x = this.view.x0 + ((e.clientX - r.left) / r.width) * (this.view.x1 - this.view.x0);
    const index = nodeAt(f.levels[level], x);
    return index < 0 ? null : { level, index };
  }

  private setHover(n: NodeRef | null, e?: MouseEvent): void {
    const same = n && this.hover && n.level === this.hover.level && n.index === this.hover.index;
    this.hover = n;
    if (!same) this.drawOverlay();
    if (!n) {
      this.tooltip.hidden = true;
      return;
    }
    if (!same) this.fillTooltip(n);
    if (e) this.placeTooltip(e.clientX, e.clientY);
  }

  private fillTooltip(n: NodeRef): void {
    const f = this.flame!;
    const lv = f.levels[n.level];
    const name = f.names[lv.name[n.index]];
    const place = placeOf(f, lv.name[n.index]);
    const fmt = this.opts.format;
    clear(this.tooltip);
    this.tooltip.append(h("div", { class: "tt-name" }, name));
    if (place) this.tooltip.append(h("div", { class: "tt-place" }, place));
    if (f.kind === "diff") {
      const [a, b] = this.opts.sides ?? ["baseline", "comparison"];
      const d = shareDelta(lv.total[n.index], lv.totalR[n.index], f.total, f.totalR);
      this.tooltip.append(
        h(
          "table",
          null,
          h("tr", null, h("th"), h("th", null, "total"), h("th", null, "self")),
          h("tr", null, h("th", null, a), h("td", null, `${fmt(lv.total[n.index])} · ${fmtPct(lv.total[n.index], f.total)}`), h("td", null, `${fmt(lv.self[n.index])} · ${fmtPct(lv.self[n.index], f.total)}`)),
          h("tr", null, h("th", null, b), h("td", null, `${fmt(lv.totalR[n.index])} · ${fmtPct(lv.totalR[n.index], f.totalR)}`), h("td", null, `${fmt(lv.selfR[n.index])} · ${fmtPct(lv.selfR[n.index], f.totalR)}`)),
        ),
        h("div", { class: d > 0 ? "tt-up" : d < 0 ? "tt-down" : "" }, `share of total ${d >= 0 ? "+" : ""}${d.toFixed(2)} points`),
      );
      if (!diffSupported(f, lv.total[n.index], lv.totalR[n.index])) this.tooltip.append(h("div", { class: "tt-warn" }, "Within sampling error: the sample counts do not support this difference."));
    } else {
      this.tooltip.append(
        h(
          "table",
          null,
          h("tr", null, h("th", null, "total"), h("td", null, fmt(lv.total[n.index])), h("td", null, fmtPct(lv.total[n.index], f.total) + marginText(f, lv.total[n.index], f.total))),
          h("tr", null, h("th", null, "self"), h("td", null, fmt(lv.self[n.index])), h("td", null, fmtPct(lv.self[n.index], f.total))),
        ),
      );
    }
    this.tooltip.hidden = false;
  }

  /** Fixed positioning near the pointer, flipped to stay inside the window. */
  private placeTooltip(clientX: number, clientY: number): void {
    const tw = this.tooltip.offsetWidth || 260;
    const th = this.tooltip.offsetHeight || 80;
    let x = clientX + 14;
    if (x + tw > window.innerWidth - 4) x = Math.max(4, clientX - tw - 14);
    let y = clientY + 16;
    if (y + th > window.innerHeight - 4) y = Math.max(4, clientY - th - 10);
    this.tooltip.style.left = `${x}px`;
    this.tooltip.style.top = `${y}px`;
  }

  private onMove(e: MouseEvent): void {
    this.setHover(this.nodeFromEvent(e), e);
  }

  private onClick(e: MouseEvent): void {
    const n = this.nodeFromEvent(e);
    if (!n) return;
    if (n.level > 0) this.opts.onPick?.(this.flame!.levels[n.level].name[n.index]);
    const z = this.zoom;
    // Clicking the zoomed frame (or an ancestor) again steps back out.
    if (z && n.level <= z.level) this.setZoom(n.level === 0 ? null : n, true);
    else this.setZoom(n, true);
  }

  private onKey(e: KeyboardEvent): void {
    const f = this.flame;
    if (!f || f.levels.length === 0) return;
    let n: NodeRef | null = this.focus ?? this.zoom ?? { level: 0, index: 0 };
    const lv = f.levels[n.level];
    switch (e.key) {
      case "ArrowUp":
        n = n.level > 0 ? { level: n.level - 1, index: lv.parent[n.index] } : n;
        break;
      case "ArrowDown": {
        const below = f.levels[n.level + 1];
        if (below) {
          // Widest child.
          let best = -1;
          for (let i = 0; i < below.parent.length; i++) if (below.parent[i] === n.index && (best < 0 || below.width[i] > below.width[best])) best = i;
          if (best >= 0) n = { level: n.level + 1, index: best };
        }
        break;
      }
      case "ArrowLeft":
        if (n.index > 0) n = { level: n.level, index: n.index - 1 };
        break;
      case "ArrowRight":
        if (n.index < lv.start.length - 1) n = { level: n.level, index: n.index + 1 };
        break;
      case "Enter":
      case " ":
        if (n.level > 0) this.opts.onPick?.(lv.name[n.index]);
        this.setZoom(n, true);
        e.preventDefault();
        return;
      case "Escape":
        this.setZoom(null, true);
        e.preventDefault();
        return;
      default:
        return;
    }
    e.preventDefault();
    this.focus = n;
    // Keep the focused frame in view.
    const flv = f.levels[n.level];
    if (flv.start[n.index] + flv.width[n.index] <= this.view.x0 || flv.start[n.index] >= this.view.x1) this.setZoom(null, true);
    this.drawOverlay();
    this.fillTooltip(n);
    const r = this.wrap.getBoundingClientRect();
    const k = this.width / (this.view.x1 - this.view.x0);
    const x = Math.max(0, (flv.start[n.index] - this.view.x0) * k);
    this.placeTooltip(r.left + x, r.top + rowOf(n.level, Math.min(f.levels.length, this.drawnLevels), this.opts.inverted) * ROW_PX + ROW_PX);
    this.live.textContent = this.describe(n.level, n.index);
  }
}
