// Loads the SIMD conversion kernels (kernels.wat) once and runs them over arrays of any size in 64K-element chunks.
// Guarantees: memory fixed at 576 KiB, never grown; results bit-identical to the JS loops in ../convert.ts;
// undefined where WebAssembly SIMD is unavailable. Must not import node: modules (uses globalThis.WebAssembly, atob).

import { KERNELS_WASM_BASE64 } from './kernels.generated.js';

/** Elements per chunk: input and output regions of 256 KiB each, both resident in L2 (see kernels.wat). */
export const WASM_CHUNK = 65536;
const OUT_PTR = WASM_CHUNK * 4;

type Kernel = (src: number, dst: number, n: number) => void;

interface KernelExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  readonly bf16_to_f32: Kernel;
  readonly f32_to_bf16: Kernel;
  readonly f16_to_f32: Kernel;
  readonly f32_to_f16: Kernel;
}

// The slice of the WebAssembly global used here (lib has no DOM typings).
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: unknown };
}

/** Chunked runners over the wasm kernels. `dst` may be any view (nonzero byteOffset); both hold >= n elements. */
export interface SimdKernels {
  bf16ToF32(src: Uint16Array, dst: Float32Array, n: number): void;
  f32ToBf16(src: Float32Array, dst: Uint16Array, n: number): void;
  f16ToF32(src: Uint16Array, dst: Float32Array, n: number): void;
  f32ToF16(src: Float32Array, dst: Uint16Array, n: number): void;
  /** Current size of the module's memory in bytes (fixed; exposed so tests can check it never grows). */
  memoryBytes(): number;
}

export function decodeBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

function instantiate(): SimdKernels | undefined {
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (api === undefined) return undefined;
  const bytes = decodeBase64(KERNELS_WASM_BASE64);
  if (!api.validate(bytes)) return undefined; // no SIMD support here
  const ex = new api.Instance(new api.Module(bytes), {}).exports as KernelExports;
  const buf = ex.memory.buffer;
  const in16 = new Uint16Array(buf, 0, WASM_CHUNK);
  const in32 = new Float32Array(buf, 0, WASM_CHUNK);
  const out16 = new Uint16Array(buf, OUT_PTR, WASM_CHUNK);
  const out32 = new Float32Array(buf, OUT_PTR, WASM_CHUNK);
  const { bf16_to_f32, f32_to_bf16, f16_to_f32, f32_to_f16 } = ex;

  const widen = (kernel: Kernel, src: Uint16Array, dst: Float32Array, n: number): void => {
    for (let off = 0; off < n; off += WASM_CHUNK) {
      const len = Math.min(WASM_CHUNK, n - off);
      in16.set(src.subarray(off, off + len));
      kernel(0, OUT_PTR, len);
      dst.set(len === WASM_CHUNK ? out32 : out32.subarray(0, len), off);
    }
  };
  const narrow = (kernel: Kernel, src: Float32Array, dst: Uint16Array, n: number): void => {
    for (let off = 0; off < n; off += WASM_CHUNK) {
      const len = Math.min(WASM_CHUNK, n - off);
      in32.set(src.subarray(off, off + len));
      kernel(0, OUT_PTR, len);
      dst.set(len === WASM_CHUNK ? out16 : out16.subarray(0, len), off);
    }
  };
  return {
    bf16ToF32: (src, dst, n) => widen(bf16_to_f32, src, dst, n),
    f32ToBf16: (src, dst, n) => narrow(f32_to_bf16, src, dst, n),
    f16ToF32: (src, dst, n) => widen(f16_to_f32, src, dst, n),
    f32ToF16: (src, dst, n) => narrow(f32_to_f16, src, dst, n),
    memoryBytes: () => ex.memory.buffer.byteLength,
  };
}

let cached: SimdKernels | undefined | null = null;

/** The kernels, instantiated on first use; undefined if WebAssembly or its SIMD proposal is missing. */
export function simdKernels(): SimdKernels | undefined {
  if (cached === null) {
    try {
      cached = instantiate();
    } catch {
      cached = undefined; // e.g. a runtime that forbids wasm compilation: the JS loops take over
    }
  }
  return cached;
}
