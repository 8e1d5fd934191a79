import { describe, it, expect } from 'vitest';
import {
  bf16ToF32,
  bf16ToF32Js,
  bitsF32,
  castTensor,
  f16BitsToNumber,
  f16ToF32,
  f16ToF32Js,
  f32Bits,
  f32ToBf16,
  f32ToBf16Js,
  f32ToF16,
  f32ToF16Js,
  f32ToF8e4m3,
  f32ToF8e5m2,
  f8e4m3ToF32,
  f8e5m2ToF32,
  fromF32,
  toF32,
} from '../../src/tensor/convert.js';
import { makeTensor } from '../../src/tensor/tensor.js';
import { isWeightkitError } from '../../src/errors.js';
import type { DType } from '../../src/tensor/dtype.js';
import { xorshift32 } from '../helpers/rng.js';

// ---------------------------------------------------------------------------------------------------------
// independent oracles: values from the format definitions, rounding by exact f64 distance comparisons

const rng = xorshift32;

const isNaNBits32 = (u: number): boolean => (u & 0x7fffffff) > 0x7f800000;
const u32 = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);
const f32FromBits = (bits: Uint32Array): Float32Array => new Float32Array(bits.buffer, bits.byteOffset, bits.length);

/** binary16 value from its definition: (-1)^s * 2^(e-15) * (1 + m/2^10), subnormal 2^-14 * m/2^10. */
function f16Oracle(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0x1f) return m === 0 ? s * Infinity : NaN;
  return e === 0 ? s * m * 2 ** -24 : s * (1024 + m) * 2 ** (e - 25);
}

