import { describe, expect, it } from 'vitest';
import { jsMatMul } from '../../../src/tensor/linalg/backend.js';
import { orthonormalityError } from '../../../src/tensor/linalg/matrix.js';
import { blockKrylovSvd, LOW_RANK_FALLBACK_MIN_WORK, lowRankOrthonormalBasis, randomizedSvd, truncatedSvd, type TruncatedSvd } from '../../../src/tensor/linalg/randomized.js';
import { pivotedCholeskyColumns } from '../../../src/tensor/linalg/qr.js';
import { gaussian, refMatMul, relativeReconstructionError, withSpectrum } from './helpers.js';

function decaying(r: number, rate: number): number[] {
  return Array.from({ length: r }, (_, i) => rate ** i);
}

/** Best rank-k relative Frobenius error for spectrum s. */
function optimalError(s: readonly number[], k: number): number {
  const tail = s.slice(k).reduce((a, x) => a + x * x, 0);
  const all = s.reduce((a, x) => a + x * x, 0);
  return Math.sqrt(tail / all);
}

function expectShapeAndOrthonormal(res: TruncatedSvd, m: number, n: number, k: number, tol = 2e-5): void {
  expect([res.m, res.n, res.k, res.u.length, res.v.length, res.s.length]).toEqual([m, n, k, m * k, n * k, k]);
  expect(orthonormalityError(res.u, m, k)).toBeLessThan(tol);
  expect(orthonormalityError(res.v, n, k)).toBeLessThan(tol);
  for (let i = 1; i < k; i++) expect(res.s[i]).toBeLessThanOrEqual(res.s[i - 1]! * (1 + 1e-6));
}

describe('randomizedSvd', () => {
  const m = 200;
  const n = 150;
  const s = decaying(150, 0.85);
  const a = Float32Array.from(withSpectrum(m, n, s, 42).data);

  for (const core of ['jacobi', 'gram'] as const) {
    for (const k of [1, 10, 60]) {
      it(`decaying spectrum, k=${k}, core=${core}: near-optimal rank-k error, accurate top values`, async () => {
        const res = await randomizedSvd(a, m, n, k, { backend: jsMatMul, seed: 7, core });
        expectShapeAndOrthonormal(res, m, n, k);
        const err = relativeReconstructionError(a, m, n, res.u, res.s, res.v);
        // stated bound: within 1 % (relative) of the best possible rank-k error, plus f32 noise
        expect(err).toBeLessThan(optimalError(s, k) * 1.01 + 1e-5);
        for (let i = 0; i < Math.min(k, 5); i++) expect(Math.abs(res.s[i]! - s[i]!) / s[i]!).toBeLessThan(1e-4);
      });
    }
  }

  it('agrees with the exact SVD on the top singular values (flat-ish Gaussian matrix, q = 3)', async () => {
    const g = Float32Array.from(gaussian(120, 90, 5).data);
    const exact = await truncatedSvd(g, 120, 90, 8, { method: 'exact' });
    const rnd = await randomizedSvd(g, 120, 90, 8, { backend: jsMatMul, seed: 1, powerIterations: 3, oversampling: 20 });
    for (let i = 0; i < 8; i++) expect(Math.abs(rnd.s[i]! - exact.s[i]!) / exact.s[i]!).toBeLessThan(0.02);
  });

  it('is deterministic for a seed, and the seed matters', async () => {
    const r1 = await randomizedSvd(a, m, n, 5, { backend: jsMatMul, seed: 3, powerIterations: 0 });
    const r2 = await randomizedSvd(a, m, n, 5, { backend: jsMatMul, seed: 3, powerIterations: 0 });
    const r3 = await randomizedSvd(a, m, n, 5, { backend: jsMatMul, seed: 4, powerIterations: 0 });
    expect(r2.u).toEqual(r1.u);
    expect(r3.s[4]).not.toBe(r1.s[4]);
  });

  for (const core of ['jacobi', 'gram'] as const) {
    it(`rank-deficient input with k > rank (core=${core}): zero tail, orthonormal U and V`, async () => {
      const low = Float32Array.from(withSpectrum(80, 60, [5, 3, 1], 9).data);
      const res = await randomizedSvd(low, 80, 60, 6, { backend: jsMatMul, core });
      expectShapeAndOrthonormal(res, 80, 60, 6, 1e-4);
      expect(res.s[2]).toBeCloseTo(1, 4);
      expect(res.s[3]).toBeLessThan(1e-3);
      expect(relativeReconstructionError(low, 80, 60, res.u, res.s, res.v)).toBeLessThan(1e-5);
    });
  }

  it('tall and wide', async () => {
    for (const [mm, nn] of [[300, 40], [40, 300]] as const) {
      const x = Float32Array.from(withSpectrum(mm, nn, decaying(40, 0.7), mm).data);
      const res = await randomizedSvd(x, mm, nn, 12, { backend: jsMatMul });
      expectShapeAndOrthonormal(res, mm, nn, 12);
      expect(relativeReconstructionError(x, mm, nn, res.u, res.s, res.v)).toBeLessThan(optimalError(decaying(40, 0.7), 12) * 1.01 + 1e-5);
    }
  });
});

