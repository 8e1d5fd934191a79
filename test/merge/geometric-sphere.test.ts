import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { KARCHER, MULTISLERP } from '../../src/merge/methods/geometric.js';
import { mergeTensors } from '../../src/merge/run.js';
import { SeededRandom } from '../../src/tensor/rng.js';

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const S = Math.SQRT1_2;

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

const dot = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};
const norm = (a: ArrayLike<number>): number => Math.sqrt(dot(a, a));

/** mergekit's multislerp, step by step over the full vectors, in f64. */
function multislerpRef(inputs: Float32Array[], weight: number[], base?: Float32Array, normalize = true, eps = 1e-8): number[] {
  if (inputs.length === 1) return Array.from(inputs[0]!);
  const xs = inputs.map((x) => Array.from(x, (v, k) => (base ? v - base[k]! : v)));
  const n = xs[0]!.length;
  const sw = weight.reduce((a, b) => a + b, 0);
  const w = normalize ? weight.map((v) => v / sw) : weight;
  const norms = xs.map(norm);
  const units = xs.map((x, i) => x.map((v) => v / (norms[i]! + eps)));
  const mean = new Array<number>(n).fill(0);
  units.forEach((u, i) => u.forEach((v, k) => (mean[k] += w[i]! * v)));
  const mn = norm(mean);
  const addBase = (r: number[]): number[] => (base ? r.map((v, k) => v + base[k]!) : r);
  if (mn < eps) {
    if (xs.length === 2) return addBase(xs[0]!.map((v, k) => v * w[0]! + xs[1]![k]! * w[1]!));
    throw new Error('antipodal');
  }
  const mu = mean.map((v) => v / mn);
  const tangent = new Array<number>(n).fill(0);
  units.forEach((u, i) => {
    const d = dot(u, mu);
    u.forEach((v, k) => (tangent[k] += w[i]! * (v - d * mu[k]!)));
  });
  const tn = norm(tangent) + eps;
  const avg = norms.reduce((a, v, i) => a + v * w[i]!, 0);
  return addBase(mu.map((m, k) => (m * Math.cos(tn) + tangent[k]! * (Math.sin(tn) / tn)) * avg));
}

/** mergekit's karcher_merge_tensors, plainly in f64. */
function karcherRef(inputs: Float32Array[], maxIter = 10, tol = 1e-5): number[] {
  if (inputs.length === 1) return Array.from(inputs[0]!);
  const n = inputs[0]!.length;
  const alphas = inputs.map(() => 1 / inputs.length);
  const norms = inputs.map(norm);
  const units = inputs.map((x, i) => Array.from(x, (v) => (norms[i] === 0 ? 0 : v / norms[i]!)));
  const valid = norms.map((v, i) => (v > tol ? i : -1)).filter((i) => i >= 0);
  if (valid.length === 0) return new Array<number>(n).fill(0);
  const asum = valid.reduce((a, i) => a + alphas[i]!, 0);
  const al = valid.map((i) => alphas[i]! / asum);
  const us = valid.map((i) => units[i]!);
  let u = new Array<number>(n).fill(0);
  us.forEach((ui, j) => ui.forEach((v, k) => (u[k] += al[j]! * v)));
  const nu = norm(u);
  u = nu < tol ? [...us[0]!] : u.map((v) => v / nu);
  for (let it = 0; it < maxIter; it++) {
    const T = new Array<number>(n).fill(0);
    us.forEach((ui, j) => {
      const d = Math.min(1, Math.max(-1, dot(u, ui)));
      const th = Math.acos(d);
      if (th < tol) return;
      ui.forEach((v, k) => (T[k] += al[j]! * (th / Math.sin(th)) * (v - d * u[k]!)));
    });
    const nt = norm(T);
    if (nt < tol) break;
    u = u.map((v, k) => Math.cos(nt) * v + Math.sin(nt) * (T[k]! / nt));
    const un = norm(u);
    if (un > tol) u = u.map((v) => v / un);
  }
  const s = alphas.reduce((a, al0, i) => a + al0 * norms[i]!, 0);
  return u.map((v) => s * v);
}

