// Exact dense decompositions in f64 for small matrices: one-sided Jacobi SVD (accurate to full relative precision of
// the small singular values, thin, sorted descending, deterministic signs) and the symmetric eigendecomposition
// (Householder tridiagonalisation + implicit QL, after JAMA/EISPACK tred2/tql2). Pure: no node: imports.

import { householderQr } from './qr.js';
import { multiply, normalizeColumnSigns, transpose, type Matrix } from './matrix.js';

/** A thin SVD: A (m x n) = U (m x r) · diag(s) · Vᵀ, V (n x r), r = min(m, n); s descending, U and V orthonormal. */
export interface DenseSvd {
  u: Matrix;
  s: Float64Array;
  v: Matrix;
}

/** A symmetric eigendecomposition: A = V · diag(values) · Vᵀ, values descending, V (n x n) orthogonal. */
export interface SymmetricEigen {
  values: Float64Array;
  vectors: Matrix;
}

const EPS = 2 ** -52;
const MAX_SWEEPS = 60;

/**
 * Replace the columns j of the row-major rows x cols array `q` with `good[j] === false` by unit vectors orthogonal
 * to every other column. Used where a singular value is zero and its singular vector is arbitrary. Each new column
 * is the unit vector e_i whose part outside the current good columns is largest (1 − Σ_c q_ic², at least
 * (rows − good)/rows, so this always succeeds while cols <= rows), Gram-Schmidt'ed twice against them; the lowest
 * index wins ties, so the result is deterministic. Cost rows·cols per replaced column.
 */
export function completeOrthonormalColumns(q: Float64Array, rows: number, cols: number, good: boolean[]): void {
  if (good.every((g) => g)) return;
  if (cols > rows) throw new RangeError(`completeOrthonormalColumns: cannot complete ${cols} columns in dimension ${rows}`);
  // inside[i] = Σ over good columns of q_ic²: how much of e_i they already span
  const inside = new Float64Array(rows);
  for (let c = 0; c < cols; c++) {
    if (!good[c]) continue;
    for (let i = 0; i < rows; i++) inside[i] = inside[i]! + q[i * cols + c]! * q[i * cols + c]!;
  }
  const col = new Float64Array(rows);
  for (let j = 0; j < cols; j++) {
    if (good[j]) continue;
    let best = 0;
    for (let i = 1; i < rows; i++) if (inside[i]! < inside[best]!) best = i;
    col.fill(0);
    col[best] = 1;
    for (let pass = 0; pass < 2; pass++) {
      for (let c = 0; c < cols; c++) {
        if (!good[c]) continue;
        let d = 0;
        for (let i = 0; i < rows; i++) d += q[i * cols + c]! * col[i]!;
        if (d !== 0) for (let i = 0; i < rows; i++) col[i] = col[i]! - d * q[i * cols + c]!;
      }
    }
    let nrm = 0;
    for (let i = 0; i < rows; i++) nrm += col[i]! * col[i]!;
    nrm = Math.sqrt(nrm);
    if (!(nrm > 1e-8)) throw new RangeError(`completeOrthonormalColumns: the good columns are not orthonormal (rows ${rows}, cols ${cols})`);
    for (let i = 0; i < rows; i++) {
      const v = col[i]! / nrm;
      q[i * cols + j] = v;
      inside[i] = inside[i]! + v * v;
    }
    good[j] = true;
  }
}

