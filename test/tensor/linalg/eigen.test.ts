// symmetricEigenF32 (tridiagonalisation + inverse iteration + blocked WY back-transformation) against the f64
// tred2/tql2 oracle and on the hard cases of inverse iteration: repeated, clustered, zero and negative eigenvalues,
// split tridiagonals, sizes around the WY block.

import { describe, expect, it } from 'vitest';
import { jsMatMul } from '../../../src/tensor/linalg/backend.js';
import { symmetricEigenF32 } from '../../../src/tensor/linalg/eigen.js';
import { identity, multiply, orthonormalityError, transpose, type Matrix } from '../../../src/tensor/linalg/matrix.js';
import { symmetricEigen } from '../../../src/tensor/linalg/svd.js';
import { gaussian, randomOrthonormal } from './helpers.js';

/** Q diag(lambda) Qᵀ with a random orthogonal Q. */
function withEigenvalues(lambda: readonly number[], seed: number): Matrix {
  const n = lambda.length;
  const q = randomOrthonormal(n, n, seed);
  const ql = { rows: n, cols: n, data: q.data.map((x, i) => x * lambda[i % n]!) };
  return multiply(ql, transpose(q));
}

/** max_r ‖A v_r − λ_r v_r‖ / ‖A‖_max-ish scale, A ≈ V Λ Vᵀ check in f64. */
function worstResidual(a: Matrix, values: Float64Array, v: Float32Array): number {
  const n = a.rows;
  let scale = 0;
  for (const x of values) scale = Math.max(scale, Math.abs(x));
  let worst = 0;
  for (let r = 0; r < n; r++) {
    let res = 0;
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a.data[i * n + j]! * v[j * n + r]!;
      res += (s - values[r]! * v[i * n + r]!) ** 2;
    }
    worst = Math.max(worst, Math.sqrt(res));
  }
  return scale > 0 ? worst / scale : worst;
}

async function check(a: Matrix, tol = 2e-6): Promise<{ values: Float64Array; vectors: Float32Array }> {
  const n = a.rows;
  const got = await symmetricEigenF32(a.data, n, jsMatMul);
  const ref = symmetricEigen(a);
  let scale = 0;
  for (const x of ref.values) scale = Math.max(scale, Math.abs(x));
  for (let i = 0; i < n; i++) expect(Math.abs(got.values[i]! - ref.values[i]!)).toBeLessThanOrEqual(1e-12 * Math.max(scale, 1e-300));
  for (let i = 1; i < n; i++) expect(got.values[i]).toBeLessThanOrEqual(got.values[i - 1]!);
  expect(orthonormalityError(got.vectors, n, n)).toBeLessThan(tol);
  expect(worstResidual(a, got.values, got.vectors)).toBeLessThan(tol);
  return got;
}

describe('symmetricEigenF32', () => {
  for (const n of [0, 1, 2, 3, 17, 64, 65, 66, 130, 200]) {
    it(`n=${n}: an indefinite matrix matches the f64 oracle (values, residuals, orthonormality)`, async () => {
      const g = gaussian(n, n, n + 11);
      const a = multiply(g, transpose(g));
      for (let i = 0; i < n; i++) a.data[i * n + i] -= n;
      await check(a);
    });
  }

  it('a geometric spectrum (the randomized SVD core): eigenvectors agree with the oracle column by column', async () => {
    const n = 150;
    const a = withEigenvalues(Array.from({ length: n }, (_, i) => 0.95 ** i), 5);
    const got = await check(a);
    const ref = symmetricEigen(a);
    for (let r = 0; r < n; r++) {
      let dot = 0;
      for (let i = 0; i < n; i++) dot += got.vectors[i * n + r]! * ref.vectors.data[i * n + r]!;
      expect(dot).toBeGreaterThan(1 - 1e-6); // same signs too (largest entry positive)
    }
  });

  it('repeated and clustered eigenvalues, zero and negative ones', async () => {
    await check(withEigenvalues([5, 5, 5, 2, 2, 0, 0, 0, 0, -1, -1, -3], 7));
    await check(withEigenvalues([1, 1 + 1e-12, 1 + 2e-12, 1 + 1e-9, 0.5, 0.5 + 1e-14, 1e-8, 0], 8));
    // rank 3 of 40: 37 zero eigenvalues (a Gram matrix of a wide sketch)
    const b = gaussian(40, 3, 9);
    await check(multiply(b, transpose(b)));
  });

  it('identity, zero, diagonal and block-diagonal matrices (the tridiagonal splits into blocks)', async () => {
    const id = await check(identity(9));
    expect([...id.values]).toEqual(Array(9).fill(1));
    const z = await check({ rows: 5, cols: 5, data: new Float64Array(25) });
    expect([...z.values]).toEqual([0, 0, 0, 0, 0]);
    const d = await check({ rows: 4, cols: 4, data: Float64Array.from([2, 0, 0, 0, 0, -1, 0, 0, 0, 0, 7, 0, 0, 0, 0, 2]) });
    expect([...d.values]).toEqual([7, 2, 2, -1]);
    const blk = new Float64Array(36);
    for (const o of [0, 3]) for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) blk[(o + i) * 6 + o + j] = i === j ? 2 : 1;
    await check({ rows: 6, cols: 6, data: blk });
  });

  it('the Wilkinson matrix W21+ (pairs of eigenvalues equal to 1e-14)', async () => {
    const n = 21;
    const w = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      w[i * n + i] = Math.abs(10 - i);
      if (i + 1 < n) w[i * n + i + 1] = w[(i + 1) * n + i] = 1;
    }
    await check({ rows: n, cols: n, data: w });
  });

  it('is deterministic and rejects bad arguments', async () => {
    const g = gaussian(30, 30, 3);
    const a = multiply(g, transpose(g));
    const x = await symmetricEigenF32(a.data, 30);
    const y = await symmetricEigenF32(a.data, 30);
    expect(Buffer.from(x.vectors.buffer).equals(Buffer.from(y.vectors.buffer))).toBe(true);
    await expect(symmetricEigenF32(new Float64Array(5), 2)).rejects.toThrow(RangeError);
  });
});
