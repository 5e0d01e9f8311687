// Traces: search by service, span name (root or any span), attributes, status, duration and time
// range; a duration histogram to brush; the list sorted by duration or start, paged with "Load
// more"; each row opens the trace.
import { api, clearCache, type TraceSearchResult, type TraceSummary } from "../api";
import { durationHistogram } from "../components/histogram";
import { clear, h, option, statusBox } from "../dom";
import { fmtCount, fmtDuration, fmtTime, plural } from "../format";
import type { PageView } from "./page";
import { currentRoute, href, navigate } from "../nav";
import { formatHash, rangeOf, resolveRange, withParams, type Route } from "../state";
import { rangePicker } from "../components/widgets";

/** Rows per page of the list. */
const PAGE = 200;

export class TracesPage implements PageView {
  readonly el: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly results: HTMLElement;
  private route: Route;
  private abort: AbortController | null = null;
  /** Rows shown so far (pages appended by "Load more"). */
  private shown = 0;

  constructor(route: Route) {
    this.route = route;
    this.form = h("form", { class: "filters", "aria-label": "Search traces" });
    this.results = h("section", { class: "results", "aria-live": "polite", "aria-busy": "false" });
    this.el = h("div", { class: "page page-traces" }, h("h1", null, "Traces"), this.form, this.results);
    this.update(route);
  }

  update(route: Route): void {
    this.route = route;
    this.renderForm();
    void this.load();
  }

  destroy(): void {
    this.abort?.abort();
  }

  private renderForm(): void {
    const p = this.route.params;
    const service = h("select", { name: "service", id: "f-service" }, option("", "all services", !p.service));
    if (p.service) service.append(option(p.service, p.service, true));
    api.services().then(
      (r) => {
        for (const s of r.services) if (s !== p.service) service.append(option(s, s, false));
      },
      () => undefined,
    );
    const field = (label: string, id: string, input: HTMLElement) => h("div", { class: "field" }, h("label", { for: id }, label), input);
    const name = h("input", { name: "name", id: "f-name", type: "search", value: p.name ?? "", placeholder: "e.g. GET /checkout" });
    const scope = h("select", { id: "f-scope", "aria-label": "Which spans the name matches" }, option("root", "root span", p.scope !== "any"), option("any", "any span", p.scope === "any"));
    const attrs = h("input", { name: "attrs", id: "f-attrs", type: "search", value: p.attrs ?? "", placeholder: "http.route=/cpu; user=ann", size: 24 });
    const status = h("select", { id: "f-status" }, option("", "any", !p.status), option("error", "has an error", p.status === "error"), option("ok", "no error", p.status === "ok"));
    const minMs = h("input", { name: "min_ms", id: "f-min", type: "number", min: "0", step: "any", value: p.min_ms ?? "", placeholder: "0", class: "narrow" });
    const maxMs = h("input", { name: "max_ms", id: "f-max", type: "number", min: "0", step: "any", value: p.max_ms ?? "", placeholder: "∞", class: "narrow" });
    const onlyProfiled = h("input", { type: "checkbox", id: "f-prof", checked: p.has_profile === "1" });
    const range = rangePicker(rangeOf(p), (r) => navigate(withParams(currentRoute(), { ...r })));
    clear(this.form);
    this.form.append(
      field("Service", "f-service", service),
      h("div", { class: "field" }, h("label", { for: "f-name" }, "Span name"), h("span", { class: "pair" }, name, scope)),
      field("Attributes (key=value; …)", "f-attrs", attrs),
      field("Status", "f-status", status),
      h("div", { class: "field" }, h("span", { class: "label", id: "f-dur" }, "Duration (ms)"), h("span", { class: "pair", role: "group", "aria-labelledby": "f-dur" }, minMs, "–", maxMs)),
      h("div", { class: "field" }, h("span", { class: "label" }, "Time range"), range),
      h("div", { class: "field check" }, onlyProfiled, h("label", { for: "f-prof" }, "with profile only")),
      h("div", { class: "field" }, h("button", { type: "submit", class: "btn primary" }, "Search")),
    );
    this.form.onsubmit = (e) => {
      e.preventDefault();
      const next = withParams(currentRoute(), {
        service: service.value,
        name: name.value.trim(),
        scope: scope.value === "any" ? "any" : "",
        attrs: attrs.value.trim(),
        status: status.value,
        min_ms: minMs.value,
        max_ms: maxMs.value,
        has_profile: onlyProfiled.checked ? "1" : "",
      });
      // Searching again with the same filters means "refresh": new traces keep arriving.
      clearCache();
      if (formatHash(next) === location.hash) void this.load();
      else navigate(next);
    };
  }

