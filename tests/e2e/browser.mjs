// Shared by the check-list browser flows (ui_fixture_flow.mjs, ui_wall_flow.mjs): Debian's chromium
// through playwright-core (from ui/node_modules) with a fresh profile directory, named checks that
// stop at the first failure, a screenshot of the failure, and one JSON line with the result on
// stdout (exit status 1 on failure).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(fileURLToPath(new URL("../../ui/package.json", import.meta.url)));
const { chromium } = require("playwright-core");

/**
 * Runs `flow(t)`; `t.page` is the page, `t.step` names the step under way (reported on failure),
 * `t.check(name, ok, detail)` records a check and throws when it fails, `t.panelState()` waits
 * for the flame panel of the current URL to settle and returns its state.
 */
export async function runChecks(failureShot, flow) {
  const executablePath = execFileSync("sh", ["-c", "command -v chromium"], { encoding: "utf8" }).trim();
  const profileDir = mkdtempSync(join(tmpdir(), "spanprof-e2e-chromium-"));
  const result = { checks: [], errors: [] };
  const browser = await chromium.launchPersistentContext(profileDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => result.errors.push(`pageerror: ${e.message}`));
  const t = {
    page,
    step: "launch",
    check(name, ok, detail) {
      result.checks.push({ name, ok: Boolean(ok), detail });
      if (!ok) throw new Error(`${name}: ${JSON.stringify(detail)}`);
    },
    async panelState() {
      await page.waitForFunction(() => {
        const p = document.querySelector("[data-testid=flame-panel]");
        return p && p.dataset.url === location.hash && ["ready", "empty", "error"].includes(p.dataset.state);
      });
      return page.locator("[data-testid=flame-panel]").first().getAttribute("data-state");
    },
  };
  try {
    await flow(t);
    if (result.errors.length) throw new Error(result.errors.join(" | "));
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.failed_step = t.step;
    result.error = String(e && e.message ? e.message : e);
    await page.screenshot({ path: failureShot, fullPage: true }).catch(() => undefined);
  } finally {
    await browser.close();
    rmSync(profileDir, { recursive: true, force: true });
  }
  console.log(JSON.stringify(result));
  process.exit(result.ok ? 0 : 1);
}
