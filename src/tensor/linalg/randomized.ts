// Truncated SVD of big f32 matrices: randomized range finder (Halko, Martinsson & Tropp 2011, algorithms 4.4 + 5.1)
// with every m·n-sized product through a MatMulBackend, and the exact Jacobi SVD for small inputs. Deterministic for
// a given seed (the repo's SeededRandom; never the unseeded random). Pure: no node: imports, no onnxruntime.

import { jsMatMul, ScratchF32, symmetricGramF64, transposeInto, type MatMulBackend } from './backend.js';
import { assertDim, assertLength, fromArray } from './matrix.js';
import { orthonormalizeColumns, pivotedCholeskyColumns } from './qr.js';
import { symmetricEigenTopF32 } from './eigen.js';
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
 * CholeskyQR in column order and left at their positions, then seeded Gaussian directions with those projected out
 * (twice) at the remaining positions. Products
 * through the backend; JS work O(l²·r) for rank r.
 */
export async function lowRankOrthonormalBasis(y: Float32Array, m: number, l: number, backend: MatMulBackend, seed: number): Promise<Float32Array> {
  assertLength('y', y, m, l);
  const g = await symmetricGramF64(y, m, l, backend);
  // in column order: each chosen column keeps its position (and, when the chosen columns are already orthogonal, its
  // direction), so a caller's column j still matches its other factors' column j
  const cols = pivotedCholeskyColumns(g, l, PIVOT_TOLERANCE).sort((x, z) => x - z);
  const r = cols.length;
  let q1: Float32Array = new Float32Array(0);
  if (r > 0) {
    const sel = new Float32Array(m * r);
    for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) sel[i * r + j] = y[i * l + cols[j]!]!;
    q1 = await orthonormalizeColumns(sel, m, r, backend);
  }
  const c = l - r;
  const out = new Float32Array(m * l);
  for (let i = 0; i < m; i++) for (let j = 0; j < r; j++) out[i * l + cols[j]!] = q1[i * r + j]!;
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
  const rest: number[] = [];
  for (let j = 0, t = 0; j < l; j++) {
    if (t < r && cols[t] === j) t++;
    else rest.push(j);
  }
  for (let i = 0; i < m; i++) for (let j = 0; j < c; j++) out[i * l + rest[j]!] = q2[i * c + j]!;
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
    const eig = await symmetricEigenTopF32(g, l, k, be);
    s = new Float64Array(k);
    for (let j = 0; j < k; j++) s[j] = Math.sqrt(Math.max(0, eig.values[j]!));
    uSmall = eig.vectors;
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

/** Options of `blockKrylovSvd`. */
export interface BlockKrylovOptions {
  /** Where the big products run (and, when it carries them, the native dense kernels). */
  backend: MatMulBackend;
  /** Seed of the Gaussian start block. Default 0. */
  seed?: number;
  /** Columns b of each Krylov block. Default max(8, ⌈1.75k/s⌉); widened when s·b < k. */
  blockSize?: number;
  /** Krylov blocks s: the basis spans [AΩ, (AAᵀ)AΩ, …, (AAᵀ)^(s−1)AΩ] (s·b columns, 2s products with A). Default 14. */
  blocks?: number;
  /**
   * Work arrays (the basis, Bᵀ, the l x l core, the products' outputs), kept for the next call: a caller decomposing
   * several matrices of one shape spares fresh memory (page faults) for all but the first. Not for concurrent calls.
   */
  scratch?: ScratchF32;
}

/** Default of `BlockKrylovOptions.blocks`. */
export const DEFAULT_KRYLOV_BLOCKS = 14;

/** Default block width for a target rank k and s blocks: a basis of 1.75k columns (at least 8 per block). */
export function defaultKrylovBlockSize(k: number, blocks = DEFAULT_KRYLOV_BLOCKS): number {
  return Math.max(8, Math.ceil((1.75 * k) / blocks));
}

/**
 * W ← W − Q·(QᵀW) for the m x c orthonormal columns Q given as Qᵀ (`qt`, c x m row-major: the earlier Krylov blocks
 * stacked), one pass of block classical Gram–Schmidt (callers run two or three). With native dense kernels the update
 * accumulates in place; otherwise through the backend and a JS subtraction.
 */
