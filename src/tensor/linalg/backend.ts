// The MatMulBackend contract that every large product in linalg goes through, plus its pure-JS implementation
// (blocked, 4-row register unrolled, f64 accumulation). The ONNX Runtime backend lives in src/eval/ort-matmul.ts.
// Pure: no node: imports, no onnxruntime.

import { assertDim, assertLength } from './matrix.js';

/** Transposition flags of a product: C = op(A)·op(B). */
export interface MatMulOptions {
  /** A is stored row-major as k x m (so op(A) = Aᵀ is m x k). Default false: A stored m x k. */
  transA?: boolean;
  /** B is stored row-major as n x k (so op(B) = Bᵀ is k x n). Default false: B stored k x n. */
  transB?: boolean;
  /**
   * Where to write the m·n result (its exact length; it must not overlap `a` or `b`). A backend that honours it
   * returns `out` itself; one that does not returns a new array: callers use the returned array either way. Reusing
   * an output across products spares fresh memory (page faults) and the garbage collector.
   */
  out?: Float32Array;
}

/**
 * Something that multiplies row-major f32 matrices: C (m x n) = op(A) (m x k) · op(B) (k x n).
 * `a` holds m·k and `b` k·n elements whatever the flags; the result is a new row-major m x n Float32Array, or
 * `options.out` when given and supported.
 * Any dimension may be 0 (an empty or all-zero result). Argument errors reject with a RangeError naming the parameter. Implementations: `jsMatMul` (here, about 2 GFLOP/s) and
 * `createOrtMatMul` in src/eval/ort-matmul.ts (ONNX Runtime, about 60 GFLOP/s per thread).
 */
export interface MatMulBackend {
  /** Short name for reports ("js", "ort-2t"). */
  readonly name: string;
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, options?: MatMulOptions): Promise<Float32Array>;
  /**
   * Native dense kernels (native/dense.cc, AVX-512) that linalg routines use when present: the ORT backend carries
   * them when the addon is built and loads (src/eval/ort-matmul.ts); jsMatMul has none.
   */
  readonly dense?: DenseKernels;
}

/**
 * The dense f32/f64 kernels of the native addon, synchronous, on the backend's threads (the same bits at any thread
 * count). Arrays are row-major and must not overlap unless said.
 */
export interface DenseKernels {
  /** The thread count the kernels run on. */
  readonly threads: number;
  /** c (m x n) = op(a)·op(b) (flags: 1 transA, 2 transB, 4 accumulate into c) on a libuv pool thread; the arrays must not be touched until it settles. */
  gemmAsync(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, flags: number): Promise<void>;
  /**
   * p (n x n, holding A) replaced by A's orthogonal polar factor (scaled Newton, Byers-Xu scaling), on a libuv pool
   * thread and `threads` threads (default the backend's). info: in [0] most iterations, [1] tolerance, [2] largest
   * condition bound accepted; out [3] iterations, [4] last relative step, [5] the condition bound. false when A is
   * singular or worse conditioned than info[2] (p is then untouched if info[3] is 0, unspecified otherwise).
   */
  polarAsync(p: Float32Array, n: number, info: Float64Array, threads?: number): Promise<boolean>;
  /** `tred2Reduce` (svd.ts) in native f64: same contract, vectorised sums (not the same bits). */
  tridiagonalize(w: Float64Array, n: number, d: Float64Array, e: Float64Array): void;
  /**
   * The top-k eigenpairs of the symmetric n x n f64 `w` (destroyed), by `symmetricEigenF32`'s algorithm restricted to
   * k vectors, on a libuv pool thread: `values` (n) gets every eigenvalue descending, `vectors` (n x k f32) the unit
   * eigenvectors of the k largest, largest-magnitude entry positive. false when the input is not finite or the QL
   * iteration does not converge.
   */
  symEigenAsync(w: Float64Array, n: number, k: number, values: Float64Array, vectors: Float32Array): Promise<boolean>;
}

/** Validate the arguments of a matmul call (shared by every backend). */
export function checkMatMulArgs(a: Float32Array, b: Float32Array, m: number, k: number, n: number, options?: MatMulOptions): void {
  assertDim('m', m);
  assertDim('k', k);
  assertDim('n', n);
  if (options?.transA) assertLength('a (k x m, transA)', a, k, m);
  else assertLength('a (m x k)', a, m, k);
  if (options?.transB) assertLength('b (n x k, transB)', b, n, k);
  else assertLength('b (k x n)', b, k, n);
  const out = options?.out;
  if (out !== undefined) {
    assertLength('out (m x n)', out, m, n);
    if (overlaps(out, a) || overlaps(out, b)) throw new RangeError('out: expected memory disjoint from a and b, got an overlapping array');
  }
}

