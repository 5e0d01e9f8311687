// App shell and router: one page object per route; a URL change on the same page calls update().
import "./style.css";
import { h } from "./dom";
import { consumeSilent, currentRoute } from "./nav";
import { ComparePage } from "./pages/compare";
import { ProfilesPage } from "./pages/profiles";
import { TracePage } from "./pages/trace";
import { TracesPage } from "./pages/traces";
import type { PageView } from "./pages/page";
import type { Page, Route } from "./state";
import { applyTheme, themeChoice, themeToggle, watchSystemTheme } from "./theme";

const PAGES: Record<Page, (r: Route) => PageView> = {
  traces: (r) => new TracesPage(r),
  trace: (r) => new TracePage(r),
  profiles: (r) => new ProfilesPage(r),
  compare: (r) => new ComparePage(r),
};

const TITLES: Record<Page, string> = { traces: "Traces", trace: "Trace", profiles: "Profiles", compare: "Compare" };

const navLinks = (["traces", "profiles", "compare"] as Page[]).map((p) => h("a", { href: `#/${p}`, "data-page": p }, TITLES[p]));
const main = h("main", { id: "main", tabindex: "-1" });
document.body.append(
  h("a", { class: "skip", href: "#main", onclick: (e: Event) => (e.preventDefault(), main.focus()) }, "Skip to content"),
  h("header", { class: "top" }, h("a", { class: "brand", href: "#/traces" }, h("span", { class: "logo", "aria-hidden": "true" }, "▟"), "spanprof"), h("nav", { "aria-label": "Pages" }, ...navLinks), themeToggle()),
  main,
);

applyTheme(themeChoice());
watchSystemTheme();

let page: PageView | null = null;
let pageKey = "";

function route(): void {
  if (consumeSilent()) return;
  const r = currentRoute();
  const key = `${r.page}/${r.id}`;
  for (const a of navLinks) {
    const p = a.getAttribute("data-page");
    if (p === r.page || (p === "traces" && r.page === "trace")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${TITLES[r.page]} · spanprof`;
  if (page && key === pageKey) {
    page.update(r);
    return;
  }
  page?.destroy();
  page = PAGES[r.page](r);
  pageKey = key;
  main.replaceChildren(page.el);
  window.scrollTo(0, 0);
}

window.addEventListener("hashchange", route);
route();
