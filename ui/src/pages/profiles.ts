// Profiles: a service's profile over time. Service, profile type, label filters and time range;
// a CPU timeline whose selection narrows the flame graph; flame graph with top table.
import { api } from "../api";
import { clear, h, option, statusBox } from "../dom";
import { functionTraces } from "../components/function-traces";
import { fmtDuration, fmtTime, plural, valueFormatter } from "../format";
import type { PageView } from "./page";
import { currentRoute, href, navigate } from "../nav";
import { fitRange, formatLabels, labelSelector, parseLabels, rangeOf, type TimeRange, resolveRange, selectionToParams, withParams, type Route } from "../state";
import { profileKind, profileNoun, profileTypeLabel } from "../names";
import { stepFor } from "../timeseries";
import { TimelineChart } from "../components/timeline";
import { FlamePanel, urlBoundOptions, withFrames } from "../components/flame-panel";
import { rangePicker } from "../components/widgets";

export const DEFAULT_PROFILE_TYPE = "process_cpu:cpu:nanoseconds:cpu:nanoseconds";
const HIDDEN_LABELS = new Set(["__name__", "__profile_type__", "service_name", "__period_type__", "__period_unit__", "__type__", "__unit__", "__delta__"]);

export class ProfilesPage implements PageView {
  readonly el: HTMLElement;
  private readonly controls: HTMLElement;
  private readonly chartBox: HTMLElement;
  private readonly selInfo: HTMLElement;
  private readonly rangeTraces: HTMLElement;
  private panel: FlamePanel;
  private chart: TimelineChart | null = null;
  private route: Route;
  private abort = new AbortController();

  constructor(route: Route) {
    this.route = route;
    this.controls = h("form", { class: "filters", "aria-label": "Profile query" });
    this.chartBox = h("section", { class: "chart-box", "aria-label": "CPU over time" });
    this.selInfo = h("div", { class: "sel-info" });
    this.rangeTraces = h("div", { class: "range-traces" });
    this.panel = this.newPanel();
    this.el = h("div", { class: "page page-profiles" }, h("h1", null, "Profiles"), this.controls, this.chartBox, this.selInfo, this.rangeTraces, this.panel.el);
    void this.start();
  }

  private newPanel(): FlamePanel {
    return new FlamePanel({ table: true, ...urlBoundOptions(), tracesContext: () => this.shownRange(), exportQuery: () => this.shownQuery, valueLabel: () => profileKind(this.route.params.type || DEFAULT_PROFILE_TYPE) });
  }

  /** The query of the flame graph shown (exports) and its range without grouping (function traces). */
  private shownQuery: URLSearchParams | null = null;

  private shownRange(): URLSearchParams | null {
    if (!this.shownQuery) return null;
    const q = new URLSearchParams(this.shownQuery);
    q.delete("frames");
    return q;
  }

  /** Picks the first service when none is in the URL, then renders. */
  private async start(): Promise<void> {
    if (!this.route.params.service) {
      this.panel.loading("Looking for services…");
      try {
        const r = await api.services(this.abort.signal);
        if (r.services.length === 0) {
          this.panel.empty("No service has sent data yet. Start one with spanprof.configure(server_address=…) or run `spanprof demo`.");
          return;
        }
        navigate(withParams(currentRoute(), { service: r.services[0], ...(await this.fittedRange(r.services[0])) }), { replace: true });
        return;
      } catch (e) {
        if ((e as Error).name === "AbortError") return;
        this.panel.error(`Could not list services: ${(e as Error).message}`, () => void this.start());
        return;
      }
    }
    if (!this.route.params.from) {
      const fit = await this.fittedRange(this.route.params.service);
      if (fit.from) {
        navigate(withParams(currentRoute(), fit), { replace: true });
        return;
      }
    }
    this.update(this.route);
  }

  /**
   * The default range when the URL has none: fitted to where the service has data (a fresh
   * service fills the chart instead of being a sliver at its right edge). Empty when unknown.
   */
  private async fittedRange(service: string): Promise<Partial<TimeRange>> {
    const now = Date.now();
    const first = async (fromMs: number, stepMs: number): Promise<number | null> => {
      const q = this.query(fromMs, now);
      q.set("service", service);
      q.set("selector", labelSelector(service, parseLabels(this.route.params.labels)));
      q.set("step_ms", String(stepMs));
      const t = await api.timeline(q, this.abort.signal);
      return t.points.length ? t.points[0][0] : null;
    };
    try {
      const coarse = await first(now - 7 * 86_400_000, 3_600_000);
      if (coarse === null) return {};
      // Within the last hours: find the first point to the 10 s.
      const fine = now - coarse < 6 * 3_600_000 ? await first(Math.max(coarse - 3_600_000, now - 7 * 86_400_000), 10_000) : coarse;
      return fitRange(fine ?? coarse, now);
    } catch {
      return {};
    }
  }

