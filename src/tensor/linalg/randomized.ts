// Truncated SVD of big f32 matrices: randomized range finder (Halko, Martinsson & Tropp 2011, algorithms 4.4 + 5.1)
// with every m·n-sized product through a MatMulBackend, and the exact Jacobi SVD for small inputs. Deterministic for
// a given seed (the repo's SeededRandom; never the unseeded random). Pure: no node: imports, no onnxruntime.

import { jsMatMul, ScratchF32, symmetricGramF64, type MatMulBackend } from './backend.js';
import { assertDim, assertLength, fromArray } from './matrix.js';
import { orthonormalizeColumns, pivotedCholeskyColumns } from './qr.js';
import { symmetricEigenF32 } from './eigen.js';
import { jacobiSvd } from './svd.js';
import { SeededRandom } from '../rng.js';

/**
 * The top-k singular triplets of an m x n matrix: A ≈ U·diag(s)·Vᵀ with U (m x k) and V (n x k) row-major f32 with
 * orthonormal columns (to about 1e-5), s descending f64.
 */
export interface TruncatedSvd {
  m: number;
  n: number;
  k: number;
  u: Float32Array;
  s: Float64Array;
  v: Float32Array;
}

/** Options of `randomizedSvd`. */
export interface RandomizedSvdOptions {
  /** Where the big products run: jsMatMul (slow) or the ORT backend (src/eval/ort-matmul.ts). */
  backend: MatMulBackend;
  /** Seed of the Gaussian test matrix. Default 0. */
  seed?: number;
  /** Extra sketch columns p (sketch width l = min(k + p, m, n)). Default 10. */
  oversampling?: number;
  /** Subspace (power) iterations q, each re-orthonormalised. Default 2. */
  powerIterations?: number;
  /**
   * How the l x n core B = QᵀA is decomposed: 'jacobi' (Householder QR + one-sided Jacobi on Bᵀ in JS f64: exact, cost
   * about 4·n·l² + 30·l³ flops in JS), 'gram' (eigen of B·Bᵀ from the backend, then V = BᵀW/σ re-orthonormalised:
   * l³ work in JS ~9·l³, accuracy of σ_i about 1e-7·σ_1²/σ_i), or 'auto' (default: jacobi when l <= 96).
   */
  core?: 'jacobi' | 'gram' | 'auto';
}

/** Options of `truncatedSvd`. */
export interface TruncatedSvdOptions extends Partial<RandomizedSvdOptions> {
  /** 'exact' (Jacobi in JS f64), 'randomized', or 'auto' (default: exact when min(m, n) <= exactMaxDim). */
  method?: 'exact' | 'randomized' | 'auto';
  /** Largest min(m, n) that 'auto' solves exactly. Default 256 (about 0.5 s in JS). */
  exactMaxDim?: number;
}

/** Default of `TruncatedSvdOptions.exactMaxDim`. */
export const EXACT_MAX_DIM = 256;
const JACOBI_CORE_MAX = 96;

function checkArgs(a: Float32Array, m: number, n: number, k: number): void {
  assertDim('m', m);
  assertDim('n', n);
  assertDim('k', k);
  assertLength('a (m x n)', a, m, n);
  if (k > Math.min(m, n)) throw new RangeError(`k: expected at most min(m, n) = ${Math.min(m, n)}, got ${k}`);
}

function empty(m: number, n: number): TruncatedSvd {
  return { m, n, k: 0, u: new Float32Array(0), s: new Float64Array(0), v: new Float32Array(0) };
}

