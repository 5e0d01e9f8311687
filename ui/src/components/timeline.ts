// CPU (or another profile type's value, e.g. wall-clock time) over time (uPlot). Dragging across the chart selects a time range; the caller narrows the
// flame graph to it.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "../dom";
import type { Timeline } from "../api";
import { toCores } from "../timeseries";

function themeColor(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Axis label for a tick (seconds): "14:05", "14:05:30" for sub-minute ticks, "Nov 23" for days. */
function timeTick(sec: number, incrSec: number, spanMs: number): string {
  const d = new Date(sec * 1000);
  const p = (n: number) => String(n).padStart(2, "0");
  if (incrSec >= 86_400) return d.toLocaleDateString("en-US", { month: "short", day: "numeric" });
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
  const t = incrSec < 60 ? `${hm}:${p(d.getSeconds())}` : hm;
  return spanMs > 86_400_000 && d.getHours() === 0 && d.getMinutes() === 0 ? `${d.getMonth() + 1}/${d.getDate()} ${t}` : t;
}

/** A trace drawn on the timeline: at its start, as high as the CPU it used while it ran. */
export interface Exemplar {
  tsMs: number;
  cores: number;
  label: string;
  href: string;
  traceId: string;
}

export class TimelineChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private resize: ResizeObserver | null = null;
  private exemplars: Exemplar[] = [];
  private readonly marks = h("div", { class: "exemplars", "data-testid": "exemplars" });

  constructor(
    data: Timeline,
    stepMs: number,
    range: { fromMs: number; toMs: number },
    selection: { fromMs: number; toMs: number } | null,
    onSelect: (sel: { fromMs: number; toMs: number }) => void,
    /** The profile type's short name ("CPU", "Wall"); nanoseconds per second are CPU cores or,
     * for wall-clock time, threads and tasks sampled at once (running or waiting). */
    kind = "CPU",
  ) {
    const holder = h("div", { class: "timeline-plot" });
    const [xs, ys] = toCores(data, stepMs);
    const isNs = data.unit === "nanoseconds";
    const per = kind === "CPU" ? "cores" : "threads/tasks";
    const total = ys.reduce((a, b) => a + b, 0);
    this.el = h(
      "figure",
      { class: "timeline", "data-testid": "timeline" },
      holder,
      h("figcaption", { class: "sr-only" }, `${kind} over time, ${xs.length} points, average ${xs.length ? (total / xs.length).toFixed(2) : 0} ${isNs ? per : data.unit}. Drag across the chart to select a range.`),
    );
    const width = () => Math.max(300, holder.clientWidth || 900);
    const opts: uPlot.Options = {
      width: width(),
      height: 170,
      scales: { x: { time: true, min: range.fromMs / 1000, max: range.toMs / 1000 }, y: { range: (_u, _min, max) => [0, Math.max(max * 1.1, 0.01)] } },
      // Axis colours follow the theme (read at every draw; a theme change redraws).
      axes: [
        { stroke: () => themeColor("--fg", "#1d2127"), grid: { stroke: () => themeColor("--rowline", "#eef0f3") }, ticks: { stroke: () => themeColor("--line", "#dde1e6") }, values: (_u, vals, _ax, _space, incr) => vals.map((v) => timeTick(v, incr, range.toMs - range.fromMs)) },
        { stroke: () => themeColor("--fg", "#1d2127"), grid: { stroke: () => themeColor("--rowline", "#eef0f3") }, ticks: { stroke: () => themeColor("--line", "#dde1e6") }, label: isNs ? (kind === "CPU" ? "CPU cores" : `${kind}: ${per}`) : data.unit, size: 60, values: (_u, vals) => vals.map((v) => (isNs ? v.toFixed(v < 1 ? 2 : 1) : String(v))) },
      ],
      series: [{}, { label: kind, stroke: "#d9480f", fill: "rgba(217,72,15,0.18)", width: 1.5, points: { show: xs.length < 40, size: 5 }, value: (_u, v) => (v == null ? "–" : isNs ? `${v.toFixed(3)} ${per}` : String(v)) }],
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { show: true },
      hooks: {
        // The selection from the URL, drawn once the plot has its size (valToPos needs it).
        ready: [
          (u) => {
            if (!selection) return;
            const l = u.valToPos(selection.fromMs / 1000, "x");
            const r = u.valToPos(selection.toMs / 1000, "x");
            u.setSelect({ left: l, width: Math.max(2, r - l), top: 0, height: u.over.clientHeight }, false);
          },
        ],
        draw: [(u) => this.placeExemplars(u)],
        setSelect: [
          (u) => {
            if (u.select.width < 2) return;
            const a = u.posToVal(u.select.left, "x") * 1000;
            const b = u.posToVal(u.select.left + u.select.width, "x") * 1000;
            onSelect({ fromMs: Math.round(a), toMs: Math.round(b) });
          },
        ],
      },
    };
    requestAnimationFrame(() => {
      this.plot = new uPlot(opts, [xs, ys], holder);
      this.plot.over.append(this.marks);
      window.addEventListener("themechange", this.redraw);
      this.placeExemplars(this.plot);
      if (typeof ResizeObserver !== "undefined") {
        this.resize = new ResizeObserver(() => this.plot?.setSize({ width: width(), height: 170 }));
        this.resize.observe(holder);
      }
    });
  }

  /** Points that open the traces which used the most CPU in the range. */
  setExemplars(ex: Exemplar[]): void {
    this.exemplars = ex;
    if (this.plot) this.placeExemplars(this.plot);
  }

  private placeExemplars(u: uPlot): void {
    const yMax = u.scales.y.max ?? 1;
    this.marks.replaceChildren(
      ...this.exemplars.map((e) => {
        const x = u.valToPos(e.tsMs / 1000, "x");
        const y = u.valToPos(Math.min(e.cores, yMax), "y");
        return h("a", { class: "exemplar", href: e.href, title: e.label, "aria-label": e.label, "data-trace-id": e.traceId, style: { left: `${x}px`, top: `${y}px` } });
      }),
    );
    this.marks.setAttribute("data-count", String(this.exemplars.length));
  }

  private readonly redraw = () => this.plot?.redraw(false, true);

  destroy(): void {
    window.removeEventListener("themechange", this.redraw);
    this.resize?.disconnect();
    this.plot?.destroy();
  }
}