/** One-sided Jacobi on m x n with m >= n. */
function jacobiTall(a: Matrix): DenseSvd {
  const m = a.rows;
  const n = a.cols;
  const w = transpose(a).data; // column j of A is w[j*m .. j*m+m)
  const vt = new Float64Array(n * n); // row j is column j of V
  for (let j = 0; j < n; j++) vt[j * n + j] = 1;
  for (let sweep = 0; sweep < MAX_SWEEPS; sweep++) {
    let rotated = false;
    for (let p = 0; p < n - 1; p++) {
      const wp = p * m;
      for (let q = p + 1; q < n; q++) {
        const wq = q * m;
        let alpha = 0;
        let beta = 0;
        let gamma = 0;
        for (let i = 0; i < m; i++) {
          const x = w[wp + i]!;
          const y = w[wq + i]!;
          alpha += x * x;
          beta += y * y;
          gamma += x * y;
        }
        if (gamma === 0 || Math.abs(gamma) <= EPS * Math.sqrt(alpha * beta)) continue;
        rotated = true;
        const zeta = (beta - alpha) / (2 * gamma);
        const t = (zeta >= 0 ? 1 : -1) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
        const c = 1 / Math.sqrt(1 + t * t);
        const s = c * t;
        for (let i = 0; i < m; i++) {
          const x = w[wp + i]!;
          const y = w[wq + i]!;
          w[wp + i] = c * x - s * y;
          w[wq + i] = s * x + c * y;
        }
        const vp = p * n;
        const vq = q * n;
        for (let i = 0; i < n; i++) {
          const x = vt[vp + i]!;
          const y = vt[vq + i]!;
          vt[vp + i] = c * x - s * y;
          vt[vq + i] = s * x + c * y;
        }
      }
    }
    if (!rotated) break;
  }
  const norms = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let i = 0; i < m; i++) s += w[j * m + i]! * w[j * m + i]!;
    norms[j] = Math.sqrt(s);
  }
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => norms[y]! - norms[x]! || x - y);
  const s = new Float64Array(n);
  const u = new Float64Array(m * n);
  const v = new Float64Array(n * n);
  const smax = n > 0 ? norms[order[0]!]! : 0;
  const good: boolean[] = [];
  for (let r = 0; r < n; r++) {
    const j = order[r]!;
    const sj = norms[j]!;
    s[r] = sj;
    const ok = sj > 0 && sj > smax * 1e-13;
    good.push(ok);
    if (ok) for (let i = 0; i < m; i++) u[i * n + r] = w[j * m + i]! / sj;
    for (let i = 0; i < n; i++) v[i * n + r] = vt[j * n + i]!;
  }
  completeOrthonormalColumns(u, m, n, good);
  normalizeColumnSigns(u, m, n, [{ data: v, rows: n }]);
  return { u: { rows: m, cols: n, data: u }, s, v: { rows: n, cols: n, data: v } };
}

/**
 * Thin SVD of a small dense matrix by one-sided (Hestenes) Jacobi in f64: A = U·diag(s)·Vᵀ with r = min(m, n),
 * s descending, U (m x r) and V (n x r) orthonormal (singular vectors of zero singular values completed
 * arbitrarily but orthonormally), and each column of U made to have its largest-magnitude entry positive (V flipped
 * with it). Tall inputs (m > 1.25 n) are first reduced by Householder QR. Cost about 6-10 sweeps of 3·n²·m flops:
 * 256 x 256 takes a fraction of a second; use `randomizedSvd` for big matrices.
 */
export function jacobiSvd(a: Matrix): DenseSvd {
  const m = a.rows;
  const n = a.cols;
  if (m < n) {
    const t = jacobiSvd(transpose(a));
    return { u: t.v, s: t.s, v: t.u };
  }
  if (n === 0) return { u: { rows: m, cols: 0, data: new Float64Array(0) }, s: new Float64Array(0), v: { rows: 0, cols: 0, data: new Float64Array(0) } };
  if (m > 1.25 * n) {
    const { q, r } = householderQr(a);
    const inner = jacobiTall(r);
    const u = multiply(q, inner.u);
    normalizeColumnSigns(u.data, m, n, [{ data: inner.v.data, rows: n }]);
    return { u, s: inner.s, v: inner.v };
  }
  return jacobiTall(a);
}

/**
 * Eigendecomposition of a symmetric n x n matrix (symmetry is assumed, not checked): values descending, eigenvectors as orthonormal columns with the largest-magnitude entry of
 * each positive. Householder tridiagonalisation + implicit QL (about 9·n³ flops in JS; roughly 1 s at n = 512).
 */
