// Shared f64 references of the SVD merge tests: the textbook polar factor. Test helper; imports src/tensor only.

import { fromArray } from '../../src/tensor/linalg/matrix.js';
import { jacobiSvd } from '../../src/tensor/linalg/svd.js';

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