describe('blockKrylovSvd', () => {
  it('decaying spectrum: near-optimal rank-k error, accurate top values, as good as subspace iteration with more products', async () => {
    const m = 220;
    const n = 180;
    const s = decaying(180, 0.97); // slow decay: k = 40 cuts where the spectrum is still flat
    const a = Float32Array.from(withSpectrum(m, n, s, 4).data);
    const k = 40;
    const res = await blockKrylovSvd(a, m, n, k, { backend: jsMatMul, seed: 2 });
    expectShapeAndOrthonormal(res, m, n, k);
    const err = relativeReconstructionError(a, m, n, res.u, res.s, res.v);
    expect(err).toBeLessThan(optimalError(s, k) * 1.001 + 1e-5);
    for (let i = 0; i < k; i++) expect(Math.abs(res.s[i]! - s[i]!) / s[i]!, `σ_${i}`).toBeLessThan(2e-3);
    const sub = await randomizedSvd(a, m, n, k, { backend: jsMatMul, seed: 2, oversampling: 10, powerIterations: 3 });
    expect(err).toBeLessThanOrEqual(relativeReconstructionError(a, m, n, sub.u, sub.s, sub.v) + 1e-6);
  });

  it('is deterministic for a seed; the seed matters', async () => {
    const a = Float32Array.from(withSpectrum(90, 70, decaying(70, 0.9), 8).data);
    const r1 = await blockKrylovSvd(a, 90, 70, 12, { backend: jsMatMul, seed: 5, blocks: 2 });
    const r2 = await blockKrylovSvd(a, 90, 70, 12, { backend: jsMatMul, seed: 5, blocks: 2 });
    const r3 = await blockKrylovSvd(a, 90, 70, 12, { backend: jsMatMul, seed: 6, blocks: 2 });
    expect(r2.u).toEqual(r1.u);
    expect(r3.u).not.toEqual(r1.u);
  });

  it('rank-deficient input (the Krylov space runs out): exact values, zero tail, orthonormal factors', async () => {
    const s = [5, 3, 1];
    const low = Float32Array.from(withSpectrum(80, 60, s, 9).data);
    const res = await blockKrylovSvd(low, 80, 60, 12, { backend: jsMatMul, seed: 1 });
    expectShapeAndOrthonormal(res, 80, 60, 12, 1e-4);
    for (let i = 0; i < 3; i++) expect(Math.abs(res.s[i]! - s[i]!) / s[i]!).toBeLessThan(1e-5);
    expect(res.s[3]).toBeLessThan(1e-4);
    expect(relativeReconstructionError(low, 80, 60, res.u, res.s, res.v)).toBeLessThan(1e-5);
  });

  it('an exactly zero block: random directions orthogonal to the earlier ones', async () => {
    // rank 2 with blocks of 4: the second block's remainder is rounding noise or exactly zero
    const low = Float32Array.from(withSpectrum(50, 40, [2, 1], 3).data);
    const res = await blockKrylovSvd(low, 50, 40, 8, { backend: jsMatMul, seed: 3, blockSize: 4, blocks: 3 });
    expectShapeAndOrthonormal(res, 50, 40, 8, 1e-4);
    expect(res.s[0]).toBeCloseTo(2, 5);
    expect(res.s[1]).toBeCloseTo(1, 5);
  });

  it('tall, wide, k = min(m, n), and too few columns for the blocks (falls back to subspace iteration)', async () => {
    for (const [mm, nn, k] of [
      [300, 40, 12],
      [40, 300, 12],
      [30, 24, 24],
      [30, 24, 23],
    ] as const) {
      const sp = decaying(Math.min(mm, nn), 0.8);
      const x = Float32Array.from(withSpectrum(mm, nn, sp, mm + k).data);
      const res = await blockKrylovSvd(x, mm, nn, k, { backend: jsMatMul, seed: 1 });
      expectShapeAndOrthonormal(res, mm, nn, k, 2e-4);
      expect(relativeReconstructionError(x, mm, nn, res.u, res.s, res.v), `${mm}x${nn} k=${k}`).toBeLessThan(optimalError(sp, k) * 1.01 + 1e-5);
    }
  });
});

