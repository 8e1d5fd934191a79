// The one dtype table: safetensors spellings, sizes, storage arrays and ONNX codes. Pure; no node: imports.
// Half and 8-bit float types are stored as raw bit patterns (Uint16Array / Uint8Array); math happens in f32.

export const DTYPES = [
  'F64',
  'F32',
  'F16',
  'BF16',
  'F8_E4M3',
  'F8_E5M2',
  'I64',
  'I32',
  'I16',
  'I8',
  'U64',
  'U32',
  'U16',
  'U8',
  'BOOL',
] as const;

export type DType = (typeof DTYPES)[number];
export type FloatDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2';

export type TensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | Uint8Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Uint32Array
  | Int16Array
  | Int8Array;

export interface DTypeInfo {
  readonly name: DType;
  readonly bits: number;
  readonly bytes: number;
  readonly kind: 'float' | 'int' | 'uint' | 'bool';
  /** ONNX TensorProto.DataType code. */
  readonly onnx: number;
  /** Lower-case spelling used in user-facing options (bf16, f32 ...). */
  readonly short: string;
}

const info = (name: DType, bits: number, kind: DTypeInfo['kind'], onnx: number, short: string): DTypeInfo => ({
  name,
  bits,
  bytes: bits / 8,
  kind,
  onnx,
  short,
});

export const DTYPE_INFO: Readonly<Record<DType, DTypeInfo>> = {
  F64: info('F64', 64, 'float', 11, 'f64'),
  F32: info('F32', 32, 'float', 1, 'f32'),
  F16: info('F16', 16, 'float', 10, 'f16'),
  BF16: info('BF16', 16, 'float', 16, 'bf16'),
  F8_E4M3: info('F8_E4M3', 8, 'float', 17, 'f8_e4m3'),
  F8_E5M2: info('F8_E5M2', 8, 'float', 19, 'f8_e5m2'),
  I64: info('I64', 64, 'int', 7, 'i64'),
  I32: info('I32', 32, 'int', 6, 'i32'),
  I16: info('I16', 16, 'int', 5, 'i16'),
  I8: info('I8', 8, 'int', 3, 'i8'),
  U64: info('U64', 64, 'uint', 13, 'u64'),
  U32: info('U32', 32, 'uint', 12, 'u32'),
  U16: info('U16', 16, 'uint', 4, 'u16'),
  U8: info('U8', 8, 'uint', 2, 'u8'),
  BOOL: info('BOOL', 8, 'bool', 9, 'bool'),
};

const BY_ONNX = new Map<number, DType>(DTYPES.map((d) => [DTYPE_INFO[d].onnx, d]));

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_INFO, s);
}

export function isFloatDType(d: DType): d is FloatDType {
  return DTYPE_INFO[d].kind === 'float';
}

export function dtypeFromOnnx(code: number): DType | undefined {
  return BY_ONNX.get(code);
}

/** Accepts safetensors spellings (BF16), short forms (bf16) and mergekit/torch names (bfloat16, float32 ...). */
export function parseDType(s: string): DType | undefined {
  const up = s.trim();
  if (isDType(up)) return up;
  const lower = up.toLowerCase();
  for (const d of DTYPES) if (DTYPE_INFO[d].short === lower) return d;
  const aliases: Record<string, DType> = {
    float64: 'F64',
    double: 'F64',
    float32: 'F32',
    float: 'F32',
    float16: 'F16',
    half: 'F16',
    bfloat16: 'BF16',
    float8_e4m3fn: 'F8_E4M3',
    float8_e5m2: 'F8_E5M2',
    int64: 'I64',
    int32: 'I32',
    int16: 'I16',
    int8: 'I8',
    uint64: 'U64',
    uint32: 'U32',
    uint16: 'U16',
    uint8: 'U8',
    bool: 'BOOL',
  };
  return aliases[lower];
}

/** Allocate a zeroed storage array of the right class for `numel` elements of `dtype`. */
export function allocData(dtype: DType, numel: number): TensorData {
  switch (dtype) {
    case 'F64':
      return new Float64Array(numel);
    case 'F32':
      return new Float32Array(numel);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(numel);
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'U8':
    case 'BOOL':
      return new Uint8Array(numel);
    case 'I64':
      return new BigInt64Array(numel);
    case 'U64':
      return new BigUint64Array(numel);
    case 'I32':
      return new Int32Array(numel);
    case 'U32':
      return new Uint32Array(numel);
    case 'I16':
      return new Int16Array(numel);
    case 'I8':
      return new Int8Array(numel);
  }
}

/**
 * View `byteLength` bytes of `buffer` at `byteOffset` as the storage array of `dtype` (no copy). The offset must be
 * aligned to the element size; callers that read from files arrange that by reading into their own buffers.
 */
export function viewData(dtype: DType, buffer: ArrayBufferLike, byteOffset: number, numel: number): TensorData {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buffer, byteOffset, numel);
    case 'F32':
      return new Float32Array(buffer, byteOffset, numel);
    case 'F16':
    case 'BF16':
    case 'U16':
      return new Uint16Array(buffer, byteOffset, numel);
    case 'F8_E4M3':
    case 'F8_E5M2':
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer, byteOffset, numel);
    case 'I64':
      return new BigInt64Array(buffer, byteOffset, numel);
    case 'U64':
      return new BigUint64Array(buffer, byteOffset, numel);
    case 'I32':
      return new Int32Array(buffer, byteOffset, numel);
    case 'U32':
      return new Uint32Array(buffer, byteOffset, numel);
    case 'I16':
      return new Int16Array(buffer, byteOffset, numel);
    case 'I8':
      return new Int8Array(buffer, byteOffset, numel);
  }
}

/** The largest element count one typed array may hold here (Node's 4 GiB buffer cap). */
export const MAX_TENSOR_BYTES = 2 ** 32;

