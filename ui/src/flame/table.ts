// Top table: self and total per function (or line), with its source place, sortable; each name a
// button that highlights it in the flame graph, and (single profiles) a button for its details.

import { clear, h } from "../dom";
import { fmtPct } from "../format";
import { diffSupported, shareDelta } from "./diff";
import { placeOf, shortFile, topTable, type Flame, type TopRow } from "./model";

type Key = "self" | "total" | "delta" | "name";

export function topTableView(f: Flame, format: (v: number) => string, onHighlight: (nameIndex: number) => void, onDetails?: (nameIndex: number) => void, limit = 200): HTMLElement {
  const rows = topTable(f);
  const diff = f.kind === "diff";
  let key: Key = diff ? "delta" : "self";
  let desc = true;
  const tbody = h("tbody");
  const delta = (r: TopRow) => shareDelta(r.total, r.totalR, f.total, f.totalR);
  const headers: [Key, string][] = diff
    ? [["name", "Function"], ["self", "Self (A → B)"], ["total", "Total (A → B)"], ["delta", "Δ total"]]
    : [["name", "Function"], ["self", "Self"], ["total", "Total"]];
  const ths = headers.map(([k, label]) =>
    h("th", { scope: "col", "aria-sort": "none" }, h("button", { type: "button", class: "th-sort", onclick: () => sortBy(k) }, label)),
  );
  const fill = () => {
    const val = (r: TopRow): number | string => (key === "name" ? r.name : key === "self" ? r.self + r.selfR : key === "total" ? r.total + r.totalR : Math.abs(delta(r)));
    rows.sort((a, b) => {
      const va = val(a);
      const vb = val(b);
      const c = va < vb ? -1 : va > vb ? 1 : 0;
      return desc ? -c : c;
    });
    clear(tbody);
    for (const r of rows.slice(0, limit)) {
      const place = placeOf(f, r.index);
      const name = h(
        "td",
        { class: "fn", "data-name": r.name, "data-place": place || undefined },
        h("button", { type: "button", class: "link", title: `Highlight ${r.name} in the flame graph`, onclick: () => onHighlight(r.index) }, r.name),
        place ? h("span", { class: "place", title: place }, ` ${shortFile(f.files[r.index])}${f.lines[r.index] > 0 ? ":" + f.lines[r.index] : ""}`) : null,
        onDetails ? h("button", { type: "button", class: "icon-btn", title: `Source, callers and callees of ${r.name}`, "aria-label": `Details of ${r.name}`, "data-testid": "row-details", onclick: () => onDetails(r.index) }, "⋯") : null,
      );
      if (diff) {
        const d = delta(r);
        tbody.append(
          h(
            "tr",
            null,
            name,
            h("td", { class: "num" }, `${fmtPct(r.self, f.total)} → ${fmtPct(r.selfR, f.totalR)}`),
            h("td", { class: "num" }, `${fmtPct(r.total, f.total)} → ${fmtPct(r.totalR, f.totalR)}`),
            diffSupported(f, r.total, r.totalR)
              ? h("td", { class: `num ${d > 0 ? "up" : d < 0 ? "down" : ""}` }, `${d >= 0 ? "+" : ""}${d.toFixed(1)} pt`)
              : h("td", { class: "num unsupported", title: "within sampling error: the sample counts do not support this difference" }, `${d >= 0 ? "+" : ""}${d.toFixed(1)} pt ?`),
          ),
        );
      } else {
        tbody.append(
          h(
            "tr",
            null,
            name,
            h("td", { class: "num", title: fmtPct(r.self, f.total) }, format(r.self), h("span", { class: "pct" }, fmtPct(r.self, f.total))),
            h("td", { class: "num", title: fmtPct(r.total, f.total) }, format(r.total), h("span", { class: "pct" }, fmtPct(r.total, f.total))),
          ),
        );
      }
    }
    headers.forEach(([k], i) => ths[i].setAttribute("aria-sort", k === key ? (desc ? "descending" : "ascending") : "none"));
  };
  const sortBy = (k: Key) => {
    if (k === key) desc = !desc;
    else {
      key = k;
      desc = k !== "name";
    }
    fill();
  };
  fill();
  return h(
    "div",
    { class: "top-table-wrap" },
    h("table", { class: "top-table", "data-testid": "top-table" }, h("caption", { class: "sr-only" }, "CPU per function"), h("thead", null, h("tr", null, ...ths)), tbody),
    rows.length > limit ? h("p", { class: "muted" }, `${rows.length - limit} more functions not shown.`) : null,
  );
}
