// Browser half of tests/e2e/test_ui_fixtures.py: the built UI served by `vite preview` with the
// API answered from ui/tests/fixtures (pinned clock), for the states a live demo does not
// reliably produce: empty-span explanations, errors, keyboard navigation, shared links.
//   node ui_fixture_flow.mjs <base url> <screenshot dir>
import { join } from "node:path";
import { runChecks } from "./browser.mjs";

const NOW_MS = 1795000000000; // ui/tests/fixtures.ts
const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const [base, shots] = process.argv.slice(2);

await runChecks(join(shots, "fixture-failure.png"), async (t) => {
  const { page, check, panelState } = t;
  await page.clock.setFixedTime(NOW_MS);

  t.step = "traces list, sorted by duration";
  await page.goto(`${base}/#/traces`);
  await page.locator("[data-testid=traces-table] tbody tr").first().waitFor();
  const roots = await page.$$eval("[data-testid=traces-table] .trace-link", (as) => as.map((a) => a.textContent));
  check(t.step, roots.join() === "GET /cpu,GET /slow,GET /fast", roots);
  const badges = await page.$$eval("[data-testid=traces-table] .badge", (bs) => bs.map((b) => b.textContent));
  check("has-profile column", badges.join() === "77 samples,none,none", badges);

  t.step = "a span shorter than the sampling interval explains itself";
  await page.goto(`${base}/#/trace/${TRACE}?span=d1d2e3f405060708`);
  check(t.step, (await panelState()) === "empty", "state");
  const reason = await page.locator("[data-testid=flame-panel]").getAttribute("data-reason");
  check(t.step, reason.includes("This span is 4 ms long, shorter than the 10 ms sampling interval"), reason);
  await page.screenshot({ path: join(shots, "fixture-short-span.png"), fullPage: true });

  t.step = "the merged profile of all spans with that name";
  await page.click("[data-testid=show-merged]");
  check(t.step, (await panelState()) === "ready" && (await page.locator("[data-testid=mode-merged]").isChecked()), "merged");

  t.step = "keyboard: arrow keys move through the waterfall and update the URL";
  await page.locator(".wf-row[aria-selected=true]").focus();
  await page.keyboard.press("Home");
  await page.waitForFunction(() => location.hash.includes("span=00f067aa0ba902b7"));
  check(t.step, true, "Home selects the root");

  t.step = "the root in 'this span only' points at its children";
  check(t.step, (await panelState()) === "empty", "state");
  const rootReason = await page.locator("[data-testid=flame-panel]").getAttribute("data-reason");
  check(t.step, rootReason.includes("taken while its child spans ran"), rootReason);
  await page.keyboard.press("ArrowDown");
  await page.waitForFunction(() => location.hash.includes("span=b7ad6b7169203331"));
  check("ArrowDown selects the next span", (await panelState()) === "ready", "state");

  t.step = "a shared link restores the view (span, mode, search)";
  const link = `${base}/#/trace/${TRACE}?mode=children&q=prime&span=b7ad6b7169203331`;
  await page.goto("about:blank");
  await page.goto(link);
  check(t.step, (await panelState()) === "ready", "state");
  check(t.step, (await page.locator("[data-testid=mode-children]").isChecked()) && (await page.inputValue(".flame-search")) === "prime", "mode+search");
  const matched = await page.$$eval("[data-testid=flame-frames] li[data-match='1']", (lis) => lis.map((l) => l.dataset.name));
  check("search marks matching frames", matched.includes("compute_primes"), matched);
  await page.screenshot({ path: join(shots, "fixture-shared-link.png"), fullPage: true });

  t.step = "profiles: timeline, flame graph and top table";
  await page.goto(`${base}/#/profiles?service=spanprof-demo&from=now-15m&to=now`);
  await page.locator("[data-testid=timeline] canvas").first().waitFor();
  check(t.step, (await panelState()) === "ready", "state");
  const top = await page.$$eval("[data-testid=top-table] tbody tr td.fn", (tds) => tds.map((t) => t.dataset.name));
  check("top table sorted by self", top[0] === "compute_primes", top);
  await page.click("[data-testid=top-table] button.link >> text=fib");
  check("clicking a function searches for it", (await page.inputValue(".flame-search")) === "fib", "search");

  t.step = "dragging across the timeline narrows the flame graph to that range";
  const over = await page.locator("[data-testid=timeline] .u-over").boundingBox();
  await page.mouse.move(over.x + over.width * 0.6, over.y + over.height / 2);
  await page.mouse.down();
  await page.mouse.move(over.x + over.width * 0.75, over.y + over.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => location.hash.includes("sel_from=") && location.hash.includes("sel_to="));
  const sel = await page.evaluate(() => Object.fromEntries(new URLSearchParams(location.hash.split("?")[1])));
  const from = NOW_MS - 15 * 60_000;
  const expectFrom = from + 0.6 * 15 * 60_000;
  check(t.step, Math.abs(Number(sel.sel_from) - expectFrom) < 30_000 && Number(sel.sel_to) > Number(sel.sel_from), sel);
  check("the flame graph reloads for the selection", (await panelState()) === "ready" && (await page.locator("text=Clear selection").isVisible()), "state");
  await page.screenshot({ path: join(shots, "fixture-profiles-selection.png"), fullPage: true });

  t.step = "a diff with an empty side says so instead of drawing";
  const emptySpan = (url) => url.pathname.endsWith("/api/v1/flamegraph") && url.searchParams.has("span_id");
  await page.route(emptySpan, (r) => r.fulfill({ status: 200, contentType: "application/json", body: '{"names":["total"],"levels":[[0,0,0,0]],"total":0,"sample_count":0}' }));
  await page.goto("about:blank");
  await page.goto(`${base}/#/compare?a.kind=span&a.trace=${TRACE}&a.span=b7ad6b7169203331&a.mode=self&b.kind=range&b.service=checkout&b.from=now-15m&b.to=now`);
  await page.waitForFunction(() => {
    const p = document.querySelector("[data-testid=flame-panel]");
    return p && p.dataset.url === location.hash && ["ready", "empty", "error"].includes(p.dataset.state);
  });
  const emptySide = await page.locator("[data-testid=flame-panel]").getAttribute("data-empty-side");
  const emptyText = await page.locator("[data-testid=flame-panel]").innerText();
  check(t.step, (await panelState()) === "empty" && emptySide === "A" && emptyText.includes("A has no samples"), { emptySide, emptyText });
  check("no flame graph is drawn for it", (await page.locator("[data-testid=flame-canvas]").count()) === 0, "canvas");
  await page.unroute(emptySpan);

  t.step = "an API error is shown, not swallowed";
  await page.route("**/api/v1/flamegraph**", (r) => r.fulfill({ status: 500, contentType: "application/json", body: '{"code":13,"message":"store is closed"}' }));
  // A fresh document: the UI keeps recent answers for a few seconds.
  await page.goto("about:blank");
  await page.goto(`${base}/#/trace/${TRACE}?span=b7ad6b7169203331&mode=children`);
  check(t.step, (await panelState()) === "error", "state");
  const msg = await page.locator("[data-testid=flame-panel] [role=alert]").innerText();
  check(t.step, msg.includes("store is closed"), msg);
  await page.screenshot({ path: join(shots, "fixture-error.png"), fullPage: true });
});