describe('multislerp', () => {
  const run = (models: Float32Array[], weights: number[], opts: { base?: Float32Array; normalize?: boolean; chunkElements?: number; name?: string } = {}): Float32Array =>
    mergeTensors(
      MULTISLERP,
      { ...(opts.base ? { base: opts.base } : {}), models },
      {
        params: { normalize_weights: opts.normalize ?? true },
        modelParams: weights.map((weight) => ({ weight })),
        ...(opts.chunkElements ? { chunkElements: opts.chunkElements } : {}),
        ...(opts.name ? { name: opts.name } : {}),
      },
    );

  it('two orthogonal unit vectors with equal weights give (v0+v1)/√2', () => {
    expectClose(run([f32([1, 0]), f32([0, 1])], [1, 1]), [S, S], 1e-7);
  });

  it('three orthonormal vectors give (1,1,1)/√3', () => {
    const k = 1 / Math.sqrt(3);
    expectClose(run([f32([1, 0, 0]), f32([0, 1, 0]), f32([0, 0, 1])], [1, 1, 1]), [k, k, k], 1e-7);
  });

  it('weights 1:3 give the direction (1,3)/√10; the norm is the weighted mean norm', () => {
    expectClose(run([f32([1, 0]), f32([0, 1])], [1, 3]), [1 / Math.sqrt(10), 3 / Math.sqrt(10)], 1e-7);
    // (2,0),(0,4): direction (√½,√½) times mean norm 3 (slerp would give (2√½, 4√½))
    expectClose(run([f32([2, 0]), f32([0, 4])], [1, 1]), [3 * S, 3 * S], 1e-7);
  });

  it('normalize_weights false uses the raw weights (norm scale Σw‖x‖)', () => {
    expectClose(run([f32([1, 0]), f32([0, 1])], [1, 1], { normalize: false }), [2 * S, 2 * S], 1e-7);
  });

  it('works in task-vector space with a base', () => {
    // deltas (1,0) and (0,1) from (1,1): base + (√½, √½)
    expectClose(run([f32([2, 1]), f32([1, 2])], [1, 1], { base: f32([1, 1]) }), [1 + S, 1 + S], 1e-7);
  });

  it('antipodal pair: returns the weighted mean (lerp), plus the base', () => {
    expect(run([f32([1, 0]), f32([-3, 0])], [1, 1])).toEqual(f32([-1, 0]));
    expect(run([f32([2, 3]), f32([0, -1])], [1, 1], { base: f32([1, 1]) })).toEqual(f32([1, 1]));
  });

  it('antipodal inputs cancelling with more than two inputs: a UsageError naming the tensor', () => {
    const inputs = [f32([1, 0]), f32([-1, 0]), f32([0, 2]), f32([0, -2])];
    let err: unknown;
    try {
      run(inputs, [1, 1, 1, 1], { name: 'model.layers.0.mlp.up_proj.weight' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).code).toBe('USAGE');
    expect((err as UsageError).where.tensor).toBe('model.layers.0.mlp.up_proj.weight');
  });

  it('a tensor no model changed (all task vectors zero) gives the base, with any number of models', () => {
    // mergekit raises the antipodal error here for more than two models; weightkit returns the weighted mean
    const base = f32([0.5, -1, 2]);
    expect(run([base, base, base], [1, 2, 3], { base })).toEqual(base);
    expect(run([base, base], [1, 2], { base })).toEqual(base);
  });

  it('weights summing to 0 with normalize_weights are an error naming the tensor', () => {
    expect(() => run([f32([1, 0]), f32([0, 1])], [1, -1], { name: 't0' })).toThrow(UsageError);
  });

  it('identical inputs give that input; a single input is returned as is', () => {
    const r = new SeededRandom(1);
    const x = randn(r, 50);
    expectClose(run([x, x, x], [1, 2, 3]), x, 1e-7);
    expect(run([x], [0.3])).toEqual(x);
    expect(run([x], [0.3], { base: randn(r, 50) })).toEqual(x);
  });

  it('matches the direct reference on random data', () => {
    const r = new SeededRandom(2);
    for (const n of [1, 3, 64, 999]) {
      for (const m of [2, 3, 5]) {
        const xs = Array.from({ length: m }, () => randn(r, n));
        const w = Array.from({ length: m }, () => 0.1 + r.next());
        expectClose(run(xs, w), multislerpRef(xs, w));
        const base = randn(r, n, 0.5);
        expectClose(run(xs, w, { base }), multislerpRef(xs, w, base));
        expectClose(run(xs, w, { normalize: false }), multislerpRef(xs, w, undefined, false));
      }
    }
  });
});

describe('karcher', () => {
  const run = (models: Float32Array[], params: { max_iter?: number; tol?: number } = {}, chunkElements?: number): Float32Array =>
    mergeTensors(KARCHER, { models }, { params, ...(chunkElements ? { chunkElements } : {}) });

  it('two orthogonal unit vectors: (v0+v1)/√2', () => {
    expectClose(run([f32([1, 0]), f32([0, 1])]), [S, S], 1e-7);
  });

  it('directions at 0°, 0°, 90° average to 30° on the circle (not the chordal 26.6°), scaled by the mean norm', () => {
    expectClose(run([f32([1, 0]), f32([1, 0]), f32([0, 1])]), [Math.cos(Math.PI / 6), 0.5], 1e-6);
    expectClose(run([f32([2, 0]), f32([2, 0]), f32([0, 5])]), [3 * Math.cos(Math.PI / 6), 1.5], 1e-6);
    // max_iter 0 stops at the normalised arithmetic mean of the directions: (2,1)/√5
    expectClose(run([f32([1, 0]), f32([1, 0]), f32([0, 1])], { max_iter: 0 }), [2 / Math.sqrt(5), 1 / Math.sqrt(5)], 1e-7);
  });

  it('zero inputs are dropped from the direction but count in the norm average', () => {
    // direction (3,4)/5, scale (0 + 5)/2 = 2.5
    expectClose(run([f32([0, 0]), f32([3, 4])]), [1.5, 2], 1e-7);
    expect(run([f32([0, 0, 0]), f32([0, 0, 0])])).toEqual(f32([0, 0, 0]));
  });

  it('identical inputs give that input; a single input is returned as is', () => {
    const r = new SeededRandom(3);
    const x = randn(r, 40);
    expect(run([x, x, x])).toEqual(x);
    expect(run([x])).toEqual(x);
  });

  it('matches the direct reference on random data', () => {
    const r = new SeededRandom(4);
    for (const n of [2, 5, 64, 777]) {
      for (const m of [2, 3, 5]) {
        // correlated inputs (a shared component) so the iteration has work to do
        const common = randn(r, n);
        const xs = Array.from({ length: m }, () => Float32Array.from(randn(r, n, 0.7), (v, k) => v + common[k]!));
        expectClose(run(xs), karcherRef(xs));
        expectClose(run(xs, { max_iter: 2, tol: 1e-3 }), karcherRef(xs, 2, 1e-3));
      }
    }
  });

  it('declares mergekit\'s contract: a base is one more input, no weights', () => {
    expect(KARCHER.base).toBe('input');
    expect(KARCHER.modelParams).toEqual([]);
    expect(KARCHER.params.map((p) => [p.name, p.default])).toEqual([
      ['max_iter', 10],
      ['tol', 1e-5],
    ]);
  });
});
