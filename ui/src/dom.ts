// A tiny DOM builder: h("div", {class: "x", onclick: f}, child, "text").

type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, unknown>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Attrs | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v as EventListener);
      else if (k === "class") el.className = String(v);
      else if (k === "value" && "value" in el) (el as HTMLInputElement).value = String(v);
      else if (k === "checked" && "checked" in el) (el as HTMLInputElement).checked = Boolean(v);
      else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
}

export function clear(el: Element): void {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** Explicit loading / empty / error states, announced to screen readers. */
export function statusBox(kind: "loading" | "empty" | "error", message: string, ...extra: Child[]): HTMLElement {
  return h("div", { class: `status status-${kind}`, role: kind === "error" ? "alert" : "status", "data-state": kind }, kind === "loading" ? h("span", { class: "spinner", "aria-hidden": "true" }) : null, h("span", null, message), ...extra);
}

export function option(value: string, label: string, selected: boolean): HTMLOptionElement {
  return h("option", { value, selected }, label);
}
