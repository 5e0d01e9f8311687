// Browser half of tests/e2e/test_ui_features_e2e.py (issue #19): frames with file and line, the
// sandwich view, traces through a function, exemplars, trace search by attribute and child span,
// paging past 200, exports, the sampling-confidence note and dark mode. Drives Debian's chromium
// (playwright-core from ui/node_modules) against the real demo. Waits on conditions, never on time.
//   node ui_features_flow.mjs <base url> <out dir> <json: {function, trace_id, span_id, from_ms, to_ms}>
// Prints one JSON line with what it saw; Python asserts on it.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(fileURLToPath(new URL("../../ui/package.json", import.meta.url)));
const { chromium } = require("playwright-core");

const [base, out, factsJson] = process.argv.slice(2);
const facts = JSON.parse(factsJson);
const fn = facts.function;
const executablePath = execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
const result = { ok: false, steps: {}, errors: [] };
let step = "launch";

const browser = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "spanprof-e2e19-")), {
  executablePath,
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1440, height: 1000 },
  colorScheme: "light",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = browser.pages()[0] ?? (await browser.newPage());
page.setDefaultTimeout(45_000);
page.on("pageerror", (e) => result.errors.push(`pageerror: ${e.message}`));

/** Waits until the main flame panel answers the current URL, then until its view listed its frames. */
async function readyFlame() {
  await page.waitForFunction(() => {
    const p = document.querySelector("[data-testid=flame-panel]");
    return p && p.dataset.url === location.hash && ["ready", "empty", "error"].includes(p.dataset.state);
  });
  const state = await page.locator("[data-testid=flame-panel]").first().getAttribute("data-state");
  if (state !== "ready") throw new Error(`flame panel is ${state}: ${await page.locator("[data-testid=flame-panel]").first().innerText()}`);
  await page.waitForFunction(() => document.querySelector("[data-testid=flame-panel] > .flame-grid [data-testid=flame-frames], [data-testid=flame-panel] > .flame [data-testid=flame-frames]")?.hasAttribute("data-count"));
}

/** Frames listed by the main flame graph (not a sandwich's). */
function mainFrames() {
  return page.$$eval("[data-testid=flame-panel] > .flame-grid [data-testid=flame-frames] li, [data-testid=flame-panel] > .flame [data-testid=flame-frames] li", (lis) =>
    lis.map((li) => ({ name: li.dataset.name, file: li.dataset.file ?? "", line: Number(li.dataset.line ?? 0), x: Number(li.dataset.x), y: Number(li.dataset.y), w: Number(li.dataset.w) })),
  );
}

async function traceRows() {
  await page.waitForFunction(() => {
    const r = document.querySelector("section.results");
    return r && r.getAttribute("aria-busy") === "false" && ["ready", "empty", "error"].includes(r.dataset.state);
  });
  return page.$$eval("[data-testid=traces-table] tbody tr", (rows) => rows.map((r) => ({ id: r.dataset.traceId, root: r.querySelector(".trace-link")?.textContent ?? "" })));
}

async function search(fields) {
  await page.goto(`${base}/#/traces?from=now-15m&to=now`);
  await traceRows();
  await page.fill("#f-name", fields.name ?? "");
  await page.selectOption("#f-scope", fields.scope ?? "root");
  await page.fill("#f-attrs", fields.attrs ?? "");
  await page.click("form.filters button[type=submit]");
  await page.waitForFunction((n) => decodeURIComponent(location.hash).includes(n), fields.name || fields.attrs);
  const rows = await traceRows();
  const state = await page.locator("section.results").getAttribute("data-state");
  return { rows: rows.length, roots: [...new Set(rows.map((r) => r.root))], state };
}

