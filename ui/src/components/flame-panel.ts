// A flame graph (and optionally its top table) with explicit loading / empty / error states, and
// what starts from a frame: its source location, the sandwich view, the traces that ran it; the
// grouping toggle (function / line), exports and the sampling-confidence note.
import { h, option, statusBox } from "../dom";
import { FEW_SAMPLES, shareMargin } from "../flame/confidence";
import { decodeDiff, decodeFlameGraph, frameKey, type DiffJSON, type Flame, type FlameGraphJSON } from "../flame/model";
import { topTableView } from "../flame/table";
import { FlameGraphView } from "../flame/view";
import { compactFormatter, plural, unitOf, valueFormatter } from "../format";
import { currentRoute, navigate } from "../nav";
import { withParams, ZOOM_SEP } from "../state";
import { exportMenu } from "./export-menu";
import { frameDetails } from "./frame-details";
import { functionTraces } from "./function-traces";
import { SandwichView } from "./sandwich-view";

export type FrameGrouping = "function" | "line";

export interface FlamePanelOptions {
  table?: boolean;
  sides?: [string, string];
  onZoom?: (path: string[] | null) => void;
  onSearch?: (q: string) => void;
  /** Current grouping and how to change it (the page refetches); no toggle without it. */
  frames?: FrameGrouping;
  onFrames?: (g: FrameGrouping) => void;
  /** View state kept in the URL without a reload (the sandwich's function). */
  onState?: (key: string, value: string) => void;
  /** service/profile_type/selector/from/to of what is shown, for "traces through this function". */
  tracesContext?: () => URLSearchParams | null;
  /** The /api/v1/flamegraph query of what is shown, for exports; none for diffs. */
  exportQuery?: () => URLSearchParams | null;
  /** What the values are ("CPU", "Wall"); CPU when absent. */
  valueLabel?: () => string;
}

type Loaded = { kind: "single"; json: FlameGraphJSON } | { kind: "diff"; json: DiffJSON; periodNs: number; unit: "nanoseconds" | "samples" };

export class FlamePanel {
  readonly el: HTMLElement;
  private view: FlameGraphView | null = null;
  private sandwichView: SandwichView | null = null;
  private seq = 0;
  private abort = new AbortController();

  constructor(private readonly opts: FlamePanelOptions = {}) {
    this.el = h("div", { class: "flame-panel", "data-testid": "flame-panel" });
  }

  loading(message = "Loading flame graph…"): void {
    this.seq++;
    this.el.setAttribute("data-state", "loading");
    this.el.replaceChildren(statusBox("loading", message));
  }

  error(message: string, retry?: () => void): void {
    this.el.setAttribute("data-state", "error");
    this.el.replaceChildren(statusBox("error", message, retry ? h("button", { type: "button", class: "btn small", onclick: retry }, "Retry") : null));
  }

  empty(message: string, ...extra: HTMLElement[]): void {
    this.el.setAttribute("data-url", location.hash);
    this.el.setAttribute("data-state", "empty");
    this.el.replaceChildren(statusBox("empty", message), ...extra);
  }

  /** Loads and shows a flame graph; `state` carries the zoom path, search text and sandwich from the URL. */
  async show(load: () => Promise<Loaded>, state: { zoom?: string; q?: string; sandwich?: string; emptyMessage: string; emptySide?: (side: 0 | 1) => string }): Promise<boolean> {
    const my = ++this.seq;
    // Which URL this panel answers (tests wait for the panel of the current URL, not the last one).
    this.el.setAttribute("data-url", location.hash);
    this.el.setAttribute("data-state", "loading");
    this.el.replaceChildren(statusBox("loading", "Loading flame graph…"));
    let flame: Flame;
    let format: (v: number) => string;
    let compact: (v: number) => string;
    try {
      const r = await load();
      if (my !== this.seq) return false;
      if (r.kind === "single") {
        flame = decodeFlameGraph(r.json);
        format = valueFormatter(unitOf(r.json), r.json.period_ns ?? 0);
        compact = compactFormatter(unitOf(r.json));
      } else {
        flame = decodeDiff(r.json);
        format = valueFormatter(r.unit, r.periodNs);
        compact = compactFormatter(r.unit);
      }
    } catch (e) {
      if (my !== this.seq || (e as Error).name === "AbortError") return false;
      this.error(`Could not load the flame graph: ${(e as Error).message}`);
      return false;
    }
    if (flame.nodeCount <= 1 || (flame.total === 0 && flame.totalR === 0)) {
      this.empty(state.emptyMessage);
      return false;
    }
    // A diff against an empty side is no comparison: say which side is empty instead of drawing.
    if (flame.kind === "diff" && (flame.total === 0 || flame.totalR === 0)) {
      const side: 0 | 1 = flame.total === 0 ? 0 : 1;
      const label = this.opts.sides?.[side] ?? (side === 0 ? "A" : "B");
      this.empty(state.emptySide?.(side) ?? `${label} has no samples, so there is nothing to compare with. Choose a selection with samples for ${label}.`);
      this.el.setAttribute("data-empty-side", label);
      return false;
    }
    this.view?.destroy();
    this.closeSandwich(false);
    const details = h("div", { class: "frame-details-slot" });
    const extra = h("div", { class: "flame-extra" });
    const pick = (nameIndex: number) => this.pickFrame(flame, nameIndex, format, details, extra);
    const view = new FlameGraphView({ format, sides: this.opts.sides, onZoom: this.opts.onZoom, onSearch: this.opts.onSearch, onPick: flame.kind === "single" ? pick : undefined });
    this.view = view;
    const body = this.opts.table
      ? h("div", { class: "flame-grid" }, view.el, topTableView(flame, compact, (i) => view.setQuery(frameKey(flame, i)), flame.kind === "single" ? pick : undefined))
      : view.el;
    this.el.setAttribute("data-state", "ready");
    this.el.setAttribute("data-frames", this.opts.frames ?? "function");
    this.el.replaceChildren(this.toolbar(flame, format), this.confidence(flame), details, body, extra);
    view.setFlame(flame, state.zoom ? state.zoom.split(ZOOM_SEP) : null, state.q ?? "");
    if (state.sandwich && flame.kind === "single") {
      const i = flame.names.findIndex((_, k) => frameKey(flame, k) === state.sandwich);
      if (i > 0) {
        pick(i);
        this.openSandwich(flame, i, format, extra);
      }
    }
    return true;
  }