/** Positive values by code, plus one virtual code past the top (the value rounding overflows to). */
function nearestCode(values: Float64Array, top: number, a: number): number {
  // values[0..top] ascending; returns the nearest code in [0, top], ties to even code.
  let lo = 0;
  let hi = top;
  if (a >= values[top]!) return top;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (values[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - values[lo]!;
  const dh = values[hi]! - a;
  if (dl !== dh) return dl < dh ? lo : hi;
  return lo % 2 === 0 ? lo : hi;
}

const F16_POS = (() => {
  const v = new Float64Array(0x7c01);
  for (let h = 0; h < 0x7c00; h++) v[h] = f16Oracle(h);
  v[0x7c00] = 65536; // 2^16: the next binade's first value, so ties at 65520 round to Inf (even)
  return v;
})();

function f16EncodeOracle(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  if (isNaNBits32(u)) return sign | 0x7e00 | ((u >>> 13) & 0x3ff);
  const a = Math.abs(bitsF32(u));
  return sign | nearestCode(F16_POS, 0x7c00, a);
}

/** bf16: the two bf16 neighbours of the f32 are its truncation and the next code up; nearest, ties to even. */
function bf16EncodeOracle(u: number): number {
  if (isNaNBits32(u)) return (u >>> 16) | 0x40;
  const sign = u & 0x80000000 ? -1 : 1;
  const down = u >>> 16;
  if ((u & 0xffff) === 0) return down;
  const a = Math.abs(bitsF32(u));
  const lo = Math.abs(bitsF32(down << 16));
  const hiBits = (down + 1) & 0x7fff;
  const hi = hiBits === 0x7f80 ? 2 ** 128 : Math.abs(bitsF32((down + 1) << 16));
  void sign;
  if (a - lo < hi - a) return down;
  if (a - lo > hi - a) return down + 1;
  return down % 2 === 0 ? down : down + 1;
}

function nextUp32(u: number): number {
  return (u + 1) >>> 0; // positive finite f32 bits
}

// ---------------------------------------------------------------------------------------------------------

describe('bf16 <-> f32', () => {
  it('decodes all 65,536 bf16 patterns to exactly bits << 16 (JS and default path)', () => {
    const src = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) src[i] = i;
    for (const out of [bf16ToF32(src), bf16ToF32Js(src)]) {
      const bits = u32(out);
      let bad = 0;
      for (let i = 0; i < 65536; i++) if (bits[i] !== ((i << 16) >>> 0)) bad++;
      expect(bad).toBe(0);
    }
    expect(bf16ToF32(Uint16Array.of(0x3f80, 0xc000, 0x7f80, 0xff80, 0x8000, 0x0001))).toEqual(
      Float32Array.of(1, -2, Infinity, -Infinity, -0, 2 ** -133),
    );
  });

  it('encodes special values and exact halfway cases to nearest even', () => {
    const cases: Array<[number, number]> = [
      [0x3f800000, 0x3f80], // 1
      [0x3f808000, 0x3f80], // 1 + 2^-8: halfway between 0x3f80 (even) and 0x3f81 -> down
      [0x3f818000, 0x3f82], // halfway between 0x3f81 (odd) and 0x3f82 -> up
      [0x3f808001, 0x3f81], // just above halfway -> up
      [0x3f807fff, 0x3f80], // just below halfway -> down
      [0x80000000, 0x8000], // -0
      [0x7f800000, 0x7f80], // Inf
      [0xff800000, 0xff80], // -Inf
      [0x7f7fffff, 0x7f80], // f32 max rounds to Inf
      [0x7f7f7fff, 0x7f7f], // below the halfway to Inf stays finite
      [0x00000001, 0x0000], // smallest f32 subnormal -> +0
      [0x00008000, 0x0000], // halfway, even -> 0
      [0x00018000, 0x0002], // halfway, odd -> up (bf16 keeps f32 subnormals)
      [0x807fffff, 0x8080], // largest negative subnormal rounds up into the normal range
      [0x7f800001, 0x7fc0], // signalling NaN -> quiet NaN
      [0xffc12345, 0xffc1], // negative quiet NaN keeps sign and top payload
    ];
    const src = f32FromBits(Uint32Array.from(cases.map((c) => c[0])));
    for (const out of [f32ToBf16(src), f32ToBf16Js(src)]) {
      expect(Array.from(out, (v) => v.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
    }
    for (const [u, want] of cases) expect(bf16EncodeOracle(u)).toBe(want); // the oracle agrees too
  });

  it('encodes random f32 bit patterns like the oracle (seeded)', () => {
    const next = rng(0xb16b00b5);
    const n = 200_003;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = next();
    const src = f32FromBits(bits);
    const a = f32ToBf16(src);
    const b = f32ToBf16Js(src);
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const want = bf16EncodeOracle(bits[i]!);
      if (a[i] !== want || b[i] !== want) bad++;
    }
    expect(bad).toBe(0);
  });
});

describe('f16 <-> f32', () => {
  it('decodes all 65,536 f16 patterns exactly; NaNs stay NaN, quiet, payload kept', () => {
    const src = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) src[i] = i;
    for (const out of [f16ToF32(src), f16ToF32Js(src)]) {
      const bits = u32(out);
      let bad = 0;
      for (let h = 0; h < 65536; h++) {
        const want = f16Oracle(h);
        if (Number.isNaN(want)) {
          const expected = (((h & 0x8000) << 16) | 0x7fc00000 | ((h & 0x3ff) << 13)) >>> 0;
          if (bits[h] !== expected) bad++;
        } else if (!Object.is(out[h], want)) bad++;
      }
      expect(bad).toBe(0);
    }
  });

  it('decodes hand-picked values', () => {
    const out = f16ToF32(Uint16Array.of(0x3c00, 0x7bff, 0x0001, 0x03ff, 0x0400, 0xc000, 0x8000, 0x7c00, 0xfc00, 0x3555));
    expect(Array.from(out)).toEqual([1, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, -2, -0, Infinity, -Infinity, 0.333251953125]);
    expect(Object.is(out[6], -0)).toBe(true);
  });

  it('encodes boundaries: max finite, overflow at 65520, subnormals, tie to zero at 2^-25, -0, NaN', () => {
    const cases: Array<[number, number]> = [
      [65504, 0x7bff],
      [65519.99609375, 0x7bff], // largest f32 below 65520
      [65520, 0x7c00], // halfway to 2^16, odd max -> Inf
      [1e6, 0x7c00],
      [-65520, 0xfc00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // tie between 0 and 2^-24 -> even (0)
      [bitsF32(nextUp32(f32Bits(2 ** -25))), 0x0001], // just above the tie
      [-(2 ** -25), 0x8000],
      [3 * 2 ** -25, 0x0002], // tie between 1 and 2 (odd) -> 2
      [5 * 2 ** -25, 0x0002], // tie between 2 (even) and 3 -> 2
      [2 ** -14, 0x0400], // smallest normal
      [1023.5 * 2 ** -24, 0x0400], // tie between largest subnormal (odd) and smallest normal -> normal
      [1 + 2 ** -11, 0x3c00], // tie, even -> down
      [1 + 3 * 2 ** -11, 0x3c02], // tie, odd -> up
      [-0, 0x8000],
      [0, 0x0000],
      [2 ** -100, 0x0000],
      [2 ** -149, 0x0000],
    ];
    const src = Float32Array.from(cases.map((c) => c[0]));
    for (const c of cases) expect(Math.fround(c[0])).toBe(c[0]); // inputs are exact f32s
    for (const out of [f32ToF16(src), f32ToF16Js(src)]) {
      expect(Array.from(out, (v) => v.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
    }
    for (const [x, want] of cases) expect(f16EncodeOracle(f32Bits(x))).toBe(want);
    const nan = f32ToF16(f32FromBits(Uint32Array.of(0x7f800001, 0xffc00000, 0x7fa02000)));
    expect(Array.from(nan, (v) => v.toString(16))).toEqual(['7e00', 'fe00', '7f01']);
  });

  it('round-trips every non-NaN f16 through f32', () => {
    const src = new Uint16Array(65536);
    for (let i = 0; i < 65536; i++) src[i] = i;
    const back = f32ToF16(f16ToF32(src));
    const backJs = f32ToF16Js(f16ToF32Js(src));
    let bad = 0;
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7fff) > 0x7c00) continue;
      if (back[h] !== h || backJs[h] !== h) bad++;
    }
    expect(bad).toBe(0);
  });

  it('encodes every f16 midpoint and its f32 neighbours like the oracle', () => {
    const bits: number[] = [];
    let inexact = 0;
    for (let h = 0; h < 0x7c00; h++) {
      const mid = (F16_POS[h]! + F16_POS[h + 1]!) / 2;
      const m = f32Bits(mid);
      if (bitsF32(m) !== mid) inexact++; // every midpoint must be an exact f32
      bits.push(m, m - 1, m + 1, m | 0x80000000);
    }
    expect(inexact).toBe(0);
    const src = f32FromBits(Uint32Array.from(bits, (b) => b >>> 0));
    const a = f32ToF16(src);
    const b = f32ToF16Js(src);
    let bad = 0;
    for (let i = 0; i < bits.length; i++) {
      const want = f16EncodeOracle(bits[i]! >>> 0);
      if (a[i] !== want || b[i] !== want) bad++;
    }
    expect(bad).toBe(0);
  });

  it('encodes random f32 bit patterns like the oracle (seeded; uniform bits and the f16 range)', () => {
    const next = rng(0x5eed1234);
    const n = 200_000;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i += 2) {
      bits[i] = next();
      // exponent 96..145 (around f16's range), random sign and mantissa
      bits[i + 1] = ((next() & 0x807fffff) | ((96 + (next() % 50)) << 23)) >>> 0;
    }
    const src = f32FromBits(bits);
    const a = f32ToF16(src);
    const b = f32ToF16Js(src);
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const want = f16EncodeOracle(bits[i]!);
      if (a[i] !== want || b[i] !== want) bad++;
    }
    expect(bad).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------
// F8

/** E4M3FN by hand: e = 0: m * 2^-9; else (8 + m) * 2^(e - 10); S.1111.111 is NaN; no Inf. */
function e4m3Hand(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >> 3) & 15;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  return s * (e === 0 ? m * 2 ** -9 : (8 + m) * 2 ** (e - 10));
}

/** E5M2 by hand: e = 0: m * 2^-16; e = 31: Inf (m = 0) or NaN; else (4 + m) * 2^(e - 17). */
function e5m2Hand(b: number): number {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >> 2) & 31;
  const m = b & 3;
  if (e === 31) return m === 0 ? s * Infinity : NaN;
  return s * (e === 0 ? m * 2 ** -16 : (4 + m) * 2 ** (e - 17));
}

interface F8Case {
  name: string;
  hand: (b: number) => number;
  dec: (src: Uint8Array) => Float32Array;
  enc: (src: Float32Array) => Uint8Array;
  maxCode: number;
  max: number;
}

const F8: F8Case[] = [
  { name: 'F8_E4M3', hand: e4m3Hand, dec: (s) => f8e4m3ToF32(s), enc: (s) => f32ToF8e4m3(s), maxCode: 0x7e, max: 448 },
  { name: 'F8_E5M2', hand: e5m2Hand, dec: (s) => f8e5m2ToF32(s), enc: (s) => f32ToF8e5m2(s), maxCode: 0x7b, max: 57344 },
];

const f8Values = new Map<F8Case, Float64Array>();
function f8Oracle(c: F8Case, x: number): number {
  if (Number.isNaN(x)) return -1; // any NaN code
  let values = f8Values.get(c);
  if (!values) {
    values = new Float64Array(c.maxCode + 1);
    for (let b = 0; b <= c.maxCode; b++) values[b] = c.hand(b);
    f8Values.set(c, values);
  }
  const sign = x < 0 || Object.is(x, -0) ? 0x80 : 0;
  return sign | nearestCode(values, c.maxCode, Math.abs(x)); // |x| >= max saturates to maxCode
}

describe.each(F8)('$name', (c) => {
  it('decodes all 256 patterns to the hand-derived values', () => {
    const src = new Uint8Array(256);
    for (let i = 0; i < 256; i++) src[i] = i;
    const out = c.dec(src);
    for (let b = 0; b < 256; b++) {
      const want = c.hand(b);
      if (Number.isNaN(want)) expect(out[b], `code ${b}`).toBeNaN();
      else expect(Object.is(out[b], want), `code ${b}: ${out[b]} vs ${want}`).toBe(true);
    }
  });

  it('has the expected landmarks', () => {
    const out = c.dec(Uint8Array.of(c.maxCode, c.maxCode | 0x80, 0x01, 0x80));
    expect(Array.from(out)).toEqual([c.max, -c.max, c.name === 'F8_E4M3' ? 2 ** -9 : 2 ** -16, -0]);
    if (c.name === 'F8_E4M3') {
      expect(Array.from(c.dec(Uint8Array.of(0x38, 0x08, 0x7f, 0xff, 0x78)))).toEqual([1, 2 ** -6, NaN, NaN, 256]);
    } else {
      expect(Array.from(c.dec(Uint8Array.of(0x3c, 0x04, 0x7c, 0xfc, 0x7d, 0x7f)))).toEqual([1, 2 ** -14, Infinity, -Infinity, NaN, NaN]);
    }
  });

  it('saturates finite overflow and ±Inf to ±max finite; NaN encodes to NaN', () => {
    const xs = [c.max, c.max * 1.0625, c.max * 2, 3e38, Infinity, -Infinity, -c.max * 4];
    const out = c.enc(Float32Array.from(xs));
    expect(Array.from(out)).toEqual([c.maxCode, c.maxCode, c.maxCode, c.maxCode, c.maxCode, c.maxCode | 0x80, c.maxCode | 0x80]);
    const nan = c.enc(f32FromBits(Uint32Array.of(0x7fc00000, 0xffc00000, 0x7f800001)));
    for (const code of nan) expect(c.hand(code)).toBeNaN();
  });

  it('encodes every midpoint (ties to even), its f32 neighbours and every code value like the oracle', () => {
    const bits: number[] = [];
    for (let b = 0; b < c.maxCode; b++) {
      const v = c.hand(b);
      const mid = (v + c.hand(b + 1)) / 2;
      const m = f32Bits(mid);
      expect(bitsF32(m)).toBe(mid);
      bits.push(f32Bits(v), m, m + 1, m === 0 ? 0 : m - 1);
    }
    const all = Uint32Array.from([...bits, ...bits.map((u) => u | 0x80000000)], (u) => u >>> 0);
    const src = f32FromBits(all);
    const out = c.enc(src);
    let bad = 0;
    for (let i = 0; i < all.length; i++) if (out[i] !== f8Oracle(c, src[i]!)) bad++;
    expect(bad).toBe(0);
    // the documented tie rules on the smallest subnormal: half of it -> 0, three halves -> 2 (even)
    const sub = c.hand(1);
    expect(Array.from(c.enc(Float32Array.of(sub / 2, sub * 1.5, -sub / 2)))).toEqual([0, 2, 0x80]);
  });

  it('encodes every 16-bit f32 prefix and random f32s like the oracle (seeded)', () => {
    const next = rng(0xf8f8f8);
    const lows = [0, 0x7fff, 0x8000, 0xffff];
    const n = 65536 * lows.length + 100_000;
    const bits = new Uint32Array(n);
    let k = 0;
    for (let p = 0; p < 65536; p++) for (const lo of lows) bits[k++] = ((p << 16) | lo) >>> 0;
    while (k < n) bits[k++] = next();
    const src = f32FromBits(bits);
    const out = c.enc(src);
    let bad = 0;
    for (let i = 0; i < n; i++) {
      const want = f8Oracle(c, src[i]!);
      if (want === -1 ? !Number.isNaN(c.hand(out[i]!)) : out[i] !== want) bad++;
    }
    expect(bad).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------

describe('toF32 / fromF32', () => {
  const FLOATS: DType[] = ['F32', 'F64', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2'];

  it.each(FLOATS)('%s writes into a destination view at a nonzero byteOffset and nowhere else', (dtype) => {
    const values = Float32Array.of(1, -2, 0.5, 0.25, -0, 4, 8, 0.125, 3);
    const n = values.length;
    // encode into a view in the middle of a larger buffer
    const bytes = dtype === 'F64' ? 8 : dtype === 'F32' ? 4 : dtype.startsWith('F8') ? 1 : 2;
    const buf = new ArrayBuffer((n + 4) * bytes);
    new Uint8Array(buf).fill(0xaa);
    const view =
      bytes === 8
        ? new Float64Array(buf, 16, n)
        : bytes === 4
          ? new Float32Array(buf, 8, n)
          : bytes === 2
            ? new Uint16Array(buf, 4, n)
            : new Uint8Array(buf, 2, n);
    expect(fromF32(dtype, values, view)).toBe(view);
    const raw = new Uint8Array(buf);
    const start = view.byteOffset;
    const end = start + n * bytes;
    for (let i = 0; i < raw.length; i++) if (i < start || i >= end) expect(raw[i], `byte ${i}`).toBe(0xaa);
    // decode into an f32 view at an offset
    const outBuf = new Float32Array(n + 3).fill(7);
    const out = outBuf.subarray(2, 2 + n);
    expect(toF32(dtype, view, out)).toBe(out);
    expect(Array.from(out)).toEqual(Array.from(values));
    expect([outBuf[0], outBuf[1], outBuf[n + 2]]).toEqual([7, 7, 7]);
  });

  it('large arrays at odd offsets match the JS loops (wasm path when available)', () => {
    const next = rng(99);
    const n = 70_001; // > one wasm chunk, not a multiple of 8
    const bits = new Uint32Array(n + 1);
    for (let i = 0; i < bits.length; i++) bits[i] = next();
    const src = f32FromBits(bits).subarray(1); // byteOffset 4
    const halfBuf = new Uint16Array(n + 3).fill(0x1234);
    const half = halfBuf.subarray(1, 1 + n); // byteOffset 2
    const diff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
      let d = a.length === b.length ? 0 : 1;
      for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
      return d;
    };
    fromF32('BF16', src, half);
    expect(diff(half, f32ToBf16Js(src))).toBe(0);
    expect([halfBuf[0], halfBuf[n + 1], halfBuf[n + 2]]).toEqual([0x1234, 0x1234, 0x1234]);
    fromF32('F16', src, half);
    expect(diff(half, f32ToF16Js(src))).toBe(0);
    const outBuf = new Float32Array(n + 2);
    const out = outBuf.subarray(1, 1 + n);
    toF32('F16', half, out);
    expect(diff(u32(out), u32(f16ToF32Js(half)))).toBe(0);
    toF32('BF16', half, out);
    expect(diff(u32(out), u32(bf16ToF32Js(half)))).toBe(0);
    expect([outBuf[0], outBuf[n + 1]]).toEqual([0, 0]);
  });

  it('refuses a destination that is too short', () => {
    expect(() => toF32('BF16', new Uint16Array(5), new Float32Array(4))).toThrow(RangeError);
    expect(() => fromF32('F16', new Float32Array(5), new Uint16Array(4))).toThrow(RangeError);
    expect(() => fromF32('F8_E4M3', new Float32Array(5), new Uint8Array(4))).toThrow(RangeError);
    expect(() => bf16ToF32(new Uint16Array(10_000), new Float32Array(9_999))).toThrow(RangeError);
  });

  it('F32 without a destination returns the source; with one it copies', () => {
    const s = Float32Array.of(1, 2);
    expect(toF32('F32', s)).toBe(s);
    expect(fromF32('F32', s)).toBe(s);
    const d = new Float32Array(2);
    expect(toF32('F32', s, d)).toBe(d);
    expect(Array.from(d)).toEqual([1, 2]);
  });

  it('integers: round half to even, clamp, NaN -> 0; decode by value', () => {
    const src = Float32Array.of(1.5, 2.5, -1.5, -2.5, 300, -300, NaN, Infinity);
    expect(Array.from(fromF32('I8', src) as Int8Array)).toEqual([2, 2, -2, -2, 127, -128, 0, 127]);
    expect(Array.from(fromF32('U8', src) as Uint8Array)).toEqual([2, 2, 0, 0, 255, 0, 0, 255]);
    expect(Array.from(fromF32('I64', Float32Array.of(2.5, -7, 2 ** 40)) as BigInt64Array)).toEqual([2n, -7n, 2n ** 40n]);
    expect(Array.from(toF32('I64', BigInt64Array.of(-3n, 2n ** 40n)))).toEqual([-3, 2 ** 40]);
    expect(Array.from(toF32('I16', Int16Array.of(-32768, 5)))).toEqual([-32768, 5]);
    expect(Array.from(fromF32('BOOL', Float32Array.of(0, -0, 2, NaN)) as Uint8Array)).toEqual([0, 0, 1, 1]);
  });
});

describe('castTensor', () => {
  it('refuses float -> integer/bool without allowLossy, with a typed error', () => {
    const t = makeTensor('F32', [3], Float32Array.of(1.5, -2.5, 1e10));
    for (const to of ['I32', 'U8', 'BOOL', 'I64'] as const) {
      let err: unknown;
      try {
        castTensor(t, to);
      } catch (e) {
        err = e;
      }
      expect(isWeightkitError(err), to).toBe(true);
      expect((err as { code: string }).code).toBe('DTYPE_UNSUPPORTED');
    }
    const lossy = castTensor(t, 'I32', { allowLossy: true });
    expect(lossy.dtype).toBe('I32');
    expect(Array.from(lossy.data as Int32Array)).toEqual([2, -2, 2147483647]);
  });

  it('returns the same tensor for the same dtype', () => {
    const t = makeTensor('BF16', [2]);
    expect(castTensor(t, 'BF16')).toBe(t);
  });

  it('BF16 -> F16: exact inside f16 range, Inf beyond, subnormal/zero below', () => {
    const vals = [1, 0.333984375, -3.5, 1e5, 2 ** -20, 1e-10, -0, 65504];
    const bf = f32ToBf16Js(Float32Array.from(vals));
    const t = castTensor(makeTensor('BF16', [vals.length], bf), 'F16');
    expect(t.dtype).toBe('F16');
    expect(t.shape).toEqual([vals.length]);
    // 65504 is not a bf16 value: it rounds to 65536 in bf16, which overflows f16
    expect(Array.from(f16ToF32(t.data as Uint16Array))).toEqual([1, 0.333984375, -3.5, Infinity, 2 ** -20, 0, -0, Infinity]);
  });

  it('F32 -> F64 and integer -> F64 are exact', () => {
    const f = Float32Array.of(0.1, 1 / 3, 2 ** -149, -(2 ** 127) * 1.5, 16777217);
    const d = castTensor(makeTensor('F32', [5], f), 'F64');
    expect(d.data).toBeInstanceOf(Float64Array);
    expect(Array.from(d.data as Float64Array)).toEqual(Array.from(f));
    expect((d.data as Float64Array)[0]).not.toBe(0.1); // the f32 value, not the decimal
    const i = castTensor(makeTensor('I32', [2], Int32Array.of(2 ** 24 + 1, -(2 ** 31))), 'F64');
    expect(Array.from(i.data as Float64Array)).toEqual([2 ** 24 + 1, -(2 ** 31)]);
    const l = castTensor(makeTensor('I64', [1], BigInt64Array.of(2n ** 53n - 1n)), 'F64');
    expect((l.data as Float64Array)[0]).toBe(2 ** 53 - 1);
    const h = castTensor(makeTensor('F16', [1], Uint16Array.of(0x0001)), 'F64');
    expect((h.data as Float64Array)[0]).toBe(2 ** -24);
  });

  it('integer -> integer is exact by value and clamps', () => {
    const src = makeTensor('I32', [4], Int32Array.of(2 ** 24 + 1, -200, 200, 0));
    expect(Array.from(castTensor(src, 'I64').data as BigInt64Array)).toEqual([2n ** 24n + 1n, -200n, 200n, 0n]);
    expect(Array.from(castTensor(src, 'I8').data as Int8Array)).toEqual([127, -128, 127, 0]);
    expect(Array.from(castTensor(src, 'U8').data as Uint8Array)).toEqual([255, 0, 200, 0]);
    expect(Array.from(castTensor(src, 'BOOL').data as Uint8Array)).toEqual([1, 1, 1, 0]);
    const big = makeTensor('I64', [2], BigInt64Array.of(2n ** 40n, -(2n ** 40n)));
    expect(Array.from(castTensor(big, 'I32').data as Int32Array)).toEqual([2147483647, -2147483648]);
    expect(Array.from(castTensor(big, 'U64').data as BigUint64Array)).toEqual([2n ** 40n, 0n]);
  });

  it('F16 -> BF16 rounds to nearest even through f32', () => {
    // bf16 keeps 7 fraction bits: 1 + 2^-7 and 1 + 2^-6 are exact; 1 + 2^-8 and 1 + 3 * 2^-8 are ties (to even)
    const t = castTensor(makeTensor('F16', [5], Uint16Array.of(0x3c08, 0x3c10, 0x3c04, 0x3c0c, 0x3c01)), 'BF16');
    expect(Array.from(t.data as Uint16Array, (v) => v.toString(16))).toEqual(['3f81', '3f82', '3f80', '3f82', '3f80']);
  });

  it('helpers agree with the array codecs', () => {
    expect(f16BitsToNumber(0x3555)).toBe(0.333251953125);
    expect(bitsF32(f32Bits(-1.5))).toBe(-1.5);
  });
});
