// Shared helpers of the SVD merge tests: the textbook polar factor, seeded inputs, differences. Test helper; imports src/tensor only.

import { fromArray } from '../../src/tensor/linalg/matrix.js';
import { jacobiSvd } from '../../src/tensor/linalg/svd.js';
import { SeededRandom } from '../../src/tensor/rng.js';

/** The textbook polar factor P·Qᵀ of an m x c matrix (m >= c, full column rank) from its Jacobi SVD. */
export function refPolar(a: Float64Array, m: number, c: number): Float64Array {
  const svd = jacobiSvd(fromArray(a, m, c));
  const out = new Float64Array(m * c);
  for (let i = 0; i < m; i++) for (let j = 0; j < c; j++) {
    let s = 0;
    for (let l = 0; l < c; l++) s += svd.u.data[i * c + l]! * svd.v.data[j * c + l]!;
    out[i * c + j] = s;
  }
  return out;
}

/** n seeded normal values times scale, as f32 */
export function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = new SeededRandom(seed);
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

export function add(a: Float32Array, b: Float32Array): Float32Array {
  return Float32Array.from(a, (x, i) => x + b[i]!);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

export function maxAbs(a: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]!));
  return d;
}