export function symmetricEigen(a: Matrix): SymmetricEigen {
  const n = a.rows;
  if (a.cols !== n) throw new RangeError(`symmetricEigen: expected a square matrix, got ${a.rows}x${a.cols}`);
  if (n === 0) return { values: new Float64Array(0), vectors: { rows: 0, cols: 0, data: new Float64Array(0) } };
  // A is symmetric, so its copy is also Aᵀ: tred2 and tql2 both work on Vᵀ (rotations touch contiguous rows).
  const vt = Float64Array.from(a.data);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  tred2(n, vt, d, e);
  tql2(n, vt, d, e);
  const order = Array.from({ length: n }, (_, j) => j).sort((x, y) => d[y]! - d[x]! || x - y);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  for (let r = 0; r < n; r++) {
    const j = order[r]!;
    values[r] = d[j]!;
    for (let i = 0; i < n; i++) vectors[i * n + r] = vt[j * n + i]!;
  }
  normalizeColumnSigns(vectors, n, n);
  return { values, vectors: { rows: n, cols: n, data: vectors } };
}

/**
 * Householder reduction to tridiagonal form (JAMA tred2) on W = Vᵀ (row j of W is column j of JAMA's V, so every
 * inner loop runs along contiguous memory): W holds the symmetric input on entry and Vᵀ on exit.
 */
export function tred2(n: number, W: Float64Array, d: Float64Array, e: Float64Array): void {
  tred2Reduce(n, W, d, e);
  for (let i = 0; i < n - 1; i++) {
    W[i * n + (n - 1)] = W[i * n + i]!;
    W[i * n + i] = 1;
    const h = d[i + 1]!;
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = W[(i + 1) * n + k]! / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += W[(i + 1) * n + k]! * W[j * n + k]!;
        for (let k = 0; k <= i; k++) W[j * n + k] -= g * d[k]!;
      }
    }
    for (let k = 0; k <= i; k++) W[(i + 1) * n + k] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = W[j * n + (n - 1)]!;
    W[j * n + (n - 1)] = 0;
  }
  W[(n - 1) * n + (n - 1)] = 1;
  e[0] = 0;
}

/**
 * One row of the reduction's symmetric product: for k in [k0, k1): e[k] += W[row + k]·f, and returns
 * Σ W[row + k]·d[k] in four interleaved partial sums (the single running sum was bound by add latency).
 */
function symvRow(W: Float64Array, d: Float64Array, e: Float64Array, row: number, k0: number, k1: number, f: number): number {
  let g0 = 0;
  let g1 = 0;
  let g2 = 0;
  let g3 = 0;
  let k = k0;
  for (; k + 3 < k1; k += 4) {
    const w0 = W[row + k]!;
    const w1 = W[row + k + 1]!;
    const w2 = W[row + k + 2]!;
    const w3 = W[row + k + 3]!;
    g0 += w0 * d[k]!;
    g1 += w1 * d[k + 1]!;
    g2 += w2 * d[k + 2]!;
    g3 += w3 * d[k + 3]!;
    e[k] += w0 * f;
    e[k + 1] += w1 * f;
    e[k + 2] += w2 * f;
    e[k + 3] += w3 * f;
  }
  for (; k < k1; k++) {
    const w = W[row + k]!;
    g0 += w * d[k]!;
    e[k] += w * f;
  }
  return g0 + g1 + (g2 + g3);
}

/** W[row + k] −= f·e[k] + g·d[k] for k in [k0, k1), four at a time (same arithmetic per element as one at a time). */
function rank2Row(W: Float64Array, d: Float64Array, e: Float64Array, row: number, k0: number, k1: number, f: number, g: number): void {
  let k = k0;
  for (; k + 3 < k1; k += 4) {
    const r = row + k;
    W[r] = W[r]! - (f * e[k]! + g * d[k]!);
    W[r + 1] = W[r + 1]! - (f * e[k + 1]! + g * d[k + 1]!);
    W[r + 2] = W[r + 2]! - (f * e[k + 2]! + g * d[k + 2]!);
    W[r + 3] = W[r + 3]! - (f * e[k + 3]! + g * d[k + 3]!);
  }
  for (; k < k1; k++) W[row + k] = W[row + k]! - (f * e[k]! + g * d[k]!);
}

/**
 * The reduction half of `tred2`: on exit e[i] couples i − 1 and i (e[0] = 0), the diagonal of T is on W's diagonal,
 * row i of W holds the Householder vector u_i in columns [0, i) and d[i] its h (P_i = I − u_i·u_iᵀ/h_i, identity
 * when h_i = 0); A = V·T·Vᵀ with V = P_{n−1}···P_1.
 */