  update(route: Route): void {
    const prev = this.route.params;
    this.route = route;
    const p = route.params;
    const dataChanged = ["service", "type", "labels", "from", "to"].some((k) => prev[k] !== p[k]) || !this.chart;
    this.renderControls();
    if (dataChanged) void this.loadTimeline();
    this.loadFlame();
  }

  destroy(): void {
    this.abort.abort();
    this.chart?.destroy();
    this.panel.destroy();
  }

  private renderControls(): void {
    const p = this.route.params;
    const service = h("select", { id: "p-service", onchange: () => navigate(withParams(currentRoute(), { service: service.value, labels: "", sel_from: "", sel_to: "", zoom: "" })) }, option(p.service ?? "", p.service ?? "(none)", true));
    const type = h("select", { id: "p-type", onchange: () => navigate(withParams(currentRoute(), { type: type.value === DEFAULT_PROFILE_TYPE ? "" : type.value, zoom: "" })) }, option(p.type || DEFAULT_PROFILE_TYPE, profileTypeLabel(p.type || DEFAULT_PROFILE_TYPE), true));
    let range: { fromMs: number; toMs: number } | null;
    try {
      range = resolveRange(rangeOf(p), Date.now());
    } catch {
      range = null;
    }
    const sig = this.abort.signal;
    api.services(sig).then((r) => r.services.filter((s) => s !== p.service).forEach((s) => service.append(option(s, s, false))), () => undefined);
    if (range) {
      api.profileTypes(range.fromMs, range.toMs, sig).then((ts) => ts.filter((t) => t.ID !== (p.type || DEFAULT_PROFILE_TYPE)).forEach((t) => type.append(option(t.ID, profileTypeLabel(t.ID), false))), () => undefined);
    }
    const labels = parseLabels(p.labels);
    const keySel = h("select", { id: "p-lkey", "aria-label": "Label name" }, option("", "label…", true));
    const valSel = h("select", { id: "p-lval", "aria-label": "Label value", disabled: true }, option("", "value…", true));
    const selector = labelSelector(p.service ?? "", labels);
    if (range && p.service) {
      const r = range;
      api.labelNames(selector, r.fromMs, r.toMs, sig).then((ns) => ns.filter((n) => !HIDDEN_LABELS.has(n)).forEach((n) => keySel.append(option(n, n, false))), () => undefined);
      keySel.addEventListener("change", () => {
        clear(valSel);
        valSel.append(option("", "value…", true));
        valSel.disabled = !keySel.value;
        if (keySel.value) api.labelValues(keySel.value, selector, r.fromMs, r.toMs, sig).then((vs) => vs.forEach((v) => valSel.append(option(v, v, false))), () => undefined);
      });
    }
    const add = h("button", { type: "button", class: "btn small", onclick: () => keySel.value && valSel.value && navigate(withParams(currentRoute(), { labels: formatLabels([...labels.filter(([k]) => k !== keySel.value), [keySel.value, valSel.value]]), sel_from: "", sel_to: "", zoom: "" })) }, "Add filter");
    const chips = labels.map(([k, v], i) =>
      h("span", { class: "chip" }, `${k} = ${v}`, h("button", { type: "button", "aria-label": `Remove filter ${k}=${v}`, onclick: () => navigate(withParams(currentRoute(), { labels: formatLabels(labels.filter((_, j) => j !== i)), zoom: "" })) }, "×")),
    );
    const field = (label: string, id: string, input: HTMLElement) => h("div", { class: "field" }, h("label", { for: id }, label), input);
    clear(this.controls);
    this.controls.append(
      field("Service", "p-service", service),
      field("Profile type", "p-type", type),
      h("div", { class: "field" }, h("span", { class: "label" }, "Label filters"), h("span", { class: "pair" }, keySel, valSel, add)),
      h("div", { class: "field" }, h("span", { class: "label" }, "Time range"), rangePicker(rangeOf(p), (r) => navigate(withParams(currentRoute(), { ...r, sel_from: "", sel_to: "" })), "p")),
    );
    if (chips.length) this.controls.append(h("div", { class: "chips", "aria-label": "Active label filters" }, ...chips));
    this.controls.onsubmit = (e) => e.preventDefault();
  }

  private query(fromMs: number, toMs: number): URLSearchParams {
    const p = this.route.params;
    const q = new URLSearchParams();
    q.set("service", p.service ?? "");
    q.set("profile_type", p.type || DEFAULT_PROFILE_TYPE);
    q.set("selector", labelSelector(p.service ?? "", parseLabels(p.labels)));
    q.set("from", String(fromMs));
    q.set("to", String(toMs));
    return q;
  }