  /** The /api/v1/traces query of the URL's filters (one page of PAGE rows from `offset`). */
  private query(fromMs: number, toMs: number, offset: number): Record<string, string> {
    const p = this.route.params;
    const q: Record<string, string> = { from: String(fromMs), to: String(toMs), sort: p.sort === "start" ? "start" : "duration", limit: String(PAGE), offset: String(offset) };
    if (p.service) q.service = p.service;
    if (p.name) q[p.scope === "any" ? "span_name" : "name"] = p.name;
    if (p.attrs) q.attributes = p.attrs;
    if (p.status) q.status = p.status;
    const ns = (ms: string) => String(Math.round(Number(ms) * 1e6));
    if (p.min_ms && Number.isFinite(Number(p.min_ms))) q.min_duration_ns = ns(p.min_ms);
    if (p.max_ms && Number.isFinite(Number(p.max_ms))) q.max_duration_ns = ns(p.max_ms);
    if (p.has_profile === "1") q.has_profile = "true";
    return q;
  }

  private async load(): Promise<void> {
    this.abort?.abort();
    const ac = new AbortController();
    this.abort = ac;
    const p = this.route.params;
    let range: { fromMs: number; toMs: number };
    try {
      range = resolveRange(rangeOf(p), Date.now());
    } catch (e) {
      this.results.replaceChildren(statusBox("error", `Time range: ${(e as Error).message}.`));
      return;
    }
    this.results.setAttribute("aria-busy", "true");
    this.results.setAttribute("data-state", "loading");
    this.results.replaceChildren(statusBox("loading", "Loading traces…"));
    try {
      const r = await api.traces(this.query(range.fromMs, range.toMs, 0), ac.signal);
      if (ac.signal.aborted) return;
      this.renderList(r, range);
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      this.results.setAttribute("data-state", "error");
      this.results.replaceChildren(statusBox("error", `Could not load traces: ${(e as Error).message}`, " ", h("button", { type: "button", class: "btn small", onclick: () => void this.load() }, "Retry")));
    } finally {
      this.results.setAttribute("aria-busy", "false");
    }
  }

  private row(t: TraceSummary, maxDur: number): HTMLElement {
    const link = href({ page: "trace", id: t.trace_id, params: { from: this.route.params.from ?? "", to: this.route.params.to ?? "" } });
    return h(
      "tr",
      { "data-trace-id": t.trace_id, "data-duration-ns": t.duration_ns },
      h("td", { class: "nowrap" }, fmtTime(t.start_unix_nano / 1e6)),
      h("td", null, h("a", { href: link, class: "trace-link" }, t.root_name || "(unnamed)"), t.error ? h("span", { class: "badge err" }, "error") : null),
      h("td", null, t.service),
      h("td", { class: "dur" }, h("span", { class: "dur-bar", style: { width: `${Math.max(1, Math.min(100, (t.duration_ns / maxDur) * 100))}%` } }), h("span", { class: "dur-text" }, fmtDuration(t.duration_ns))),
      h("td", { class: "num" }, fmtCount(t.span_count)),
      h("td", null, t.has_profile ? h("span", { class: "badge yes" }, t.sample_count > 0 || !t.wall_ns ? plural(t.sample_count, "sample") : `wall ${fmtDuration(t.wall_ns)}`) : h("span", { class: "badge no" }, "none")),
    );
  }

