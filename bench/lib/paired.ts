// Reading an A/B on a noisy machine: each variant against the reference measured in the same round, so a
// slow spell that hits a whole round cancels out, and the rounds a variant won counted, so one lucky round
// does not read as a gain. The order rotates from round to round: no variant always runs first.

import { median } from './stats.js';

/** The order of round `round` (1-based): the variants rotated by round - 1. */
export function roundOrder<T>(variants: readonly T[], round: number): T[] {
  const n = variants.length;
  if (n === 0) return [];
  const shift = (((round - 1) % n) + n) % n;
  return [...variants.slice(shift), ...variants.slice(0, shift)];
}

export interface PairedFigure {
  /** Median over rounds of variant ÷ reference. */
  median: number;
  min: number;
  max: number;
  /** Rounds in which the variant did better than the reference. */
  better: number;
  /** Rounds with a value on both sides. */
  rounds: number;
}

/**
 * Round-by-round ratios of `variant` to `reference` (same index = same round). `higherIsBetter` says which
 * way "better" points (calls/s: up; CPU per call: down). Null when no round has both values.
 */
export function paired(variant: readonly number[], reference: readonly number[], higherIsBetter: boolean): PairedFigure | null {
  const ratios: number[] = [];
  for (let i = 0; i < Math.min(variant.length, reference.length); i++) {
    const a = variant[i] as number;
    const b = reference[i] as number;
    if (Number.isFinite(a) && Number.isFinite(b) && b > 0) ratios.push(a / b);
  }
  if (ratios.length === 0) return null;
  return {
    median: median(ratios),
    min: Math.min(...ratios),
    max: Math.max(...ratios),
    better: ratios.filter((r) => (higherIsBetter ? r > 1 : r < 1)).length,
    rounds: ratios.length,
  };
}

/** "×1.190 [1.000..1.250], better in 5 of 6 rounds" */
export function formatPaired(p: PairedFigure | null): string {
  if (!p) return 'no round measured both';
  return `×${p.median.toFixed(3)} [${p.min.toFixed(3)}..${p.max.toFixed(3)}], better in ${p.better} of ${p.rounds} rounds`;
}
