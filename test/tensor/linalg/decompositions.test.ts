import { describe, expect, it } from 'vitest';
import { jsMatMul } from '../../../src/tensor/linalg/backend.js';
import { identity, multiply, orthonormalityError, transpose, type Matrix } from '../../../src/tensor/linalg/matrix.js';
import { choleskyLower, householderQr, invertLower, choleskyInverseBlocked, orthonormalizeColumns } from '../../../src/tensor/linalg/qr.js';
import { jacobiSvd, symmetricEigen } from '../../../src/tensor/linalg/svd.js';
import { gaussian, maxAbsDiff, relativeReconstructionError, withSpectrum } from './helpers.js';

const SHAPES: [number, number][] = [
  [0, 0],
  [0, 3],
  [4, 0],
  [1, 1],
  [1, 9],
  [9, 1],
  [6, 6],
  [40, 7],
  [7, 40],
  [50, 45],
];

describe('householderQr', () => {
  for (const [m, n] of SHAPES) {
    it(`${m}x${n}: QR = A, QᵀQ = I, R upper with diag >= 0`, () => {
      const a = gaussian(m, n, m * 100 + n);
      const { q, r } = householderQr(a);
      const p = Math.min(m, n);
      expect([q.rows, q.cols, r.rows, r.cols]).toEqual([m, p, p, n]);
      expect(orthonormalityError(q.data, m, p)).toBeLessThan(1e-13);
      expect(maxAbsDiff(multiply(q, r).data, a.data)).toBeLessThan(1e-12);
      for (let i = 0; i < p; i++) {
        expect(r.data[i * n + i]).toBeGreaterThanOrEqual(0);
        for (let j = 0; j < Math.min(i, n); j++) expect(r.data[i * n + j]).toBe(0);
      }
    });
  }

  it('rank-deficient input still gives orthonormal Q', () => {
    const a = withSpectrum(20, 8, [3, 1, 0, 0, 0, 0, 0, 0].slice(0, 2), 5);
    const { q, r } = householderQr(a);
    expect(orthonormalityError(q.data, 20, 8)).toBeLessThan(1e-13);
    expect(maxAbsDiff(multiply(q, r).data, a.data)).toBeLessThan(1e-12);
  });
});

describe('orthonormalizeColumns (CholeskyQR via a backend)', () => {
  it('well-conditioned tall Y: orthonormal, same column space', async () => {
    const y = Float32Array.from(gaussian(300, 20, 1).data);
    const q = await orthonormalizeColumns(y, 300, 20, jsMatMul);
    expect(orthonormalityError(q, 300, 20)).toBeLessThan(1e-4);
    // projecting Y onto span(Q) leaves Y unchanged: ‖Y − Q QᵀY‖ small
    const qty = await jsMatMul.matmul(q, y, 20, 300, 20, { transA: true });
    const proj = await jsMatMul.matmul(q, qty, 300, 20, 20);
    expect(maxAbsDiff(proj, y)).toBeLessThan(1e-4);
  });

  it('ill-conditioned Y (cond 1e6) takes the shifted path and stays orthonormal', async () => {
    const s = Array.from({ length: 16 }, (_, i) => 10 ** (-6 * i / 15));
    const y = Float32Array.from(withSpectrum(200, 16, s, 3).data);
    const q = await orthonormalizeColumns(y, 200, 16, jsMatMul);
    expect(orthonormalityError(q, 200, 16)).toBeLessThan(1e-4);
  });

  it('rank-deficient Y (zero columns) falls back to Householder', async () => {
    const y = Float32Array.from(gaussian(50, 6, 4).data);
    for (let i = 0; i < 50; i++) y[i * 6 + 2] = 0;
    const q = await orthonormalizeColumns(y, 50, 6, jsMatMul);
    expect(orthonormalityError(q, 50, 6)).toBeLessThan(1e-5);
  });

  it('0-size and argument errors', async () => {
    expect((await orthonormalizeColumns(new Float32Array(0), 5, 0, jsMatMul)).length).toBe(0);
    await expect(orthonormalizeColumns(new Float32Array(6), 2, 3, jsMatMul)).rejects.toThrow(/l must be <= m/);
  });
});

function expectSvd(a: Matrix, tol: number): ReturnType<typeof jacobiSvd> {
  const res = jacobiSvd(a);
  const { rows: m, cols: n } = a;
  const r = Math.min(m, n);
  expect([res.u.rows, res.u.cols, res.v.rows, res.v.cols, res.s.length]).toEqual([m, r, n, r, r]);
  expect(orthonormalityError(res.u.data, m, r)).toBeLessThan(tol);
  expect(orthonormalityError(res.v.data, n, r)).toBeLessThan(tol);
  for (let i = 1; i < r; i++) expect(res.s[i]).toBeLessThanOrEqual(res.s[i - 1]!);
  if (m * n > 0) expect(relativeReconstructionError(a.data, m, n, res.u.data, res.s, res.v.data)).toBeLessThan(tol);
  return res;
}