/** Columns [0, k) of a row-major rows x cols f64 array, as f32. */
function leadingColumns(src: ArrayLike<number>, rows: number, cols: number, k: number): Float32Array {
  const out = new Float32Array(rows * k);
  for (let i = 0; i < rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = src[i * cols + j]!;
  return out;
}

/**
 * Work rows·cols² from which a basis that CholeskyQR cannot orthonormalise (a rank-deficient sketch: A of rank
 * below the sketch width, as for low-rank task vectors) goes to `lowRankOrthonormalBasis` instead of Householder QR
 * in JS (4·rows·cols² flops: about 27 s for a 4096 x 1280 basis).
 */
export const LOW_RANK_FALLBACK_MIN_WORK = 5e7;

/** Residual² (relative to the largest column's squared norm) below which a sketch column counts as dependent. */
const PIVOT_TOLERANCE = 1e-9;

/**
 * m x l orthonormal columns spanning the column space of a rank-deficient tall Y: the columns chosen by pivoted
 * Cholesky of YᵀY (the well-conditioned ones, until the rest are dependent to PIVOT_TOLERANCE) orthonormalised by
 * CholeskyQR, then seeded Gaussian directions with those projected out (twice) for the remaining columns. Products
 * through the backend; JS work O(l²·r) for rank r.
 */
export async function lowRankOrthonormalBasis(y: Float32Array, m: number, l: number, backend: MatMulBackend, seed: number): Promise<Float32Array> {
  assertLength('y', y, m, l);
  const g = await symmetricGramF64(y, m, l, backend);
  const cols = pivotedCholeskyColumns(g, l, PIVOT_TOLERANCE);
  const r = cols.length;
  let q1: Float32Array = new Float32Array(0);
  if (r > 0) {
    const sel = new Float32Array(m * r);
    for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) sel[i * r + j] = y[i * l + cols[j]!]!;
    q1 = await orthonormalizeColumns(sel, m, r, backend);
  }
  const c = l - r;
  const out = new Float32Array(m * l);
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) out[i * l + j] = q1[i * r + j]!;
  if (c === 0) return out;
  const z = new Float32Array(m * c);
  new SeededRandom(seed).fillNormal(z);
  if (r > 0) {
    for (let pass = 0; pass < 2; pass++) {
      const proj = await backend.matmul(q1, z, r, m, c, { transA: true });
      const back = await backend.matmul(q1, proj, m, r, c);
      for (let i = 0; i < z.length; i++) z[i] = z[i]! - back[i]!;
    }
  }
  const q2 = await orthonormalizeColumns(z, m, c, backend);
  for (let i = 0; i < m; i++) for (let j = 0; j < c; j++) out[i * l + r + j] = q2[i * c + j]!;
  return out;
}

/**
 * Top-k SVD by the randomized range finder: Y = AΩ with Gaussian Ω (n x l), Q = orth(Y); q times Q ← orth(A·orth(AᵀQ));
 * then the SVD of the small B = QᵀA. Products through `backend`: (2q + 2)·m·n·l multiply-adds plus m·l² per
 * orthonormalisation; JS work is O(l³). Error (Halko 10.4): near the best rank-k error when the spectrum decays;
 * with q = 2 the top singular values are typically accurate to 1e-3 relative on decaying spectra, less on flat ones.
 */
