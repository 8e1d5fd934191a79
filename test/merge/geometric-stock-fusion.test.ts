import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { ARCEE_FUSION, MODEL_STOCK } from '../../src/merge/methods/geometric.js';
import { QuantileSelector, f32Key, keyValue } from '../../src/merge/methods/geo-util.js';
import { mergeTensors } from '../../src/merge/run.js';
import { SeededRandom } from '../../src/tensor/rng.js';

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);

function randn(r: SeededRandom, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

function expectClose(got: Float32Array, want: ArrayLike<number>, tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * Math.max(scale, 1e-30))) {
      throw new Error(`element ${i}: got ${got[i]}, want ${want[i]} (scale ${scale})`);
    }
  }
}

const lastAxis = (shape: number[]): number => (shape.length === 0 ? 1 : shape[shape.length - 1]!);

/** mergekit's ModelStockMergeTask, plainly in f64 (vectors: whole tensor, or last-axis vectors when filterWise). */
function modelStockRef(base: Float32Array, xs: Float32Array[], shape: number[], filterWise: boolean): number[] {
  const n = base.length;
  const len = filterWise ? lastAxis(shape) : n;
  const out = new Array<number>(n);
  for (let s = 0; s < n; s += len) {
    const d = xs.map((x) => Array.from({ length: len }, (_, k) => x[s + k]! - base[s + k]!));
    const cos: number[] = [];
    for (let i = 0; i < d.length; i++) {
      for (let j = i + 1; j < d.length; j++) {
        let dot = 0;
        let ni = 0;
        let nj = 0;
        for (let k = 0; k < len; k++) {
          dot += d[i]![k]! * d[j]![k]!;
          ni += d[i]![k]! ** 2;
          nj += d[j]![k]! ** 2;
        }
        cos.push(Math.min(1, Math.max(-1, dot / Math.max(Math.sqrt(ni) * Math.sqrt(nj), 1e-6))));
      }
    }
    const c = cos.reduce((a, b) => a + b, 0) / cos.length;
    const N = xs.length;
    const t = (N * c) / (1 + (N - 1) * c);
    for (let k = 0; k < len; k++) {
      const mean = xs.reduce((a, x) => a + x[s + k]!, 0) / N;
      out[s + k] = t * mean + (1 - t) * base[s + k]!;
    }
  }
  return out;
}

/** mergekit's arcee_fusion with exact quantiles (full sort), scores rounded to f32 as in torch. */
function fusionRef(base: Float32Array, x: Float32Array, shape: number[]): { out: Float32Array; tau: number } {
  const n = base.length;
  const len = lastAxis(shape);
  const scores = new Float32Array(n);
  for (let s = 0; s < n; s += len) {
    let mx = -Infinity;
    let mb = -Infinity;
    for (let k = s; k < s + len; k++) {
      mx = Math.max(mx, x[k]!);
      mb = Math.max(mb, base[k]!);
    }
    let sx = 0;
    let sb = 0;
    for (let k = s; k < s + len; k++) {
      sx += Math.exp(x[k]! - mx);
      sb += Math.exp(base[k]! - mb);
    }
    let kl = 0;
    for (let k = s; k < s + len; k++) {
      const p = Math.exp(x[k]! - mx) / sx + 1e-8;
      const q = Math.exp(base[k]! - mb) / sb + 1e-8;
      kl += p * Math.log(p / q);
    }
    for (let k = s; k < s + len; k++) scores[k] = Math.abs(x[k]! - base[k]!) * kl;
  }
  const sorted = Float32Array.from(scores).sort();
  const at = (q: number): number => sorted[Math.floor(q * (n - 1))]!;
  const tau = Math.fround(at(0.5) + Math.fround(1.5 * Math.fround(at(0.75) - at(0.25))));
  return { out: Float32Array.from(scores, (s, k) => (s >= tau ? x[k]! : base[k]!)), tau };
}

