import { describe, expect, it } from 'vitest';
import { WeightkitError } from '../../src/errors.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import {
  densifyRangeInto,
  dequantizeLinearInto,
  dequantizeLogInto,
  quantizationError,
  quantizeLinear,
  quantizeLog,
  sparsifyTopK,
  type LinearQuantized,
  type LogQuantized,
  type SparseVector,
} from '../../src/tensor/vector-codecs.js';

const F32_EPS = 2 ** -23;

function decodeLinear(q: LinearQuantized): Float32Array {
  const out = new Float32Array(q.codes.length);
  dequantizeLinearInto(q, 0, q.codes.length, out);
  return out;
}

function decodeLog(q: LogQuantized): Float32Array {
  const out = new Float32Array(q.codes.length);
  dequantizeLogInto(q, 0, q.codes.length, out);
  return out;
}

function densify(s: SparseVector): Float32Array {
  const out = new Float32Array(s.numel);
  densifyRangeInto(s, 0, s.numel, out);
  return out;
}

function randomVector(seed: number, n: number, scale = 1): Float32Array {
  const r = new SeededRandom(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = r.normal() * scale;
  return x;
}

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightkitError);
    return (e as WeightkitError).code;
  }
  throw new Error('expected an error');
}

/** Oracle: sort by |x| descending, ties by index, keep k, then indices ascending. */
function topKBySort(x: Float32Array, k: number): number[] {
  const idx = [...x.keys()].sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

describe('quantizeLinear / dequantizeLinearInto', () => {
  it('hand-computed codes and values', () => {
    const q = quantizeLinear(new Float32Array([-1, 0.2, 1, 0.6]), 3);
    // step = 1: (v + 1) / 1 = 0, 1.2, 2, 1.6 -> 0, 1, 2, 2
    expect(q.codes).toBeInstanceOf(Uint8Array);
    expect([...q.codes]).toEqual([0, 1, 2, 2]);
    expect(q.min).toBe(-1);
    expect(q.max).toBe(1);
    expect(q.levels).toBe(3);
    expect([...decodeLinear(q)]).toEqual([-1, 0, 1, 1]);

    const q2 = quantizeLinear(new Float32Array([0, 0.4, 0.6, 1]), 2);
    expect([...q2.codes]).toEqual([0, 0, 1, 1]);
    expect([...decodeLinear(q2)]).toEqual([0, 0, 1, 1]);

    const q5 = quantizeLinear(new Float32Array([4, 3, 2, 1, 0]), 5);
    expect([...q5.codes]).toEqual([4, 3, 2, 1, 0]);
  });

  it('uses Uint8Array up to 256 levels and Uint16Array above', () => {
    const x = new Float32Array([0, 1, 2, 3]);
    expect(quantizeLinear(x, 256).codes).toBeInstanceOf(Uint8Array);
    const q = quantizeLinear(x, 257);
    expect(q.codes).toBeInstanceOf(Uint16Array);
    expect([...q.codes]).toEqual([0, 85, 171, 256]); // step 3/256: 85.33 -> 85, 170.67 -> 171
    const q16 = quantizeLinear(x, 65536);
    expect(q16.codes[3]).toBe(65535);
  });

  it('all-equal input: every code 0, restored exactly; empty input: min = max = 0', () => {
    const x = new Float32Array([0.3, 0.3, 0.3]);
    const q = quantizeLinear(x, 16);
    expect([...q.codes]).toEqual([0, 0, 0]);
    expect([...decodeLinear(q)]).toEqual([...x]);
    const e = quantizeLinear(new Float32Array(0), 16);
    expect(e.codes.length).toBe(0);
    expect(e.min).toBe(0);
    expect(e.max).toBe(0);
  });

  it('max abs error <= step/2 (+ f32 rounding) on random data, for many level counts', () => {
    for (const [seed, levels] of [
      [1, 2],
      [2, 3],
      [3, 16],
      [4, 255],
      [5, 256],
      [6, 1000],
      [7, 65536],
    ] as const) {
      const x = randomVector(seed, 4000, 0.01 * seed);
      const q = quantizeLinear(x, levels);
      const step = (q.max - q.min) / (levels - 1);
      const slack = Math.max(Math.abs(q.min), Math.abs(q.max)) * F32_EPS;
      const err = quantizationError(x, decodeLinear(q));
      expect(err.maxAbs).toBeLessThanOrEqual(step / 2 + slack);
      // the bound is not vacuous: with few levels the error comes close to it
      if (levels <= 16) expect(err.maxAbs).toBeGreaterThan(step / 4);
    }
  });

  it('a range decode equals the slice of the full decode', () => {
    const x = randomVector(11, 3000);
    const q = quantizeLinear(x, 300);
    const full = decodeLinear(q);
    const r = new SeededRandom(12);
    for (let t = 0; t < 50; t++) {
      const a = r.int(x.length + 1);
      const b = a + r.int(x.length + 1 - a);
      const out = new Float32Array(b - a + 3).fill(7);
      dequantizeLinearInto(q, a, b, out);
      expect(out.subarray(0, b - a)).toEqual(full.subarray(a, b));
      expect([...out.subarray(b - a)]).toEqual([7, 7, 7]); // nothing written past the range
    }
  });
});

describe('quantizeLog / dequantizeLogInto', () => {
  it('hand-computed codes and values (nearest level in log2 space, not linear)', () => {
    // levels 9 -> m = 4; log2|v| of the non-zeros: 0, 2, 1, -1, 1.536 -> lo = -1, hi = 2, step 1
    // magnitudes 0.5, 1, 2, 4; 2.9 is linearly nearer to 2 but in log2 space nearer to 4
    const x = new Float32Array([0, 1, -4, 2, 0.5, 2.9, -0.5]);
    const q = quantizeLog(x, 9);
    expect(q.codes).toBeInstanceOf(Uint8Array);
    expect(q.lo).toBe(-1);
    expect(q.hi).toBe(2);
    expect([...q.codes]).toEqual([0, 2, 8, 3, 1, 4, 5]);
    expect([...decodeLog(q)]).toEqual([0, 1, -4, 2, 0.5, 4, -0.5]);
  });

  it('m == 1 maps every non-zero to ±2^lo; even level counts leave the last code unused', () => {
    const q = quantizeLog(new Float32Array([0.25, -8, 0, 1]), 3);
    expect(q.lo).toBe(-2);
    expect(q.hi).toBe(3);
    expect([...q.codes]).toEqual([1, 2, 0, 1]);
    expect([...decodeLog(q)]).toEqual([0.25, -0.25, 0, 0.25]);
    const q4 = quantizeLog(new Float32Array([1, -1]), 4); // m = 1 as well
    expect([...q4.codes]).toEqual([1, 2]);
  });

  it('all zeros or empty: every code 0, restored exactly', () => {
    const q = quantizeLog(new Float32Array([0, -0, 0]), 17);
    expect([...q.codes]).toEqual([0, 0, 0]);
    expect([...decodeLog(q)]).toEqual([0, 0, 0]);
    expect(quantizeLog(new Float32Array(0), 17).codes.length).toBe(0);
  });

  it('uses Uint16Array above 256 levels; codes stay within 2m', () => {
    const x = randomVector(21, 2000);
    const q = quantizeLog(x, 65536);
    expect(q.codes).toBeInstanceOf(Uint16Array);
    let maxCode = 0;
    for (const c of q.codes) maxCode = Math.max(maxCode, c);
    expect(maxCode).toBeLessThanOrEqual(2 * 32767);
    expect(maxCode).toBeGreaterThan(32767); // negatives present
    expect(quantizeLog(x, 256).codes).toBeInstanceOf(Uint8Array);
  });

  it('relative error <= 2^(step/2) - 1 (+ slack), zeros exact, signs kept, on random data', () => {
    for (const [seed, levels] of [
      [31, 5],
      [32, 17],
      [33, 256],
      [34, 4097],
      [35, 65536],
    ] as const) {
      const x = randomVector(seed, 4000, 0.001);
      for (let i = 0; i < x.length; i += 7) x[i] = 0; // zeros are kept exactly
      const q = quantizeLog(x, levels);
      const m = Math.floor((levels - 1) / 2);
      const step = (q.hi - q.lo) / (m - 1);
      const bound = 2 ** (step / 2) - 1 + 4 * F32_EPS;
      const y = decodeLog(q);
      let worst = 0;
      for (let i = 0; i < x.length; i++) {
        if (x[i] === 0) {
          expect(y[i]).toBe(0);
          continue;
        }
        expect(Math.sign(y[i]!)).toBe(Math.sign(x[i]!));
        worst = Math.max(worst, Math.abs(y[i]! / x[i]! - 1));
      }
      expect(worst).toBeLessThanOrEqual(bound);
      if (levels <= 17) expect(worst).toBeGreaterThan((2 ** (step / 2) - 1) / 2);
    }
  });

  it('a range decode equals the slice of the full decode', () => {
    const x = randomVector(41, 3000);
    for (let i = 0; i < x.length; i += 5) x[i] = 0;
    const q = quantizeLog(x, 1001);
    const full = decodeLog(q);
    const r = new SeededRandom(42);
    for (let t = 0; t < 50; t++) {
      const a = r.int(x.length + 1);
      const b = a + r.int(x.length + 1 - a);
      const out = new Float32Array(b - a);
      dequantizeLogInto(q, a, b, out);
      expect(out).toEqual(full.subarray(a, b));
    }
  });
});

describe('quantisers: errors', () => {
  it('NaN or ±Infinity: VECTOR_NOT_FINITE naming the element', () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const x = new Float32Array([1, 2, bad, 3]);
      for (const f of [() => quantizeLinear(x, 16), () => quantizeLog(x, 16), () => sparsifyTopK(x, 0.5)]) {
        expect(codeOf(f)).toBe('VECTOR_NOT_FINITE');
        expect(() => f()).toThrow(/element 2\b/);
      }
    }
  });

  it('bad levels: USAGE', () => {
    const x = new Float32Array([1, 2]);
    for (const levels of [1, 0, -3, 2.5, 65537, NaN, Infinity]) {
      expect(codeOf(() => quantizeLinear(x, levels))).toBe('USAGE');
    }
    for (const levels of [2, 1, 3.5, 65537, NaN]) {
      expect(codeOf(() => quantizeLog(x, levels))).toBe('USAGE');
    }
    expect(quantizeLinear(x, 2).levels).toBe(2);
    expect(quantizeLog(x, 3).levels).toBe(3);
  });

  it('bad ranges and short outputs: USAGE', () => {
    const q = quantizeLinear(new Float32Array([1, 2, 3]), 4);
    expect(codeOf(() => dequantizeLinearInto(q, 2, 1, new Float32Array(3)))).toBe('USAGE');
    expect(codeOf(() => dequantizeLinearInto(q, 0, 4, new Float32Array(4)))).toBe('USAGE');
    expect(codeOf(() => dequantizeLinearInto(q, 0, 3, new Float32Array(2)))).toBe('USAGE');
    const l = quantizeLog(new Float32Array([1, 2, 3]), 4);
    expect(codeOf(() => dequantizeLogInto(l, -1, 2, new Float32Array(3)))).toBe('USAGE');
    const s = sparsifyTopK(new Float32Array([1, 2, 3]), 0.5);
    expect(codeOf(() => densifyRangeInto(s, 1, 4, new Float32Array(3)))).toBe('USAGE');
  });
});

