// Orthogonal polar factor: the matrix with orthonormal columns nearest to A in Frobenius norm (Procrustes), as used by
// TSV-M to orthogonalise concatenated singular vectors. Big products through a MatMulBackend; JS work is an r x r
// symmetric eigenproblem. Pure: no node: imports, no onnxruntime.

import { symmetricGramF64, transposeF32, type MatMulBackend } from './backend.js';
import { assertDim, assertLength } from './matrix.js';
import { orthonormalizeColumns } from './qr.js';
import { symmetricEigen } from './svd.js';

/** The polar factor P (same shape as A) and the singular values of A (descending). */
export interface PolarResult {
  p: Float32Array;
  singularValues: Float64Array;
}

/**
 * P = U·Wᵀ from A = U·diag(σ)·Wᵀ, the orthogonal polar factor of a row-major f32 m x r matrix. For m >= r, P has
 * orthonormal columns and PᵀA = W·diag(σ)·Wᵀ is symmetric positive semidefinite; for m < r the factor is computed on
 * Aᵀ and P has orthonormal rows. Method: G = AᵀA (backend), eigen of G in JS f64 (about 9·r³ flops: ~1 s at r = 512,
 * ~8 s at r = 1024, minutes at r = 4096), U = A·W·diag(1/σ) re-orthonormalised by CholeskyQR (cleans up directions
 * with σ below ~1e-3·σ_max that the f32 Gram cannot resolve; zero directions are completed arbitrarily), P = U·Wᵀ.
 * Backend work 3 to 6 products of m·r² multiply-adds.
 */
export async function polarFactor(a: Float32Array, m: number, r: number, backend: MatMulBackend): Promise<PolarResult> {
  assertDim('m', m);
  assertDim('r', r);
  assertLength('a (m x r)', a, m, r);
  if (m < r) {
    const t = await polarFactor(transposeF32(a, m, r), r, m, backend);
    return { p: transposeF32(t.p, r, m), singularValues: t.singularValues };
  }
  if (r === 0) return { p: new Float32Array(0), singularValues: new Float64Array(0) };
  const g = await symmetricGramF64(a, m, r, backend);
  const eig = symmetricEigen({ rows: r, cols: r, data: g });
  const sigma = new Float64Array(r);
  for (let j = 0; j < r; j++) sigma[j] = Math.sqrt(Math.max(0, eig.values[j]!));
  const floor = sigma[0]! * 1e-6;
  const wScaled = new Float32Array(r * r);
  const w = new Float32Array(r * r);
  for (let i = 0; i < r * r; i++) {
    const j = i % r;
    w[i] = eig.vectors.data[i]!;
    wScaled[i] = sigma[j]! > floor ? eig.vectors.data[i]! / sigma[j]! : 0;
  }
  const u = await orthonormalizeColumns(await backend.matmul(a, wScaled, m, r, r), m, r, backend);
  const p = await backend.matmul(u, w, m, r, r, { transB: true });
  return { p, singularValues: sigma };
}
