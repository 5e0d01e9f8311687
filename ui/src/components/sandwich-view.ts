// Sandwich of one function: its callers drawn upside down above it, its callees below.
import { h } from "../dom";
import { decodeFlameGraph, frameKey, placeOf, type Flame } from "../flame/model";
import { sandwich } from "../flame/sandwich";
import { FlameGraphView } from "../flame/view";
import { fmtPct } from "../format";

export class SandwichView {
  readonly el: HTMLElement;
  private readonly views: FlameGraphView[] = [];

  constructor(f: Flame, target: number, format: (v: number) => string, onClose: () => void) {
    const s = sandwich(f, target);
    const callers = new FlameGraphView({ format, inverted: true, label: "Callers", maxListed: 100 });
    const callees = new FlameGraphView({ format, label: "Callees", maxListed: 100 });
    this.views.push(callers, callees);
    callers.el.setAttribute("data-testid", "sandwich-callers");
    callees.el.setAttribute("data-testid", "sandwich-callees");
    const place = placeOf(f, target);
    this.el = h(
      "section",
      { class: "sandwich", "data-testid": "sandwich", "data-key": frameKey(f, target), "aria-label": `Callers and callees of ${f.names[target]}` },
      h(
        "div",
        { class: "sandwich-head" },
        h("h3", null, "Callers and callees of ", h("code", null, f.names[target]), place ? ` (${place})` : ""),
        h("span", { class: "muted" }, `${format(s.total)} in it and below (${fmtPct(s.total, f.total)}), ${format(s.self)} in its own code.`),
        h("button", { type: "button", class: "btn small", onclick: onClose }, "Close"),
      ),
      h("p", { class: "muted sandwich-label" }, "Callers (the function at the bottom, who called it above)"),
      callers.el,
      h("p", { class: "muted sandwich-label" }, "Callees (the function at the top, what it called below)"),
      callees.el,
    );
    callers.setFlame(decodeFlameGraph(s.callers));
    callees.setFlame(decodeFlameGraph(s.callees));
  }

  destroy(): void {
    for (const v of this.views) v.destroy();
  }
}