describe('model_stock', () => {
  const run = (base: Float32Array, models: Float32Array[], opts: { shape?: number[]; filterWise?: boolean; name?: string } = {}): Float32Array =>
    mergeTensors(
      MODEL_STOCK,
      { base, models },
      { params: { filter_wise: opts.filterWise ?? false }, ...(opts.shape ? { shape: opts.shape } : {}), ...(opts.name ? { name: opts.name } : {}) },
    );

  it('orthogonal deltas give t = 0: the base', () => {
    const base = f32([1, 1, 1]);
    expect(run(base, [f32([2, 1, 1]), f32([1, 2, 1])])).toEqual(base);
  });

  it('identical deltas give t = 1: the (common) fine-tuned model', () => {
    const r = new SeededRandom(1);
    const base = randn(r, 30);
    const x = randn(r, 30);
    expectClose(run(base, [x, x]), x, 1e-7);
    expectClose(run(base, [x, x, x, x]), x, 1e-7);
  });

  it('deltas 60° apart (N=2): c = 0.5, t = 2/3', () => {
    expectClose(run(f32([0, 0]), [f32([1, 0]), f32([0.5, Math.sqrt(3) / 2])]), [0.5, 0.28867513459481287], 1e-7);
  });

  it('N = 3 averages the pairwise cosines: e1, e2, e1 give c = 1/3, t = 0.6', () => {
    expectClose(run(f32([0, 0]), [f32([1, 0]), f32([0, 1]), f32([1, 0])]), [0.4, 0.2], 1e-7);
  });

  it('zero deltas: the norm product is clamped, t = 0', () => {
    const base = f32([3, -2]);
    expect(run(base, [base, base])).toEqual(base);
  });

  it('opposite deltas (t infinite) are an error naming the tensor', () => {
    for (const [a, b] of [
      [f32([1, 0]), f32([-1, 0])], // cos exactly -1
      [f32([1, 2]), f32([-1, -2])], // cos -0.9999999999999998 after rounding: t ≈ -2e16
    ]) {
      let err: unknown;
      try {
        run(f32([0, 0]), [a!, b!], { name: 'w' });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(UsageError);
      expect((err as UsageError).where.tensor).toBe('w');
    }
    // three deltas 120° apart: c = -1/2 makes 1 + (N-1)c vanish
    const h = Math.sqrt(3) / 2;
    expect(() => run(f32([0, 0]), [f32([1, 0]), f32([-0.5, h]), f32([-0.5, -h])], { name: 'w' })).toThrow(UsageError);
  });

  it('filter_wise computes t per last-axis vector', () => {
    // row 0: orthogonal deltas -> base row; row 1: identical deltas -> the models' row
    const base = f32([0, 0, 0, 0]);
    const a = f32([1, 0, 1, 1]);
    const b = f32([0, 1, 1, 1]);
    expectClose(run(base, [a, b], { shape: [2, 2], filterWise: true }), [0, 0, 1, 1], 1e-7);
    // flattened: c = 2/3, t = 0.8, result 0.8·mean
    expectClose(run(base, [a, b], { shape: [2, 2] }), [0.4, 0.4, 0.8, 0.8], 1e-7);
    // 1-D: one vector, same as flattened
    expect(run(base, [a, b], { shape: [4], filterWise: true })).toEqual(run(base, [a, b], { shape: [4] }));
  });

  it('matches the direct reference on random data (flattened and filter-wise, several shapes)', () => {
    const r = new SeededRandom(2);
    for (const shape of [[9], [4, 5], [2, 3, 4], [1, 6]]) {
      const n = shape.reduce((p, q) => p * q, 1);
      for (const m of [2, 3, 5]) {
        const base = randn(r, n);
        const common = randn(r, n, 0.1);
        const xs = Array.from({ length: m }, () => Float32Array.from(randn(r, n, 0.1), (v, k) => base[k]! + common[k]! + v));
        for (const filterWise of [false, true]) {
          expectClose(run(base, xs, { shape, filterWise }), modelStockRef(base, xs, shape, filterWise));
        }
      }
    }
  });
});

describe('exact quantiles over f32 bits', () => {
  it('the key order is the numeric order (NaN last)', () => {
    fc.assert(
      fc.property(fc.float(), fc.float(), (a, b) => {
        const ka = f32Key(new Uint32Array(f32([a]).buffer)[0]!);
        const kb = f32Key(new Uint32Array(f32([b]).buffer)[0]!);
        if (Number.isNaN(a)) expect(ka).toBe(0xffffffff);
        else {
          expect(Object.is(keyValue(ka), Math.fround(a)) || (a === 0 && keyValue(ka) === 0)).toBe(true);
          if (!Number.isNaN(b) && a < b) expect(ka).toBeLessThan(kb);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('selects the same values as a sort, at any chunking, with duplicates, negatives, zeros and infinities', () => {
    const r = new SeededRandom(3);
    const x = Float32Array.from({ length: 3001 }, () => (r.next() < 0.3 ? 0 : Math.round(r.normal() * 50) / 7));
    x[5] = Infinity;
    x[6] = -Infinity;
    x[7] = -0;
    const sorted = Float32Array.from(x).sort();
    const ranks = [0, 750, 1500, 2250, 3000, 1500];
    for (const chunk of [1, 7, 1000, 3001]) {
      const sel = new QuantileSelector(ranks);
      const bits = new Uint32Array(x.buffer);
      for (let s = 0; s < x.length; s += chunk) sel.addHigh(bits.subarray(s, s + chunk), Math.min(chunk, x.length - s));
      sel.resolveHigh();
      for (let s = 0; s < x.length; s += chunk) sel.addLow(bits.subarray(s, s + chunk), Math.min(chunk, x.length - s));
      expect(sel.values()).toEqual(ranks.map((k) => sorted[k]!));
    }
  });
});

describe('arcee_fusion', () => {
  const run = (base: Float32Array, x: Float32Array, shape?: number[], chunkElements?: number): Float32Array =>
    mergeTensors(ARCEE_FUSION, { base, models: [x] }, { ...(shape ? { shape } : {}), ...(chunkElements ? { chunkElements } : {}) });

  it('one vector: only the outlier delta (|δ| ≥ median + 1.5·IQR) is kept', () => {
    // scores ∝ |δ| (one KL for the whole vector): sorted |δ| 1..7,100 -> Q1=2, median=4, Q3=6 (×KL) -> τ = 10·KL
    const base = new Float32Array(8);
    const x = f32([1, -2, 3, -4, 5, -6, 7, 100]);
    expect(run(base, x)).toEqual(f32([0, 0, 0, 0, 0, 0, 0, 100]));
  });

  it('ties at the threshold are kept (s ≥ τ): equal scores keep everything', () => {
    const base = new Float32Array(4);
    const x = f32([1, -1, 1, -1]);
    expect(run(base, x)).toEqual(x);
  });

  it('weights each row by its own KL: a shifted row (softmax unchanged, KL 0) is dropped', () => {
    // row 0 = base + 3 everywhere: KL 0, scores 0; row 1 = (4,1,1,1): scores (4k,k,k,k)
    // sorted 0,0,0,0,k,k,k,4k -> Q1 = median = 0, Q3 = k -> τ = 1.5k: only the 4 is kept
    const base = new Float32Array(8);
    const x = f32([3, 3, 3, 3, 4, 1, 1, 1]);
    expect(run(base, x, [2, 4])).toEqual(f32([0, 0, 0, 0, 4, 0, 0, 0]));
  });

  it('an (almost) unchanged tensor has τ = 0 and keeps every delta, as in mergekit', () => {
    const base = new Float32Array(8);
    const x = f32([3, 3, 3, 3, 1, 0, 0, 0]);
    expect(run(base, x, [2, 4])).toEqual(x);
  });

  it('matches the exact-quantile reference on random data (rows and single vectors)', () => {
    const r = new SeededRandom(4);
    for (const shape of [[257], [16, 33], [3, 4, 25], [1, 40]]) {
      const n = shape.reduce((p, q) => p * q, 1);
      const base = randn(r, n);
      const x = Float32Array.from(randn(r, n, 0.05), (v, k) => base[k]! + v * (r.next() < 0.1 ? 20 : 1));
      const got = run(base, x, shape);
      const want = fusionRef(base, x, shape).out;
      expect(got).toEqual(want);
      // something kept and something dropped: the test can tell the mask apart from both identities
      expect(got).not.toEqual(base);
      expect(got).not.toEqual(x);
    }
  });

  it('uses exact quantiles beyond 10^6 elements (mergekit samples there)', () => {
    const r = new SeededRandom(5);
    const shape = [1050, 1000];
    const n = shape[0]! * shape[1]!;
    const base = randn(r, n, 0.02);
    const x = Float32Array.from(base, (v) => v + r.normal() * 0.001);
    const got = run(base, x, shape, 65536);
    const want = fusionRef(base, x, shape).out;
    let mismatches = 0;
    let kept = 0;
    for (let k = 0; k < n; k++) {
      if (!Object.is(got[k], want[k])) mismatches++;
      if (got[k] !== base[k]) kept++;
    }
    expect(mismatches).toBe(0);
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(n / 2);
  });

  it('declares mergekit\'s contract: base + exactly one model, no parameters', () => {
    expect(ARCEE_FUSION.base).toBe('required');
    expect([ARCEE_FUSION.minModels, ARCEE_FUSION.maxModels]).toEqual([1, 1]);
    expect(ARCEE_FUSION.params).toEqual([]);
    expect(ARCEE_FUSION.differences).toMatch(/exact/i);
  });
});
