// QR factorisations: Householder (exact, f64, any shape) and a backend-accelerated orthonormalisation of tall f32
// matrices (shifted CholeskyQR2, checked, with a Householder fallback). Guarantees: Q has orthonormal columns to
// f64 (Householder) or the tolerance asked for (CholeskyQR); diag(R) >= 0. Pure: no node: imports, no onnxruntime.

import { ScratchF32, symmetricGramF64, type MatMulBackend } from './backend.js';
import { assertDim, assertLength, type Matrix } from './matrix.js';

/** A thin QR factorisation: A (m x n) = Q (m x p) · R (p x n), p = min(m, n), QᵀQ = I, R upper trapezoidal, diag(R) >= 0. */
export interface QrResult {
  q: Matrix;
  r: Matrix;
}

/**
 * Householder QR in f64 (cost about 4·m·n·p flops in JS, including forming the thin Q). Works for any shape,
 * including rank-deficient and 0-size matrices; Q is orthonormal to rounding even when A is singular.
 */
export function householderQr(a: Matrix): QrResult {
  const m = a.rows;
  const n = a.cols;
  const p = Math.min(m, n);
  // Column-major work copy: column c is w[c*m .. c*m+m).
  const w = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let c = 0; c < n; c++) w[c * m + i] = a.data[i * n + c]!;
  const vs: Float64Array[] = [];
  const betas = new Float64Array(p);
  for (let j = 0; j < p; j++) {
    const col = j * m;
    let norm2 = 0;
    for (let i = j; i < m; i++) norm2 += w[col + i]! * w[col + i]!;
    const norm = Math.sqrt(norm2);
    const x0 = w[col + j]!;
    const alpha = x0 >= 0 ? -norm : norm;
    const v = new Float64Array(m - j);
    for (let i = j; i < m; i++) v[i - j] = w[col + i]!;
    v[0] = x0 - alpha;
    let vv = 0;
    for (let i = 0; i < v.length; i++) vv += v[i]! * v[i]!;
    vs.push(v);
    if (vv === 0 || norm === 0) {
      betas[j] = 0;
      continue;
    }
    const beta = 2 / vv;
    betas[j] = beta;
    for (let c = j; c < n; c++) {
      const cc = c * m + j;
      let s = 0;
      for (let i = 0; i < v.length; i++) s += v[i]! * w[cc + i]!;
      s *= beta;
      if (s === 0) continue;
      for (let i = 0; i < v.length; i++) w[cc + i] -= s * v[i]!;
    }
  }
  const r = new Float64Array(p * n);
  for (let i = 0; i < p; i++) for (let c = i; c < n; c++) r[i * n + c] = w[c * m + i]!;
  // Thin Q: apply H_0 ... H_{p-1} to the first p columns of I (column-major), in reverse order.
  const qc = new Float64Array(m * p);
  for (let c = 0; c < p; c++) qc[c * m + c] = 1;
  for (let j = p - 1; j >= 0; j--) {
    const beta = betas[j]!;
    if (beta === 0) continue;
    const v = vs[j]!;
    for (let c = j; c < p; c++) {
      const cc = c * m + j;
      let s = 0;
      for (let i = 0; i < v.length; i++) s += v[i]! * qc[cc + i]!;
      s *= beta;
      if (s === 0) continue;
      for (let i = 0; i < v.length; i++) qc[cc + i] -= s * v[i]!;
    }
  }
  const q = new Float64Array(m * p);
  for (let c = 0; c < p; c++) {
    const flip = r[c * n + c]! < 0;
    for (let i = 0; i < m; i++) q[i * p + c] = flip ? -qc[c * m + i]! : qc[c * m + i]!;
    if (flip) for (let k = c; k < n; k++) r[c * n + k] = -r[c * n + k]!;
  }
  return { q: { rows: m, cols: p, data: q }, r: { rows: p, cols: n, data: r } };
}

/**
 * Lower Cholesky factor L (G = L·Lᵀ) of a symmetric n x n row-major f64 matrix, in place of a new array;
 * undefined when G is not numerically positive definite. Cost n³/3 flops in JS.
 */
export function choleskyLower(g: Float64Array, n: number): Float64Array | undefined {
  const l = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const li = i * n;
    for (let j = 0; j <= i; j++) {
      const lj = j * n;
      let s = g[li + j]!;
      for (let p = 0; p < j; p++) s -= l[li + p]! * l[lj + p]!;
      if (i === j) {
        if (!(s > 0)) return undefined;
        l[li + i] = Math.sqrt(s);
      } else {
        l[li + j] = s / l[lj + j]!;
      }
    }
  }
  return l;
}