function overlaps(x: Float32Array, y: Float32Array): boolean {
  if (x.buffer !== y.buffer || x.length === 0 || y.length === 0) return false;
  return x.byteOffset < y.byteOffset + y.byteLength && y.byteOffset < x.byteOffset + x.byteLength;
}

/** Row-major transpose of a rows x cols f32 array, blocked for the cache. */
export function transposeF32(src: Float32Array, rows: number, cols: number): Float32Array {
  return transposeInto(new Float32Array(rows * cols), 0, src, rows, cols);
}

/**
 * The transpose (cols x rows) of a row-major rows x cols `src`, written into `out` from `offset`; returns out. Tiles
 * of 16 source columns x 64 rows, the inner loop along the output's rows: contiguous writes, and the 16 source
 * columns of a tile share cache lines (measured 2-4x faster than writing with a stride of `rows`, which on a
 * 4096-row source hits one cache set).
 */
export function transposeInto(out: Float32Array, offset: number, src: Float32Array, rows: number, cols: number): Float32Array {
  for (let j0 = 0; j0 < cols; j0 += 16) {
    const j1 = Math.min(cols, j0 + 16);
    for (let i0 = 0; i0 < rows; i0 += 64) {
      const i1 = Math.min(rows, i0 + 64);
      for (let j = j0; j < j1; j++) {
        const o = offset + j * rows;
        for (let i = i0; i < i1; i++) out[o + i] = src[i * cols + j]!;
      }
    }
  }
  return out;
}

const J_BLOCK = 256;
const K_BLOCK = 256;

/**
 * C = A·B for row-major A (m x k), B (k x n): 4 rows of C at a time in f64 accumulators over a block of 256 columns,
 * k in blocks of 256 so the B panel stays in cache. Synchronous core of `jsMatMul`; writes into `c` when given.
 */
export function matmulF32(a: Float32Array, b: Float32Array, m: number, k: number, n: number, c: Float32Array = new Float32Array(m * n)): Float32Array {
  if (m === 0 || n === 0 || k === 0) return c.fill(0);
  const acc = new Float64Array(4 * J_BLOCK);
  for (let j0 = 0; j0 < n; j0 += J_BLOCK) {
    const jb = Math.min(J_BLOCK, n - j0);
    for (let i = 0; i < m; i += 4) {
      const rowsHere = Math.min(4, m - i);
      acc.fill(0);
      const a0 = i * k;
      const a1 = rowsHere > 1 ? a0 + k : a0;
      const a2 = rowsHere > 2 ? a0 + 2 * k : a0;
      const a3 = rowsHere > 3 ? a0 + 3 * k : a0;
      for (let p0 = 0; p0 < k; p0 += K_BLOCK) {
        const p1 = Math.min(k, p0 + K_BLOCK);
        for (let p = p0; p < p1; p++) {
          const x0 = a[a0 + p]!;
          const x1 = a[a1 + p]!;
          const x2 = a[a2 + p]!;
          const x3 = a[a3 + p]!;
          const bp = p * n + j0;
          for (let j = 0; j < jb; j++) {
            const y = b[bp + j]!;
            acc[j] += x0 * y;
            acc[J_BLOCK + j] += x1 * y;
            acc[2 * J_BLOCK + j] += x2 * y;
            acc[3 * J_BLOCK + j] += x3 * y;
          }
        }
      }
      for (let r = 0; r < rowsHere; r++) {
        const cr = (i + r) * n + j0;
        const ar = r * J_BLOCK;
        for (let j = 0; j < jb; j++) c[cr + j] = acc[ar + j]!;
      }
    }
  }
  return c;
}

/** The pure-JS backend: transposed operands are copied into row-major first (O(size), negligible next to the product). */
export const jsMatMul: MatMulBackend = {
  name: 'js',
  async matmul(a, b, m, k, n, options) {
    checkMatMulArgs(a, b, m, k, n, options);
    const A = options?.transA ? transposeF32(a, k, m) : a;
    const B = options?.transB ? transposeF32(b, n, k) : b;
    return matmulF32(A, B, m, k, n, options?.out);
  },
};

/**
 * Reusable f32 work arrays by role, owned by one computation (never shared by two that run at once): `take` returns
 * the role's array with exactly `length` elements (a view when the role's buffer is longer; it grows when shorter),
 * contents left from its last use. Spares the fresh memory (page faults) and garbage collections that a new
 * 100 MB array per product costs at 4096².
 */
export class ScratchF32 {
  readonly #buffers = new Map<string, Float32Array>();
  readonly #doubles = new Map<string, Float64Array>();

