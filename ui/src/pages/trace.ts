// Trace: waterfall of the spans (with each span's on-CPU / waiting / awaiting bar from its wall
// samples); the selected span's attributes and its CPU or wall-clock flame graph (this span only /
// this span and its children; Wall by default for a span that mostly waited, filterable by thread
// state) with its heaviest wait named, or a plain-words reason why it has none, with the merged
// profile of all spans of that name as the way out.
import { api, type Span, type Trace } from "../api";
import { clear, h, option, statusBox } from "../dom";
import { explainEmpty, explainInChildren, type WallHint } from "../explain";
import { decodeFlameGraph } from "../flame/model";
import { breakdown, breakdownText, defaultKind, describeWait, dominantState, heaviestPath, shares, STATE_WORDS, THREAD_STATES, type ProfileKind, type ThreadState } from "../wall";
import { fmtCount, fmtDuration, fmtTime, fmtWhen, plural } from "../format";
import type { PageView } from "./page";
import { currentRoute, href, navigate } from "../nav";
import { selectionQuery, selectionToParams, withParams, type Route, type Selection } from "../state";
import { treeOrder, type Row } from "../spans";
import { FlamePanel, urlBoundOptions, withFrames } from "../components/flame-panel";

/** The duration after the bar, before it, or inside it: wherever it fits. */
function durationLabel(left: number, width: number, dur: number): HTMLElement {
  const text = fmtDuration(dur);
  if (left + width <= 85) return h("span", { class: "wf-dur", style: { left: `${left + width}%`, marginLeft: "4px" } }, text);
  if (left >= 15) return h("span", { class: "wf-dur", style: { right: `${100 - left}%`, marginRight: "4px" } }, text);
  return h("span", { class: "wf-dur inside", style: { right: `${Math.max(0, 100 - left - width)}%`, marginRight: "4px" } }, text);
}

