// Downloads of the shown profile (the server encodes them: /api/v1/export) and a shareable link.
import { h } from "../dom";

const FORMATS: { format: string; label: string; title: string }[] = [
  { format: "pprof", label: "pprof", title: "gzipped perftools profile: go tool pprof, pprof -http" },
  { format: "speedscope", label: "speedscope", title: "speedscope.app file format (JSON)" },
  { format: "collapsed", label: "collapsed", title: "folded stacks, one 'a;b;c count' line per stack (flamegraph.pl, Brendan Gregg's format)" },
];

export function exportMenu(query: URLSearchParams): HTMLElement {
  const copyBtn = h("button", { type: "button", class: "btn small", "data-testid": "copy-link" }, "Copy link");
  copyBtn.addEventListener("click", () => {
    navigator.clipboard.writeText(location.href).then(
      () => (copyBtn.textContent = "Link copied"),
      () => (copyBtn.textContent = "Copy the address bar"),
    );
    setTimeout(() => (copyBtn.textContent = "Copy link"), 1500);
  });
  return h(
    "span",
    { class: "export-menu", "data-testid": "export-menu" },
    h("span", { class: "label" }, "Download"),
    ...FORMATS.map(({ format, label, title }) => {
      const q = new URLSearchParams(query);
      q.set("format", format);
      return h("a", { class: "btn small", href: `api/v1/export?${q.toString()}`, download: "", title, "data-format": format }, label);
    }),
    copyBtn,
  );
}
