// Pieces shared by the pages: the time range picker and a flame graph panel with its states.
import { h, option, statusBox } from "../dom";
import { FlameGraphView } from "../flame/view";
import { topTableView } from "../flame/table";
import { decodeDiff, decodeFlameGraph, type DiffJSON, type FlameGraphJSON } from "../flame/model";
import { compactFormatter, unitOf, valueFormatter } from "../format";
import { RANGE_PRESETS, ZOOM_SEP, parseTime, type TimeRange } from "../state";

function toLocalInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/** Preset ranges plus a custom absolute range (datetime-local inputs). */
export function rangePicker(range: TimeRange, onChange: (r: TimeRange) => void, idPrefix = "r"): HTMLElement {
  const isPreset = range.to === "now" && RANGE_PRESETS.some((p) => p.from === range.from);
  const sel = h(
    "select",
    { id: `${idPrefix}-preset`, "aria-label": "Time range" },
    ...RANGE_PRESETS.map((p) => option(p.from, `Last ${p.label}`, isPreset && p.from === range.from)),
    option("custom", "Custom…", !isPreset),
  );
  const now = Date.now();
  const from = h("input", { type: "datetime-local", "aria-label": "From", value: toLocalInput(parseTime(range.from, now) ?? now - 3_600_000) });
  const to = h("input", { type: "datetime-local", "aria-label": "To", value: toLocalInput(parseTime(range.to, now) ?? now) });
  const apply = h("button", { type: "button", class: "btn small" }, "Apply");
  const custom = h("span", { class: "custom-range", hidden: isPreset }, from, "→", to, apply);
  sel.addEventListener("change", () => {
    if (sel.value === "custom") {
      custom.hidden = false;
      from.focus();
    } else onChange({ from: sel.value, to: "now" });
  });
  apply.addEventListener("click", () => {
    const f = Date.parse(from.value);
    const t = Date.parse(to.value);
    if (!Number.isNaN(f) && !Number.isNaN(t) && f < t) onChange({ from: String(f), to: String(t) });
    else apply.setCustomValidity("The start must be before the end");
  });
  return h("span", { class: "range-picker" }, sel, custom);
}

export interface FlamePanelOptions {
  table?: boolean;
  sides?: [string, string];
  onZoom?: (path: string[] | null) => void;
  onSearch?: (q: string) => void;
}

/** A flame graph (and optionally its top table) with explicit loading / empty / error states. */
export class FlamePanel {
  readonly el: HTMLElement;
  private view: FlameGraphView | null = null;
  private seq = 0;

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

  /** Loads and shows a flame graph; `state` carries the zoom path and search text from the URL. */
  async show(load: () => Promise<{ kind: "single"; json: FlameGraphJSON } | { kind: "diff"; json: DiffJSON; periodNs: number; unit: "nanoseconds" | "samples" }>, state: { zoom?: string; q?: string; emptyMessage: string }): Promise<boolean> {
    const my = ++this.seq;
    // Which URL this panel answers (tests wait for the panel of the current URL, not the last one).
    this.el.setAttribute("data-url", location.hash);
    this.el.setAttribute("data-state", "loading");
    this.el.replaceChildren(statusBox("loading", "Loading flame graph…"));
    let flame;
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
    this.view?.destroy();
    const view = new FlameGraphView({ format, sides: this.opts.sides, onZoom: this.opts.onZoom, onSearch: this.opts.onSearch });
    this.view = view;
    const info =
      flame.kind === "single"
        ? h("p", { class: "muted flame-info" }, `CPU in this profile: ${format(flame.total)}. Click a frame to zoom, hover for details, or use the arrow keys.`)
        : h("p", { class: "muted flame-info" }, `${this.opts.sides?.[0] ?? "A"}: ${format(flame.total)}; ${this.opts.sides?.[1] ?? "B"}: ${format(flame.totalR)}. Widths are shares of each side's own total.`);
    const body = this.opts.table
      ? h("div", { class: "flame-grid" }, view.el, topTableView(flame, compact, (name) => view.setQuery(name)))
      : view.el;
    this.el.setAttribute("data-state", "ready");
    this.el.replaceChildren(info, body);
    view.setFlame(flame, state.zoom ? state.zoom.split(ZOOM_SEP) : null, state.q ?? "");
    return true;
  }

  destroy(): void {
    this.seq++;
    this.view?.destroy();
  }
}