describe('jacobiSvd', () => {
  for (const [m, n] of SHAPES) it(`${m}x${n} Gaussian`, () => void expectSvd(gaussian(m, n, m + 7 * n), 1e-12));

  it('recovers a chosen spectrum (tall, wide, square)', () => {
    const s = [10, 5, 2, 1, 0.5, 1e-3, 1e-6];
    for (const [m, n] of [[30, 7], [7, 30], [7, 7], [60, 12]] as const) {
      const res = expectSvd(withSpectrum(m, n, s, m * n), 1e-12);
      for (let i = 0; i < s.length; i++) expect(Math.abs(res.s[i]! - s[i]!)).toBeLessThan(1e-12 * s[0]!);
      for (let i = s.length; i < Math.min(m, n); i++) expect(res.s[i]).toBeLessThan(1e-12);
    }
  });

  it('rank-deficient and zero matrices: zero singular values, orthonormal completed vectors', () => {
    const res = expectSvd(withSpectrum(12, 9, [4, 2, 1], 2), 1e-12);
    expect(res.s[2]).toBeCloseTo(1, 12);
    expect(res.s[3]).toBeLessThan(1e-13);
    const z = expectSvd({ rows: 4, cols: 3, data: new Float64Array(12) }, 1e-12);
    expect([...z.s]).toEqual([0, 0, 0]);
  });

  it('square matrices of low rank complete almost every singular vector (128² of rank 27, 64² of rank 60)', () => {
    // a greedy completion from unit vectors with a fixed acceptance threshold ran out of candidates here
    for (const [n, r] of [[128, 27], [64, 60], [40, 1]] as const) {
      const res = expectSvd(withSpectrum(n, n, Array.from({ length: r }, (_, i) => 1 + i), 3), 1e-10);
      expect(res.s[r]).toBeLessThan(1e-12 * r);
    }
  });

  it('is deterministic in sign: the largest |entry| of each U column is positive', () => {
    const a = gaussian(9, 6, 11);
    const res = jacobiSvd(a);
    for (let j = 0; j < 6; j++) {
      let best = 0;
      for (let i = 0; i < 9; i++) if (Math.abs(res.u.data[i * 6 + j]!) > Math.abs(best)) best = res.u.data[i * 6 + j]!;
      expect(best).toBeGreaterThan(0);
    }
    const neg = { ...a, data: a.data.map((x) => -x) };
    const r2 = jacobiSvd(neg);
    expect(maxAbsDiff(r2.u.data, res.u.data)).toBeLessThan(1e-12); // -A = U S (-V)ᵀ
    expect(maxAbsDiff(r2.v.data, res.v.data.map((x) => -x))).toBeLessThan(1e-12);
  });
});

describe('choleskyInverseBlocked', () => {
  for (const n of [0, 1, 128, 129, 300]) {
    it(`n=${n}: L⁻¹ of chol(G) to f32 rounding (exactly the JS result up to 128), X·G·Xᵀ = I`, async () => {
      const b = gaussian(n, n + 5, 11 + n);
      const g = multiply(b, transpose(b)).data;
      const x = (await choleskyInverseBlocked(g, n, jsMatMul))!;
      expect(x.length).toBe(n * n);
      const ref = invertLower(choleskyLower(g, n)!, n);
      if (n <= 128) expect([...x]).toEqual([...Float32Array.from(ref)]);
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      expect(maxAbsDiff(x, ref)).toBeLessThan(1e-4 * Math.max(1, scale));
      for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) expect(x[i * n + j]).toBe(0);
      const xm = { rows: n, cols: n, data: Float64Array.from(x) };
      const xgxt = multiply(multiply(xm, { rows: n, cols: n, data: g }), transpose(xm));
      expect(maxAbsDiff(xgxt.data, identity(n).data)).toBeLessThan(1e-3);
    });
  }

  it('undefined for an indefinite matrix, also when the failure is in a Schur complement', async () => {
    for (const n of [5, 300]) {
      const b = gaussian(n, n + 5, 3);
      const g = multiply(b, transpose(b)).data;
      g[(n - 1) * n + n - 1] = -1;
      expect(await choleskyInverseBlocked(g, n, jsMatMul)).toBeUndefined();
    }
  });
});

describe('symmetricEigen', () => {
  for (const n of [0, 1, 2, 5, 40, 97, 300]) {
    it(`n=${n}: A V = V Λ, VᵀV = I, descending`, () => {
      const g = gaussian(n, n, n + 1);
      const a = multiply(g, transpose(g));
      for (let i = 0; i < n; i++) a.data[i * n + i] -= n; // indefinite
      const { values, vectors } = symmetricEigen(a);
      expect(orthonormalityError(vectors.data, n, n)).toBeLessThan(1e-12);
      for (let i = 1; i < n; i++) expect(values[i]).toBeLessThanOrEqual(values[i - 1]!);
      const av = multiply(a, vectors);
      const vl = vectors.data.map((x, idx) => x * values[idx % n]!);
      expect(maxAbsDiff(av.data, vl)).toBeLessThan(1e-10 * Math.max(1, n));
    });
  }

  it('repeated eigenvalues (identity, diagonal)', () => {
    const { values, vectors } = symmetricEigen(identity(6));
    expect([...values]).toEqual([1, 1, 1, 1, 1, 1]);
    expect(orthonormalityError(vectors.data, 6, 6)).toBeLessThan(1e-15);
    const d = { rows: 3, cols: 3, data: Float64Array.from([1, 0, 0, 0, 3, 0, 0, 0, 2]) };
    expect([...symmetricEigen(d).values]).toEqual([3, 2, 1]);
    expect(() => symmetricEigen({ rows: 2, cols: 3, data: new Float64Array(6) })).toThrow(/square/);
  });
});