async function projectOut(w: Float32Array, qt: Float32Array, c: number, m: number, b: number, be: MatMulBackend, scratch: ScratchF32): Promise<void> {
  if (c === 0) return;
  const coef = await be.matmul(qt, w, c, m, b, { out: scratch.take('kr.coef', c * b) }); // QᵀW, c x b
  if (be.dense !== undefined) {
    for (let i = 0; i < coef.length; i++) coef[i] = -coef[i]!;
    await be.dense.gemmAsync(qt, coef, w, m, c, b, 1 | 4);
  } else {
    const back = await be.matmul(qt, coef, m, c, b, { transA: true });
    for (let i = 0; i < w.length; i++) w[i] = w[i]! - back[i]!;
  }
}

/** A Krylov column whose norm falls below this fraction of its norm before the projections is replaced (see below). */
const LOST_COLUMN = 1e-5;

/** Euclidean norms of the columns of a row-major rows x cols f32 matrix (f64 sums). */
function columnNorms(x: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let i = 0; i < rows; i++) for (let c = 0; c < cols; c++) out[c] = out[c]! + x[i * cols + c]! * x[i * cols + c]!;
  for (let c = 0; c < cols; c++) out[c] = Math.sqrt(out[c]!);
  return out;
}

/**
 * Top-k SVD by randomized block Krylov iteration (Musco & Musco 2015, with block Gram–Schmidt against the two latest
 * blocks and then every earlier block): Q = orth[AΩ, (AAᵀ)AΩ, …, (AAᵀ)^(s−1)AΩ] with a Gaussian n x b Ω, built block by block; Bᵀ = AᵀQ
 * comes out of the same products (AᵀQ_j is the next block's half step); then the SVD of the small B through the top-k
 * eigenpairs of B·Bᵀ (s·b square), U = Q·W, V = orth(Bᵀ·W·diag(1/σ)). 2s products with A of b columns each: with
 * the defaults (b = k/8, s = 14, a basis of 1.75k columns) about 7·m·n·k multiply-adds, against 10·m·n·k for
 * `randomizedSvd` with q = 3 and p = k/4, and the subspace is a polynomial of degree 2s − 1 in A instead of 2q + 1:
 * on TSV-M's flat spectra (bench/svd) the merged result lands 50x closer to the exact one. The basis must be wide
 * enough: at 1.25k columns the top-k boundary was not resolved there. A rank-deficient A (the Krylov space
 * exhausted: a column loses five digits to the projections) gets seeded random directions orthogonal to the
 * earlier blocks instead of rounding noise. Falls back to `randomizedSvd` with its
 * defaults only when no s·b basis of at least k columns fits in min(m, n) (k near min(m, n) with few blocks).
 * Deterministic for a given seed.
 */
