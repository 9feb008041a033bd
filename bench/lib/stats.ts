/** Small statistics: percentiles of samples, and median with min-max over repeated runs. */

/** The p-th percentile (0-100) of `values` (sorted copy; nearest rank). */
export function percentile(values: ArrayLike<number>, p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** Median and range of one figure over repeated runs. */
export interface Summary {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function summarize(runs: number[]): Summary {
  const finite = runs.filter(Number.isFinite);
  return {
    median: percentile(finite, 50),
    min: Math.min(...finite),
    max: Math.max(...finite),
    runs,
  };
}

/** Summarizes every numeric field of repeated results. */
export function summarizeRuns<T extends Record<string, number>>(runs: T[]): Record<keyof T, Summary> {
  const keys = Object.keys(runs[0] ?? {}) as (keyof T)[];
  return Object.fromEntries(keys.map((k) => [k, summarize(runs.map((r) => r[k]))])) as Record<keyof T, Summary>;
}
