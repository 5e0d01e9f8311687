// The time range picker shared by the pages.
import { h, option } from "../dom";
import { fmtWhen } from "../format";
import { RANGE_PRESETS, parseTime, type TimeRange } from "../state";

function toLocalInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

/** Preset ranges plus a custom absolute range (datetime-local inputs). */
export function rangePicker(range: TimeRange, onChange: (r: TimeRange) => void, idPrefix = "r"): HTMLElement {
  // A relative range that is no preset (e.g. fitted to the data: "now-7m") is listed as itself.
  const relative = range.to === "now" && /^now-\d+[smhd]$/.test(range.from);
  const presets = relative && !RANGE_PRESETS.some((p) => p.from === range.from) ? [{ label: fmtWhen(range.from).replace(/ ago$/, ""), from: range.from }, ...RANGE_PRESETS] : RANGE_PRESETS;
  const isPreset = relative;
  const sel = h(
    "select",
    { id: `${idPrefix}-preset`, "aria-label": "Time range" },
    ...presets.map((p) => option(p.from, `Last ${p.label}`, isPreset && p.from === range.from)),
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