/** Inverse of a lower-triangular n x n row-major f64 matrix with non-zero diagonal (n³/6 multiply-adds). */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const xi = i * n;
    const li = i * n;
    x[xi + i] = 1;
    for (let p = 0; p < i; p++) {
      const f = l[li + p]!;
      if (f === 0) continue;
      const xp = p * n;
      for (let j = 0; j <= p; j++) x[xi + j] -= f * x[xp + j]!;
    }
    const d = 1 / l[li + i]!;
    for (let j = 0; j <= i; j++) x[xi + j] *= d;
  }
  return x;
}

/** Largest block factorised in JS by `choleskyInverseBlocked`; bigger ones are split in two, products on the backend. */
const CHOLESKY_LEAF = 128;

/**
 * L⁻¹ (row-major f32, lower triangular) for the Cholesky factor L of a symmetric positive definite n x n row-major
 * f64 matrix G, or undefined when G is not numerically positive definite. Recursive 2 x 2 blocking: X11 = L11⁻¹
 * from G11; L21 = G21·X11ᵀ; the Schur complement S = G22 − L21·L21ᵀ; X22 = L22⁻¹ from S; X21 = −X22·L21·X11. The
 * four products of each level run on the backend (f32, about 2n³/3 multiply-adds in all), blocks of at most
 * CHOLESKY_LEAF rows by `choleskyLower` + `invertLower` in JS f64 (so n <= CHOLESKY_LEAF gives exactly their
 * result). The f32 Schur complements carry rounding of order u·‖G‖, the size of the rounding already in an f32 Gram.
 */
export async function choleskyInverseBlocked(g: Float64Array, n: number, backend: MatMulBackend): Promise<Float32Array | undefined> {
  assertDim('n', n);
  assertLength('g (n x n)', g, n, n);
  if (n <= CHOLESKY_LEAF) {
    const l = choleskyLower(g, n);
    return l === undefined ? undefined : Float32Array.from(invertLower(l, n));
  }
  const n1 = n >> 1;
  const n2 = n - n1;
  const g11 = new Float64Array(n1 * n1);
  const g21 = new Float32Array(n2 * n1);
  const g22 = new Float64Array(n2 * n2);
  for (let i = 0; i < n1; i++) g11.set(g.subarray(i * n + 0, i * n + n1), i * n1);
  for (let i = 0; i < n2; i++) {
    const row = (n1 + i) * n;
    for (let j = 0; j < n1; j++) g21[i * n1 + j] = g[row + j]!;
    g22.set(g.subarray(row + n1, row + n), i * n2);
  }
  const x11 = await choleskyInverseBlocked(g11, n1, backend);
  if (x11 === undefined) return undefined;
  const l21 = await backend.matmul(g21, x11, n2, n1, n1, { transB: true });
  const ll = await backend.matmul(l21, l21, n2, n1, n2, { transB: true });
  for (let i = 0; i < n2; i++) {
    for (let j = 0; j < n2; j++) g22[i * n2 + j] = g22[i * n2 + j]! - 0.5 * (ll[i * n2 + j]! + ll[j * n2 + i]!);
  }
  const x22 = await choleskyInverseBlocked(g22, n2, backend);
  if (x22 === undefined) return undefined;
  const x21 = await backend.matmul(x22, await backend.matmul(l21, x11, n2, n1, n1), n2, n2, n1);
  const out = new Float32Array(n * n);
  for (let i = 0; i < n1; i++) out.set(x11.subarray(i * n1, i * n1 + n1), i * n);
  for (let i = 0; i < n2; i++) {
    const row = (n1 + i) * n;
    for (let j = 0; j < n1; j++) out[row + j] = -x21[i * n1 + j]!;
    out.set(x22.subarray(i * n2, i * n2 + n2), row + n1);
  }
  return out;
}

/** Options of `orthonormalizeColumns`. */
export interface OrthonormalizeOptions {
  /** Accept Q when max |QᵀQ − I| (computed by the backend in f32) is at most this. Default 1e-4. */
  tolerance?: number;
  /** CholeskyQR passes before giving up and falling back to Householder. Default 4. */
  maxPasses?: number;
  /**
   * What to do instead of `householderQr` (4·m·l² flops in JS) when CholeskyQR does not converge, typically for a
   * rank-deficient Y; it must return m x l orthonormal columns whose span contains Y's column space.
   */
  fallback?: (y: Float32Array, m: number, l: number) => Promise<Float32Array>;
  /** Work arrays of the Gram products and of each pass's product, reused across passes and calls. */
  scratch?: ScratchF32;
  /**
   * Where to write Q (m·l elements, disjoint from y and from the scratch): spares a fresh array per call. Ignored
   * when a fallback (Householder or `fallback`) runs: its new array is returned.
   */
  into?: Float32Array;
}

/** Default of `OrthonormalizeOptions.tolerance`. */
export const ORTHONORMALIZE_TOLERANCE = 1e-4;

