// The public API of weightkit: explicit named exports only. Everything a user imports comes from here.

export * from './errors.js';
export {
  DTYPES,
  DTYPE_INFO,
  parseDType,
  isFloatDType,
  dtypeFromOnnx,
  type DType,
  type DTypeInfo,
  type TensorData,
} from './tensor/dtype.js';
export { makeTensor, numel, checkedNumel, formatShape, shapesEqual, type Tensor } from './tensor/tensor.js';
export {
  bf16ToF32,
  f32ToBf16,
  f16ToF32,
  f32ToF16,
  f8e4m3ToF32,
  f8e5m2ToF32,
  f32ToF8e4m3,
  f32ToF8e5m2,
  toF32,
  fromF32,
  castTensor,
} from './tensor/convert.js';
export type {
  CheckpointReader,
  CheckpointFormat,
  TensorInfo,
  ShardInfo,
  ReadRange,
  ReadF32Options,
  ReadBytesOptions,
  TensorDecl,
} from './io/types.js';