export async function randomizedSvd(a: Float32Array, m: number, n: number, k: number, options: RandomizedSvdOptions): Promise<TruncatedSvd> {
  checkArgs(a, m, n, k);
  const p = options.oversampling ?? 10;
  const q = options.powerIterations ?? 2;
  assertDim('oversampling', p);
  assertDim('powerIterations', q);
  if (k === 0) return empty(m, n);
  const be = options.backend;
  const l = Math.min(k + p, m, n);
  const seed = options.seed ?? 0;
  const rng = new SeededRandom(seed);
  const omega = new Float32Array(n * l);
  rng.fillNormal(omega);
  let calls = 0;
  // one set of work arrays for the whole call: the sketches Y, the bases Q and Z, Bᵀ, and the Gram and pass products
  // inside orth (the returned u and v are new arrays)
  const scratch = new ScratchF32();
  // big rank-deficient bases go to the pivoted-Cholesky fallback, small ones to Householder (exact, f64)
  const orth = (y: Float32Array, rows: number, cols: number, into?: Float32Array): Promise<Float32Array> => {
    const salt = ++calls;
    const big = rows * cols * cols >= LOW_RANK_FALLBACK_MIN_WORK;
    const fallback = (yy: Float32Array, mm: number, ll: number): Promise<Float32Array> => lowRankOrthonormalBasis(yy, mm, ll, be, (seed + 0x9e3779b9 * salt) >>> 0);
    return orthonormalizeColumns(y, rows, cols, be, { scratch, ...(into !== undefined ? { into } : {}), ...(big ? { fallback } : {}) });
  };
  // each sketch is consumed by orth before the next product overwrites it; Q (m x l) and Z (n x l) have their own
  const sketch = (rows: number): Float32Array => scratch.take('rsvd.sketch', rows * l);
  let basis = await orth(await be.matmul(a, omega, m, n, l, { out: sketch(m) }), m, l, scratch.take('rsvd.basis', m * l));
  for (let it = 0; it < q; it++) {
    const z = await orth(await be.matmul(a, basis, n, m, l, { transA: true, out: sketch(n) }), n, l, scratch.take('rsvd.z', n * l));
    basis = await orth(await be.matmul(a, z, m, n, l, { out: sketch(m) }), m, l, scratch.take('rsvd.basis', m * l));
  }
  const bt = await be.matmul(a, basis, n, m, l, { transA: true, out: scratch.take('rsvd.bt', n * l) }); // Bᵀ = AᵀQ, n x l
  const core = options.core ?? 'auto';
  let uSmall: Float32Array; // l x k: left singular vectors of B
  let s: Float64Array;
  let v: Float32Array;
  if (core === 'jacobi' || (core === 'auto' && l <= JACOBI_CORE_MAX)) {
    const svd = jacobiSvd(fromArray(bt, n, l)); // Bᵀ = V_B S U_Bᵀ
    s = svd.s.slice(0, k);
    v = leadingColumns(svd.u.data, n, l, k);
    uSmall = leadingColumns(svd.v.data, l, l, k);
  } else {
    const g = await symmetricGramF64(bt, n, l, be, scratch); // B·Bᵀ
    const eig = await symmetricEigenF32(g, l, be);
    s = new Float64Array(k);
    for (let j = 0; j < k; j++) s[j] = Math.sqrt(Math.max(0, eig.values[j]!));
    uSmall = leadingColumns(eig.vectors, l, l, k);
    const scaled = new Float32Array(l * k);
    const floor = s[0]! * 1e-6;
    for (let i = 0; i < l; i++) for (let j = 0; j < k; j++) scaled[i * k + j] = s[j]! > floor ? uSmall[i * k + j]! / s[j]! : 0;
    v = await orth(await be.matmul(bt, scaled, n, l, k), n, k);
  }
  const u = await be.matmul(basis, uSmall, m, l, k);
  return { m, n, k, u, s, v };
}

/**
 * Top-k singular triplets of a row-major f32 m x n matrix, exactly (Jacobi, f64) or by `randomizedSvd`; see
 * TruncatedSvdOptions for the choice. Backend defaults to jsMatMul: pass the ORT backend for big matrices.
 * Signs: exact results have the largest |entry| of each U column positive; randomized ones depend on the seed.
 */
export async function truncatedSvd(a: Float32Array, m: number, n: number, k: number, options: TruncatedSvdOptions = {}): Promise<TruncatedSvd> {
  checkArgs(a, m, n, k);
  const method = options.method ?? 'auto';
  const exact = method === 'exact' || (method === 'auto' && Math.min(m, n) <= (options.exactMaxDim ?? EXACT_MAX_DIM));
  if (!exact) return randomizedSvd(a, m, n, k, { ...options, backend: options.backend ?? jsMatMul });
  if (k === 0) return empty(m, n);
  const r = Math.min(m, n);
  const svd = jacobiSvd(fromArray(a, m, n));
  return { m, n, k, u: leadingColumns(svd.u.data, m, r, k), s: svd.s.slice(0, k), v: leadingColumns(svd.v.data, n, r, k) };
}
