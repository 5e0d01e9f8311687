// Browser side of bench/flamegraph_render.mjs: renders one 50,000-node profile with spanprof's
// canvas flame graph or with d3-flame-graph (SVG) and times what a user waits for: first paint,
// zoom into a frame, search highlight, and one hover. Each step is timed to the next painted frame.
import flamegraph from "d3-flame-graph";
import { select } from "d3-selection";
import { decodeFlameGraph, findPath } from "../src/flame/model";
import { FlameGraphView } from "../src/flame/view";
import { syntheticTree, toLevels, type TreeNode } from "./synthetic";

const frame = () => new Promise<void>((r) => requestAnimationFrame(() => setTimeout(r, 0)));

async function timed(fn: () => void | Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  await frame();
  return performance.now() - t0;
}

/** A frame about three levels down that is ~5% of the total: what a user would zoom into. */
function zoomTarget(root: TreeNode): string[] {
  let node = root;
  const path: string[] = [];
  for (let d = 0; d < 3 && node.children.length; d++) {
    node = node.children.reduce((a, b) => (b.value > a.value ? b : a));
    path.push(node.name);
  }
  return path;
}

async function runOurs(nodes: number) {
  const root = syntheticTree(nodes);
  const json = toLevels(root);
  const chart = document.getElementById("chart")!;
  chart.replaceChildren();
  let view!: FlameGraphView;
  const first = await timed(() => {
    const flame = decodeFlameGraph(json);
    view = new FlameGraphView({ format: String });
    chart.append(view.el);
    view.setFlame(flame, null, "");
    view.draw();
  });
  // Zoom the way a user does: a click on the frame (found by its path in a decoded copy).
  const flame = decodeFlameGraph(json);
  const target = findPath(flame, zoomTarget(root))!;
  const lv = flame.levels[target.level];
  const canvas = chart.querySelector("canvas")!;
  const r = canvas.getBoundingClientRect();
  const cx = r.left + ((lv.start[target.index] + lv.width[target.index] / 2) / flame.layoutWidth) * r.width;
  const zoom = await timed(() => {
    canvas.dispatchEvent(new MouseEvent("click", { clientX: cx, clientY: r.top + target.level * 18 + 9, bubbles: true }));
    view.draw();
  });
  const searchMs = await timed(() => {
    view.setQuery("function_12", false);
    view.draw();
  });
  const hover = await timed(() => {
    canvas.dispatchEvent(new MouseEvent("mousemove", { clientX: r.left + r.width / 3, clientY: r.top + 18 * 4 + 5, bubbles: true }));
  });
  return { first, zoom, search: searchMs, hover, domNodes: chart.querySelectorAll("*").length };
}

async function runD3(nodes: number, minFrameSize: number) {
  const root = syntheticTree(nodes);
  const chart = document.getElementById("chart")!;
  chart.replaceChildren();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const fg: any = (flamegraph as any)().width(1400).cellHeight(18).transitionDuration(0).minFrameSize(minFrameSize).sort(false);
  const first = await timed(() => {
    select(chart).datum(structuredClone(root)).call(fg);
  });
  const path = zoomTarget(root);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  let node: any = select(chart).datum();
  for (const name of path) node = node.children.find((c: { data: { name: string } }) => c.data.name === name);
  const zoom = await timed(() => fg.zoomTo(node));
  const searchMs = await timed(() => fg.search("function_12"));
  const rect = chart.querySelector("svg g:nth-of-type(5) rect") as SVGRectElement | null;
  const hover = await timed(() => {
    rect?.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
  });
  return { first, zoom, search: searchMs, hover, domNodes: chart.querySelectorAll("*").length };
}

declare global {
  interface Window {
    runBench: (kind: "spanprof-canvas" | "d3-flame-graph" | "d3-flame-graph-min1px", nodes: number) => Promise<Record<string, number>>;
  }
}

window.runBench = (kind, nodes) => (kind === "spanprof-canvas" ? runOurs(nodes) : runD3(nodes, kind === "d3-flame-graph" ? 0 : 1));
