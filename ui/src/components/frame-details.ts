// What a clicked frame offers: its source location (copyable "path:line", and a link built from a
// template the user sets once: an editor URL or a repository URL) and the views that start from a
// function (sandwich, the traces that ran it).
import { h } from "../dom";
import { placeOf, type Flame } from "../flame/model";

const TEMPLATE_KEY = "spanprof.sourceLink";
const STRIP_KEY = "spanprof.sourceStrip";

/** Stored link template, e.g. "vscode://file/{path}:{line}" or "https://github.com/o/r/blob/main/{path}#L{line}". */
export function linkTemplate(): { template: string; strip: string } {
  try {
    return { template: localStorage.getItem(TEMPLATE_KEY) ?? "", strip: localStorage.getItem(STRIP_KEY) ?? "" };
  } catch {
    return { template: "", strip: "" };
  }
}

/** The template filled in: {path} (after removing the prefix `strip`), {line}, {file} (base name), {function}. */
export function sourceLink(template: string, strip: string, path: string, line: number, fn: string): string {
  if (!template || !path) return "";
  const rel = strip && path.startsWith(strip) ? path.slice(strip.length).replace(/^\/+/, "") : path;
  const enc = (v: string) => encodeURI(v).replace(/#/g, "%23");
  return template
    .replace(/\{path\}/g, enc(rel))
    .replace(/\{line\}/g, String(line || 1))
    .replace(/\{file\}/g, enc(rel.split("/").pop() ?? rel))
    .replace(/\{function\}/g, encodeURIComponent(fn));
}

async function copy(text: string, button: HTMLButtonElement): Promise<void> {
  let ok: boolean;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch {
    ok = false;
  }
  button.textContent = ok ? "Copied" : "Select and copy";
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

export interface FrameActions {
  onSandwich?: () => void;
  onTraces?: () => void;
}

/** The bar under the flame graph for the picked frame. */
export function frameDetails(f: Flame, nameIndex: number, actions: FrameActions): HTMLElement {
  const name = f.names[nameIndex];
  const place = placeOf(f, nameIndex);
  const file = f.files[nameIndex];
  const line = f.lines[nameIndex];
  const link = h("a", { class: "btn small", target: "_blank", rel: "noopener", "data-testid": "source-link", hidden: true }, "Open source");
  const refresh = () => {
    const { template, strip } = linkTemplate();
    const url = sourceLink(template, strip, file, line, name);
    link.hidden = !url;
    if (url) link.setAttribute("href", url);
  };
  const { template, strip } = linkTemplate();
  const tplInput = h("input", { id: "src-template", value: template, placeholder: "vscode://file/{path}:{line}", size: 44 });
  const stripInput = h("input", { id: "src-strip", value: strip, placeholder: "/srv/app/", size: 16 });
  const settings = h(
    "form",
    { class: "src-settings", hidden: true },
    h("label", { for: "src-template" }, "Link template"),
    tplInput,
    h("label", { for: "src-strip" }, "remove path prefix"),
    stripInput,
    h("button", { type: "submit", class: "btn small" }, "Save"),
    h("span", { class: "muted" }, "{path} {line} {file} {function}; e.g. https://github.com/org/repo/blob/main/{path}#L{line}"),
  );
  settings.addEventListener("submit", (e) => {
    e.preventDefault();
    try {
      localStorage.setItem(TEMPLATE_KEY, tplInput.value.trim());
      localStorage.setItem(STRIP_KEY, stripInput.value.trim());
    } catch {
      // storage disabled: the link just stays unset
    }
    settings.hidden = true;
    refresh();
  });
  refresh();
  const copyBtn = h("button", { type: "button", class: "btn small", onclick: () => void copy(place, copyBtn) }, "Copy");
  return h(
    "div",
    { class: "frame-details", "data-testid": "frame-details", "data-name": name, "data-place": place },
    h("span", { class: "fd-name" }, h("code", null, name)),
    place
      ? h("span", { class: "fd-place" }, h("input", { class: "fd-path", readonly: true, value: place, "aria-label": "Source location", size: Math.min(60, place.length + 1), onfocus: (e: Event) => (e.target as HTMLInputElement).select() }), copyBtn, link, h("button", { type: "button", class: "btn small link-settings", onclick: () => (settings.hidden = !settings.hidden) }, "Link…"))
      : h("span", { class: "muted" }, "no source location in this profile"),
    h(
      "span",
      { class: "fd-actions" },
      actions.onSandwich ? h("button", { type: "button", class: "btn small", "data-testid": "open-sandwich", onclick: actions.onSandwich }, "Callers and callees") : null,
      actions.onTraces ? h("button", { type: "button", class: "btn small", "data-testid": "open-function-traces", onclick: actions.onTraces }, "Traces through this function") : null,
    ),
    settings,
  );
}
