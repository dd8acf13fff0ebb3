// Small statistics for the benchmark: latency summaries (percentiles by the nearest-rank method) and the
// median across repeated runs, which is what every reported figure is.

export interface LatencySummary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function summarize(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    mean: sorted.length ? sum / sorted.length : Number.NaN,
    min: sorted.length ? (sorted[0] as number) : Number.NaN,
    max: sorted.length ? (sorted[sorted.length - 1] as number) : Number.NaN,
  };
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? (v[mid] as number) : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

/** Median of each numeric field over runs of the same shape. */
export function medianOf<T extends object>(runs: readonly T[]): { [K in keyof T]: number } {
  const out: Record<string, number> = {};
  const first = runs[0];
  if (!first) return out as { [K in keyof T]: number };
  for (const key of Object.keys(first)) {
    const vals = runs.map((r) => (r as Record<string, unknown>)[key]).filter((x): x is number => typeof x === 'number');
    out[key] = median(vals);
  }
  return out as { [K in keyof T]: number };
}

/** Round for JSON and tables: keeps results files small and diffs readable. */
export function round(v: number, digits = 3): number {
  if (!Number.isFinite(v)) return v;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}
