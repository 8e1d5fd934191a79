import { describe, it, expect, vi } from 'vitest';
import { readFileSync } from 'node:fs';
import { buildGenerated, GENERATED_PATH } from '../../scripts/build-wasm.js';
import { KERNELS_WASM_BASE64 } from '../../src/tensor/wasm/kernels.generated.js';
import { WASM_CHUNK, decodeBase64, simdKernels, type SimdKernels } from '../../src/tensor/wasm/simd.js';
import {
  WASM_MIN_ELEMENTS,
  bf16FromF32Bits,
  bf16ToF32,
  bf16ToF32Js,
  f16FromF32Bits,
  f16ToF32,
  f16ToF32Js,
  f32ToBf16,
  f32ToBf16Js,
  f32ToF16,
  f32ToF16Js,
} from '../../src/tensor/convert.js';
import { xorshift32 } from '../helpers/rng.js';

const rng = xorshift32;

const u32 = (a: Float32Array): Uint32Array => new Uint32Array(a.buffer, a.byteOffset, a.length);

function countDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = a.length === b.length ? 0 : 1;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
  return d;
}

function kernels(): SimdKernels {
  const k = simdKernels();
  if (k === undefined) throw new Error('WebAssembly SIMD is unavailable on this Node; these tests need it');
  return k;
}

describe('wasm module build', () => {
  it('the committed kernels.generated.ts is exactly what scripts/build-wasm.ts makes from kernels.wat', async () => {
    const committed = readFileSync(GENERATED_PATH, 'utf8');
    expect(committed).toBe(await buildGenerated());
  });

  it('decodes base64 like Buffer does', () => {
    const bytes = decodeBase64(KERNELS_WASM_BASE64);
    expect(Buffer.from(bytes).equals(Buffer.from(KERNELS_WASM_BASE64, 'base64'))).toBe(true);
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0x00, 0x61, 0x73, 0x6d]); // "\0asm"
  });

  it('instantiates on Node 20 with a fixed 576 KiB memory that does not grow', () => {
    const k = kernels();
    expect(k.memoryBytes()).toBe(9 * 65536);
    expect(WASM_CHUNK * 8).toBe(8 * 65536); // two chunk regions of 4-byte elements, then one page of constants
    const n = WASM_CHUNK * 3 + 5;
    k.bf16ToF32(new Uint16Array(n), new Float32Array(n), n);
    k.f32ToF16(new Float32Array(n), new Uint16Array(n), n);
    expect(k.memoryBytes()).toBe(9 * 65536);
    expect(simdKernels()).toBe(k); // instantiated once
  });
});

