// Dtype conversions between storage formats and f32, the compute type. Pure; no node: imports.
// Guarantees: decoding is exact; encoding to half/8-bit floats rounds to nearest even, keeps NaN a NaN,
// handles subnormals and infinities. F8 encoders saturate (ONNX Cast saturate=1): finite overflow and ±Inf map
// to ±max finite (E4M3FN: 448, E5M2: 57344); NaN maps to the type's NaN.

import { UsageError } from '../errors.js';
import { DTYPE_INFO, allocData, type DType, type TensorData } from './dtype.js';
import { makeTensor, type Tensor } from './tensor.js';

// ---------------------------------------------------------------------------------------------------------
// scalar helpers (also used to build tables and as test oracles)

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

export function f32Bits(x: number): number {
  f32buf[0] = x;
  return u32buf[0]!;
}

export function bitsF32(u: number): number {
  u32buf[0] = u >>> 0;
  return f32buf[0]!;
}

/** One f32 (given as its bits) to bf16 bits, round to nearest even; NaN stays NaN (quiet bit set). */
export function bf16FromF32Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x0040) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** f16 bits to f32 value (exact). */
export function f16BitsToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** One f32 (given as its bits) to f16 bits, round to nearest even; overflow gives ±Inf; NaN stays NaN. */
export function f16FromF32Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const absu = u & 0x7fffffff;
  if (absu > 0x7f800000) return sign | 0x7e00 | ((absu >>> 13) & 0x3ff); // NaN, keep payload top bits, quiet
  if (absu >= 0x477ff000) return sign | 0x7c00; // rounds to >= 65520 -> Inf (includes Inf)
  const e = absu >>> 23;
  if (e >= 113) {
    // normal f16: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even
    const r = absu - (112 << 23);
    return sign | ((r + 0x0fff + ((r >>> 13) & 1)) >>> 13);
  }
  if (e < 102) return sign; // below half the smallest subnormal (2^-25): rounds to zero
  // subnormal f16: value = m * 2^-24 with m in [0, 1024]
  const mant = (absu & 0x7fffff) | 0x800000;
  const shift = 126 - e; // 14..24
  const q = mant >>> shift;
  const rem = mant & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  const up = rem > half || (rem === half && (q & 1) === 1) ? 1 : 0;
  return sign | (q + up);
}

interface F8Format {
  readonly expBits: number;
  readonly manBits: number;
  readonly bias: number;
  readonly hasInf: boolean; // E5M2: IEEE-like; E4M3FN: no Inf, only S.1111.111 is NaN
  readonly maxBits: number; // bits of the largest finite magnitude
  readonly nanBits: number;
}

const E4M3: F8Format = { expBits: 4, manBits: 3, bias: 7, hasInf: false, maxBits: 0x7e, nanBits: 0x7f };
const E5M2: F8Format = { expBits: 5, manBits: 2, bias: 15, hasInf: true, maxBits: 0x7b, nanBits: 0x7e };

function f8Decode(fmt: F8Format, b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >>> fmt.manBits) & ((1 << fmt.expBits) - 1);
  const m = b & ((1 << fmt.manBits) - 1);
  const emax = (1 << fmt.expBits) - 1;
  if (fmt.hasInf && e === emax) return m === 0 ? s * Infinity : NaN;
  if (!fmt.hasInf && e === emax && m === (1 << fmt.manBits) - 1) return NaN;
  if (e === 0) return s * m * 2 ** (1 - fmt.bias - fmt.manBits);
  return s * (1 + m / (1 << fmt.manBits)) * 2 ** (e - fmt.bias);
}

/** Encode by searching the decoded table: exact RNE with saturation. Used to build 64K-entry lookup tables. */
function f8EncodeNumber(fmt: F8Format, dec: Float64Array, x: number): number {
  if (Number.isNaN(x)) return fmt.nanBits;
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  const a = Math.abs(x);
  const max = dec[fmt.maxBits]!;
  if (a >= max) return sign | fmt.maxBits; // saturate (also ±Inf)
  // positive codes 0..maxBits are monotonically increasing in value; find the nearest, ties to even code
  let lo = 0;
  let hi = fmt.maxBits;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (dec[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - dec[lo]!;
  const dh = dec[hi]! - a;
  let code: number;
  if (dl < dh) code = lo;
  else if (dh < dl) code = hi;
  else code = (lo & 1) === 0 ? lo : hi;
  return sign | code;
}

// ---------------------------------------------------------------------------------------------------------
// tables (built lazily, once)

let f16Table: Uint32Array | undefined;
function getF16Table(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f32Bits(f16BitsToNumber(h));
    // keep NaN payloads deterministic and quiet
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) {
        f16Table[h] = ((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13);
      }
    }
  }
  return f16Table;
}