  private toolbar(flame: Flame, format: (v: number) => string): HTMLElement {
    const info =
      flame.kind === "single"
        ? `${this.opts.valueLabel?.() ?? "CPU"} in this profile: ${format(flame.total)}. Click a frame to zoom and see its source, hover for details, or use the arrow keys.`
        : `${this.opts.sides?.[0] ?? "A"}: ${format(flame.total)}; ${this.opts.sides?.[1] ?? "B"}: ${format(flame.totalR)}. Widths are shares of each side's own total; differences the sample counts cannot support are drawn grey.`;
    const bar = h("div", { class: "flame-info" }, h("p", { class: "muted" }, info));
    if (this.opts.onFrames) {
      const sel = h("select", { id: "frames-group", "data-testid": "frames-group" }, option("function", "function", this.opts.frames !== "line"), option("line", "line", this.opts.frames === "line"));
      sel.addEventListener("change", () => this.opts.onFrames?.(sel.value === "line" ? "line" : "function"));
      bar.append(h("span", { class: "field inline" }, h("label", { for: "frames-group" }, "Group by"), sel));
    }
    const q = this.opts.exportQuery?.();
    if (q && flame.kind === "single") bar.append(exportMenu(q));
    return bar;
  }

  /** How uncertain the shares are at this sample count (nothing when there are plenty). */
  private confidence(flame: Flame): HTMLElement | string {
    if (flame.kind !== "single" || flame.samples <= 0 || flame.samples >= FEW_SAMPLES) return "";
    const m = shareMargin(flame.samples / 2, flame.samples);
    return h(
      "p",
      { class: "confidence", "data-testid": "confidence", "data-samples": Math.round(flame.samples) },
      `Only ${plural(flame.samples, "sample")}: a frame's share here is uncertain by up to ±${m.toFixed(m >= 10 ? 0 : 1)} percentage points (95%), so small differences between frames mean little. The tooltips give each frame's margin.`,
    );
  }

  private pickFrame(flame: Flame, nameIndex: number, format: (v: number) => string, slot: HTMLElement, extra: HTMLElement): void {
    const ctx = this.opts.tracesContext?.();
    slot.replaceChildren(
      frameDetails(flame, nameIndex, {
        onSandwich: () => this.openSandwich(flame, nameIndex, format, extra),
        onTraces: ctx
          ? () => {
              this.closeSandwich(true);
              extra.replaceChildren(functionTraces(ctx, { function: flame.names[nameIndex], file: flame.files[nameIndex], line: this.opts.frames === "line" ? flame.lines[nameIndex] : 0 }, format, this.abort.signal));
            }
          : undefined,
      }),
    );
  }

  private openSandwich(flame: Flame, nameIndex: number, format: (v: number) => string, extra: HTMLElement): void {
    this.sandwichView?.destroy();
    this.sandwichView = new SandwichView(flame, nameIndex, format, () => {
      this.closeSandwich(true);
      extra.replaceChildren();
    });
    extra.replaceChildren(this.sandwichView.el);
    this.opts.onState?.("sandwich", frameKey(flame, nameIndex));
    this.sandwichView.el.scrollIntoView?.({ block: "nearest" });
  }

  private closeSandwich(notify: boolean): void {
    if (!this.sandwichView) return;
    this.sandwichView.destroy();
    this.sandwichView = null;
    if (notify) this.opts.onState?.("sandwich", "");
  }

  destroy(): void {
    this.seq++;
    this.abort.abort();
    this.view?.destroy();
    this.sandwichView?.destroy();
  }
}

/** Panel callbacks that keep zoom, search, sandwich and grouping in the page URL. */
export function urlBoundOptions(): Pick<FlamePanelOptions, "onZoom" | "onSearch" | "onState" | "onFrames" | "frames"> {
  return {
    frames: currentRoute().params.frames === "line" ? "line" : "function",
    onZoom: (path) => navigate(withParams(currentRoute(), { zoom: path ? path.join(ZOOM_SEP) : "" }), { silent: true }),
    onSearch: (q) => navigate(withParams(currentRoute(), { q }), { silent: true }),
    onState: (k, v) => navigate(withParams(currentRoute(), { [k]: v }), { silent: true }),
    // A new grouping changes every frame: zoom path and sandwich no longer apply.
    onFrames: (g) => navigate(withParams(currentRoute(), { frames: g === "line" ? "line" : "", zoom: "", sandwich: "" })),
  };
}

/** A flame graph query with the URL's frame grouping. */
export function withFrames(q: URLSearchParams): URLSearchParams {
  if (currentRoute().params.frames === "line") q.set("frames", "line");
  return q;
}
