// Browser half of tests/e2e/test_ui_wall_e2e.py: the trace view of a trace shaped like the demo's
// GET /slow (a root without samples of its own around a child span that awaits, with wall samples
// only) plus a child span busy on CPU, served by a real spanprof-server.
//   node ui_wall_flow.mjs <base url> <screenshot dir> <trace id>
import { join } from "node:path";
import { runChecks } from "./browser.mjs";

const ROOT_SPAN = "5a11ce000000a001";
const RENDER_SPAN = "5a11ce000000a002";
const WAIT_SPAN = "5a11ce000000a003";
const [base, shots, trace] = process.argv.slice(2);

await runChecks(join(shots, "wall-failure.png"), async (t) => {
  const { page, check, panelState } = t;
  t.step = "the root span, whose time went to a waiting child, opens with Wall and says so";
  await page.goto(`${base}/#/trace/${trace}?span=${ROOT_SPAN}`);
  const kind = page.locator("[data-testid=profile-kind]");
  await kind.waitFor();
  check("the CPU/Wall switch exists", (await page.locator("[data-testid=kind-cpu]").count()) === 1 && (await page.locator("[data-testid=kind-wall]").count()) === 1, "switch");
  check(t.step, (await kind.getAttribute("data-kind")) === "wall" && (await page.locator("[data-testid=kind-wall]").isChecked()), await kind.getAttribute("data-kind"));
  check(t.step, (await panelState()) === "empty", "state");
  const rootReason = await page.locator("[data-testid=flame-panel]").getAttribute("data-reason");
  check("the root's panel points at its children, not at a missing profile", rootReason.includes("its time went to its child spans") && !rootReason.includes("not profiled"), rootReason);
  const summary = page.locator("[data-testid=wait-summary]");
  await page.waitForFunction(() => !document.querySelector("[data-testid=wait-summary]")?.hidden);
  const rootSaid = await summary.innerText();
  check("the root names its children's heaviest wait", rootSaid.includes("in its child spans: 300 ms awaiting asyncio.sleep in wait_for_inventory, service.py:88"), rootSaid);

  t.step = "the waterfall shows CPU / waiting / awaiting per span";
  const rootBar = page.locator(`.wf-row[data-span-id="${ROOT_SPAN}"] [data-testid=wall-breakdown]`);
  const awaitingNs = Number(await rootBar.getAttribute("data-awaiting-ns"));
  check(t.step, awaitingNs === 300_000_000, awaitingNs);
  const tip = await rootBar.getAttribute("title");
  check("the bar's tooltip gives milliseconds", tip.includes("awaiting 300 ms") && tip.includes("on CPU 80 ms") && tip.includes("waiting 10 ms"), tip);
  const widths = await rootBar.evaluate((el) => [...el.children].map((c) => c.getBoundingClientRect().width));
  check("the awaiting segment is the widest", widths[2] > widths[0] && widths[0] > 0, widths);
  const waitTip = await page.locator(`.wf-row[data-span-id="${WAIT_SPAN}"] [data-testid=wall-breakdown]`).getAttribute("title");
  check("the waiting span's own bar", waitTip === "awaiting 300 ms (of 310 ms)", waitTip);
  await page.screenshot({ path: join(shots, "wall-root.png"), fullPage: true });

  t.step = "the awaiting span opens with its wall profile and names the line";
  await page.click(`.wf-row[data-span-id="${WAIT_SPAN}"]`);
  await page.waitForFunction((id) => location.hash.includes(`span=${id}`), WAIT_SPAN);
  check(t.step, (await kind.getAttribute("data-kind")) === "wall", await kind.getAttribute("data-kind"));
  check("the wall flame graph is drawn", (await panelState()) === "ready", "state");
  await page.waitForFunction(() => !document.querySelector("[data-testid=wait-summary]")?.hidden);
  const said = await summary.innerText();
  check(t.step, said.includes("Heaviest wait: 300 ms awaiting asyncio.sleep in wait_for_inventory, service.py:88"), said);
  const code = await summary.locator("code").allInnerTexts();
  check("function names are set as code", code.join() === "asyncio.sleep,wait_for_inventory", code);
  await page.screenshot({ path: join(shots, "wall-waiting-span.png"), fullPage: true });

  t.step = "CPU of the waiting span explains itself with the wall data";
  await page.click("[data-testid=kind-cpu]");
  await page.waitForFunction(() => location.hash.includes("profile=cpu"));
  check(t.step, (await panelState()) === "empty", "state");
  await page.waitForFunction(() => (document.querySelector("[data-testid=flame-panel]")?.getAttribute("data-reason") ?? "").includes("wait_for_inventory"));
  const reason = await page.locator("[data-testid=flame-panel]").getAttribute("data-reason");
  check(t.step, reason.includes("300 ms awaiting `asyncio.sleep` in `wait_for_inventory`, service.py:88") && !reason.includes("not profiled"), reason);
  await page.screenshot({ path: join(shots, "wall-cpu-explained.png"), fullPage: true });
  await page.click("[data-testid=show-wall]");
  await page.waitForFunction(() => location.hash.includes("profile=wall"));
  check("the explanation's button opens the wall profile", (await panelState()) === "ready", "state");

  t.step = "the thread_state filter narrows the wall flame graph";
  await page.selectOption("[data-testid=state-filter]", "running");
  await page.waitForFunction(() => location.hash.includes("state=running"));
  check(t.step, (await panelState()) === "empty", "the waiting span never ran on CPU itself");
  await page.selectOption("[data-testid=state-filter]", "awaiting");
  await page.waitForFunction(() => location.hash.includes("state=awaiting"));
  check(t.step, (await panelState()) === "ready", "awaiting has samples");
  const frames = await page.locator("[data-testid=flame-panel]").innerText();
  check("the awaiting flame graph holds the waiting function", frames.includes("wait_for_inventory") && frames.includes("Wall-clock time in this profile: 300 ms"), frames.slice(0, 300));

  t.step = "the busy child span opens with CPU";
  await page.click(`.wf-row[data-span-id="${RENDER_SPAN}"]`);
  await page.waitForFunction((id) => location.hash.includes(`span=${id}`), RENDER_SPAN);
  check(t.step, (await kind.getAttribute("data-kind")) === "cpu", await kind.getAttribute("data-kind"));
  check("its CPU flame graph is drawn", (await panelState()) === "ready", "state");
  await page.screenshot({ path: join(shots, "wall-busy-child.png"), fullPage: true });

  t.step = "the Profiles page filters the wall profile by thread_state";
  const wall = "wall:wall:nanoseconds:wall:nanoseconds";
  await page.goto(`${base}/#/profiles?service=shop&type=${encodeURIComponent(wall)}&from=now-1h&to=now`);
  check(t.step, (await panelState()) === "ready", "state");
  const all = await page.locator("[data-testid=flame-panel] .flame-info").innerText();
  check("the wall profile of the service holds every state", all.includes("Wall in this profile: 390 ms"), all);
  const axis = await page.locator("[data-testid=timeline] figcaption").innerText();
  check("the timeline speaks of wall time, not CPU cores", axis.startsWith("Wall over time") && axis.includes("threads/tasks"), axis);
  await page.goto(`${base}/#/profiles?service=shop&type=${encodeURIComponent(wall)}&labels=thread_state%3Dawaiting&from=now-1h&to=now`);
  check(t.step, (await panelState()) === "ready", "state");
  const awaiting = await page.locator("[data-testid=flame-panel] .flame-info").innerText();
  check("a thread_state label filter keeps that state", awaiting.includes("Wall in this profile: 300 ms"), awaiting);
});
