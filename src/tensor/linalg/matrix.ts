// Small dense matrices for the exact linear-algebra kernels (QR, Jacobi SVD, eigen): row-major Float64Array.
// Big operands (weights, sketches) stay Float32Array row-major with explicit dims and go through a MatMulBackend.
// Pure: no node: imports, no onnxruntime.

/** A dense row-major f64 matrix: element (i, j) is `data[i * cols + j]`. Used for small (k+p sized) problems. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

/** Throws RangeError unless `value` is a non-negative safe integer; `name` is quoted in the message. */
export function assertDim(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name}: expected a non-negative integer, got ${value}`);
  }
}

/** Throws RangeError unless `data.length === rows * cols`. */
export function assertLength(name: string, data: ArrayLike<number>, rows: number, cols: number): void {
  if (data.length !== rows * cols) {
    throw new RangeError(`${name}: expected ${rows}x${cols} = ${rows * cols} elements, got ${data.length}`);
  }
}

/** A rows x cols matrix, zero-filled or wrapping `data` (not copied). */
export function matrix(rows: number, cols: number, data?: Float64Array): Matrix {
  assertDim('rows', rows);
  assertDim('cols', cols);
  if (data !== undefined) assertLength('data', data, rows, cols);
  return { rows, cols, data: data ?? new Float64Array(rows * cols) };
}

/** The n x n identity. */
export function identity(n: number): Matrix {
  const out = matrix(n, n);
  for (let i = 0; i < n; i++) out.data[i * n + i] = 1;
  return out;
}

/** Copy a row-major f32 (or f64) array into an f64 Matrix. */
export function fromArray(data: ArrayLike<number>, rows: number, cols: number): Matrix {
  assertDim('rows', rows);
  assertDim('cols', cols);
  assertLength('data', data, rows, cols);
  return { rows, cols, data: Float64Array.from(data) };
}

/** Row-major f32 copy of a Matrix (for handing to a MatMulBackend). */
export function toF32(a: Matrix): Float32Array {
  return Float32Array.from(a.data);
}

/** Aᵀ as a new matrix. */
export function transpose(a: Matrix): Matrix {
  const { rows: m, cols: n, data } = a;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    for (let j = 0; j < n; j++) out[j * m + i] = data[row + j]!;
  }
  return { rows: n, cols: m, data: out };
}

/** A·B in f64 (i-k-j loop; for small matrices only: O(m k n) in JS at about 1 GFLOP/s). */
export function multiply(a: Matrix, b: Matrix): Matrix {
  if (a.cols !== b.rows) throw new RangeError(`multiply: a is ${a.rows}x${a.cols}, b is ${b.rows}x${b.cols}; inner dims differ`);
  const m = a.rows;
  const k = a.cols;
  const n = b.cols;
  const A = a.data;
  const B = b.data;
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const ci = i * n;
    for (let p = 0; p < k; p++) {
      const aip = A[i * k + p]!;
      if (aip === 0) continue;
      const bp = p * n;
      for (let j = 0; j < n; j++) C[ci + j] += aip * B[bp + j]!;
    }
  }
  return { rows: m, cols: n, data: C };
}

/** Columns [c0, c1) of `a` as a new matrix. */
export function sliceColumns(a: Matrix, c0: number, c1: number): Matrix {
  if (!(0 <= c0 && c0 <= c1 && c1 <= a.cols)) throw new RangeError(`sliceColumns: [${c0}, ${c1}) outside 0..${a.cols}`);
  const w = c1 - c0;
  const out = new Float64Array(a.rows * w);
  for (let i = 0; i < a.rows; i++) out.set(a.data.subarray(i * a.cols + c0, i * a.cols + c1), i * w);
  return { rows: a.rows, cols: w, data: out };
}

/** max |QᵀQ − I| over all entries: how far the columns of a row-major rows x cols array are from orthonormal. */
export function orthonormalityError(q: ArrayLike<number>, rows: number, cols: number): number {
  assertLength('q', q, rows, cols);
  const g = new Float64Array(cols * cols);
  for (let i = 0; i < rows; i++) {
    const r = i * cols;
    for (let a = 0; a < cols; a++) {
      const qa = q[r + a]!;
      if (qa === 0) continue;
      const ga = a * cols;
      for (let b = a; b < cols; b++) g[ga + b] += qa * q[r + b]!;
    }
  }
  let worst = 0;
  for (let a = 0; a < cols; a++) {
    for (let b = a; b < cols; b++) worst = Math.max(worst, Math.abs(g[a * cols + b]! - (a === b ? 1 : 0)));
  }
  return worst;
}

/**
 * Flip the sign of column j of `u` (rows x cols, row-major) when its entry of largest magnitude (the first one on
 * ties) is negative, and flip column j of every matrix in `partners` with it. Makes SVD/eigen output deterministic.
 */
export function normalizeColumnSigns(
  u: Float64Array | Float32Array,
  rows: number,
  cols: number,
  partners: readonly { data: Float64Array | Float32Array; rows: number }[] = [],
): void {
  for (let j = 0; j < cols; j++) {
    let best = 0;
    let sign = 1;
    for (let i = 0; i < rows; i++) {
      const x = u[i * cols + j]!;
      if (Math.abs(x) > best) {
        best = Math.abs(x);
        sign = x < 0 ? -1 : 1;
      }
    }
    if (sign > 0) continue;
    for (let i = 0; i < rows; i++) u[i * cols + j] = -u[i * cols + j]!;
    for (const p of partners) for (let i = 0; i < p.rows; i++) p.data[i * cols + j] = -p.data[i * cols + j]!;
  }
}