describe('wasm kernels are bit-identical to the JS loops', () => {
  const all16 = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) all16[i] = i;

  it('bf16 -> f32 on all 65,536 patterns', () => {
    const w = new Float32Array(65536);
    kernels().bf16ToF32(all16, w, 65536);
    expect(countDiff(u32(w), u32(bf16ToF32Js(all16)))).toBe(0);
    expect(u32(w)[0x7f81]).toBe(0x7f810000); // signalling NaN bits kept exactly, as in JS
  });

  it('f16 -> f32 on all 65,536 patterns (NaN payloads and quiet bit included)', () => {
    const w = new Float32Array(65536);
    kernels().f16ToF32(all16, w, 65536);
    expect(countDiff(u32(w), u32(f16ToF32Js(all16)))).toBe(0);
    expect(u32(w)[0x7c01]).toBe(0x7fc02000);
    expect(u32(w)[0x0001]).toBe(0x33800000); // 2^-24
  });

  it('f32 -> bf16 and f32 -> f16 on every 24-bit f32 prefix (seeded low byte) and agree with the scalar helpers', () => {
    const next = rng(0xc0ffee);
    const n = 1 << 24;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) bits[i] = ((i << 8) | (next() & 0xff)) >>> 0;
    const src = new Float32Array(bits.buffer);
    const k = kernels();
    const w = new Uint16Array(n);
    k.f32ToBf16(src, w, n);
    expect(countDiff(w, f32ToBf16Js(src))).toBe(0);
    k.f32ToF16(src, w, n);
    const j = f32ToF16Js(src);
    expect(countDiff(w, j)).toBe(0);
    let bad = 0;
    for (let i = 0; i < n; i += 257) if (j[i] !== f16FromF32Bits(bits[i]!)) bad++;
    const b = f32ToBf16Js(src);
    for (let i = 0; i < n; i += 257) if (b[i] !== bf16FromF32Bits(bits[i]!)) bad++;
    expect(bad).toBe(0);
  });

  it('random arrays with odd lengths and nonzero byteOffsets, through the public functions', () => {
    const next = rng(0x0dd);
    for (const n of [1, 7, WASM_MIN_ELEMENTS - 1, WASM_MIN_ELEMENTS, WASM_MIN_ELEMENTS + 3, WASM_CHUNK - 1, WASM_CHUNK + 1, 2 * WASM_CHUNK + 13]) {
      // f32 source at byteOffset 4, halves at byteOffset 2, outputs with sentinels on both sides
      const bits = new Uint32Array(n + 1);
      for (let i = 0; i < bits.length; i++) bits[i] = next();
      const src = new Float32Array(bits.buffer, 4, n);
      const halfBuf = new Uint16Array(n + 2).fill(0xbeef);
      const half = halfBuf.subarray(1, n + 1);
      const outBuf = new Float32Array(n + 2).fill(-7);
      const out = outBuf.subarray(1, n + 1);

      f32ToBf16(src, half);
      expect(countDiff(half, f32ToBf16Js(src)), `f32->bf16 n=${n}`).toBe(0);
      bf16ToF32(half, out);
      expect(countDiff(u32(out), u32(bf16ToF32Js(half))), `bf16->f32 n=${n}`).toBe(0);
      f32ToF16(src, half);
      expect(countDiff(half, f32ToF16Js(src)), `f32->f16 n=${n}`).toBe(0);
      f16ToF32(half, out);
      expect(countDiff(u32(out), u32(f16ToF32Js(half))), `f16->f32 n=${n}`).toBe(0);

      expect([halfBuf[0], halfBuf[n + 1]]).toEqual([0xbeef, 0xbeef]);
      expect([outBuf[0], outBuf[n + 1]]).toEqual([-7, -7]);
    }
  });

  it('the kernels write exactly n elements at the destination offset', () => {
    const k = kernels();
    const n = 13;
    const src = new Uint16Array(n).fill(0x3f80);
    const outBuf = new Float32Array(n + 10).fill(5);
    k.bf16ToF32(src, outBuf.subarray(3), n);
    expect(Array.from(outBuf)).toEqual([5, 5, 5, ...new Array<number>(n).fill(1), ...new Array<number>(7).fill(5)]);
  });
});

describe('without WebAssembly SIMD', () => {
  it('falls back to the JS loops with the same results', async () => {
    const real = (globalThis as { WebAssembly?: { validate(b: Uint8Array): boolean } }).WebAssembly!;
    vi.stubGlobal('WebAssembly', { ...real, validate: () => false }); // a runtime without the SIMD proposal
    vi.resetModules();
    try {
      const simd = await import('../../src/tensor/wasm/simd.js');
      const conv = await import('../../src/tensor/convert.js');
      expect(simd.simdKernels()).toBeUndefined();
      const next = rng(7);
      const n = 3 * WASM_MIN_ELEMENTS + 1;
      const bits = new Uint32Array(n);
      for (let i = 0; i < n; i++) bits[i] = next();
      const src = new Float32Array(bits.buffer);
      expect(countDiff(conv.f32ToBf16(src), f32ToBf16Js(src))).toBe(0);
      expect(countDiff(conv.f32ToF16(src), f32ToF16Js(src))).toBe(0);
      const h = f32ToF16Js(src);
      expect(countDiff(u32(conv.f16ToF32(h)), u32(f16ToF32Js(h)))).toBe(0);
      expect(countDiff(u32(conv.bf16ToF32(h)), u32(bf16ToF32Js(h)))).toBe(0);
    } finally {
      vi.unstubAllGlobals();
      vi.resetModules();
    }
  });
});

describe('exhaustive (set WEIGHTKIT_EXHAUSTIVE=1; about a minute)', () => {
  it.runIf(process.env['WEIGHTKIT_EXHAUSTIVE'] === '1')(
    'wasm and JS encoders agree on all 2^32 f32 patterns, for bf16 and f16',
    () => {
      const k = kernels();
      const C = 1 << 24;
      const bits = new Uint32Array(C);
      const src = new Float32Array(bits.buffer);
      const w = new Uint16Array(C);
      const j = new Uint16Array(C);
      let bad = 0;
      for (let top = 0; top < 256; top++) {
        for (let i = 0; i < C; i++) bits[i] = ((top << 24) | i) >>> 0;
        k.f32ToBf16(src, w, C);
        f32ToBf16Js(src, j);
        bad += countDiff(w, j);
        k.f32ToF16(src, w, C);
        f32ToF16Js(src, j);
        bad += countDiff(w, j);
      }
      expect(bad).toBe(0);
    },
    600_000,
  );
});
