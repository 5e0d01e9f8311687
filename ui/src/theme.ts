// Light / dark theme: follows prefers-color-scheme unless the user picked one (kept in
// localStorage, applied as <html data-theme>). Canvas code reads the CSS variables when it draws,
// so a change repaints through the "themechange" event.
export type ThemeChoice = "auto" | "light" | "dark";
const KEY = "spanprof.theme";

export function themeChoice(): ThemeChoice {
  try {
    const v = localStorage.getItem(KEY);
    return v === "light" || v === "dark" ? v : "auto";
  } catch {
    return "auto";
  }
}

export function applyTheme(choice: ThemeChoice): void {
  if (choice === "auto") document.documentElement.removeAttribute("data-theme");
  else document.documentElement.setAttribute("data-theme", choice);
  try {
    if (choice === "auto") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, choice);
  } catch {
    // storage disabled: the choice lasts for this page only
  }
  window.dispatchEvent(new Event("themechange"));
}

/** Repaints canvases when the system theme changes while the page is open. */
export function watchSystemTheme(): void {
  if (typeof matchMedia === "function") matchMedia("(prefers-color-scheme: dark)").addEventListener?.("change", () => window.dispatchEvent(new Event("themechange")));
}

/** Whether the page currently shows the dark theme. */
export function isDark(): boolean {
  const c = document.documentElement.getAttribute("data-theme");
  if (c) return c === "dark";
  return typeof matchMedia === "function" && matchMedia("(prefers-color-scheme: dark)").matches;
}

const LABEL: Record<ThemeChoice, string> = { auto: "Theme: system", light: "Theme: light", dark: "Theme: dark" };
const NEXT: Record<ThemeChoice, ThemeChoice> = { auto: "dark", dark: "light", light: "auto" };

export function themeToggle(): HTMLButtonElement {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "theme-toggle";
  b.setAttribute("data-testid", "theme-toggle");
  const show = () => {
    const c = themeChoice();
    b.textContent = LABEL[c];
    b.setAttribute("data-choice", c);
  };
  b.addEventListener("click", () => {
    applyTheme(NEXT[themeChoice()]);
    show();
  });
  show();
  return b;
}
