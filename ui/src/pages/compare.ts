// Compare: diff flame graph of two selections (spans, span names or time ranges). Both sides are
// fetched from /api/v1/flamegraph and diffed in the browser (flame/diff.ts).
import { api } from "../api";
import { h, option } from "../dom";
import { diffFlameGraphs } from "../flame/diff";
import { unitOf } from "../format";
import type { PageView } from "./page";
import { currentRoute, navigate } from "../nav";
import { describeSelection, selectionFromParams, selectionQuery, selectionToParams, type Route, type Selection } from "../state";
import { FlamePanel, urlBoundOptions, withFrames } from "../components/flame-panel";

type Side = "a" | "b";
const SIDE_LABEL: Record<Side, string> = { a: "A (baseline)", b: "B (comparison)" };

function localDateTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function editor(side: Side, sel: Selection | null): { el: HTMLElement; read: () => Record<string, string> } {
  const kind = h("select", { id: `${side}-kind`, "aria-label": `${SIDE_LABEL[side]}: kind` }, option("span", "one span", sel?.kind === "span"), option("name", "all spans with a name", sel?.kind === "name"), option("range", "a service over a time range", sel?.kind === "range" || !sel));
  // Absolute times are shown as local date-times (which parseTime reads back), not epoch ms.
  const v = (k: string): string => {
    const raw = sel ? String((sel as unknown as Record<string, string>)[k] ?? "") : "";
    return (k === "from" || k === "to") && /^\d{10,16}$/.test(raw) ? localDateTime(Number(raw)) : raw;
  };
  const input = (k: string, label: string, placeholder = "") => {
    const id = `${side}-${k}`;
    const el = h("input", { id, name: k, value: v(k), placeholder });
    return { k, el, wrap: h("div", { class: "field" }, h("label", { for: id }, label), el) };
  };
  const fields: Record<Selection["kind"], { k: string; el: HTMLInputElement | HTMLSelectElement; wrap: HTMLElement }[]> = {
    span: [input("trace", "Trace id"), input("span", "Span id")],
    name: [input("service", "Service"), input("name", "Span name"), input("from", "From", "now-1h"), input("to", "To", "now")],
    range: [input("service", "Service"), input("type", "Profile type", "CPU (default)"), input("labels", "Labels", "env=prod,…"), input("from", "From", "now-1h"), input("to", "To", "now")],
  };
  const modeField = (kind: "span" | "name") => {
    const id = `${side}-${kind}-mode`;
    const el = h("select", { id }, option("children", kind === "span" ? "span and children" : "spans and children", v("mode") !== "self"), option("self", kind === "span" ? "span only" : "spans only", v("mode") === "self"));
    fields[kind].push({ k: "mode", el, wrap: h("div", { class: "field" }, h("label", { for: id }, "Profile of"), el) });
  };
  modeField("span");
  modeField("name");
  const box = h("div", { class: "sel-fields" });
  const show = () => box.replaceChildren(...fields[kind.value as Selection["kind"]].map((f) => f.wrap));
  kind.addEventListener("change", show);
  show();
  const el = h("fieldset", { class: "sel-editor" }, h("legend", null, SIDE_LABEL[side]), h("div", { class: "field" }, h("label", { for: `${side}-kind` }, "Select"), kind), box);
  const read = () => {
    const out: Record<string, string> = { [`${side}.kind`]: kind.value };
    for (const f of fields[kind.value as Selection["kind"]]) out[`${side}.${f.k}`] = f.el.value.trim();
    return out;
  };
  return { el, read };
}

export class ComparePage implements PageView {
  readonly el: HTMLElement;
  private readonly form: HTMLFormElement;
  private readonly summary: HTMLElement;
  private panel: FlamePanel;
  private abort = new AbortController();

  constructor(route: Route) {
    this.form = h("form", { class: "compare-form", "aria-label": "Selections to compare" });
    this.summary = h("div", { class: "compare-summary" });
    this.panel = this.newPanel();
    this.el = h("div", { class: "page page-compare" }, h("h1", null, "Compare"), this.form, this.summary, this.panel.el);
    this.update(route);
  }

  private newPanel(): FlamePanel {
    return new FlamePanel({
      table: true,
      sides: ["A", "B"],
      ...urlBoundOptions(),
    });
  }

  update(route: Route): void {
    const a = selectionFromParams(route.params, "a");
    const b = selectionFromParams(route.params, "b");
    const ea = editor("a", a);
    const eb = editor("b", b);
    this.form.replaceChildren(
      h("div", { class: "sel-pair" }, ea.el, eb.el),
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "submit", class: "btn primary" }, "Compare"),
        h("button", { type: "button", class: "btn", onclick: () => a && b && navigate({ ...currentRoute(), params: { ...selectionToParams(b, "a"), ...selectionToParams(a, "b") } }) }, "Swap A and B"),
      ),
    );
    this.form.onsubmit = (e) => {
      e.preventDefault();
      navigate({ page: "compare", id: "", params: { ...ea.read(), ...eb.read() } });
    };
    if (!a || !b) {
      this.summary.replaceChildren();
      this.panel.empty("Choose two selections to compare: two spans, all spans of two names, or two time ranges. From a trace, “Compare with all … spans” fills both in.");
      return;
    }
    this.summary.replaceChildren(h("p", null, h("strong", null, "A: "), describeSelection(a)), h("p", null, h("strong", null, "B: "), describeSelection(b)));
    this.panel.destroy();
    const fresh = this.newPanel();
    this.panel.el.replaceWith(fresh.el);
    this.panel = fresh;
    let qa: URLSearchParams, qb: URLSearchParams;
    try {
      qa = withFrames(selectionQuery(a, Date.now()));
      qb = withFrames(selectionQuery(b, Date.now()));
    } catch (e) {
      this.panel.error(`Selection: ${(e as Error).message}.`);
      return;
    }
    const sig = this.abort.signal;
    void this.panel.show(
      async () => {
        const [la, lb] = await Promise.all([api.flamegraph(qa, sig), api.flamegraph(qb, sig)]);
        return { kind: "diff", json: diffFlameGraphs(la, lb), periodNs: la.period_ns || lb.period_ns || 0, unit: unitOf(la.total ? la : lb) };
      },
      { zoom: route.params.zoom, q: route.params.q, emptyMessage: "Neither selection has CPU samples." },
    );
  }

  destroy(): void {
    this.abort.abort();
    this.panel.destroy();
  }
}

