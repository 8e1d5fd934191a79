// Orthogonal polar factor by matrix products only (scaled Newton–Schulz), for matrices too big for the JS
// eigensolver behind `polarFactor`: every O(m·c²) step goes through a MatMulBackend, JS work is O(c²) per iteration.
// Also the exact f64 polar factor of small matrices (Jacobi SVD). Pure: no node: imports, no onnxruntime.

import { transposeF32, type MatMulBackend } from './backend.js';
import { assertDim, assertLength, fromArray } from './matrix.js';
import { jacobiSvd } from './svd.js';

/** Options of `polarNewtonSchulz`. */
export interface NewtonSchulzOptions {
  /**
   * Stop when ‖X_{i+1} − X_i‖_F ≤ tolerance·‖X_{i+1}‖_F once the scaled phase is over. In the plain phase
   * X_{i+1} − X_i = ½·X(I − XᵀX), so this measures how far X is from a partial isometry (X·XᵀX = X). Unlike
   * ‖XᵀX − I‖ it also converges for rank-deficient inputs. Default 2e-6 (near the f32 noise floor).
   */
  tolerance?: number;
  /** Most iterations. Default 40. */
  maxIterations?: number;
  /**
   * Assumed lower bound ℓ on σ_min/σ_max for the scaled phase (Chen & Chow 2014): smaller singular values still
   * converge, in more plain iterations. Default 1e-3.
   */
  lowerBound?: number;
}

/** The polar factor (same shape as the input) and how it was reached. */
export interface NewtonSchulzResult {
  p: Float32Array;
  iterations: number;
  /** last ‖X_{i+1} − X_i‖_F / ‖X_{i+1}‖_F */
  residual: number;
  /** the estimate of σ_max used to scale the input */
  sigmaMax: number;
}

/** How far above the estimate σ̂ the true σ_max may lie without breaking the first scaled step. */
const FIRST_STEP_SLACK = 1.25;

/** λ_max of a symmetric c x c f32 matrix by 40 power iterations in f64 from a fixed start (an estimate from below). */
function powerLambdaMax(g: Float32Array, c: number): number {
  let v = new Float64Array(c);
  for (let i = 0; i < c; i++) v[i] = 1 + ((i * 0.6180339887) % 1); // fixed, not orthogonal to a positive vector
  let lambda = 0;
  const w = new Float64Array(c);
  for (let it = 0; it < 40; it++) {
    let norm = 0;
    for (let i = 0; i < c; i++) norm += v[i]! * v[i]!;
    norm = Math.sqrt(norm);
    if (norm === 0) return 0;
    for (let i = 0; i < c; i++) v[i] = v[i]! / norm;
    w.fill(0);
    for (let i = 0; i < c; i++) {
      const row = i * c;
      let s = 0;
      for (let j = 0; j < c; j++) s += g[row + j]! * v[j]!;
      w[i] = s;
    }
    let dot = 0;
    for (let i = 0; i < c; i++) dot += w[i]! * v[i]!;
    lambda = dot;
    const t = v;
    v = Float64Array.from(w);
    t.fill(0);
  }
  return Math.max(0, lambda);
}

/**
 * P ≈ U·Wᵀ from A = U·diag(σ)·Wᵀ (the orthogonal polar factor, Procrustes) of a row-major f32 m x c matrix, by the
 * scaled Newton–Schulz iteration X ← X·(a·I + b·XᵀX) on the backend. X_0 = A/σ̂ with σ̂ ≥ σ_max from a power
 * estimate on AᵀA (×1.02; the first step tolerates σ_max up to 1.25·σ̂, the iteration converges for every σ/σ̂ < √3). While the lower bound ℓ < 1 the
 * step is Chen & Chow's scaled cubic (α² = 3/(1+ℓ+ℓ²), a = 1.5α, b = −0.5α³, which maps [ℓ, 1] into [ℓ', 1] with
 * ℓ' ≈ 2.6ℓ for small ℓ), then plain Newton–Schulz (a = 1.5, b = −0.5), quadratically convergent near 1. Per
 * iteration two products of m·c² multiply-adds. For m < c the factor is computed on Aᵀ (orthonormal rows).
 * Exactly zero columns stay exactly zero. Singular values that are zero in exact arithmetic but carry f32
 * rounding noise grow like tiny genuine ones: for a rank-deficient input the result is a partial isometry only up
 * to that noise (the polar factor of a singular matrix is not unique anyway).
 */