const f8DecTables = new Map<F8Format, { f32: Float32Array; f64: Float64Array }>();
function getF8Dec(fmt: F8Format): { f32: Float32Array; f64: Float64Array } {
  let t = f8DecTables.get(fmt);
  if (!t) {
    const f64 = new Float64Array(256);
    for (let b = 0; b < 256; b++) f64[b] = f8Decode(fmt, b);
    t = { f32: Float32Array.from(f64), f64 };
    f8DecTables.set(fmt, t);
  }
  return t;
}

/** f32 -> f8 via a 64K table indexed by the top 16 bits of the f32, plus an exact fix-up near ties. */
const f8EncTables = new Map<F8Format, Uint8Array>();
function getF8EncTable(fmt: F8Format): Uint8Array {
  let t = f8EncTables.get(fmt);
  if (!t) {
    // For each top-16-bit prefix, the code for the smallest value with that prefix and for the largest. If they
    // agree, every f32 with this prefix maps to that code; else mark 0xff... we store both via two tables.
    t = new Uint8Array(65536 * 2);
    const dec = getF8Dec(fmt).f64;
    for (let p = 0; p < 65536; p++) {
      t[2 * p] = f8EncodeNumber(fmt, dec, bitsF32(p << 16));
      t[2 * p + 1] = f8EncodeNumber(fmt, dec, bitsF32((p << 16) | 0xffff));
    }
    f8EncTables.set(fmt, t);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------------
// array kernels

function outF32(n: number, dst?: Float32Array): Float32Array {
  if (dst === undefined) return new Float32Array(n);
  if (dst.length < n) throw new RangeError(`destination has ${dst.length} elements, need ${n}`);
  return dst;
}

function outU16(n: number, dst?: Uint16Array): Uint16Array {
  if (dst === undefined) return new Uint16Array(n);
  if (dst.length < n) throw new RangeError(`destination has ${dst.length} elements, need ${n}`);
  return dst;
}

function outU8(n: number, dst?: Uint8Array): Uint8Array {
  if (dst === undefined) return new Uint8Array(n);
  if (dst.length < n) throw new RangeError(`destination has ${dst.length} elements, need ${n}`);
  return dst;
}

export function bf16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const out = outF32(n, dst);
  const o = new Uint32Array(out.buffer, out.byteOffset, n);
  for (let i = 0; i < n; i++) o[i] = src[i]! << 16;
  return out;
}

export function f32ToBf16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  const out = outU16(n, dst);
  const s = new Uint32Array(src.buffer, src.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const u = s[i]!;
    out[i] = (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return out;
}

export function f16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const out = outF32(n, dst);
  const o = new Uint32Array(out.buffer, out.byteOffset, n);
  const table = getF16Table();
  for (let i = 0; i < n; i++) o[i] = table[src[i]!]!;
  return out;
}

export function f32ToF16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  const out = outU16(n, dst);
  const s = new Uint32Array(src.buffer, src.byteOffset, n);
  for (let i = 0; i < n; i++) out[i] = f16FromF32Bits(s[i]!);
  return out;
}

function f8ToF32(fmt: F8Format, src: Uint8Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const out = outF32(n, dst);
  const table = getF8Dec(fmt).f32;
  for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
  return out;
}

function f32ToF8(fmt: F8Format, src: Float32Array, dst?: Uint8Array): Uint8Array {
  const n = src.length;
  const out = outU8(n, dst);
  const s = new Uint32Array(src.buffer, src.byteOffset, n);
  const t = getF8EncTable(fmt);
  const dec = getF8Dec(fmt).f64;
  for (let i = 0; i < n; i++) {
    const p = s[i]! >>> 16;
    const lo = t[2 * p]!;
    out[i] = lo === t[2 * p + 1]! ? lo : f8EncodeNumber(fmt, dec, src[i]!);
  }
  return out;
}

export const f8e4m3ToF32 = (src: Uint8Array, dst?: Float32Array): Float32Array => f8ToF32(E4M3, src, dst);
export const f8e5m2ToF32 = (src: Uint8Array, dst?: Float32Array): Float32Array => f8ToF32(E5M2, src, dst);
export const f32ToF8e4m3 = (src: Float32Array, dst?: Uint8Array): Uint8Array => f32ToF8(E4M3, src, dst);
export const f32ToF8e5m2 = (src: Float32Array, dst?: Uint8Array): Uint8Array => f32ToF8(E5M2, src, dst);

// ---------------------------------------------------------------------------------------------------------
// any dtype <-> f32

