import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { NUSLERP, SLERP } from '../../src/merge/methods/geometric.js';
import { nuslerpT } from '../../src/merge/methods/nuslerp.js';
import { mergeTensors } from '../../src/merge/run.js';
import { SeededRandom } from '../../src/tensor/rng.js';

const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const S = Math.SQRT1_2;

function randn(r: SeededRandom, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

/** |got - want| <= tol * max|want| elementwise (results differ from an f64 reference by f32 rounding only). */
function expectClose(got: Float32Array, want: ArrayLike<number>, tol = 1e-6): void {
  expect(got.length).toBe(want.length);
  let scale = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]!));
  for (let i = 0; i < want.length; i++) {
    if (Math.abs(got[i]! - want[i]!) > tol * Math.max(scale, 1e-30)) {
      throw new Error(`element ${i}: got ${got[i]}, want ${want[i]} (scale ${scale})`);
    }
  }
}

const norm = (v: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
};

/** mergekit's numpy slerp, written plainly in f64. */
function slerpRef(t: number, v0: Float32Array, v1: Float32Array): number[] {
  const n0 = norm(v0);
  const n1 = norm(v1);
  const u0 = Array.from(v0, (x) => (n0 > 1e-8 ? x / n0 : x));
  const u1 = Array.from(v1, (x) => (n1 > 1e-8 ? x / n1 : x));
  let dot = 0;
  for (let i = 0; i < v0.length; i++) dot += u0[i]! * u1[i]!;
  if (Math.abs(dot) > 0.9995) return Array.from(v0, (x, i) => (1 - t) * x + t * v1[i]!);
  const th = Math.acos(dot);
  const s0 = Math.sin(th - th * t) / Math.sin(th);
  const s1 = Math.sin(th * t) / Math.sin(th);
  return Array.from(v0, (x, i) => s0 * x + s1 * v1[i]!);
}

/** mergekit's torch nuslerp (vectors along dim -1, or dim 0 when rowWise, or flattened), plainly in f64. */
function nuslerpRef(t: number, v0: ArrayLike<number>, v1: ArrayLike<number>, shape: number[], flatten: boolean, rowWise: boolean): number[] {
  const n = v0.length;
  const rowLength = shape.length <= 1 ? 1 : shape.slice(1).reduce((a, b) => a * b, 1);
  const last = shape.length === 0 ? 1 : shape[shape.length - 1]!;
  const groups: number[][] = [];
  if (flatten) groups.push([...Array(n).keys()]);
  else if (rowWise) for (let c = 0; c < rowLength; c++) groups.push([...Array(n / rowLength).keys()].map((r) => r * rowLength + c));
  else for (let s = 0; s < n; s += last) groups.push([...Array(last).keys()].map((k) => s + k));
  const out = new Array<number>(n).fill(NaN);
  for (const g of groups) {
    const a = g.map((i) => v0[i]!);
    const b = g.map((i) => v1[i]!);
    const na = Math.max(norm(a), 1e-7);
    const nb = Math.max(norm(b), 1e-7);
    let cos = 0;
    for (let k = 0; k < g.length; k++) cos += (a[k]! / na) * (b[k]! / nb);
    const th = Math.acos(Math.min(1, Math.max(-1, cos)));
    const st = Math.sin(th);
    g.forEach((i, k) => {
      out[i] = Math.abs(st) < 1e-8 ? (1 - t) * a[k]! + t * b[k]! : (Math.sin((1 - t) * th) * a[k]! + Math.sin(t * th) * b[k]!) / st;
    });
  }
  return out;
}