  take(role: string, length: number): Float32Array {
    return kept(this.#buffers, role, length, (n) => new Float32Array(n));
  }

  /** As `take`, for f64 work arrays (a separate set of roles). */
  takeF64(role: string, length: number): Float64Array {
    return kept(this.#doubles, role, length, (n) => new Float64Array(n));
  }
}

/** The first `length` elements of the array kept under `role`, replaced by a new one when it is too short. */
function kept<A extends Float32Array | Float64Array>(buffers: Map<string, A>, role: string, length: number, make: (n: number) => A): A {
  let b = buffers.get(role);
  if (b === undefined || b.length < length) {
    b = make(length);
    buffers.set(role, b);
  }
  return b.length === length ? b : (b.subarray(0, length) as A);
}

/** Smallest column count that `gramMatrix` splits into two halves. */
const GRAM_SPLIT_MIN = 512;

/**
 * G = XᵀX (cols x cols, row-major, symmetric to rounding) of a row-major rows x cols f32 X, as a new array. See
 * `gramMatrixInto`.
 */
export async function gramMatrix(x: Float32Array, rows: number, cols: number, backend: MatMulBackend, scratch?: ScratchF32): Promise<Float32Array> {
  return gramMatrixInto(new Float32Array(cols * cols), x, rows, cols, backend, scratch);
}

/**
 * G = XᵀX into `out` (cols x cols, disjoint from x; returns the array holding G: `out` unless the backend ignores
 * `options.out`). From GRAM_SPLIT_MIN columns on, X is split into column halves X1, X2 (copies in `scratch`) and
 * only X1ᵀ·X (the top rows of G, written straight into out) and X2ᵀX2 are multiplied (3/4 of the multiply-adds);
 * the lower-left block is the transpose of the upper-right one.
 */
export async function gramMatrixInto(out: Float32Array, x: Float32Array, rows: number, cols: number, backend: MatMulBackend, scratch = new ScratchF32()): Promise<Float32Array> {
  assertDim('rows', rows);
  assertDim('cols', cols);
  assertLength('x (rows x cols)', x, rows, cols);
  assertLength('out (cols x cols)', out, cols, cols);
  if (cols < GRAM_SPLIT_MIN) return backend.matmul(x, x, cols, rows, cols, { transA: true, out });
  const c1 = cols >> 1;
  const c2 = cols - c1;
  const x1 = scratch.take('gram.x1', rows * c1);
  const x2 = scratch.take('gram.x2', rows * c2);
  for (let i = 0; i < rows; i++) {
    const r = i * cols;
    x1.set(x.subarray(r, r + c1), i * c1);
    x2.set(x.subarray(r + c1, r + cols), i * c2);
  }
  const gTop = out.subarray(0, c1 * cols);
  const top = await backend.matmul(x1, x, c1, rows, cols, { transA: true, out: gTop }); // rows [0, c1) of G
  if (top !== gTop) gTop.set(top);
  const g22 = await backend.matmul(x2, x2, c2, rows, c2, { transA: true, out: scratch.take('gram.g22', c2 * c2) });
  const g = out;
  for (let i = 0; i < c2; i++) g.set(g22.subarray(i * c2, i * c2 + c2), (c1 + i) * cols + c1);
  const B = 32;
  for (let i0 = 0; i0 < c2; i0 += B) {
    const i1 = Math.min(c2, i0 + B);
    for (let j0 = 0; j0 < c1; j0 += B) {
      const j1 = Math.min(c1, j0 + B);
      for (let i = i0; i < i1; i++) {
        const r = (c1 + i) * cols;
        for (let j = j0; j < j1; j++) g[r + j] = g[j * cols + c1 + i]!;
      }
    }
  }
  return g;
}

/** Tile edge of the symmetrising pass (transposed reads stay in cache). */
const SYM_TILE = 64;

/**
 * XᵀX as an exactly symmetric f64 matrix: `gramMatrix` on the backend (its f32 result in `scratch`), then
 * (G + Gᵀ)/2 (removes f32 asymmetry), in tiles over the upper triangle.
 */
export async function symmetricGramF64(
  x: Float32Array,
  rows: number,
  cols: number,
  backend: MatMulBackend,
  scratch = new ScratchF32(),
  out: Float64Array = new Float64Array(cols * cols),
): Promise<Float64Array> {
  assertLength('out (cols x cols)', out, cols, cols);
  const g32 = await gramMatrixInto(scratch.take('gram.f32', cols * cols), x, rows, cols, backend, scratch);
  const g = out;
  for (let i0 = 0; i0 < cols; i0 += SYM_TILE) {
    const i1 = Math.min(cols, i0 + SYM_TILE);
    for (let j0 = i0; j0 < cols; j0 += SYM_TILE) {
      const j1 = Math.min(cols, j0 + SYM_TILE);
      for (let i = i0; i < i1; i++) {
        const row = i * cols;
        for (let j = Math.max(j0, i); j < j1; j++) {
          const v = 0.5 * (g32[row + j]! + g32[j * cols + i]!);
          g[row + j] = v;
          g[j * cols + i] = v;
        }
      }
    }
  }
  return g;
}
