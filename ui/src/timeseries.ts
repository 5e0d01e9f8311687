// Timeline maths: query step for a range, and CPU time per step as cores in use.
import type { Timeline } from "./api";

/** Step for a range: about 240 points, at least 10 s (the agent's upload interval). */
export function stepFor(fromMs: number, toMs: number): number {
  const raw = (toMs - fromMs) / 240;
  const steps = [10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000, 7_200_000, 21_600_000, 86_400_000];
  return steps.find((s) => s >= raw) ?? 86_400_000;
}

/** Turns points (ns of CPU per step) into CPU cores in use, the unit people read at a glance. */
export function toCores(t: Timeline, stepMs: number): [number[], number[]] {
  const xs: number[] = [];
  const ys: number[] = [];
  const div = t.unit === "nanoseconds" ? stepMs * 1e6 : 1;
  for (const [ts, v] of t.points) {
    xs.push(ts / 1000);
    ys.push(v / div);
  }
  return [xs, ys];
}
