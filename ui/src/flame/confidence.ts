// How far a sampled share can be trusted. A frame's share of a profile is a proportion estimated
// from n samples: its 95% Wilson score interval says how wide the truth may lie (wide at 11
// samples, narrow at 11,000). A difference between two profiles counts only when a two-proportion
// z-test at the 95% level supports it; otherwise the diff view draws it as "same".

const Z = 1.96;

/** 95% Wilson interval of a proportion seen k times in n samples, as [low, high] in 0..1. */
export function wilson(k: number, n: number): [number, number] {
  if (n <= 0) return [0, 1];
  const p = Math.min(1, Math.max(0, k / n));
  const z2 = Z * Z;
  const den = 1 + z2 / n;
  const mid = (p + z2 / (2 * n)) / den;
  const half = (Z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / den;
  return [Math.max(0, mid - half), Math.min(1, mid + half)];
}

/** Half-width of the 95% interval of a share, in percentage points (the "±" shown). */
export function shareMargin(k: number, n: number): number {
  const [lo, hi] = wilson(k, n);
  return ((hi - lo) / 2) * 100;
}

/** Below this many samples a profile's shares carry a visible margin (±3 points at 50%). */
export const FEW_SAMPLES = 1000;

/**
 * Whether shares kA/nA and kB/nB differ beyond what sampling explains (two-proportion z-test,
 * pooled, 95%). An empty side supports nothing.
 */
export function significant(kA: number, nA: number, kB: number, nB: number): boolean {
  if (nA <= 0 || nB <= 0) return false;
  const p = (kA + kB) / (nA + nB);
  const se = Math.sqrt(p * (1 - p) * (1 / nA + 1 / nB));
  if (se === 0) return kA / nA !== kB / nB;
  return Math.abs(kA / nA - kB / nB) / se > Z;
}