describe('slerp', () => {
  const slerp = (t: number, base: Float32Array, other: Float32Array, chunkElements?: number): Float32Array =>
    mergeTensors(SLERP, { base, models: [other] }, { params: { t }, ...(chunkElements ? { chunkElements } : {}) });

  it('orthogonal unit vectors at t=0.5 give (v0+v1)/√2', () => {
    expect(slerp(0.5, f32([1, 0, 0, 0]), f32([0, 1, 0, 0]))).toEqual(f32([S, S, 0, 0]));
  });

  it('t=1/3 between orthogonal unit vectors is (cos 30°, sin 30°)', () => {
    expectClose(slerp(1 / 3, f32([1, 0]), f32([0, 1])), [0.8660254037844387, 0.5], 1e-7);
  });

  it('60° apart at t=0.5 gives the unit vector at 30°', () => {
    expectClose(slerp(0.5, f32([1, 0]), f32([0.5, Math.sqrt(3) / 2])), [0.8660254037844387, 0.5], 1e-7);
  });

  it('applies the coefficients to the unnormalised tensors (norms are not interpolated)', () => {
    // θ = π/2: s0 = s1 = sin(π/4) = √½, so (2,0),(0,4) -> (2√½, 4√½), whose norm 3.16 is not the mean norm 3
    expectClose(slerp(0.5, f32([2, 0]), f32([0, 4])), [2 * S, 4 * S], 1e-7);
  });

  it('t=0 gives the base and t=1 the other model, bit-exactly, on both branches', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer(), fc.boolean(), (n, seed, nearColinear) => {
        const r = new SeededRandom(seed);
        const b = randn(r, n);
        const x = nearColinear ? Float32Array.from(b, (v) => v * 1.5 + 1e-4) : randn(r, n);
        expect(slerp(0, b, x)).toEqual(b);
        expect(slerp(1, b, x)).toEqual(x);
      }),
      { numRuns: 60 },
    );
  });

  it('falls back to lerp when |cos| > 0.9995 and slerps just below', () => {
    // cos = 1/√1.0001 ≈ 0.99995 > 0.9995: exactly the lerp (1, 0.005)
    expect(slerp(0.5, f32([1, 0]), f32([1, 0.01]))).toEqual(f32([1, 0.005]));
    // antiparallel: cos = -1, lerp (not a division by sin π)
    expect(slerp(0.25, f32([1, 2]), f32([-1, -2]))).toEqual(f32([0.5, 1]));
    // cos = 0.999 (θ ≈ 0.0447) is below the threshold: a true slerp, measurably longer than the lerp
    const v1 = f32([0.999, Math.sqrt(1 - 0.999 * 0.999)]);
    const got = slerp(0.5, f32([1, 0]), v1);
    expectClose(got, slerpRef(0.5, f32([1, 0]), v1), 1e-7);
    const lerp = [(1 + v1[0]!) / 2, v1[1]! / 2];
    expect(Math.abs(norm(got) - norm(lerp))).toBeGreaterThan(1e-4);
  });

  it('leaves a vector with norm <= 1e-8 unnormalised', () => {
    // zero base: dot 0, θ = π/2, result = sin(tπ/2)·v1
    expectClose(slerp(0.5, f32([0, 0]), f32([3, 4])), [3 * S, 4 * S], 1e-7);
    // a tiny base parallel to v1 is NOT seen as colinear (its unnormalised dot is 5e-9): slerp, not lerp
    expectClose(slerp(0.5, f32([5e-9, 0]), f32([1, 0])), [S, 0], 1e-7);
  });

  it('matches the direct reference on random data', () => {
    const r = new SeededRandom(11);
    for (const n of [1, 2, 17, 1000]) {
      for (const t of [0.1, 0.5, 0.77, 1.3, -0.2]) {
        const b = randn(r, n);
        const x = randn(r, n, 2);
        expectClose(slerp(t, b, x), slerpRef(t, b, x));
      }
    }
  });

  it('declares mergekit\'s contract: base required, exactly one other, t required', () => {
    expect(SLERP.base).toBe('required');
    expect([SLERP.minModels, SLERP.maxModels]).toEqual([1, 1]);
    expect(SLERP.params.find((p) => p.name === 't')?.required).toBe(true);
    expect(() => mergeTensors(SLERP, { base: f32([1]), models: [f32([2])] })).toThrow(UsageError);
  });
});

