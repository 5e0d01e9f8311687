// Browser half of tests/e2e/test_ui_e2e.py: drives Debian's chromium (playwright-core, from
// ui/node_modules) through the UI against a real server fed by the real demo service.
//   node ui_flow.mjs <base url> <screenshot dir> <expected function>
// Prints one JSON line with what it saw; exits non-zero (with the step that failed) on failure.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(fileURLToPath(new URL("../../ui/package.json", import.meta.url)));
const { chromium } = require("playwright-core");

const [base, shots, expected] = process.argv.slice(2);
const executablePath = execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
const profileDir = mkdtempSync(join(tmpdir(), "spanprof-e2e-chromium-"));
const result = { steps: [], screenshots: [], errors: [] };
let step = "launch";

// A persistent context is how playwright takes a fresh --user-data-dir.
const browser = await chromium.launchPersistentContext(profileDir, {
  executablePath,
  headless: true,
  viewport: { width: 1440, height: 1000 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const page = browser.pages()[0] ?? (await browser.newPage());
page.setDefaultTimeout(30_000);
page.on("pageerror", (e) => result.errors.push(`pageerror: ${e.message}`));
page.on("console", (m) => m.type() === "error" && result.errors.push(`console: ${m.text()}`));

async function shot(name) {
  const path = join(shots, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  result.screenshots.push(path);
}

/** Waits for the flame panel to settle and returns the frame names it lists. */
async function flameFrames() {
  await page.waitForFunction(() => {
    const p = document.querySelector("[data-testid=flame-panel]");
    return p && p.dataset.url === location.hash && ["ready", "empty", "error"].includes(p.dataset.state);
  });
  const panel = page.locator("[data-testid=flame-panel]").first();
  const state = await panel.getAttribute("data-state");
  if (state !== "ready") throw new Error(`flame panel is ${state}: ${await panel.innerText()}`);
  // The view draws (and lists its frames) on the next animation frame after the panel is ready.
  await page.waitForFunction(() => document.querySelector("[data-testid=flame-frames]")?.hasAttribute("data-count"));
  return page.$$eval("[data-testid=flame-frames] li", (lis) => lis.map((li) => ({ name: li.dataset.name, x: Number(li.dataset.x), w: Number(li.dataset.w), depth: Number(li.dataset.depth) })));
}

try {
  step = "open Traces and search for the CPU-heavy endpoint";
  await page.goto(`${base}/#/traces?from=now-15m&to=now`);
  await page.locator("[data-testid=traces-table]").waitFor();
  await page.fill("#f-name", "GET /cpu");
  // Only traces whose profile has arrived (the agent uploads every few seconds).
  await page.check("#f-prof");
  await page.click("button[type=submit]");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("[data-testid=traces-table] tbody tr")];
    return location.hash.includes("has_profile=1") && rows.length > 0 && rows.every((r) => r.querySelector(".trace-link")?.textContent === "GET /cpu");
  });
  const durations = await page.$$eval("[data-testid=traces-table] tbody tr", (rows) => rows.map((r) => Number(r.dataset.durationNs)));
  result.steps.push({ step, traces: durations.length, sorted_desc: durations.every((d, i) => i === 0 || durations[i - 1] >= d) });
  await shot("01-traces");

  step = "open the slowest trace";
  await page.locator("[data-testid=traces-table] tbody tr").first().locator(".trace-link").click();
  await page.locator("[data-testid=waterfall] .wf-row").first().waitFor();
  const spans = await page.$$eval("[data-testid=waterfall] .wf-row", (rows) => rows.map((r) => r.dataset.spanName));
  result.steps.push({ step, spans });
  await shot("02-trace");

  step = "click the CPU-heavy span (this span only)";
  await page.locator("[data-testid=waterfall] .wf-row[data-span-name=compute_report]").click();
  await page.waitForFunction(() => location.hash.includes("span="));
  const selfFrames = await flameFrames();
  result.steps.push({ step, frames: selfFrames.map((f) => f.name) });
  if (!selfFrames.some((f) => f.name.includes(expected))) throw new Error(`${expected} is not among the span's frames: ${selfFrames.map((f) => f.name).join(", ")}`);
  // fibonacci_recursive runs in the child span "fibonacci": never in compute_report alone.
  if (selfFrames.some((f) => f.name.includes("fibonacci_recursive"))) throw new Error("a child span's function shows up in 'this span only'");
  await shot("03-span-flamegraph");

  step = "hover the expected frame and read its tooltip";
  const target = selfFrames.filter((f) => f.name.includes(expected)).sort((a, b) => b.w - a.w)[0];
  const box = await page.locator("[data-testid=flame-canvas]").boundingBox();
  await page.mouse.move(box.x + target.x + Math.max(1, target.w / 2), box.y + target.depth * 18 + 9);
  const tooltip = page.locator(".flame-tooltip");
  await tooltip.waitFor({ state: "visible" });
  const tip = await tooltip.innerText();
  result.steps.push({ step, tooltip: tip });
  if (!tip.includes(expected) || !tip.includes("%")) throw new Error(`tooltip does not show ${expected} with percentages: ${tip}`);
  await shot("04-tooltip");

  step = "click to zoom into the frame";
  await page.mouse.click(box.x + target.x + Math.max(1, target.w / 2), box.y + target.depth * 18 + 9);
  await page.waitForFunction(() => location.hash.includes("zoom="));
  const crumbs = await page.locator(".flame-crumbs").innerText();
  result.steps.push({ step, crumbs });
  await shot("05-zoomed");

  step = "switch to this span and its children";
  await page.locator("[data-testid=mode-children]").check();
  await page.waitForFunction(() => location.hash.includes("mode=children"));
  const childFrames = await flameFrames();
  result.steps.push({ step, frames: childFrames.map((f) => f.name) });
  if (!childFrames.some((f) => f.name.includes(expected))) throw new Error(`${expected} missing with children`);
  await shot("06-span-and-children");

  step = "search highlights matching frames";
  await page.fill(".flame-search", expected);
  await page.waitForFunction(() => document.querySelector(".flame-search-info")?.textContent?.includes("of total"));
  const searchInfo = await page.locator(".flame-search-info").innerText();
  result.steps.push({ step, searchInfo });

  step = "keyboard: focus the flame graph and move down";
  await page.locator("[data-testid=flame-canvas]").focus();
  await page.keyboard.press("ArrowDown");
  const announced = await page.locator(".flame .sr-only[aria-live]").innerText();
  result.steps.push({ step, announced });
  if (!announced.includes("total")) throw new Error(`keyboard focus announced nothing: ${announced}`);

  step = "open Compare from the span";
  await page.locator("[data-testid=compare-link]").click();
  await page.waitForFunction(() => location.hash.startsWith("#/compare"));
  const diffFrames = await flameFrames();
  result.steps.push({ step, frames: diffFrames.map((f) => f.name).slice(0, 20) });
  if (!diffFrames.some((f) => f.name.includes(expected))) throw new Error(`${expected} missing from the diff`);
  await shot("07-compare");

  step = "Profiles page shows the service's CPU over time";
  await page.goto(`${base}/#/profiles?service=spanprof-demo&from=now-15m&to=now`);
  await page.locator("[data-testid=timeline] canvas").first().waitFor();
  const profFrames = await flameFrames();
  result.steps.push({ step, frames: profFrames.length });
  if (!profFrames.some((f) => f.name.includes(expected))) throw new Error(`${expected} missing from the service profile`);
  await shot("08-profiles");

  if (result.errors.length) throw new Error(`the page reported errors: ${result.errors.join(" | ")}`);
  result.ok = true;
} catch (e) {
  result.ok = false;
  result.failed_step = step;
  result.error = String(e && e.message ? e.message : e);
  await shot("failure").catch(() => undefined);
} finally {
  await browser.close();
  rmSync(profileDir, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
process.exit(result.ok ? 0 : 1);
