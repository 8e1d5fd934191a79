// Public entry of the linear-algebra core (dense f64 small kernels, f32 big operands through a MatMulBackend).
// Explicit named exports only. Pure: no node: imports; the ORT backend is src/eval/ort-matmul.ts.

export { checkMatMulArgs, gramMatrix, jsMatMul, matmulF32, transposeF32, type MatMulBackend, type MatMulOptions } from './backend.js';
export {
  assertDim,
  assertLength,
  fromArray,
  identity,
  matrix,
  multiply,
  normalizeColumnSigns,
  orthonormalityError,
  sliceColumns,
  toF32,
  transpose,
  type Matrix,
} from './matrix.js';
export {
  choleskyInverseBlocked,
  choleskyLower,
  householderQr,
  invertLower,
  orthonormalizeColumns,
  ORTHONORMALIZE_TOLERANCE,
  type OrthonormalizeOptions,
  type QrResult,
} from './qr.js';
export { completeOrthonormalColumns, jacobiSvd, symmetricEigen, type DenseSvd, type SymmetricEigen } from './svd.js';
export {
  EXACT_MAX_DIM,
  randomizedSvd,
  truncatedSvd,
  type RandomizedSvdOptions,
  type TruncatedSvd,
  type TruncatedSvdOptions,
} from './randomized.js';
export { polarFactor, type PolarResult } from './polar.js';