describe('nuslerp', () => {
  const run = (
    models: Float32Array[],
    weights: number[],
    opts: { base?: Float32Array; shape?: number[]; flatten?: boolean; rowWise?: boolean; chunkElements?: number } = {},
  ): Float32Array =>
    mergeTensors(
      NUSLERP,
      { ...(opts.base ? { base: opts.base } : {}), models },
      {
        params: { nuslerp_flatten: opts.flatten ?? true, nuslerp_row_wise: opts.rowWise ?? false },
        modelParams: weights.map((weight) => ({ weight })),
        ...(opts.shape ? { shape: opts.shape } : {}),
        ...(opts.chunkElements ? { chunkElements: opts.chunkElements } : {}),
      },
    );

  it('t = w2/(w1+w2), or 0.5 when the weights cancel', () => {
    expect(nuslerpT(1, 3)).toBe(0.75);
    expect(nuslerpT(2, 2)).toBe(0.5);
    expect(nuslerpT(1, -1)).toBe(0.5);
    expect(nuslerpT(1, -1 + 5e-7)).toBe(0.5);
  });

  it('orthogonal unit vectors with equal weights give (v0+v1)/√2', () => {
    expect(run([f32([1, 0]), f32([0, 1])], [1, 1])).toEqual(f32([S, S]));
  });

  it('with a base, slerps the deltas and adds the base', () => {
    expect(run([f32([2, 1]), f32([1, 2])], [1, 1], { base: f32([1, 1]) })).toEqual(f32([1 + S, 1 + S]));
  });

  it('weights 1:3 between orthogonal unit vectors put the result at 67.5°', () => {
    expectClose(run([f32([1, 0]), f32([0, 1])], [1, 3]), [Math.cos((3 * Math.PI) / 8), Math.sin((3 * Math.PI) / 8)], 1e-7);
  });

  it('colinear and antiparallel vectors (|sin θ| < 1e-8) fall back to the lerp', () => {
    expect(run([f32([1, 0]), f32([3, 0])], [1, 1])).toEqual(f32([2, 0]));
    expect(run([f32([1, 0]), f32([-3, 0])], [3, 1])).toEqual(f32([0, 0]));
  });

  it('has no 0.9995 threshold: near-colinear vectors are slerped, unlike slerp', () => {
    const v0 = f32([1, 0]);
    const v1 = f32([1, 0.01]); // cos ≈ 0.99995
    const got = run([v0, v1], [1, 1]);
    expectClose(got, nuslerpRef(0.5, v0, v1, [2], true, false), 1e-7);
    expect(got).not.toEqual(f32([1, 0.005]));
  });

  it('a zero vector has its norm clamped to 1e-7: result sin(tπ/2)·v1', () => {
    expectClose(run([f32([0, 0]), f32([3, 4])], [1, 1]), [3 * S, 4 * S], 1e-7);
  });

  it('swapping the two models (with their weights) gives the same result', () => {
    const r = new SeededRandom(5);
    const a = randn(r, 64);
    const b = randn(r, 64);
    const base = randn(r, 64, 0.1);
    expect(run([a, b], [1, 3])).toEqual(run([b, a], [3, 1]));
    expect(run([a, b], [1, 3], { base })).toEqual(run([b, a], [3, 1], { base }));
    expectClose(run([a, b], [0.3, 0.9]), run([b, a], [0.9, 0.3]), 1e-6);
    expectClose(run([a, b], [0.3, 0.9], { base, flatten: false }), run([b, a], [0.9, 0.3], { base, flatten: false }), 1e-6);
  });

  it('weight 0 on the second model gives the first exactly (t = 0), with or without a base', () => {
    const r = new SeededRandom(6);
    const a = randn(r, 33);
    const b = randn(r, 33);
    const base = randn(r, 33);
    expect(run([a, b], [1, 0])).toEqual(a);
    expect(run([a, b], [0, 2])).toEqual(b);
    expect(run([a, b], [1, 0], { base })).toEqual(a);
  });

  it('matches the direct reference: flattened, per row (last axis), per column (axis 0), with and without base', () => {
    const r = new SeededRandom(9);
    for (const shape of [[7], [3, 5], [4, 6], [2, 3, 4], [1, 8]]) {
      const n = shape.reduce((p, q) => p * q, 1);
      for (const withBase of [false, true]) {
        const base = withBase ? randn(r, n, 0.5) : undefined;
        const a = randn(r, n);
        const b = randn(r, n);
        const d0 = base ? Array.from(a, (v, i) => v - base[i]!) : a;
        const d1 = base ? Array.from(b, (v, i) => v - base[i]!) : b;
        for (const [flatten, rowWise] of [[true, false], [false, false], [false, true]] as const) {
          const want = nuslerpRef(0.7, d0, d1, shape, flatten, rowWise).map((v, i) => (base ? v + base[i]! : v));
          const got = run([a, b], [0.3, 0.7], { ...(base ? { base } : {}), shape, flatten, rowWise });
          expectClose(got, want, 2e-6);
        }
      }
    }
  });

  it('rank-3 row mode uses vectors along the last axis (not whole rows of the first axis)', () => {
    // shape [1, 2, 2]: last-axis vectors (1,0)/(0,1) and (1,0)/(1,0); per whole row they would mix
    const a = f32([1, 0, 1, 0]);
    const b = f32([0, 1, 1, 0]);
    expect(run([a, b], [1, 1], { shape: [1, 2, 2], flatten: false })).toEqual(f32([S, S, 1, 0]));
  });

  it('column mode: vectors along axis 0', () => {
    // [[1, 1], [0, 0]] and [[0, 1], [1, 0]]: column 0 is (1,0)/(0,1) -> (√½, √½); column 1 is (1,0)/(1,0) -> lerp
    const a = f32([1, 1, 0, 0]);
    const b = f32([0, 1, 1, 0]);
    expect(run([a, b], [1, 1], { shape: [2, 2], flatten: false, rowWise: true })).toEqual(f32([S, 1, S, 0]));
  });
});