describe('truncatedSvd', () => {
  it('exact path: 1xN, Nx1, 0-size, k = 0, k = min(m, n)', async () => {
    const row = Float32Array.from([3, 4]);
    const r1 = await truncatedSvd(row, 1, 2, 1);
    expect(r1.s[0]).toBeCloseTo(5, 6);
    expect([...r1.u]).toEqual([1]);
    expect(r1.v[0]).toBeCloseTo(0.6, 6);
    const col = await truncatedSvd(Float32Array.from([0, -2, 0]), 3, 1, 1);
    expect(col.s[0]).toBeCloseTo(2, 6);
    expect(col.u[1]).toBeCloseTo(1, 6); // sign normalised: largest entry of u positive
    expect(col.v[0]).toBeCloseTo(-1, 6);
    expect((await truncatedSvd(new Float32Array(0), 0, 5, 0)).k).toBe(0);
    expect((await truncatedSvd(new Float32Array(0), 4, 0, 0, { method: 'randomized' })).k).toBe(0);
    const g = Float32Array.from(gaussian(9, 7, 1).data);
    const full = await truncatedSvd(g, 9, 7, 7);
    expect(relativeReconstructionError(g, 9, 7, full.u, full.s, full.v)).toBeLessThan(1e-6);
    expect((await truncatedSvd(g, 9, 7, 0)).s.length).toBe(0);
  });

  it("'auto' is exact below the threshold and randomized above it", async () => {
    const g = Float32Array.from(gaussian(30, 20, 2).data);
    const exact = await truncatedSvd(g, 30, 20, 3, { method: 'exact' });
    expect((await truncatedSvd(g, 30, 20, 3)).s).toEqual(exact.s);
    const rnd = await truncatedSvd(g, 30, 20, 3, { exactMaxDim: 10, seed: 1 });
    expect(rnd.s).not.toEqual(exact.s);
    expect(Math.abs(rnd.s[0]! - exact.s[0]!) / exact.s[0]!).toBeLessThan(0.05);
  });

  it('argument errors name the parameter', async () => {
    await expect(truncatedSvd(new Float32Array(6), 2, 3, 3)).rejects.toThrow(/k: expected at most min\(m, n\) = 2, got 3/);
    await expect(truncatedSvd(new Float32Array(5), 2, 3, 1)).rejects.toThrow(/a \(m x n\)/);
  });
});

describe('rank-deficient sketches (low-rank matrices, k above the rank)', () => {
  it('pivotedCholeskyColumns picks the independent columns and stops at the rank', () => {
    const y = multiplyF64(gaussian(30, 4, 1).data, gaussian(4, 12, 2).data, 30, 4, 12); // rank 4
    const g = gram(y, 30, 12);
    expect(pivotedCholeskyColumns(g, 12, 1e-9)).toHaveLength(4);
    const full = gram(gaussian(30, 12, 3).data, 30, 12);
    expect(pivotedCholeskyColumns(full, 12, 1e-9).sort((a, b) => a - b)).toEqual(Array.from({ length: 12 }, (_, i) => i));
    expect(pivotedCholeskyColumns(new Float64Array(9), 3, 1e-9)).toEqual([]);
  });

  it('lowRankOrthonormalBasis: orthonormal, spans Y, deterministic', async () => {
    const m = 60;
    const l = 20;
    const y = Float32Array.from(multiplyF64(gaussian(m, 5, 4).data, gaussian(5, l, 5).data, m, 5, l));
    const q = await lowRankOrthonormalBasis(y, m, l, jsMatMul, 7);
    expect(orthonormalityError(q, m, l)).toBeLessThan(1e-5);
    // Y − Q·QᵀY ≈ 0
    const qty = refMatMul(q, y, l, m, l, true);
    const back = refMatMul(q, qty, m, l, l);
    let num = 0;
    let den = 0;
    for (let i = 0; i < y.length; i++) {
      num += (y[i]! - back[i]!) ** 2;
      den += y[i]! ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(1e-5);
    expect(await lowRankOrthonormalBasis(y, m, l, jsMatMul, 7)).toEqual(q);
  });

  it('randomizedSvd of a rank-6 matrix with a sketch past the Householder threshold: exact top values, orthonormal factors', async () => {
    const n = 800;
    const s = [6, 5, 4, 3, 2, 1];
    const a = Float32Array.from(withSpectrum(n, n, s, 9).data);
    const k = 200;
    const res = await randomizedSvd(a, n, n, k, { backend: jsMatMul, seed: 1, oversampling: 50, powerIterations: 1 });
    expect(n * (k + 50) ** 2).toBeGreaterThanOrEqual(LOW_RANK_FALLBACK_MIN_WORK);
    for (let i = 0; i < 6; i++) expect(Math.abs(res.s[i]! - s[i]!) / s[i]!).toBeLessThan(1e-4);
    expect(res.s[6]).toBeLessThan(1e-4);
    expectShapeAndOrthonormal(res, n, n, k, 1e-4);
    // the fallback keeps each V column opposite its U column (it once put them in pivot order: U·S·Vᵀ was wrong)
    const top = (x: Float32Array, rows: number): Float32Array => {
      const out = new Float32Array(rows * 6);
      for (let i = 0; i < rows; i++) out.set(x.subarray(i * k, i * k + 6), i * 6);
      return out;
    };
    expect(relativeReconstructionError(a, n, n, top(res.u, n), res.s.slice(0, 6), top(res.v, n))).toBeLessThan(1e-4);
  }, 60_000);
});

function multiplyF64(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  return refMatMul(a, b, m, k, n);
}

function gram(y: ArrayLike<number>, m: number, l: number): Float64Array {
  return refMatMul(y, y, l, m, l, true);
}
