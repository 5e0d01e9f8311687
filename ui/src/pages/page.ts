// The contract between the app shell (main.ts) and its pages: one object per route.
import type { Route } from "../state";

export interface PageView {
  el: HTMLElement;
  /** Same page, new URL state. */
  update(route: Route): void;
  destroy(): void;
}