export function tred2Reduce(n: number, W: Float64Array, d: Float64Array, e: Float64Array): void {
  for (let j = 0; j < n; j++) d[j] = W[j * n + (n - 1)]!;
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]!);
    if (scale === 0) {
      e[i] = d[i - 1]!;
      for (let j = 0; j < i; j++) {
        d[j] = W[j * n + (i - 1)]!;
        W[j * n + i] = 0;
        W[i * n + j] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] = d[k]! / scale;
        h += d[k]! * d[k]!;
      }
      let f = d[i - 1]!;
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        W[i * n + j] = f;
        e[j] = e[j]! + W[j * n + j]! * f + symvRow(W, d, e, j * n, j + 1, i, f);
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] = e[j]! / h;
        f += e[j]! * d[j]!;
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j]!;
      for (let j = 0; j < i; j++) {
        f = d[j]!;
        g = e[j]!;
        rank2Row(W, d, e, j * n, j, i, f, g);
        d[j] = W[j * n + (i - 1)]!;
        W[j * n + i] = 0;
      }
    }
    d[i] = h;
  }
  e[0] = 0;
}

const SWEEP_CHUNK = 128;

/**
 * Apply one QL sweep's rotations i = m−1 … l (rotation i mixes rows i and i+1 of vt: row i+1 ← s·row i + c·row i+1,
 * row i ← c·row i − s·row i+1) in chunks of SWEEP_CHUNK columns. Row i+1's value is carried in `carry` from one
 * rotation to the next, so each element is loaded and stored once per rotation; same arithmetic, same bits as
 * rotating whole rows one after another.
 */
function applySweep(vt: Float64Array, n: number, l: number, m: number, cs: Float64Array, sn: Float64Array, carry: Float64Array): void {
  for (let k0 = 0; k0 < n; k0 += SWEEP_CHUNK) {
    const w = Math.min(SWEEP_CHUNK, n - k0);
    const top = m * n + k0;
    for (let k = 0; k < w; k++) carry[k] = vt[top + k]!;
    for (let i = m - 1; i >= l; i--) {
      const c = cs[i]!;
      const s = sn[i]!;
      const ri = i * n + k0;
      const ri1 = ri + n;
      for (let k = 0; k < w; k++) {
        const x = carry[k]!;
        const y = vt[ri + k]!;
        vt[ri1 + k] = s * y + c * x;
        carry[k] = c * y - s * x;
      }
    }
    const bottom = l * n + k0;
    for (let k = 0; k < w; k++) vt[bottom + k] = carry[k]!;
  }
}

/**
 * Implicit QL on the tridiagonal (d, e) (JAMA tql2; e[i] couples i − 1 and i, e[0] unused): d receives the
 * eigenvalues (unsorted); vt holds Vᵀ (row i = eigenvector i) and receives the rotations, or is undefined for
 * eigenvalues only (O(n²)).
 */
export function tql2(n: number, vt: Float64Array | undefined, d: Float64Array, e: Float64Array): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]!;
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const cs = new Float64Array(n);
  const sn = new Float64Array(n);
  const carry = new Float64Array(SWEEP_CHUNK);
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]!) + Math.abs(e[l]!));
    let m = l;
    while (m < n) {
      if (Math.abs(e[m]!) <= EPS * tst1) break;
      m++;
    }
    if (m > l) {
      let iter = 0;
      do {
        if (++iter > 60) throw new RangeError('symmetricEigen: QL iteration did not converge (non-finite input?)');
        let g = d[l]!;
        let p = (d[l + 1]! - g) / (2 * e[l]!);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l]! / (p + r);
        d[l + 1] = e[l]! * (p + r);
        const dl1 = d[l + 1]!;
        let h = g - d[l]!;
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m]!;
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1]!;
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i]!;
          h = c * p;
          r = Math.hypot(p, e[i]!);
          e[i + 1] = s * r;
          s = e[i]! / r;
          c = p / r;
          p = c * d[i]! - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]!);
          cs[i] = c;
          sn[i] = s;
        }
        if (vt !== undefined) applySweep(vt, n, l, m, cs, sn, carry);
        p = (-s * s2 * c3 * el1 * e[l]!) / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (Math.abs(e[l]!) > EPS * tst1);
    }
    d[l] = d[l]! + f;
    e[l] = 0;
  }
}
