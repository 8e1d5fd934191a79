// MagnitudeRanker (src/tensor/quantile.ts), used by DELLA: exact ascending ranks of |x| against a sort oracle.
import { describe, expect, it } from 'vitest';
import { MagnitudeRanker } from '../../src/tensor/quantile.js';
import { SeededRandom } from '../../src/tensor/rng.js';

function oracle(x: Float32Array): number[] {
  // ascending |x|; equal magnitudes: the later element first (so the earlier ranks higher)
  const idx = [...x.keys()].sort((a, b) => Math.abs(x[a]!) - Math.abs(x[b]!) || b - a);
  const ranks = new Array<number>(x.length);
  idx.forEach((j, r) => (ranks[j] = r));
  return ranks;
}

describe('MagnitudeRanker', () => {
  it('hand example with ties and signs', () => {
    // |x| = [2, 1, 2, 0, 3]: ascending 0 (e3), 1 (e1), 2 (e2, later first), 2 (e0), 3 (e4)
    const ranks = new Int32Array(5);
    new MagnitudeRanker().rankInto(Float32Array.from([2, -1, -2, 0, 3]), 5, ranks);
    expect([...ranks]).toEqual([3, 1, 2, 0, 4]);
  });
  it('matches a sort over random vectors of many lengths, reusing scratch', () => {
    const r = new SeededRandom(4);
    const ranker = new MagnitudeRanker();
    for (const n of [1, 2, 3, 17, 300, 5, 1000]) {
      const x = Float32Array.from({ length: n }, () => (r.next() < 0.3 ? r.int(4) : r.normal() * 10 ** r.int(6)));
      const ranks = new Int32Array(n);
      ranker.rankInto(x, n, ranks);
      expect([...ranks]).toEqual(oracle(x));
    }
  });
});
