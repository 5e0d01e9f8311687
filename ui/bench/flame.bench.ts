// Vitest bench (npm run bench): the data side of the flame graph on a 50,000-node profile —
// decoding the level encoding, search, top table, diff. Rendering is timed in a real browser by
// bench/flamegraph_render.mjs at the repository root.
import { bench, describe } from "vitest";
import { diffFlameGraphs } from "../src/flame/diff";
import { decodeFlameGraph, search, topTable } from "../src/flame/model";
import { syntheticTree, toLevels } from "./synthetic";

const json = toLevels(syntheticTree(50_000));
const other = toLevels(syntheticTree(50_000, 7));
const flame = decodeFlameGraph(json);

describe("50,000-node profile", () => {
  bench("decode levels", () => void decodeFlameGraph(json));
  bench("search", () => void search(flame, "function_12"));
  bench("top table", () => void topTable(flame));
  bench("diff two profiles", () => void diffFlameGraphs(json, other), { iterations: 5 });
});