try {
  const profiles = `${base}/#/profiles?service=spanprof-demo&from=now-15m&to=now`;

  step = "frames show file and line";
  await page.goto(profiles);
  await readyFlame();
  const frames = (await mainFrames()).filter((f) => f.name === fn);
  const tablePlace = await page.locator(`[data-testid=top-table] td.fn[data-name="${fn}"]`).first().getAttribute("data-place");
  result.steps.frames = { frames: frames.map(({ file, line }) => ({ file, line })), tablePlace };
  if (!frames.length) throw new Error(`${fn} not in the flame graph`);

  step = "click the frame: its source location and a link from the template";
  const t = frames.sort((a, b) => b.w - a.w)[0];
  const box = await page.locator("[data-testid=flame-panel] > .flame-grid [data-testid=flame-canvas]").boundingBox();
  await page.mouse.click(box.x + t.x + Math.max(1, t.w / 2), box.y + t.y + 9);
  await page.locator("[data-testid=frame-details]").waitFor();
  const shownPlace = await page.locator("[data-testid=frame-details] .fd-path").inputValue();
  await page.click("[data-testid=frame-details] .link-settings");
  await page.fill("#src-template", "https://example.invalid/{path}#L{line}");
  await page.click(".src-settings button[type=submit]");
  await page.waitForFunction(() => document.querySelector("[data-testid=source-link]")?.hasAttribute("href"));
  const link = await page.locator("[data-testid=source-link]").getAttribute("href");
  result.steps.details = { name: await page.locator("[data-testid=frame-details]").getAttribute("data-name"), place: shownPlace, link };

  step = "sandwich of the function lists its callers";
  await page.click("[data-testid=open-sandwich]");
  await page.waitForFunction(() => document.querySelector("[data-testid=sandwich-callers] [data-testid=flame-frames]")?.hasAttribute("data-count"));
  const sw = async (id) => page.$$eval(`[data-testid=${id}] [data-testid=flame-frames] li`, (lis) => lis.map((li) => ({ name: li.dataset.name, file: li.dataset.file ?? "", depth: Number(li.dataset.depth) })));
  result.steps.sandwich = { key: await page.locator("[data-testid=sandwich]").getAttribute("data-key"), callers: await sw("sandwich-callers"), callees: await sw("sandwich-callees"), url: await page.evaluate(() => decodeURIComponent(location.hash)) };
  await page.screenshot({ path: join(out, "19-sandwich.png"), fullPage: true });

  step = "traces through this function";
  await page.click("[data-testid=open-function-traces]");
  await page.waitForFunction(() => ["ready", "empty", "error"].includes(document.querySelector("[data-testid=function-traces]")?.dataset.state));
  result.steps.functionTraces = {
    state: await page.locator("[data-testid=function-traces]").getAttribute("data-state"),
    rows: await page.$$eval("[data-testid=function-traces] tbody tr", (rows) => rows.map((r) => ({ id: r.dataset.traceId, root: r.querySelector("a")?.textContent ?? "" }))),
  };
  await page.screenshot({ path: join(out, "19-function-traces.png"), fullPage: true });

  step = "group by line";
  await page.selectOption("[data-testid=frames-group]", "line");
  await page.waitForFunction(() => location.hash.includes("frames=line"));
  await readyFlame();
  result.steps.byLine = { frames: (await mainFrames()).filter((f) => f.name === fn).map(({ file, line }) => ({ file, line })), grouping: await page.locator("[data-testid=flame-panel]").getAttribute("data-frames") };

  step = "exports download";
  await page.goto(profiles);
  await readyFlame();
  const files = {};
  for (const format of ["pprof", "speedscope", "collapsed"]) {
    const [dl] = await Promise.all([page.waitForEvent("download"), page.click(`[data-testid=export-menu] a[data-format=${format}]`)]);
    const path = join(out, `export.${format}`);
    await dl.saveAs(path);
    files[format] = path;
  }
  result.steps.exports = files;

  step = "exemplars on the timeline open their trace";
  await page.waitForFunction(() => Number(document.querySelector("[data-testid=exemplars]")?.dataset.count ?? 0) > 0);
  const ex = page.locator("[data-testid=exemplars] a.exemplar").first();
  const exId = await ex.getAttribute("data-trace-id");
  // Points may overlap (traces started together): open it the keyboard's way, a focused link + Enter.
  await ex.focus();
  await page.keyboard.press("Enter");
  await page.waitForFunction((id) => location.hash.startsWith(`#/trace/${id}`), exId);
  await page.locator("[data-testid=waterfall] .wf-row").first().waitFor();
  result.steps.exemplar = { id: exId, url: await page.evaluate(() => location.hash) };

  step = "traces of a selected time range";
  await page.goto(`${profiles}&sel_from=${facts.to_ms - 300_000}&sel_to=${facts.to_ms}`);
  await readyFlame();
  await page.click("[data-testid=range-traces]");
  await page.waitForFunction(() => ["ready", "empty", "error"].includes(document.querySelector("[data-testid=function-traces]")?.dataset.state));
  result.steps.rangeTraces = {
    state: await page.locator("[data-testid=function-traces]").getAttribute("data-state"),
    rows: await page.$$eval("[data-testid=function-traces] tbody tr", (rows) => rows.map((r) => r.dataset.traceId)),
  };

  step = "search by attribute";
  result.steps.byAttribute = await search({ attrs: "peer.service=payments" });
  step = "search by child span name";
  result.steps.byChild = await search({ name: "charge_card", scope: "any" });
  step = "the same name as a root span matches nothing";
  result.steps.byChildAsRoot = await search({ name: "charge_card", scope: "root" });

  step = "paging reaches trace 201";
  await page.goto(`${base}/#/traces?from=${facts.from_ms}&to=${facts.to_ms}&sort=start`);
  await traceRows();
  let rows = await page.locator("[data-testid=traces-table] tbody").getAttribute("data-rows");
  const firstPage = Number(rows);
  while (Number(rows) < 201 && (await page.locator("[data-testid=load-more]").isVisible())) {
    const before = Number(rows);
    await page.click("[data-testid=load-more]");
    await page.waitForFunction((n) => Number(document.querySelector("[data-testid=traces-table] tbody")?.dataset.rows) > n, before);
    rows = await page.locator("[data-testid=traces-table] tbody").getAttribute("data-rows");
  }
  const ids = await page.$$eval("[data-testid=traces-table] tbody tr", (trs) => trs.map((r) => r.dataset.traceId));
  result.steps.paging = { firstPage, rows: ids.length, distinct: new Set(ids).size, id201: ids[200] ?? null, count: await page.locator("[data-testid=traces-count]").innerText(), histogramBars: await page.locator("[data-testid=duration-histogram] rect.bar").count() };

  step = "a span with few samples says how uncertain its shares are";
  await page.goto(`${base}/#/trace/${facts.trace_id}?span=${facts.span_id}&mode=self`);
  await readyFlame();
  result.steps.confidence = { text: await page.locator("[data-testid=confidence]").innerText(), samples: Number(await page.locator("[data-testid=confidence]").getAttribute("data-samples")) };

  step = "dark mode";
  const measure = async (name) => {
    await page.goto(profiles);
    await readyFlame();
    const png = await page.screenshot({ path: join(out, `19-${name}.png`) });
    return page.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.width;
      c.height = img.height;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      const lin = (v) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      const lum = (r, g, b) => 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
      let sum = 0;
      for (let i = 0; i < d.length; i += 4) sum += lum(d[i], d[i + 1], d[i + 2]);
      // Contrast of the page's text on its background, from the computed colours.
      const rgb = (s) => s.match(/\d+(\.\d+)?/g).slice(0, 3).map(Number);
      const ratio = (a, b) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const pairs = ["body", ".filters label", ".top-table td.num", "h1"].map((sel) => {
        const el = document.querySelector(sel);
        const cs = getComputedStyle(el);
        let bgEl = el;
        while (bgEl && getComputedStyle(bgEl).backgroundColor.replace(/\s/g, "") === "rgba(0,0,0,0)") bgEl = bgEl.parentElement;
        const bg = rgb(getComputedStyle(bgEl ?? document.body).backgroundColor);
        return { sel, contrast: ratio(lum(...rgb(cs.color)), lum(...bg)) };
      });
      return { meanLuminance: sum / (d.length / 4), pairs, theme: document.documentElement.getAttribute("data-theme") ?? "system" };
    }, png.toString("base64"));
  };
  const light = await measure("light");
  await page.emulateMedia({ colorScheme: "dark" });
  const darkSystem = await measure("dark-system");
  await page.emulateMedia({ colorScheme: "light" });
  await page.click("[data-testid=theme-toggle]"); // system → dark
  const darkToggle = await measure("dark-toggle");
  result.steps.dark = { light, darkSystem, darkToggle };
  result.ok = true;
} catch (e) {
  result.failed_step = step;
  result.error = String(e && e.stack ? e.stack : e);
  await page.screenshot({ path: join(out, "19-failure.png"), fullPage: true }).catch(() => undefined);
} finally {
  await browser.close();
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}