  private async loadTimeline(): Promise<void> {
    const p = this.route.params;
    let range;
    try {
      range = resolveRange(rangeOf(p), Date.now());
    } catch (e) {
      this.chartBox.replaceChildren(statusBox("error", `Time range: ${(e as Error).message}.`));
      return;
    }
    const step = stepFor(range.fromMs, range.toMs);
    const q = this.query(range.fromMs, range.toMs);
    q.set("step_ms", String(step));
    this.chartBox.replaceChildren(statusBox("loading", `Loading ${this.noun()} timeline…`));
    try {
      const t = await api.timeline(q, this.abort.signal);
      this.chart?.destroy();
      this.chart = null;
      if (t.points.length === 0) {
        this.chartBox.replaceChildren(statusBox("empty", `No ${this.noun()} samples for this service and filters in the time range.`));
        return;
      }
      const sel = p.sel_from && p.sel_to ? { fromMs: Number(p.sel_from), toMs: Number(p.sel_to) } : null;
      const chart = new TimelineChart(t, step, range, sel, (s) => navigate(withParams(currentRoute(), { sel_from: String(s.fromMs), sel_to: String(s.toMs), zoom: "" })), profileKind(p.type || DEFAULT_PROFILE_TYPE));
      this.chart = chart;
      this.chartBox.replaceChildren(chart.el);
      void this.loadExemplars(chart, q);
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      this.chartBox.replaceChildren(statusBox("error", `Could not load the timeline: ${(e as Error).message}`));
    }
  }

  /** Below the selection note: the traces ranked by CPU in the selected range. */
  private showRangeTraces(sel: { fromMs: number; toMs: number }): void {
    const q = this.query(sel.fromMs, sel.toMs);
    this.rangeTraces.replaceChildren(functionTraces(q, null, valueFormatter("nanoseconds", 0), this.abort.signal));
  }

  /** "CPU", "wall-clock time", …: what the selected profile type measures. */
  private noun(): string {
    return profileNoun(this.route.params.type || DEFAULT_PROFILE_TYPE);
  }

  /** The traces that used the most CPU (or wall time, …) in the range, as points on the timeline. */
  private async loadExemplars(chart: TimelineChart, timelineQuery: URLSearchParams): Promise<void> {
    const q = new URLSearchParams(timelineQuery);
    q.delete("step_ms");
    q.set("limit", "40");
    try {
      const r = await api.profileTraces(q, this.abort.signal);
      const keep = { from: this.route.params.from ?? "", to: this.route.params.to ?? "" };
      chart.setExemplars(
        r.traces
          .filter((t) => t.stored)
          .map((t) => ({
            tsMs: t.start_unix_nano / 1e6,
            cores: t.duration_ns > 0 ? t.trace_value / t.duration_ns : 0,
            label: `${t.root_name}: ${fmtDuration(t.duration_ns)}, ${fmtDuration(t.trace_value)} of ${this.noun()} (${plural(t.samples, "sample")}) at ${fmtTime(t.start_unix_nano / 1e6)}; open the trace`,
            href: href({ page: "trace", id: t.trace_id, params: keep }),
            traceId: t.trace_id,
          })),
      );
    } catch {
      // exemplars are an extra: the chart stands without them
    }
  }

  private loadFlame(): void {
    const p = this.route.params;
    if (!p.service) return;
    let range;
    try {
      range = resolveRange(rangeOf(p), Date.now());
    } catch {
      return;
    }
    const sel = p.sel_from && p.sel_to ? { fromMs: Number(p.sel_from), toMs: Number(p.sel_to) } : null;
    const r = sel ?? range;
    clear(this.selInfo);
    this.rangeTraces.replaceChildren();
    if (sel) {
      const cmp = href({
        page: "compare",
        id: "",
        params: {
          ...selectionToParams({ kind: "range", service: p.service, type: p.type ?? "", labels: p.labels ?? "", from: p.from ?? "now-1h", to: p.to ?? "now" }, "a"),
          ...selectionToParams({ kind: "range", service: p.service, type: p.type ?? "", labels: p.labels ?? "", from: String(sel.fromMs), to: String(sel.toMs) }, "b"),
        },
      });
      this.selInfo.append(
        h("span", null, `Flame graph of ${fmtTime(sel.fromMs)} → ${fmtTime(sel.toMs)} (selected on the chart). `),
        h("button", { type: "button", class: "btn small", onclick: () => navigate(withParams(currentRoute(), { sel_from: "", sel_to: "", zoom: "" })) }, "Clear selection"),
        " ",
        h("a", { class: "btn small", href: cmp }, "Compare selection with the whole range"),
        " ",
        h("button", { type: "button", class: "btn small", "data-testid": "range-traces", onclick: () => this.showRangeTraces(sel) }, `Traces that used the most ${this.noun()} here`),
      );
    } else {
      this.selInfo.append(h("span", { class: "muted" }, "Drag across the chart to narrow the flame graph to a time range."));
    }
    const q = withFrames(this.query(r.fromMs, r.toMs));
    this.shownQuery = q;
    this.panel.destroy();
    const fresh = this.newPanel();
    this.panel.el.replaceWith(fresh.el);
    this.panel = fresh;
    void this.panel.show(async () => ({ kind: "single", json: await api.flamegraph(q, this.abort.signal) }), {
      zoom: p.zoom,
      q: p.q,
      sandwich: p.sandwich,
      emptyMessage: `No ${this.noun()} samples for this service and filters in the selected time range.`,
    });
  }
}