  private renderList(r: TraceSearchResult, range: { fromMs: number; toMs: number }): void {
    const p = this.route.params;
    const sort = p.sort === "start" ? "start" : "duration";
    const traces = r.traces;
    const total = r.total ?? traces.length;
    if (traces.length === 0) {
      this.results.setAttribute("data-state", "empty");
      this.results.replaceChildren(
        statusBox("empty", "No trace matches in this time range. Widen the range or the filters; traces appear a few seconds after the request ends (the SDK batches spans)."),
      );
      return;
    }
    const maxDur = Math.max(...traces.map((t) => t.duration_ns), 1);
    const sortBtn = (key: "duration" | "start", label: string) =>
      h("button", { type: "button", class: "th-sort", onclick: () => navigate(withParams(currentRoute(), { sort: key })) }, label, sort === key ? " ▼" : "");
    const tbody = h("tbody", null, traces.map((t) => this.row(t, maxDur)));
    this.shown = traces.length;
    const count = h("p", { class: "muted", "data-testid": "traces-count" });
    const more = h("button", { type: "button", class: "btn load-more", "data-testid": "load-more" }, "Load more");
    const showCount = (next: number | null | undefined) => {
      count.textContent = `${plural(total, "trace")} match${total === 1 ? "es" : ""}${r.scan_limited ? " (the search looked at the newest 20,000 root spans)" : ""}; showing ${fmtCount(this.shown)}, by ${sort}.`;
      more.hidden = next === null || next === undefined;
      if (!more.hidden) more.setAttribute("data-offset", String(next));
    };
    showCount(r.next_offset);
    more.addEventListener("click", async () => {
      const offset = Number(more.getAttribute("data-offset"));
      more.disabled = true;
      more.textContent = "Loading…";
      try {
        const page = await api.traces(this.query(range.fromMs, range.toMs, offset), this.abort?.signal);
        for (const t of page.traces) tbody.append(this.row(t, maxDur));
        this.shown += page.traces.length;
        tbody.setAttribute("data-rows", String(this.shown));
        showCount(page.next_offset);
      } catch (e) {
        if ((e as Error).name !== "AbortError") count.textContent = `Could not load more: ${(e as Error).message}`;
      } finally {
        more.disabled = false;
        more.textContent = "Load more";
      }
    });
    tbody.setAttribute("data-rows", String(this.shown));
    const table = h(
      "table",
      { class: "traces", "data-testid": "traces-table" },
      h("caption", { class: "sr-only" }, `Traces sorted by ${sort}`),
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("th", { scope: "col", "aria-sort": sort === "start" ? "descending" : "none" }, sortBtn("start", "Start")),
          h("th", { scope: "col" }, "Root span"),
          h("th", { scope: "col" }, "Service"),
          h("th", { scope: "col", "aria-sort": sort === "duration" ? "descending" : "none" }, sortBtn("duration", "Duration")),
          h("th", { scope: "col", class: "num" }, "Spans"),
          h("th", { scope: "col" }, "Profile"),
        ),
      ),
      tbody,
    );
    const num = (v: string | undefined) => (v && Number.isFinite(Number(v)) ? Number(v) * 1e6 : null);
    const hist = r.histogram && r.histogram.counts.length
      ? durationHistogram(r.histogram, { minNs: num(p.min_ms), maxNs: num(p.max_ms) }, (lo, hi) => navigate(withParams(currentRoute(), { min_ms: String(lo / 1e6), max_ms: String(hi / 1e6) })))
      : null;
    const clearDur = p.min_ms || p.max_ms ? h("button", { type: "button", class: "btn small", onclick: () => navigate(withParams(currentRoute(), { min_ms: "", max_ms: "" })) }, "Clear duration filter") : null;
    this.results.setAttribute("data-state", "ready");
    this.results.replaceChildren(h("div", { class: "hist-box" }, h("p", { class: "muted" }, "Durations of the matching traces (drag across bars to filter) ", clearDur), hist ?? ""), count, table, more);
  }
}