export async function polarNewtonSchulz(a: Float32Array, m: number, c: number, backend: MatMulBackend, options: NewtonSchulzOptions = {}): Promise<NewtonSchulzResult> {
  assertDim('m', m);
  assertDim('c', c);
  assertLength('a (m x c)', a, m, c);
  if (m < c) {
    const t = await polarNewtonSchulz(transposeF32(a, m, c), c, m, backend, options);
    return { ...t, p: transposeF32(t.p, c, m) };
  }
  const tol = options.tolerance ?? 2e-6;
  const maxIt = options.maxIterations ?? 40;
  let ell = options.lowerBound ?? 1e-3;
  if (!(tol > 0)) throw new RangeError(`tolerance: expected a positive number, got ${tol}`);
  if (!(ell > 0 && ell <= 1)) throw new RangeError(`lowerBound: expected a number in (0, 1], got ${ell}`);
  if (m === 0 || c === 0) return { p: new Float32Array(m * c), iterations: 0, residual: 0, sigmaMax: 0 };
  let g = await backend.matmul(a, a, c, m, c, { transA: true });
  const lambda = powerLambdaMax(g, c);
  if (!(lambda > 0)) return { p: new Float32Array(m * c), iterations: 0, residual: 0, sigmaMax: 0 };
  const sigmaMax = Math.sqrt(lambda) * 1.02;
  const inv = 1 / sigmaMax;
  let x: Float32Array = new Float32Array(m * c);
  for (let i = 0; i < x.length; i++) x[i] = a[i]! * inv;
  for (let i = 0; i < g.length; i++) g[i] = g[i]! * inv * inv;
  const mcoef = new Float32Array(c * c);
  let residual = Infinity;
  let it = 0;
  let plain = 0;
  while (it < maxIt) {
    let ca: number;
    let cb: number;
    const scaled = ell < 1 - 1e-3;
    if (scaled) {
      // the first step must also keep σ up to FIRST_STEP_SLACK·σ̂ positive (ασ < √3): the power estimate is only a
      // lower bound on σ_max; from then on every σ is in (0, 1] (p has its maximum 1 at ασ = 1)
      let alpha = Math.sqrt(3 / (1 + ell + ell * ell));
      if (it === 0) alpha = Math.min(alpha, Math.sqrt(3) / FIRST_STEP_SLACK);
      ca = 1.5 * alpha;
      cb = -0.5 * alpha * alpha * alpha;
      ell = Math.min(1, 0.5 * alpha * ell * (3 - alpha * alpha * ell * ell));
    } else {
      ca = 1.5;
      cb = -0.5;
      plain++;
    }
    for (let i = 0; i < c; i++) {
      const row = i * c;
      for (let j = 0; j < c; j++) mcoef[row + j] = cb * 0.5 * (g[row + j]! + g[j * c + i]!);
      mcoef[row + i] = mcoef[row + i]! + ca;
    }
    const next = await backend.matmul(x, mcoef, m, c, c);
    it++;
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < next.length; i++) {
      const d = next[i]! - x[i]!;
      diff += d * d;
      norm += next[i]! * next[i]!;
    }
    x = next;
    const prev = residual;
    residual = norm > 0 ? Math.sqrt(diff / norm) : 0;
    // converged, or stuck at the rounding-noise floor (small and no longer decreasing); a large residual that grows
    // is a small singular value still on its way up, not noise
    if (!scaled && (residual <= tol || (plain > 2 && residual < 100 * tol && residual >= prev))) break;
    g = await backend.matmul(x, x, c, m, c, { transA: true });
  }
  return { p: x, iterations: it, residual, sigmaMax };
}

/**
 * Exact polar factor in f64 of a small row-major m x c matrix (Jacobi SVD A = U·diag(σ)·Wᵀ): P = Σ u_j·w_jᵀ over the
 * singular values σ_j > relTol·σ_max (default 1e-9), i.e. the partial isometry on A's numerical range: directions
 * with σ ≈ 0 have arbitrary singular vectors and are left out. Also returns every singular value (descending).
 */
export function polarExact(a: ArrayLike<number>, m: number, c: number, relTol = 1e-9): { p: Float64Array; s: Float64Array } {
  assertDim('m', m);
  assertDim('c', c);
  assertLength('a (m x c)', a, m, c);
  const p = new Float64Array(m * c);
  if (m === 0 || c === 0) return { p, s: new Float64Array(0) };
  const svd = jacobiSvd(fromArray(a, m, c));
  const r = svd.s.length;
  const cut = (svd.s[0] ?? 0) * relTol;
  const u = svd.u.data;
  const w = svd.v.data;
  for (let j = 0; j < r; j++) {
    if (!(svd.s[j]! > cut)) break;
    for (let i = 0; i < m; i++) {
      const uij = u[i * r + j]!;
      if (uij === 0) continue;
      const row = i * c;
      for (let l = 0; l < c; l++) p[row + l] = p[row + l]! + uij * w[l * r + j]!;
    }
  }
  return { p, s: svd.s };
}