describe('quantizationError', () => {
  it('hand-computed relL2 and maxAbs', () => {
    const e = quantizationError(new Float32Array([3, 4]), new Float32Array([3, 3]));
    expect(e.relL2).toBeCloseTo(1 / 5, 12);
    expect(e.maxAbs).toBe(1);
    const z = quantizationError(new Float32Array([0, 0]), new Float32Array([1, -2]));
    expect(z.relL2).toBe(0);
    expect(z.maxAbs).toBe(2);
    expect(quantizationError(new Float32Array(0), new Float32Array(0))).toEqual({ relL2: 0, maxAbs: 0 });
  });

  it('length mismatch: USAGE', () => {
    expect(codeOf(() => quantizationError(new Float32Array(2), new Float32Array(3)))).toBe('USAGE');
  });
});

describe('sparsifyTopK / densifyRangeInto', () => {
  it('hand-computed: k = round(density * numel), ties by lowest index, indices ascending', () => {
    const x = new Float32Array([0.5, -3, 2, 3, -2, 0, 1]);
    const s = sparsifyTopK(x, 3 / 7);
    expect(s.numel).toBe(7);
    expect([...s.indices]).toEqual([1, 2, 3]); // |-3| = |3| kept, then the first of the |2| ties (index 2)
    expect([...s.values]).toEqual([-3, 2, 3]);
    expect([...densify(s)]).toEqual([0, -3, 2, 3, 0, 0, 0]);

    // density 0.5 of 7 = 3.5 -> 4 kept
    expect([...sparsifyTopK(x, 0.5).indices]).toEqual([1, 2, 3, 4]);
    expect(sparsifyTopK(x, 0).indices.length).toBe(0);
    const all = sparsifyTopK(x, 1);
    expect([...all.indices]).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect([...all.values]).toEqual([...x]);
  });

  it('keeps exactly k even when that takes zeros (lowest index first)', () => {
    const x = new Float32Array([0, 5, 0, -0, 0, 7]);
    const s = sparsifyTopK(x, 4 / 6);
    expect([...s.indices]).toEqual([0, 1, 2, 5]);
    expect([...s.values]).toEqual([0, 5, 0, 7]);
  });

  it('equals a sort-based reference on random data with many ties, for many densities', () => {
    const r = new SeededRandom(51);
    const x = new Float32Array(3001);
    // few distinct magnitudes, signed zeros included: ties everywhere
    for (let i = 0; i < x.length; i++) x[i] = r.int(9) * (r.next() < 0.5 ? -0.25 : 0.25);
    for (const density of [0, 0.001, 0.05, 0.1, 0.333, 0.5, 0.77, 0.9, 0.999, 1]) {
      const k = Math.round(density * x.length);
      const s = sparsifyTopK(x, density);
      expect(s.indices.length).toBe(k);
      expect(s.values.length).toBe(k);
      const want = topKBySort(x, k);
      expect([...s.indices]).toEqual(want);
      expect([...s.values]).toEqual(want.map((i) => x[i]));
    }
  });

  it('a range decode equals the slice of the full decode', () => {
    const x = randomVector(61, 5000);
    const s = sparsifyTopK(x, 0.1);
    const full = densify(s);
    let nz = 0;
    for (const v of full) if (v !== 0) nz++;
    expect(nz).toBe(500);
    const r = new SeededRandom(62);
    for (let t = 0; t < 80; t++) {
      const a = r.int(x.length + 1);
      const b = a + r.int(Math.min(300, x.length + 1 - a));
      const out = new Float32Array(b - a).fill(9); // stale contents must be overwritten by zeros
      densifyRangeInto(s, a, b, out);
      expect(out).toEqual(full.subarray(a, b));
    }
    const empty = sparsifyTopK(x, 0);
    const out = new Float32Array(10).fill(1);
    densifyRangeInto(empty, 100, 110, out);
    expect([...out]).toEqual(new Array(10).fill(0));
  });

  it('bad density: USAGE', () => {
    const x = new Float32Array([1, 2]);
    for (const d of [-0.1, 1.5, NaN, Infinity]) expect(codeOf(() => sparsifyTopK(x, d))).toBe('USAGE');
  });
});
