#!/usr/bin/env node
// Flame graph rendering on a 50,000-node profile in Debian's chromium: spanprof's canvas renderer
// (ui/src/flame) against d3-flame-graph (SVG), drawing every frame and with its 1 px minimum frame
// size. Times first paint, zoom into a frame, search highlight and a hover, each to the next
// painted frame; median of RUNS fresh pages. Writes bench/out/flamegraph_render.json.
//   node bench/flamegraph_render.mjs [nodes=50000] [runs=5]
import { execFileSync } from "node:child_process";
import { createReadStream, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { extname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const ui = join(root, "ui");
const out = join(root, "bench", "out");
const nodes = Number(process.argv[2] ?? 50000);
const runs = Number(process.argv[3] ?? 5);
const require = createRequire(join(ui, "package.json"));
const { chromium } = require("playwright-core");

execFileSync("npx", ["vite", "build", "--config", "bench/vite.config.ts"], { cwd: ui, stdio: "inherit" });
const site = join(out, "flame-render");
if (!existsSync(join(site, "render-bench.html"))) throw new Error("bench page was not built");

const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
const server = createServer((req, res) => {
  const path = normalize(join(site, decodeURIComponent(new URL(req.url, "http://x").pathname)));
  if (!path.startsWith(site) || !existsSync(path)) return void res.writeHead(404).end();
  res.writeHead(200, { "Content-Type": types[extname(path)] ?? "application/octet-stream" });
  createReadStream(path).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}/render-bench.html`;

const executablePath = execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
const profile = mkdtempSync(join(tmpdir(), "spanprof-bench-chromium-"));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1440, height: 1000 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const kinds = ["spanprof-canvas", "d3-flame-graph-min1px", "d3-flame-graph"];
const results = {};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
try {
  for (const kind of kinds) {
    const samples = [];
    for (let i = 0; i < runs; i++) {
      const page = await browser.newPage();
      await page.goto(base);
      samples.push(await page.evaluate(([k, n]) => window.runBench(k, n), [kind, nodes]));
      await page.close();
    }
    results[kind] = Object.fromEntries(Object.keys(samples[0]).map((m) => [m, Math.round(median(samples.map((s) => s[m])) * 10) / 10]));
    console.error(kind, JSON.stringify(results[kind]));
  }
} finally {
  await browser.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
const chromiumVersion = execFileSync(executablePath, ["--version"], { encoding: "utf8" }).trim();
mkdirSync(out, { recursive: true });
writeFileSync(join(out, "flamegraph_render.json"), JSON.stringify({ nodes, runs, chromium: chromiumVersion, results }, null, 2));
console.log(`| renderer (${nodes} nodes, median of ${runs}) | first paint ms | zoom ms | search ms | hover ms | DOM nodes |`);
console.log("|---|---:|---:|---:|---:|---:|");
for (const k of kinds) {
  const r = results[k];
  console.log(`| ${k} | ${r.first} | ${r.zoom} | ${r.search} | ${r.hover} | ${r.domNodes} |`);
}
