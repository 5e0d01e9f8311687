// Loads the JSON fixtures (written in the /api/v1 contract's format) and pins the clock they use.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The instant the fixtures were written against (ms since epoch). */
export const NOW_MS = 1795000000000;

export function fixture<T = unknown>(name: string): T {
  const path = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  return JSON.parse(readFileSync(path, "utf8")) as T;
}
