// Tensor: a plain immutable {dtype, shape, data} record plus overflow-checked shape arithmetic.
// Pure; no node: imports. Shapes are arrays of non-negative safe integers; numel never silently overflows.

import { DTYPE_INFO, allocData, type DType, type TensorData } from './dtype.js';

export interface Tensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** Product of the dims, or undefined if any dim is not a non-negative safe integer or the product overflows. */
export function checkedNumel(shape: readonly unknown[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) return undefined;
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

/** numel for a shape already known to be valid (e.g. from a validated header). Throws RangeError otherwise. */
export function numel(shape: readonly number[]): number {
  const n = checkedNumel(shape);
  if (n === undefined) throw new RangeError(`invalid shape [${shape.join(', ')}]`);
  return n;
}

/** Byte size of a tensor of this dtype and shape, or undefined on overflow. */
export function checkedByteLength(dtype: DType, shape: readonly unknown[]): number | undefined {
  const n = checkedNumel(shape);
  if (n === undefined) return undefined;
  const bytes = n * DTYPE_INFO[dtype].bytes;
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** Elements per row (product of all dims but the first); a 0-d tensor is one row of one element. */
export function rowNumel(shape: readonly number[]): number {
  if (shape.length <= 1) return 1;
  return numel(shape.slice(1));
}

/** Number of rows along the first dimension (1 for a scalar). */
export function rowCount(shape: readonly number[]): number {
  return shape.length === 0 ? 1 : shape[0]!;
}

export function shapesEqual(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function makeTensor(dtype: DType, shape: readonly number[], data?: TensorData): Tensor {
  const n = numel(shape);
  const d = data ?? allocData(dtype, n);
  if (d.length !== n) throw new RangeError(`data has ${d.length} elements, shape ${formatShape(shape)} needs ${n}`);
  return { dtype, shape: [...shape], data: d };
}

/** The tensor's bytes as a Uint8Array view (no copy). */
export function tensorBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}
