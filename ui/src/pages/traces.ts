// Traces: search by service, root span name, duration and time range; list sorted by duration or
// start; each row opens the trace.
import { api, clearCache, type TraceSummary } from "../api";
import { clear, h, option, statusBox } from "../dom";
import { fmtCount, fmtDuration, fmtTime } from "../format";
import type { PageView } from "./page";
import { currentRoute, href, navigate } from "../nav";
import { formatHash, rangeOf, resolveRange, withParams, type Route } from "../state";
import { rangePicker } from "../components/widgets";

export class TracesPage implements PageView {
  readonly el: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly results: HTMLElement;
  private route: Route;
  private abort: AbortController | null = null;

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
    const minMs = h("input", { name: "min_ms", id: "f-min", type: "number", min: "0", step: "any", value: p.min_ms ?? "", placeholder: "0", class: "narrow" });
    const maxMs = h("input", { name: "max_ms", id: "f-max", type: "number", min: "0", step: "any", value: p.max_ms ?? "", placeholder: "∞", class: "narrow" });
    const onlyProfiled = h("input", { type: "checkbox", id: "f-prof", checked: p.has_profile === "1" });
    const range = rangePicker(rangeOf(p), (r) => navigate(withParams(currentRoute(), { ...r })));
    clear(this.form);
    this.form.append(
      field("Service", "f-service", service),
      field("Root span name", "f-name", name),
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

  private async load(): Promise<void> {
    this.abort?.abort();
    const ac = new AbortController();
    this.abort = ac;
    const p = this.route.params;
    let range;
    try {
      range = resolveRange(rangeOf(p), Date.now());
    } catch (e) {
      this.results.replaceChildren(statusBox("error", `Time range: ${(e as Error).message}.`));
      return;
    }
    const sort = p.sort === "start" ? "start" : "duration";
    const q: Record<string, string> = { from: String(range.fromMs), to: String(range.toMs), sort, limit: "200" };
    if (p.service) q.service = p.service;
    if (p.name) q.name = p.name;
    if (p.min_ms) q.min_duration_ms = p.min_ms;
    if (p.max_ms) q.max_duration_ms = p.max_ms;
    if (p.has_profile === "1") q.has_profile = "true";
    this.results.setAttribute("aria-busy", "true");
    this.results.replaceChildren(statusBox("loading", "Loading traces…"));
    try {
      const r = await api.traces(q, ac.signal);
      if (ac.signal.aborted) return;
      this.renderList(r.traces, sort);
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      this.results.replaceChildren(statusBox("error", `Could not load traces: ${(e as Error).message}`, " ", h("button", { type: "button", class: "btn small", onclick: () => void this.load() }, "Retry")));
    } finally {
      this.results.setAttribute("aria-busy", "false");
    }
  }

  private renderList(traces: TraceSummary[], sort: "duration" | "start"): void {
    if (traces.length === 0) {
      this.results.replaceChildren(
        statusBox("empty", "No trace matches in this time range. Widen the range or the filters; traces appear a few seconds after the request ends (the SDK batches spans)."),
      );
      return;
    }
    const rows = [...traces].sort((a, b) => (sort === "duration" ? b.duration_ns - a.duration_ns : b.start_unix_nano - a.start_unix_nano));
    const maxDur = Math.max(...rows.map((t) => t.duration_ns), 1);
    const sortBtn = (key: "duration" | "start", label: string) =>
      h("button", { type: "button", class: "th-sort", onclick: () => navigate(withParams(currentRoute(), { sort: key })) }, label, sort === key ? " ▼" : "");
    const keep = { from: this.route.params.from ?? "", to: this.route.params.to ?? "" };
    const table = h(
      "table",
      { class: "traces", "data-testid": "traces-table" },
      h("caption", { class: "sr-only" }, `${rows.length} traces, sorted by ${sort}`),
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
      h(
        "tbody",
        null,
        rows.map((t) => {
          const link = href({ page: "trace", id: t.trace_id, params: keep });
          return h(
            "tr",
            { "data-trace-id": t.trace_id, "data-duration-ns": t.duration_ns },
            h("td", { class: "nowrap" }, fmtTime(t.start_unix_nano / 1e6)),
            h("td", null, h("a", { href: link, class: "trace-link" }, t.root_name || "(unnamed)")),
            h("td", null, t.service),
            h("td", { class: "dur" }, h("span", { class: "dur-bar", style: { width: `${Math.max(1, (t.duration_ns / maxDur) * 100)}%` } }), h("span", { class: "dur-text" }, fmtDuration(t.duration_ns))),
            h("td", { class: "num" }, fmtCount(t.span_count)),
            h("td", null, t.has_profile ? h("span", { class: "badge yes" }, `${fmtCount(t.sample_count)} samples`) : h("span", { class: "badge no" }, "none")),
          );
        }),
      ),
    );
    this.results.replaceChildren(h("p", { class: "muted" }, `${rows.length} traces${rows.length >= 200 ? " (first 200)" : ""}.`), table);
  }
}
