// From a profile back to requests: the traces whose samples spent the most time in a function
// (server: /api/v1/profile/traces), ranked, with the share of each trace's own time there and the
// share of the function's time that trace accounts for.
import { api, type FunctionTraces } from "../api";
import { h, statusBox } from "../dom";
import { fmtDuration, fmtPct, fmtTime, plural } from "../format";
import { href } from "../nav";

/**
 * `context`: service, profile_type, selector, from, to; `fn`: function, file, line (optional), or
 * null for the traces that used the most time in the range at all.
 */
export function functionTraces(context: URLSearchParams, fn: { function: string; file: string; line: number } | null, format: (v: number) => string, signal: AbortSignal): HTMLElement {
  const box = h("section", { class: "function-traces", "data-testid": "function-traces", "data-state": "loading", "aria-live": "polite" });
  const title = fn ? h("h3", null, "Traces through ", h("code", null, fn.function), fn.file ? ` (${fn.file}${fn.line ? ":" + fn.line : ""})` : "") : h("h3", null, "Traces that used the most time in this range");
  box.append(title, statusBox("loading", fn ? "Finding the traces that ran this function…" : "Finding the traces of this range…"));
  const q = new URLSearchParams(context);
  if (fn) {
    q.set("function", fn.function);
    if (fn.file) q.set("file", fn.file);
    if (fn.line) q.set("line", String(fn.line));
  }
  q.set("limit", "50");
  api.profileTraces(q, signal).then(
    (r) => {
      box.replaceChildren(title, ...render(r, format, fn !== null));
      box.setAttribute("data-state", r.traces.length ? "ready" : "empty");
    },
    (e: Error) => {
      if (e.name === "AbortError") return;
      box.replaceChildren(title, statusBox("error", `Could not load the traces: ${e.message}`));
      box.setAttribute("data-state", "error");
    },
  );
  return box;
}

function render(r: FunctionTraces, format: (v: number) => string, inFunction: boolean): HTMLElement[] {
  const what = inFunction ? "this function" : "this range";
  const summary = h(
    "p",
    { class: "muted" },
    inFunction ? `${format(r.function_value)} in this function (${fmtPct(r.function_value, r.total)} of the profile)` : `${format(r.total)} in this range`,
    r.unattributed > 0 ? `; ${format(r.unattributed)} of it ran outside any trace` : "",
    `. ${plural(r.traces.length, "trace")} shown, most time first.`,
  );
  if (!r.traces.length) return [summary, statusBox("empty", `No trace has samples in ${what}: its samples carry no trace (work outside requests, or spans not instrumented).`)];
  const table = h(
    "table",
    { class: "traces fn-traces" },
    h("caption", { class: "sr-only" }, "Traces ranked by time spent in the function"),
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "Trace"), h("th", { scope: "col" }, "Start"), h("th", { scope: "col" }, "Duration"), h("th", { scope: "col", class: "num" }, inFunction ? "In this function" : "In this range"), h("th", { scope: "col", class: "num" }, "Share of the trace"), h("th", { scope: "col", class: "num" }, inFunction ? "Share of the function" : "Share of the range"))),
    h(
      "tbody",
      null,
      r.traces.map((t) =>
        h(
          "tr",
          { "data-trace-id": t.trace_id },
          h("td", null, h("a", { href: href({ page: "trace", id: t.trace_id, params: {} }), class: "trace-link" }, t.stored ? t.root_name || "(unnamed)" : `${t.trace_id.slice(0, 12)}… (spans not stored)`)),
          h("td", { class: "nowrap" }, t.stored ? fmtTime(t.start_unix_nano / 1e6) : "–"),
          h("td", null, t.stored ? fmtDuration(t.duration_ns) : "–"),
          h("td", { class: "num" }, format(t.value)),
          h("td", { class: "num" }, fmtPct(t.value, t.trace_value)),
          h("td", { class: "num" }, fmtPct(t.value, inFunction ? r.function_value : r.total)),
        ),
      ),
    ),
  );
  return [summary, table];
}