function attrValue(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

const WALL_TYPE = "wall:wall:nanoseconds:wall:nanoseconds";

/** Text with `code` spans as <code> elements. */
function withCode(text: string): (string | HTMLElement)[] {
  return text.split("`").map((part, i) => (i % 2 ? h("code", null, part) : part));
}

/** The waterfall's per-span bar: shares of the duration on CPU, waiting and awaiting. */
function wallCell(span: Span): HTMLElement {
  const dur = span.end_unix_nano - span.start_unix_nano;
  const b = breakdown(span, "children");
  if (!b) return h("span", { class: "wf-wall none", "aria-hidden": "true" });
  const sh = shares(b, dur);
  const seg = (cls: string, f: number) => h("span", { class: `wf-st ${cls}`, style: { width: `${(f * 100).toFixed(2)}%` } });
  const text = breakdownText(b, dur);
  return h(
    "span",
    { class: "wf-wall", title: text, "aria-label": text, "data-testid": "wall-breakdown", "data-cpu-ns": b.cpu, "data-waiting-ns": b.waiting, "data-awaiting-ns": b.awaiting },
    seg("st-cpu", sh.cpu),
    seg("st-wait", sh.waiting),
    seg("st-await", sh.awaiting),
  );
}

export class TracePage implements PageView {
  readonly el: HTMLElement;
  private readonly body: HTMLElement;
  private route: Route;
  private trace: Trace | null = null;
  private rows: Row[] = [];
  private waterfall: HTMLElement | null = null;
  private detail: HTMLElement | null = null;
  private panel: FlamePanel;
  private abort = new AbortController();

  constructor(route: Route) {
    this.route = route;
    this.body = h("div", { class: "trace-body" });
    this.el = h("div", { class: "page page-trace" }, h("p", { class: "crumbs" }, h("a", { href: href({ page: "traces", id: "", params: this.keepRange() }) }, "← Traces")), this.body);
    this.panel = this.newPanel();
    void this.load();
  }

  private newPanel(): FlamePanel {
    return new FlamePanel({ ...urlBoundOptions(), tracesContext: () => this.tracesContext(), exportQuery: () => this.shownQuery, valueLabel: () => (this.shownKind === "wall" ? "Wall-clock time" : "CPU") });
  }

  /** The query and profile kind of the flame graph shown (for exports and its caption). */
  private shownQuery: URLSearchParams | null = null;
  private shownKind: ProfileKind = "cpu";

  /** "Traces through this function": the span's service around this trace's time (±1 h). */
  private tracesContext(): URLSearchParams | null {
    const t = this.trace;
    const span = t?.spans.find((s) => s.span_id === this.route.params.span) ?? t?.spans[0];
    if (!t || !span) return null;
    const startMs = Math.min(...t.spans.map((s) => s.start_unix_nano)) / 1e6;
    const endMs = Math.max(...t.spans.map((s) => s.end_unix_nano)) / 1e6;
    const q = new URLSearchParams({ service: span.service, from: String(Math.floor(startMs - 3_600_000)), to: String(Math.ceil(endMs + 3_600_000)) });
    if (this.shownKind === "wall") q.set("profile_type", t.wall_profile_type || WALL_TYPE);
    return q;
  }

  private keepRange(): Record<string, string> {
    const p = this.route.params;
    const out: Record<string, string> = {};
    if (p.from) out.from = p.from;
    if (p.to) out.to = p.to;
    return out;
  }

  update(route: Route): void {
    const prev = this.route.params;
    this.route = route;
    if (!this.trace) return;
    const p = route.params;
    if (prev.span !== p.span) this.markSelected();
    if (prev.span !== p.span || prev.mode !== p.mode || prev.merged !== p.merged || prev.zoom !== p.zoom || prev.q !== p.q || prev.frames !== p.frames || prev.profile !== p.profile || prev.state !== p.state) this.renderDetail();
  }

  destroy(): void {
    this.abort.abort();
    this.panel.destroy();
  }

  private async load(): Promise<void> {
    this.body.replaceChildren(statusBox("loading", "Loading trace…"));
    try {
      this.trace = await api.trace(this.route.id, this.abort.signal);
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      this.body.replaceChildren(statusBox("error", `Could not load trace ${this.route.id}: ${(e as Error).message}`, " ", h("button", { type: "button", class: "btn small", onclick: () => void this.load() }, "Retry")));
      return;
    }
    if (this.trace.spans.length === 0) {
      this.body.replaceChildren(statusBox("empty", `Trace ${this.route.id} has no spans (yet). Spans arrive in batches a few seconds after they end.`));
      return;
    }
    this.rows = treeOrder(this.trace.spans);
    this.render();
  }

  private selected(): Span {
    const id = this.route.params.span;
    return (id && this.trace!.spans.find((s) => s.span_id === id)) || this.rows[0].span;
  }

  private render(): void {
    const t = this.trace!;
    const t0 = Math.min(...t.spans.map((s) => s.start_unix_nano));
    const t1 = Math.max(...t.spans.map((s) => s.end_unix_nano));
    const total = Math.max(1, t1 - t0);
    const root = this.rows[0].span;
    const traceSamples = t.spans.reduce((a, s) => a + s.self_samples, 0);
    const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { class: "tick", style: { left: `${f * 100}%` } }, fmtDuration(f * total)));
    this.waterfall = h(
      "div",
      { class: "waterfall", role: "listbox", "aria-label": "Spans (arrow keys move, Enter selects)", "data-testid": "waterfall" },
      h("div", { class: "wf-head", "aria-hidden": "true" }, h("span", { class: "wf-name" }, "Span"), h("span", { class: "wf-samples" }, "CPU samples"), h("span", { class: "wf-wall-head", title: "Share of the span's duration (with its children) on CPU, waiting (GIL, blocking calls) and awaiting (asyncio), from wall-clock samples" }, "Wall"), h("span", { class: "wf-axis" }, ...ticks)),
      ...this.rows.map(({ span, depth }) => {
        const left = ((span.start_unix_nano - t0) / total) * 100;
        const width = Math.max(0.2, ((span.end_unix_nano - span.start_unix_nano) / total) * 100);
        const dur = span.end_unix_nano - span.start_unix_nano;
        const err = span.status && (span.status.code === 2 || span.status.code === "STATUS_CODE_ERROR");
        return h(
          "div",
          {
            class: `wf-row${err ? " error" : ""}`,
            role: "option",
            tabindex: "-1",
            "aria-selected": "false",
            "data-span-id": span.span_id,
            "data-span-name": span.name,
            "data-self-samples": span.self_samples,
            "data-total-samples": span.total_samples,
            onclick: () => this.select(span.span_id),
            onkeydown: (e: KeyboardEvent) => this.onRowKey(e, span.span_id),
          },
          h("span", { class: "wf-name", style: { paddingLeft: `${depth * 14 + 4}px` }, title: span.name }, depth > 0 ? h("span", { class: "wf-elbow", "aria-hidden": "true" }, "└ ") : null, span.name, span.service !== root.service ? h("span", { class: "wf-svc" }, span.service) : null),
          h("span", { class: "wf-samples" }, span.total_samples > 0 ? `${fmtCount(span.self_samples)} / ${fmtCount(span.total_samples)}` : "–"),
          wallCell(span),
          h("span", { class: "wf-track" }, h("span", { class: `wf-bar${span.total_samples > 0 ? " hot" : ""}`, style: { left: `${left}%`, width: `${width}%` } }), durationLabel(left, width, dur)),
        );
      }),
    );
    this.detail = h("section", { class: "span-detail", "aria-label": "Selected span" });
    this.body.replaceChildren(
      h("h1", null, root.name, " ", h("span", { class: "muted small" }, root.service)),
      h(
        "p",
        { class: "muted" },
        `Trace ${t.trace_id} · started ${fmtTime(t0 / 1e6)} · ${fmtDuration(total)} · ${plural(t.spans.length, "span")} · ${plural(traceSamples, "CPU sample")} (one per ${fmtDuration(t.period_ns || 10_000_000)} of CPU) · samples column: this span only / with children · `,
        h(
          "a",
          { href: href({ page: "profiles", id: "", params: { service: root.service, from: String(Math.floor(t0 / 1e6) - 300_000), to: String(Math.ceil(t1 / 1e6) + 300_000) } }) },
          `${root.service}'s profile around this trace`,
        ),
      ),
      this.waterfall,
      this.detail,
    );
    this.markSelected();
    this.renderDetail();
  }

  private select(spanId: string): void {
    navigate(withParams(currentRoute(), { span: spanId, zoom: "", merged: "", q: "", profile: "", state: "" }));
  }

  private onRowKey(e: KeyboardEvent, spanId: string): void {
    const i = this.rows.findIndex((r) => r.span.span_id === spanId);
    let j: number;
    if (e.key === "ArrowDown") j = Math.min(this.rows.length - 1, i + 1);
    else if (e.key === "ArrowUp") j = Math.max(0, i - 1);
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = this.rows.length - 1;
    else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.select(spanId);
      return;
    } else return;
    e.preventDefault();
    this.select(this.rows[j].span.span_id);
    (this.waterfall?.querySelector(`[data-span-id="${this.rows[j].span.span_id}"]`) as HTMLElement | null)?.focus();
  }

  private markSelected(): void {
    if (!this.waterfall) return;
    const sel = this.selected().span_id;
    for (const row of this.waterfall.querySelectorAll<HTMLElement>(".wf-row")) {
      const on = row.getAttribute("data-span-id") === sel;
      row.setAttribute("aria-selected", String(on));
      row.tabIndex = on ? 0 : -1;
    }
  }

  /** Time range for "all spans with this name": the Traces page's range, else the trace ± 1 h. */
  private mergedRange(span: Span): { from: string; to: string } {
    const p = this.route.params;
    if (p.from) return { from: p.from, to: p.to || "now" };
    return { from: String(Math.floor(span.start_unix_nano / 1e6) - 3_600_000), to: String(Math.ceil(span.end_unix_nano / 1e6) + 3_600_000) };
  }

  /** Bumped per detail render, so a late wall answer for another span or mode is dropped. */
  private detailSeq = 0;

  /** The heaviest wait of the span's dominant off-CPU state, in words, or null. */
  private async waitText(span: Span, mode: "self" | "children", wallType: string): Promise<string | null> {
    const state = dominantState(span, mode);
    if (!state) return null;
    const q = new URLSearchParams({ trace_id: this.trace!.trace_id, span_id: span.span_id, mode, profile_type: wallType, frames: "line", selector: `{thread_state="${state}"}` });
    const path = heaviestPath(decodeFlameGraph(await api.flamegraph(q, this.abort.signal)));
    return path ? describeWait(path, state) : null;
  }

  private renderDetail(): void {
    const t = this.trace!;
    const detail = this.detail!;
    const span = this.selected();
    const p = this.route.params;
    const seq = ++this.detailSeq;
    const mode: "self" | "children" = p.mode === "children" ? "children" : "self";
    const merged = p.merged === "1";
    const dur = span.end_unix_nano - span.start_unix_nano;
    const traceSamples = t.spans.reduce((a, s) => a + s.self_samples, 0);
    const range = this.mergedRange(span);
    const kind: ProfileKind = p.profile === "cpu" || p.profile === "wall" ? p.profile : defaultKind(span, mode, t.period_ns);
    const wallType = t.wall_profile_type || WALL_TYPE;
    const state = (THREAD_STATES as string[]).includes(p.state ?? "") ? (p.state as ThreadState) : null;
    const profileOf = kind === "wall" ? { type: wallType, ...(state ? { labels: `thread_state=${state}` } : {}) } : {};
    // The merged view covers the spans and their children; Compare uses the current mode on both sides.
    const mergedSel: Selection = { kind: "name", service: span.service, name: span.name, from: range.from, to: range.to, mode: "children", ...profileOf };
    const nameSel: Selection = { ...mergedSel, mode };
    const spanSel: Selection = { kind: "span", trace: t.trace_id, span: span.span_id, mode, ...profileOf };
    const wallOwn = breakdown(span, mode);
    // The span's own code has no wall samples but its children have (a root around the span
    // that awaited): explain with theirs.
    const inChildren = mode === "self" && !wallOwn && breakdown(span, "children") !== null;
    const wallHint = wallOwn ?? (inChildren ? breakdown(span, "children") : null);
    this.shownKind = kind;

    const radio = (value: "self" | "children", label: string) =>
      h(
        "label",
        { class: "seg" },
        h("input", {
          type: "radio",
          name: "mode",
          value,
          checked: !merged && mode === value,
          "data-testid": `mode-${value}`,
          onchange: () => navigate(withParams(currentRoute(), { mode: value, merged: "", zoom: "" })),
        }),
        label,
      );
    const mergedRadio = h(
      "label",
      { class: "seg" },
      h("input", { type: "radio", name: "mode", value: "merged", checked: merged, "data-testid": "mode-merged", onchange: () => navigate(withParams(currentRoute(), { merged: "1", zoom: "" })) }),
      `all “${span.name}” spans`,
    );
    const kindRadio = (value: ProfileKind, label: string) =>
      h(
        "label",
        { class: "seg" },
        h("input", {
          type: "radio",
          name: "profile",
          value,
          checked: kind === value,
          "data-testid": `kind-${value}`,
          onchange: () => navigate(withParams(currentRoute(), { profile: value, zoom: "", q: "", sandwich: "" })),
        }),
        label,
      );
    const kindSwitch = h(
      "fieldset",
      { class: "segmented", "data-testid": "profile-kind", "data-kind": kind, "data-default": defaultKind(span, mode, t.period_ns), title: "CPU: where it ran. Wall: where its time went, running or waiting." },
      h("legend", { class: "sr-only" }, "Profile type"),
      kindRadio("cpu", "CPU"),
      kindRadio("wall", "Wall"),
    );
    const stateFilter =
      kind === "wall"
        ? h(
            "label",
            { class: "state-filter" },
            "Thread state ",
            h(
              "select",
              { "data-testid": "state-filter", onchange: (e: Event) => navigate(withParams(currentRoute(), { state: (e.target as HTMLSelectElement).value, zoom: "" })) },
              option("", "all", !state),
              ...THREAD_STATES.map((st) => option(st, STATE_WORDS[st], state === st)),
            ),
          )
        : null;
    const compareLink = h(
      "a",
      { class: "btn", "data-testid": "compare-link", href: href({ page: "compare", id: "", params: { ...selectionToParams(nameSel, "a"), ...selectionToParams(spanSel, "b") } }) },
      `Compare with all “${span.name}” spans`,
    );
    const waitSummary = h("p", { class: "wait-summary", "data-testid": "wait-summary", hidden: true });
    const attrs = Object.entries(span.attributes ?? {});
    const res = Object.entries(span.resource ?? {});
    this.panel.destroy();
    this.panel = this.newPanel();
    clear(detail);
    detail.append(
      h(
        "div",
        { class: "detail-head" },
        h("h2", null, span.name),
        h(
          "p",
          { class: "muted" },
          `${fmtDuration(dur)} · ${span.service} · ${String(span.kind).replace("SPAN_KIND_", "").toLowerCase()} · span ${span.span_id} · ${plural(span.self_samples, "sample")} in this span, ${fmtCount(span.total_samples)} with children`,
        ),
        wallOwn ? h("p", { class: "muted", "data-testid": "span-breakdown" }, `Wall time ${mode === "self" ? "in this span" : "with children"}: ${breakdownText(wallOwn, dur)}`) : null,
      ),
      h(
        "div",
        { class: "detail-tools" },
        kindSwitch,
        h("fieldset", { class: "segmented" }, h("legend", { class: "sr-only" }, "Profile of"), radio("self", "this span only"), radio("children", "this span and its children"), mergedRadio),
        stateFilter,
        compareLink,
      ),
      waitSummary,
      this.panel.el,
      h(
        "details",
        { class: "attrs", open: attrs.length > 0 && attrs.length <= 12 },
        h("summary", null, `Attributes (${attrs.length})${span.events?.length ? `, events (${span.events.length})` : ""}, resource (${res.length})`),
        h("table", { class: "kv" }, h("tbody", null, ...attrs.map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, attrValue(v)))))),
        span.status?.message ? h("p", null, `Status: ${span.status.code} ${span.status.message}`) : null,
        span.events?.length ? h("ul", { class: "events" }, ...span.events.map((ev) => h("li", null, `${fmtDuration(ev.time_unix_nano - span.start_unix_nano)}: ${ev.name}`))) : null,
        h("table", { class: "kv" }, h("tbody", null, ...res.map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, attrValue(v)))))),
      ),
    );
    const showPanel = (q: URLSearchParams, emptyMessage: string) => {
      this.shownQuery = q;
      void this.panel.show(async () => ({ kind: "single", json: await api.flamegraph(q, this.abort.signal) }), { zoom: p.zoom, q: p.q, sandwich: p.sandwich, emptyMessage });
    };

    if (merged) {
      showPanel(
        withFrames(selectionQuery(mergedSel, Date.now())),
        kind === "wall"
          ? `No wall-clock samples for any “${span.name}” span of ${span.service} between ${fmtWhen(range.from)} and ${fmtWhen(range.to)}${state ? ` in state ${STATE_WORDS[state]}` : ""}.`
          : `No samples for any “${span.name}” span of ${span.service} between ${fmtWhen(range.from)} and ${fmtWhen(range.to)}. Spans that only wait (sleep, I/O) use no CPU: switch to Wall.`,
      );
      return;
    }
    // A trace with wall samples is profiled even when no span has a CPU sample.
    const profiled = traceSamples + t.spans.filter((s) => breakdown(s, "self")).length;
    const showWhy = (wait?: string): boolean => {
      const hint: WallHint | undefined = wallHint ? { offCpuNs: wallHint.waiting + wallHint.awaiting, wallNs: wallHint.wall, wait, inChildren } : undefined;
      const why = kind === "wall" && hint && inChildren ? explainInChildren(span, hint) : explainEmpty(span, mode, t.period_ns, profiled, hint);
      if (!why) return false;
      this.panel.empty(
        why.text,
        h(
          "div",
          { class: "empty-actions" },
          why.suggestWall && kind !== "wall" ? h("button", { type: "button", class: "btn primary", "data-testid": "show-wall", onclick: () => navigate(withParams(currentRoute(), { profile: "wall", zoom: "", ...(inChildren ? { mode: "children" } : {}) })) }, "Show the wall-clock profile") : null,
          why.suggestChildren ? h("button", { type: "button", class: "btn", onclick: () => navigate(withParams(currentRoute(), { mode: "children" })) }, "Show this span and its children") : null,
          why.suggestMerged ? h("button", { type: "button", class: "btn primary", "data-testid": "show-merged", onclick: () => navigate(withParams(currentRoute(), { merged: "1" })) }, `Show the merged profile of all “${span.name}” spans`) : null,
        ),
      );
      this.panel.el.setAttribute("data-reason", why.text);
      if (why.suggestWall) this.panel.el.setAttribute("data-wall-hint", "1");
      return true;
    };
    if (wallHint && !state) {
      // Where the span waited, above either profile (and in the explanation below).
      void this.waitText(span, inChildren ? "children" : mode, wallType)
        .then((text) => {
          if (seq !== this.detailSeq || !text) return;
          waitSummary.hidden = false;
          waitSummary.replaceChildren(inChildren ? "Heaviest wait, in its child spans: " : "Heaviest wait: ", ...withCode(text));
          if (this.panel.el.getAttribute("data-state") === "empty" && this.panel.el.hasAttribute("data-wall-hint")) showWhy(text);
        })
        .catch(() => undefined);
    }
    if ((kind === "cpu" || inChildren) && showWhy()) return;
    showPanel(
      withFrames(selectionQuery(spanSel, Date.now())),
      kind === "wall"
        ? `No wall-clock samples for this span${state ? ` in state ${STATE_WORDS[state]}` : ""}. The agent sends wall profiles when wall sampling is on (profile_types), every upload interval.`
        : `The trace lists samples for this span, but the profile store returned none yet: profiles upload every 10 s, try again shortly.`,
    );
  }
}