/**
 * An m x l row-major f32 matrix (l <= m) with orthonormal columns spanning the column space of `y` (when y has full
 * column rank). Repeated CholeskyQR: G = QᵀQ via the backend (m·l² multiply-adds), Cholesky and triangular inverse of
 * the l x l G (`choleskyInverseBlocked`: JS f64 up to 128, recursive blocks with backend products above), Q ← Q·L⁻ᵀ via the backend; a diagonal shift keeps Cholesky defined for ill-conditioned
 * Y (shifted CholeskyQR3, Fukaya et al. 2020). Stops as soon as the measured ‖QᵀQ − I‖max ≤ tolerance (typically
 * after 2 passes plus 1 check); falls back to `householderQr` in JS f64 (4·m·l² flops, slow for big m, l) when it
 * does not converge, e.g. for rank-deficient Y. `y` is not modified.
 */
export async function orthonormalizeColumns(
  y: Float32Array,
  m: number,
  l: number,
  backend: MatMulBackend,
  options: OrthonormalizeOptions = {},
): Promise<Float32Array> {
  assertDim('m', m);
  assertDim('l', l);
  assertLength('y', y, m, l);
  if (l > m) throw new RangeError(`orthonormalizeColumns: l must be <= m for orthonormal columns, got m=${m}, l=${l}`);
  if (l === 0 || m === 0) return new Float32Array(0);
  const tol = options.tolerance ?? ORTHONORMALIZE_TOLERANCE;
  const maxPasses = options.maxPasses ?? 4;
  const scratch = options.scratch ?? new ScratchF32();
  const into = options.into;
  if (into !== undefined) assertLength('into', into, m, l);
  let q = y;
  for (let pass = 0; pass <= maxPasses; pass++) {
    const g = await symmetricGramF64(q, m, l, backend, scratch);
    let worst = 0;
    let trace = 0;
    for (let i = 0; i < l; i++) {
      for (let j = 0; j < l; j++) worst = Math.max(worst, Math.abs(g[i * l + j]! - (i === j ? 1 : 0)));
      trace += g[i * l + i]!;
    }
    if (worst <= tol) {
      if (into !== undefined) return (into.set(q), into);
      return q === y ? Float32Array.from(y) : q;
    }
    if (pass === maxPasses || !(trace > 0) || !Number.isFinite(trace)) break;
    let linv = await choleskyInverseBlocked(g, l, backend);
    if (linv === undefined) {
      // shifted CholeskyQR: s = 11 (m l + l (l + 1)) u ‖Y‖², with u the f32 unit roundoff of the backend's Gram
      const shift = 11 * (m * l + l * (l + 1)) * 2 ** -24 * trace;
      for (let i = 0; i < l; i++) g[i * l + i] += shift;
      linv = await choleskyInverseBlocked(g, l, backend);
      if (linv === undefined) break;
    }
    // with `into`, the passes alternate between two scratch arrays (the result is copied out at the end)
    q = await backend.matmul(q, linv, m, l, l, { transB: true, ...(into !== undefined ? { out: scratch.take(pass % 2 === 0 ? 'orth.q0' : 'orth.q1', m * l) } : {}) });
  }
  if (options.fallback !== undefined) return options.fallback(y, m, l);
  const { q: qh } = householderQr({ rows: m, cols: l, data: Float64Array.from(y) });
  return Float32Array.from(qh.data);
}

/**
 * Column indices of Y (m x l) chosen by Cholesky with complete pivoting of the Gram G = YᵀY (f64 from an f32 Gram):
 * each step takes the column with the largest residual norm after projecting out those already taken, and stops
 * once every residual² is at most `relTol`·max diag(G). O(l²·r) flops for r chosen columns; the chosen columns are
 * well conditioned (pivoted Cholesky selects like column-pivoted QR).
 */
export function pivotedCholeskyColumns(g: Float64Array, l: number, relTol: number): number[] {
  const d = new Float64Array(l);
  let top = 0;
  for (let i = 0; i < l; i++) {
    d[i] = g[i * l + i]!;
    top = Math.max(top, d[i]!);
  }
  const chosen: number[] = [];
  if (!(top > 0)) return chosen;
  const cols: Float64Array[] = []; // L's columns, indexed by original column
  const taken = new Uint8Array(l);
  for (;;) {
    let p = -1;
    for (let i = 0; i < l; i++) if (!taken[i] && (p < 0 || d[i]! > d[p]!)) p = i;
    if (p < 0 || !(d[p]! > relTol * top)) break;
    const piv = Math.sqrt(d[p]!);
    const c = new Float64Array(l);
    for (let i = 0; i < l; i++) {
      if (taken[i] || i === p) continue;
      let v = g[i * l + p]!;
      for (const prev of cols) v -= prev[i]! * prev[p]!;
      c[i] = v / piv;
      d[i] = Math.max(0, d[i]! - c[i]! * c[i]!);
    }
    c[p] = piv;
    taken[p] = 1;
    cols.push(c);
    chosen.push(p);
  }
  return chosen;
}
