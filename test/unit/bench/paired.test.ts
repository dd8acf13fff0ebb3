import { describe, expect, it } from 'vitest';
import { formatPaired, paired, roundOrder } from '../../../bench/lib/paired.js';

describe('roundOrder', () => {
  it('starts each round with the next variant, so none always runs first', () => {
    const v = ['base', 'a', 'b'];
    expect([1, 2, 3, 4].map((r) => roundOrder(v, r))).toEqual([
      ['base', 'a', 'b'],
      ['a', 'b', 'base'],
      ['b', 'base', 'a'],
      ['base', 'a', 'b'],
    ]);
  });

  it('runs every variant once per round', () => {
    for (let r = 1; r <= 7; r++) expect([...roundOrder(['x', 'y'], r)].sort()).toEqual(['x', 'y']);
    expect(roundOrder([], 3)).toEqual([]);
  });
});

describe('paired', () => {
  it('compares round with round: a whole slow round cancels out', () => {
    // The reference swings ±30% between rounds; the variant is 10% faster in each round.
    const reference = [1000, 1300, 700, 1000];
    const variant = reference.map((x) => x * 1.1);
    const p = paired(variant, reference, true);
    expect(p?.median).toBeCloseTo(1.1, 9);
    expect(p?.min).toBeCloseTo(1.1, 9);
    expect(p?.max).toBeCloseTo(1.1, 9);
    expect(p?.better).toBe(4);
    expect(p?.rounds).toBe(4);
  });

  it('counts a lower figure as better for a cost, and skips rounds missing on either side', () => {
    const p = paired([0.9, Number.NaN, 1.2, 0.8], [1.0, 1.0, 1.0, Number.NaN], false);
    expect(p?.rounds).toBe(2);
    expect(p?.better).toBe(1);
    expect(p?.median).toBeCloseTo(1.05, 9);
    expect(paired([1], [Number.NaN], true)).toBeNull();
  });

  it('prints the median, the spread and the rounds won', () => {
    expect(formatPaired(paired([1190, 1000], [1000, 1000], true))).toBe('×1.095 [1.000..1.190], better in 1 of 2 rounds');
    expect(formatPaired(null)).toBe('no round measured both');
  });
});
