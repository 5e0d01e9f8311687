// Navigation: the location hash is the single source of page state (state.ts).
import { formatHash, parseHash, type Route } from "./state";

let silentHash: string | null = null;

export function currentRoute(): Route {
  return parseHash(location.hash);
}

/**
 * Moves to `route`. `replace` edits the current history entry; `silent` updates the URL without
 * re-rendering (for state the page already shows, like a search box being typed into).
 */
export function navigate(route: Route, opts: { replace?: boolean; silent?: boolean } = {}): void {
  const hash = formatHash(route);
  if (hash === location.hash) return;
  if (opts.silent) silentHash = hash;
  if (opts.replace || opts.silent) {
    history.replaceState(null, "", hash);
    if (!opts.silent) window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    location.hash = hash;
  }
}

/** True (once) when the hash change was a silent one. */
export function consumeSilent(): boolean {
  const s = silentHash !== null && silentHash === location.hash;
  silentHash = null;
  return s;
}

export function href(route: Route): string {
  return formatHash(route);
}