/** Decode storage data of `dtype` to f32. Integers convert by value (I64/U64 beyond 2^24 lose precision). */
export function toF32(dtype: DType, src: TensorData, dst?: Float32Array): Float32Array {
  switch (dtype) {
    case 'F32': {
      const s = src as Float32Array;
      if (dst === undefined) return s;
      outF32(s.length, dst).set(s);
      return dst;
    }
    case 'BF16':
      return bf16ToF32(src as Uint16Array, dst);
    case 'F16':
      return f16ToF32(src as Uint16Array, dst);
    case 'F8_E4M3':
      return f8e4m3ToF32(src as Uint8Array, dst);
    case 'F8_E5M2':
      return f8e5m2ToF32(src as Uint8Array, dst);
    case 'I64':
    case 'U64': {
      const s = src as BigInt64Array | BigUint64Array;
      const out = outF32(s.length, dst);
      for (let i = 0; i < s.length; i++) out[i] = Number(s[i]!);
      return out;
    }
    case 'F64':
    case 'I32':
    case 'U32':
    case 'I16':
    case 'U16':
    case 'I8':
    case 'U8':
    case 'BOOL': {
      const s = src as Float64Array | Int32Array | Uint32Array | Int16Array | Uint16Array | Int8Array | Uint8Array;
      const out = outF32(s.length, dst);
      out.set(s);
      return out;
    }
  }
}

/** Encode f32 values as `dtype` storage. Floats round to nearest even; integers round half to even and clamp. */
export function fromF32(dtype: DType, src: Float32Array, dst?: TensorData): TensorData {
  switch (dtype) {
    case 'F32': {
      if (dst === undefined) return src;
      (dst as Float32Array).set(src);
      return dst;
    }
    case 'BF16':
      return f32ToBf16(src, dst as Uint16Array | undefined);
    case 'F16':
      return f32ToF16(src, dst as Uint16Array | undefined);
    case 'F8_E4M3':
      return f32ToF8e4m3(src, dst as Uint8Array | undefined);
    case 'F8_E5M2':
      return f32ToF8e5m2(src, dst as Uint8Array | undefined);
    case 'F64': {
      const out = (dst as Float64Array | undefined) ?? new Float64Array(src.length);
      out.set(src);
      return out;
    }
    case 'BOOL': {
      const out = (dst as Uint8Array | undefined) ?? new Uint8Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = src[i] !== 0 ? 1 : 0;
      return out;
    }
    case 'I64':
    case 'U64': {
      const out = (dst as BigInt64Array | BigUint64Array | undefined) ?? allocData(dtype, src.length);
      const { lo, hi } = intRange(dtype);
      for (let i = 0; i < src.length; i++) {
        const v = src[i]!;
        const r = Number.isNaN(v) ? 0 : Math.min(hi, Math.max(lo, roundHalfEven(v)));
        (out as BigInt64Array)[i] = BigInt(r);
      }
      return out as TensorData;
    }
    case 'I32':
    case 'U32':
    case 'I16':
    case 'U16':
    case 'I8':
    case 'U8': {
      const out = (dst as Int32Array | undefined) ?? (allocData(dtype, src.length) as Int32Array);
      const { lo, hi } = intRange(dtype);
      for (let i = 0; i < src.length; i++) {
        const v = src[i]!;
        out[i] = Number.isNaN(v) ? 0 : Math.min(hi, Math.max(lo, roundHalfEven(v)));
      }
      return out;
    }
  }
}

function roundHalfEven(v: number): number {
  if (!Number.isFinite(v)) return v;
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

function intRange(dtype: DType): { lo: number; hi: number } {
  const bits = DTYPE_INFO[dtype].bits;
  if (DTYPE_INFO[dtype].kind === 'uint') return { lo: 0, hi: bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** bits - 1 };
  if (bits >= 53) return { lo: Number.MIN_SAFE_INTEGER, hi: Number.MAX_SAFE_INTEGER };
  return { lo: -(2 ** (bits - 1)), hi: 2 ** (bits - 1) - 1 };
}

/**
 * Cast a tensor to another dtype. Float -> float goes through f32 (F64 sources keep full precision only when the
 * target is F64). Float -> integer/bool is refused unless `allowLossy` (weights are not indices).
 */
export function castTensor(t: Tensor, to: DType, options: { allowLossy?: boolean } = {}): Tensor {
  if (t.dtype === to) return t;
  const fromKind = DTYPE_INFO[t.dtype].kind;
  const toKind = DTYPE_INFO[to].kind;
  if (fromKind === 'float' && toKind !== 'float' && !options.allowLossy) {
    throw new UsageError('DTYPE_UNSUPPORTED', `refusing to cast float tensor (${t.dtype}) to ${to}`);
  }
  if (to === 'F64' && t.dtype !== 'I64' && t.dtype !== 'U64') {
    const out = new Float64Array(t.data.length);
    out.set(t.dtype === 'F32' || t.dtype === 'F64' ? (t.data as Float32Array) : toF32(t.dtype, t.data));
    return makeTensor(to, t.shape, out);
  }
  // everything else goes through f32 (F64 -> F16/BF16 therefore rounds twice; weights are not stored as F64)
  return makeTensor(to, t.shape, fromF32(to, toF32(t.dtype, t.data)));
}
