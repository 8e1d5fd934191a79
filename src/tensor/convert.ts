// Dtype conversions between storage formats and f32: JS loops, wasm SIMD for large bf16/f16 arrays (bit-identical).
// Exact decoding; encoding rounds to nearest even, keeps NaN a NaN, handles subnormals/Inf. F8 encoders saturate (ONNX
// Cast saturate=1): finite overflow and ±Inf -> ±max finite (E4M3FN 448, E5M2 57344), NaN -> NaN. No node: imports.

import { UsageError } from '../errors.js';
import { DTYPE_INFO, allocData, type DType, type TensorData } from './dtype.js';
import { makeTensor, type Tensor } from './tensor.js';
import { simdKernels } from './wasm/simd.js';
import { workspaceOf } from './wasm/workspace.js';

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
/** f16 bits -> f32 bits for all 65,536 patterns; NaN keeps its payload (shifted) and gets the quiet bit. */
function getF16Table(): Uint32Array {
  if (!f16Table) {
    const t = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) {
      t[h] =
        (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0
          ? ((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13)
          : f32Bits(f16BitsToNumber(h));
    }
    f16Table = t;
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

/**
 * f32 -> f8 by the top 16 bits p of the f32: every f32 with prefix p rounds to LO if its low 16 bits are below THR,
 * else to HI, packed as THR | LO << 16 | HI << 24. A prefix spans less than one f8 step, so it holds at most one
 * rounding boundary; THR (1..0xffff) is where the exact encoder first changes code, ties included (LO = HI: no
 * boundary). Built from f8EncodeNumber, so the fast path equals the exact encoder by construction.
 */
const f8EncTables = new Map<F8Format, Int32Array>();
function getF8EncTable(fmt: F8Format): Int32Array {
  let t = f8EncTables.get(fmt);
  if (!t) {
    const dec = getF8Dec(fmt).f64;
    const enc = (u: number): number => f8EncodeNumber(fmt, dec, bitsF32(u));
    t = new Int32Array(65536);
    for (let p = 0; p < 65536; p++) {
      const base = (p << 16) >>> 0;
      const a = enc(base);
      const b = enc(base + 0xffff);
      let l = 0; // enc(base + l) === a
      let h = 0xffff; // enc(base + h) === b
      if (a !== b) {
        while (h - l > 1) {
          const m = (l + h) >>> 1;
          if (enc(base + m) === a) l = m;
          else h = m;
        }
      }
      t[p] = h | (a << 16) | (b << 24);
    }
    f8EncTables.set(fmt, t);
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------------
// array kernels. The *Js loops are the reference and the fallback; the public functions hand arrays of at least
// WASM_MIN_ELEMENTS to the wasm SIMD kernels when available (bit-identical, tested on every pattern).

/** Below this many elements the JS loop wins (no copies through wasm memory). */
export const WASM_MIN_ELEMENTS = 4096;

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

const u32View = (a: Float32Array, n: number): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, n);
const i32View = (a: Float32Array, n: number): Int32Array => new Int32Array(a.buffer, a.byteOffset, n);

// Loops are plain functions unrolled 8x (V8 keeps ~2 G elem/s for any arrays; a closure loop is only faster while its
// arrays stay constant). Each takes exactly one array type per parameter so it stays monomorphic.

function bf16ToF32Loop(s: Uint16Array, o: Uint32Array, n: number): void {
  let i = 0;
  for (const n8 = n - 7; i < n8; i += 8) {
    o[i] = s[i]! << 16;
    o[i + 1] = s[i + 1]! << 16;
    o[i + 2] = s[i + 2]! << 16;
    o[i + 3] = s[i + 3]! << 16;
    o[i + 4] = s[i + 4]! << 16;
    o[i + 5] = s[i + 5]! << 16;
    o[i + 6] = s[i + 6]! << 16;
    o[i + 7] = s[i + 7]! << 16;
  }
  for (; i < n; i++) o[i] = s[i]! << 16;
}

// s holds f32 bits as signed int32 so all arithmetic stays in int32; the Uint16Array store keeps the low 16 bits.
function f32ToBf16Loop(s: Int32Array, o: Uint16Array, n: number): void {
  let i = 0;
  for (const n4 = n - 3; i < n4; i += 4) {
    const a = s[i]!;
    const b = s[i + 1]!;
    const c = s[i + 2]!;
    const d = s[i + 3]!;
    o[i] = (a & 0x7fffffff) > 0x7f800000 ? (a >> 16) | 0x40 : (a + 0x7fff + ((a >> 16) & 1)) >> 16;
    o[i + 1] = (b & 0x7fffffff) > 0x7f800000 ? (b >> 16) | 0x40 : (b + 0x7fff + ((b >> 16) & 1)) >> 16;
    o[i + 2] = (c & 0x7fffffff) > 0x7f800000 ? (c >> 16) | 0x40 : (c + 0x7fff + ((c >> 16) & 1)) >> 16;
    o[i + 3] = (d & 0x7fffffff) > 0x7f800000 ? (d >> 16) | 0x40 : (d + 0x7fff + ((d >> 16) & 1)) >> 16;
  }
  for (; i < n; i++) {
    const a = s[i]!;
    o[i] = (a & 0x7fffffff) > 0x7f800000 ? (a >> 16) | 0x40 : (a + 0x7fff + ((a >> 16) & 1)) >> 16;
  }
}

function f16ToF32Loop(s: Uint16Array, o: Uint32Array, n: number, t: Uint32Array): void {
  let i = 0;
  for (const n8 = n - 7; i < n8; i += 8) {
    o[i] = t[s[i]!]!;
    o[i + 1] = t[s[i + 1]!]!;
    o[i + 2] = t[s[i + 2]!]!;
    o[i + 3] = t[s[i + 3]!]!;
    o[i + 4] = t[s[i + 4]!]!;
    o[i + 5] = t[s[i + 5]!]!;
    o[i + 6] = t[s[i + 6]!]!;
    o[i + 7] = t[s[i + 7]!]!;
  }
  for (; i < n; i++) o[i] = t[s[i]!]!;
}

// Normal f16 results (2^-14 <= |x| < 65520: nearly every weight) are one add and shift, rounding to nearest even
// (a - (112 << 23) + 0xfff + lsb) >>> 13 with the carry reaching the next binade; subnormal, zero, overflow, Inf and
// NaN go to the exact scalar encoder, a rare call. Unrolled 4x.
function f32ToF16Loop(s: Int32Array, o: Uint16Array, n: number): void {
  let i = 0;
  for (const n4 = n - 3; i < n4; i += 4) {
    const u0 = s[i]!;
    const u1 = s[i + 1]!;
    const u2 = s[i + 2]!;
    const u3 = s[i + 3]!;
    const a0 = u0 & 0x7fffffff;
    const a1 = u1 & 0x7fffffff;
    const a2 = u2 & 0x7fffffff;
    const a3 = u3 & 0x7fffffff;
    o[i] = a0 >= 0x38800000 && a0 < 0x477ff000 ? ((a0 - 0x37fff001 + ((a0 >>> 13) & 1)) >>> 13) | ((u0 >>> 16) & 0x8000) : f16FromF32Bits(u0);
    o[i + 1] = a1 >= 0x38800000 && a1 < 0x477ff000 ? ((a1 - 0x37fff001 + ((a1 >>> 13) & 1)) >>> 13) | ((u1 >>> 16) & 0x8000) : f16FromF32Bits(u1);
    o[i + 2] = a2 >= 0x38800000 && a2 < 0x477ff000 ? ((a2 - 0x37fff001 + ((a2 >>> 13) & 1)) >>> 13) | ((u2 >>> 16) & 0x8000) : f16FromF32Bits(u2);
    o[i + 3] = a3 >= 0x38800000 && a3 < 0x477ff000 ? ((a3 - 0x37fff001 + ((a3 >>> 13) & 1)) >>> 13) | ((u3 >>> 16) & 0x8000) : f16FromF32Bits(u3);
  }
  for (; i < n; i++) o[i] = f16FromF32Bits(s[i]!);
}

function f8ToF32Loop(s: Uint8Array, o: Float32Array, n: number, t: Float32Array): void {
  let i = 0;
  for (const n4 = n - 3; i < n4; i += 4) {
    o[i] = t[s[i]!]!;
    o[i + 1] = t[s[i + 1]!]!;
    o[i + 2] = t[s[i + 2]!]!;
    o[i + 3] = t[s[i + 3]!]!;
  }
  for (; i < n; i++) o[i] = t[s[i]!]!;
}

function f32ToF8Loop(s: Int32Array, o: Uint8Array, n: number, t: Int32Array): void {
  for (let i = 0; i < n; i++) {
    const u = s[i]!;
    const e = t[u >>> 16]!;
    o[i] = (u & 0xffff) < (e & 0xffff) ? e >>> 16 : e >>> 24; // the Uint8Array store keeps the low byte
  }
}

/** bf16 -> f32 with the JS loop only (exact: a shift; NaN payloads, signalling or not, are kept bit for bit). */
export function bf16ToF32Js(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const out = outF32(n, dst);
  bf16ToF32Loop(src, u32View(out, n), n);
  return out;
}

/** f32 -> bf16 with the JS loop only. */
export function f32ToBf16Js(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  const out = outU16(n, dst);
  f32ToBf16Loop(i32View(src, n), out, n);
  return out;
}

/** f16 -> f32 with the JS table loop only. */
export function f16ToF32Js(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const out = outF32(n, dst);
  f16ToF32Loop(src, u32View(out, n), n, getF16Table());
  return out;
}

/** f32 -> f16 with the JS table loop only. */
export function f32ToF16Js(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  const out = outU16(n, dst);
  f32ToF16Loop(i32View(src, n), out, n);
  return out;
}

/** bf16 bits -> f32 (exact: bits << 16). Writes into `dst` (any view, >= src.length elements) when given. */
export function bf16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  // a destination inside an executor workspace is written in place by that module (no copy out of another one)
  if (dst !== undefined && n >= WASM_MIN_ELEMENTS && workspaceOf(dst.buffer)?.widenBf16(src, dst, n) === true) return dst;
  const k = n >= WASM_MIN_ELEMENTS ? simdKernels() : undefined;
  if (k === undefined) return bf16ToF32Js(src, dst);
  const out = outF32(n, dst);
  k.bf16ToF32(src, out, n);
  return out;
}

/** f32 -> bf16 bits, round to nearest even; NaN -> quiet NaN keeping sign and top payload bits. */
export function f32ToBf16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  const k = n >= WASM_MIN_ELEMENTS ? simdKernels() : undefined;
  if (k === undefined) return f32ToBf16Js(src, dst);
  const out = outU16(n, dst);
  k.f32ToBf16(src, out, n);
  return out;
}

/** f16 bits -> f32 (exact, subnormals included); NaN -> quiet NaN with the payload shifted up. */
export function f16ToF32(src: Uint16Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const k = n >= WASM_MIN_ELEMENTS ? simdKernels() : undefined;
  if (k === undefined) return f16ToF32Js(src, dst);
  const out = outF32(n, dst);
  k.f16ToF32(src, out, n);
  return out;
}

/** f32 -> f16 bits, round to nearest even; |x| >= 65520 -> ±Inf; NaN -> quiet NaN keeping top payload bits. */
export function f32ToF16(src: Float32Array, dst?: Uint16Array): Uint16Array {
  const n = src.length;
  const k = n >= WASM_MIN_ELEMENTS ? simdKernels() : undefined;
  if (k === undefined) return f32ToF16Js(src, dst);
  const out = outU16(n, dst);
  k.f32ToF16(src, out, n);
  return out;
}

function f8ToF32(fmt: F8Format, src: Uint8Array, dst?: Float32Array): Float32Array {
  const n = src.length;
  const out = outF32(n, dst);
  f8ToF32Loop(src, out, n, getF8Dec(fmt).f32);
  return out;
}

function f32ToF8(fmt: F8Format, src: Float32Array, dst?: Uint8Array): Uint8Array {
  const n = src.length;
  const out = outU8(n, dst);
  f32ToF8Loop(i32View(src, n), out, n, getF8EncTable(fmt));
  return out;
}

/** One f32 value to F8_E4M3 (E4M3FN) bits: RNE, saturating to ±448, NaN -> 0x7f. The scalar oracle of f32ToF8e4m3. */
export function f8e4m3FromNumber(x: number): number {
  return f8EncodeNumber(E4M3, getF8Dec(E4M3).f64, Math.fround(x));
}

/** One f32 value to F8_E5M2 bits: RNE, saturating to ±57344 (also ±Inf), NaN -> 0x7e. */
export function f8e5m2FromNumber(x: number): number {
  return f8EncodeNumber(E5M2, getF8Dec(E5M2).f64, Math.fround(x));
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
 * target is F64). Float -> integer/bool is refused unless `allowLossy` (weights are not indices). Integer/bool ->
 * F64 and integer -> integer are exact by value (integer targets clamp to their range, BOOL is value !== 0).
 */
export function castTensor(t: Tensor, to: DType, options: { allowLossy?: boolean } = {}): Tensor {
  if (t.dtype === to) return t;
  const fromKind = DTYPE_INFO[t.dtype].kind;
  const toKind = DTYPE_INFO[to].kind;
  if (fromKind === 'float' && toKind !== 'float' && !options.allowLossy) {
    throw new UsageError('DTYPE_UNSUPPORTED', `refusing to cast float tensor (${t.dtype}) to ${to}`);
  }
  if (fromKind !== 'float' && toKind !== 'float') return makeTensor(to, t.shape, castIntData(t.data, to));
  if (to === 'F64') {
    const out = new Float64Array(t.data.length);
    if (t.data instanceof BigInt64Array || t.data instanceof BigUint64Array) {
      for (let i = 0; i < out.length; i++) out[i] = Number(t.data[i]!);
    } else if (t.dtype === 'F16' || t.dtype === 'BF16' || t.dtype === 'F8_E4M3' || t.dtype === 'F8_E5M2') {
      out.set(toF32(t.dtype, t.data)); // exact: every half/8-bit float is an f32
    } else {
      out.set(t.data); // F32, F64 and 8-32 bit integers are exact in f64
    }
    return makeTensor(to, t.shape, out);
  }
  // everything else goes through f32 (F64 -> F16/BF16 therefore rounds twice; weights are not stored as F64)
  return makeTensor(to, t.shape, fromF32(to, toF32(t.dtype, t.data)));
}

/** Integer/bool data to another integer/bool dtype, exact by value, clamped to the target's range. */
function castIntData(src: TensorData, to: DType): TensorData {
  const n = src.length;
  const out = allocData(to, n);
  const big = src instanceof BigInt64Array || src instanceof BigUint64Array;
  if (to === 'BOOL') {
    const o = out as Uint8Array;
    for (let i = 0; i < n; i++) o[i] = src[i]! !== 0 && src[i]! !== 0n ? 1 : 0;
    return out;
  }
  const bits = BigInt(DTYPE_INFO[to].bits);
  const lo = DTYPE_INFO[to].kind === 'uint' ? 0n : -(1n << (bits - 1n));
  const hi = DTYPE_INFO[to].kind === 'uint' ? (1n << bits) - 1n : (1n << (bits - 1n)) - 1n;
  if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) {
      const v = BigInt(src[i]!);
      out[i] = v < lo ? lo : v > hi ? hi : v;
    }
  } else if (big) {
    const o = out as Int32Array;
    for (let i = 0; i < n; i++) {
      const v = src[i] as bigint;
      o[i] = Number(v < lo ? lo : v > hi ? hi : v);
    }
  } else {
    const o = out as Int32Array;
    const l = Number(lo);
    const h = Number(hi);
    for (let i = 0; i < n; i++) {
      const v = src[i] as number;
      o[i] = v < l ? l : v > h ? h : v;
    }
  }
  return out;
}