export async function blockKrylovSvd(a: Float32Array, m: number, n: number, k: number, options: BlockKrylovOptions): Promise<TruncatedSvd> {
  checkArgs(a, m, n, k);
  if (k === 0) return empty(m, n);
  const be = options.backend;
  const seed = options.seed ?? 0;
  const r = Math.min(m, n);
  const s0 = options.blocks ?? DEFAULT_KRYLOV_BLOCKS;
  assertDim('blocks', s0);
  let b = Math.min(r, options.blockSize ?? defaultKrylovBlockSize(k, s0));
  assertDim('blockSize', b);
  let s = Math.min(s0, b === 0 ? 0 : Math.floor(r / b));
  if (s * b < k && s0 > 0) {
    // the basis must hold k columns: widen the blocks (within min(m, n))
    b = Math.ceil(k / Math.max(1, s));
    s = Math.min(Math.max(1, s), Math.floor(r / b));
  }
  if (b === 0 || s * b < k) return randomizedSvd(a, m, n, k, { backend: be, seed });
  const l = s * b;
  const scratch = options.scratch ?? new ScratchF32();
  const omega = scratch.take('kr.omega', n * b);
  new SeededRandom(seed).fillNormal(omega);
  let salt = 0;
  // every element of these is written before it is read
  const qt = scratch.take('kr.qt', l * m); // Qᵀ: block j in rows [jb, (j+1)b)
  const bt = scratch.take('kr.bt', n * l); // Bᵀ = AᵀQ, block j in columns [jb, (j+1)b)
  const z = scratch.take('kr.z', n * b);
  for (let j = 0; j < s; j++) {
    let q = await be.matmul(a, j === 0 ? omega : z, m, n, b, { out: scratch.take('kr.q', m * b) });
    const earlier = qt.subarray(0, j * b * m);
    let fellBack = false;
    const fallback = (y: Float32Array, mm: number, bb: number): Promise<Float32Array> => {
      fellBack = true;
      return lowRankOrthonormalBasis(y, mm, bb, be, (seed + 0x9e3779b9 * ++salt) >>> 0);
    };
    const before = columnNorms(q, m, b);
    // q = AAᵀQ_{j-1} has, in exact arithmetic, components along the earlier blocks only on Q_{j-2} and Q_{j-1}
    // (block Lanczos): a first pass against those two blocks takes the bulk, then one pass against every block
    // removes what rounding left along the others ("twice is enough"); when that second pass still cancels more than
    // a 1/√2 share of a column's norm (Kahan-Parlett's test; seen with rank-deficient A), a third pass against every
    // block. Measured: the same accuracy as two full passes on bench/svd's and the steep/flat test families, two
    // fewer products against the earlier blocks per block.
    const recent = Math.min(j, 2);
    await projectOut(q, qt.subarray((j - recent) * b * m, j * b * m), recent * b, m, b, be, scratch);
    const mid = columnNorms(q, m, b);
    await projectOut(q, earlier, j * b, m, b, be, scratch);
    let after = columnNorms(q, m, b);
    if (mid.some((x, c) => after[c]! < Math.SQRT1_2 * x)) {
      await projectOut(q, earlier, j * b, m, b, be, scratch);
      after = columnNorms(q, m, b);
    }
    // a column that lost five digits to the projection lies in the span already (the Krylov space is exhausted):
    // what is left is rounding noise, not a direction; a seeded Gaussian column takes its place. (At three digits,
    // genuine directions of steep spectra, σ_j ~ 1e-4·σ_1, were thrown away: 2x the error on such a merge.)
    const rng = new SeededRandom((seed + 0x85ebca6b * (j + 1)) >>> 0);
    let replaced = false;
    for (let c = 0; c < b; c++) {
      if (after[c]! > LOST_COLUMN * before[c]!) continue;
      for (let i = 0; i < m; i++) q[i * b + c] = rng.normal();
      replaced = true;
    }
    if (replaced) for (let pass = 0; pass < 2; pass++) await projectOut(q, earlier, j * b, m, b, be, scratch);
    q = await orthonormalizeColumns(q, m, b, be, { scratch, fallback, into: scratch.take('kr.qo', m * b) });
    if (fellBack && j > 0) {
      // the completion directions of a rank-deficient block are random: make them orthogonal to the earlier blocks
      for (let pass = 0; pass < 2; pass++) await projectOut(q, earlier, j * b, m, b, be, scratch);
      q = await orthonormalizeColumns(q, m, b, be, { scratch });
    }
    transposeInto(qt, j * b * m, q, m, b);
    const zj = await be.matmul(a, q, n, m, b, { transA: true, out: z });
    for (let i = 0, at = j * b; i < n; i++, at += l) bt.set(zj.subarray(i * b, i * b + b), at);
    if (zj !== z) z.set(zj);
  }
  const g = await symmetricGramF64(bt, n, l, be, scratch, scratch.takeF64('kr.core', l * l)); // B·Bᵀ
  const eig = await symmetricEigenTopF32(g, l, k, be, true);
  const sv = new Float64Array(k);
  for (let j = 0; j < k; j++) sv[j] = Math.sqrt(Math.max(0, eig.values[j]!));
  const uSmall = eig.vectors;
  const scaled = scratch.take('kr.scaled', l * k);
  const floor = sv[0]! * 1e-6;
  for (let i = 0; i < l; i++) for (let j = 0; j < k; j++) scaled[i * k + j] = sv[j]! > floor ? uSmall[i * k + j]! / sv[j]! : 0;
  const v = await orthonormalizeColumns(await be.matmul(bt, scaled, n, l, k, { out: scratch.take('kr.vy', n * k) }), n, k, be, {
    scratch,
    fallback: (y, mm, kk) => lowRankOrthonormalBasis(y, mm, kk, be, (seed + 0x9e3779b9 * ++salt) >>> 0),
    into: new Float32Array(n * k),
  });
  const u = await be.matmul(qt, uSmall, m, l, k, { transA: true });
  return { m, n, k, u, s: sv, v };
}
