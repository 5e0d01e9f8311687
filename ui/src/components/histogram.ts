// Distribution of trace durations (log-spaced buckets from the server), as SVG bars. Dragging
// across bars (or clicking one) selects a duration range; the selected bars are highlighted.
import { fmtDuration, plural } from "../format";

const SVG = "http://www.w3.org/2000/svg";

function el<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export function durationHistogram(
  hist: { bounds_ns: number[]; counts: number[] },
  selected: { minNs: number | null; maxNs: number | null },
  onSelect: (minNs: number, maxNs: number) => void,
): SVGSVGElement {
  const n = hist.counts.length;
  const width = 720;
  const height = 92;
  const plotH = 70;
  const bw = width / Math.max(1, n);
  const max = Math.max(1, ...hist.counts);
  const svg = el("svg", { class: "histogram", width: "100%", height, viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "group", "aria-label": "Trace durations: drag across bars to filter by duration", "data-testid": "duration-histogram" });
  const bars: SVGRectElement[] = [];
  const inSel = (i: number) => (selected.minNs === null || hist.bounds_ns[i + 1] > selected.minNs) && (selected.maxNs === null || hist.bounds_ns[i] < selected.maxNs);
  const any = selected.minNs !== null || selected.maxNs !== null;
  for (let i = 0; i < n; i++) {
    const c = hist.counts[i];
    const bh = c > 0 ? Math.max(2, (c / max) * plotH) : 0;
    const r = el("rect", { class: `bar${any && inSel(i) ? " in" : ""}`, x: i * bw + 1, y: plotH - bh, width: Math.max(1, bw - 2), height: bh, "data-min-ns": hist.bounds_ns[i], "data-max-ns": hist.bounds_ns[i + 1], "data-count": c });
    const t = el("title", {});
    t.textContent = `${fmtDuration(hist.bounds_ns[i])} – ${fmtDuration(hist.bounds_ns[i + 1])}: ${plural(c, "trace")}`;
    r.append(t);
    // A transparent full-height hit area, so short bars are easy to grab.
    const hit = el("rect", { x: i * bw, y: 0, width: bw, height: plotH, fill: "transparent", "data-bucket": i });
    svg.append(r, hit);
    bars.push(r);
  }
  for (const i of [0, Math.floor(n / 2), n]) {
    if (i > n) continue;
    const tx = el("text", { x: Math.min(width - 2, Math.max(2, i * bw)), y: height - 6, "text-anchor": i === 0 ? "start" : i === n ? "end" : "middle" });
    tx.textContent = fmtDuration(hist.bounds_ns[i]);
    svg.append(tx);
  }
  let start = -1;
  const bucketAt = (e: PointerEvent) => {
    const b = svg.getBoundingClientRect();
    return Math.max(0, Math.min(n - 1, Math.floor(((e.clientX - b.left) / b.width) * n)));
  };
  const paint = (a: number, b: number) => bars.forEach((r, i) => r.classList.toggle("in", i >= Math.min(a, b) && i <= Math.max(a, b)));
  svg.addEventListener("pointerdown", (e) => {
    start = bucketAt(e);
    svg.setPointerCapture?.(e.pointerId);
    paint(start, start);
  });
  svg.addEventListener("pointermove", (e) => start >= 0 && paint(start, bucketAt(e)));
  svg.addEventListener("pointerup", (e) => {
    if (start < 0) return;
    const end = bucketAt(e);
    const lo = Math.min(start, end);
    const hi = Math.max(start, end);
    start = -1;
    onSelect(hist.bounds_ns[lo], hist.bounds_ns[hi + 1]);
  });
  return svg;
}
