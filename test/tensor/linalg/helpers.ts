// Test helper for linalg: seeded Gaussian matrices, random orthonormal bases (QR of Gaussians) and matrices with a
// chosen spectrum, plus f64 reference products. Never the unseeded random.

import { SeededRandom } from '../../../src/tensor/rng.js';
import { householderQr } from '../../../src/tensor/linalg/qr.js';
import type { Matrix } from '../../../src/tensor/linalg/matrix.js';

export function gaussian(rows: number, cols: number, seed: number): Matrix {
  const rng = new SeededRandom(seed);
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return { rows, cols, data };
}

/** rows x cols (cols <= rows) with orthonormal columns. */
export function randomOrthonormal(rows: number, cols: number, seed: number): Matrix {
  return householderQr(gaussian(rows, cols, seed)).q;
}

/** U diag(s) Vᵀ with random orthonormal U (m x r), V (n x r), r = s.length. */
export function withSpectrum(m: number, n: number, s: readonly number[], seed: number): Matrix {
  const r = s.length;
  const u = randomOrthonormal(m, r, seed);
  const v = randomOrthonormal(n, r, seed + 1);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < r; t++) {
      const f = u.data[i * r + t]! * s[t]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += f * v.data[j * r + t]!;
    }
  }
  return { rows: m, cols: n, data: out };
}

/** Reference C = op(A) op(B) in f64 (naive triple loop). */
export function refMatMul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number, transA = false, transB = false): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += (transA ? a[p * m + i]! : a[i * k + p]!) * (transB ? b[j * k + p]! : b[p * n + j]!);
      c[i * n + j] = s;
    }
  }
  return c;
}

/** ‖A − U diag(s) Vᵀ‖_F / ‖A‖_F for row-major U (m x r), V (n x r). */
export function relativeReconstructionError(a: ArrayLike<number>, m: number, n: number, u: ArrayLike<number>, s: ArrayLike<number>, v: ArrayLike<number>): number {
  const r = s.length;
  let num = 0;
  let den = 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let x = 0;
      for (let t = 0; t < r; t++) x += u[i * r + t]! * s[t]! * v[j * r + t]!;
      const aij = a[i * n + j]!;
      num += (aij - x) ** 2;
      den += aij * aij;
    }
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} vs ${b.length}`);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}
