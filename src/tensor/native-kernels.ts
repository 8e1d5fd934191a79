// The optional native kernels (native/gta.cc, AVX-512), as the merge engine sees them: the executor loads the addon
// (src/plan/native.ts, which needs node:) and installs it here; kernels in src/merge look it up and fall back to the
// WebAssembly module when none is installed. Pure: no node: imports.

import type { DenseKernels } from './linalg/backend.js';

/** The argument-layout version this code speaks (native/gta.cc WK_ABI): an addon with another one is not used. */
export const NATIVE_ABI = 16;

/** A BF16 input of a native kernel: in memory, or at a byte position of an open file. */
export type NativeInput = Uint16Array | { readonly fd: number; readonly position: number };

/** What the native addon exports (see native/gta.cc for the memory layout it reads). */
export interface NativeKernels {
  readonly abi: number;
  /** The TIES piece step over the arguments written at NATIVE_ARGS of a merge-kernel module's memory. */
  tiesPiece(memory: ArrayBuffer): void;
  /**
   * A tensor of BF16 inputs merged by TIES into BF16 output bits: the exact thresholds, then masks and consensus
   * of a range (or both in one call); each input in memory or {fd, position} of an open file (mapped for the call, or
   * for the tensor's calls: see tensorCalls); args (Float64Array, 152 values): see native/gta.cc; masks: a DELLA model's keep mask (numel / 8 + 16 bytes), kept
   * by the caller across the calls of one tensor. Errors: code WK_NATIVE (bad arguments), WK_NATIVE_IO (a mapping failed or a mapped
   * file could not be read).
   */
  tiesTensor(base: NativeInput, models: readonly NativeInput[], out: Uint16Array, args: Float64Array, masks?: readonly (Uint8Array | undefined)[]): void;
  /** Windowed high-bits counts of one piece for every model set up at NATIVE_ARGS (a top-k's HIGH pass). */
  histWindows(memory: ArrayBuffer): void;
  /** Transparent huge pages for a fresh memory's 2 MiB-aligned interior (returns the bytes advised). */
  adviseHuge(memory: ArrayBuffer): number;
  /** native/dense.cc (see there): the synchronous kernels and their Async forms; linalg sees DenseKernels (backend.ts). */
  denseGemm(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, flags: number, threads: number): void;
  denseGemmAsync(a: Float32Array, b: Float32Array, c: Float32Array, m: number, k: number, n: number, flags: number, threads: number): Promise<void>;
  denseInverse(a: Float32Array, n: number, threads: number): boolean;
  densePolar(p: Float32Array, n: number, threads: number, info: Float64Array): boolean;
  densePolarAsync(p: Float32Array, n: number, threads: number, info: Float64Array): Promise<boolean>;
  denseTridiagonalize(w: Float64Array, n: number, d: Float64Array, e: Float64Array): void;
  denseSymEigen(w: Float64Array, n: number, k: number, values: Float64Array, vectors: Float32Array, threads: number): boolean;
  denseSymEigenAsync(w: Float64Array, n: number, k: number, values: Float64Array, vectors: Float32Array, threads: number): Promise<boolean>;
}

/** Every function the addon must export to be used (a build missing one is stale). */
export const NATIVE_FUNCTIONS = ['tiesPiece', 'histWindows', 'tiesTensor', 'adviseHuge', 'denseGemm', 'denseGemmAsync', 'denseInverse', 'densePolar', 'densePolarAsync', 'denseTridiagonalize', 'denseSymEigen', 'denseSymEigenAsync'] as const;

/** The addon's dense kernels on `threads` threads, in the shape linalg backends carry them (MatMulBackend.dense). */
export function denseKernelsOf(k: NativeKernels, threads: number): DenseKernels {
  return {
    threads,
    gemmAsync: (a, b, c, m, kk, n, flags) => k.denseGemmAsync(a, b, c, m, kk, n, flags, threads),
    polarAsync: (p, n, info, t = threads) => k.densePolarAsync(p, n, t, info),
    tridiagonalize: (w, n, d, e) => k.denseTridiagonalize(w, n, d, e),
    symEigenAsync: (w, n, kk, values, vectors) => k.denseSymEigenAsync(w, n, kk, values, vectors, threads),
  };
}

let installed: NativeKernels | undefined;

/** Use these kernels from now on in this thread (undefined: the WebAssembly ones). */
export function setNativeKernels(k: NativeKernels | undefined): void {
  installed = k;
}

export function nativeKernels(): NativeKernels | undefined {
  return installed;
}

/** tiesTensor's kernels (args[75]): the TIES-family consensus, a weighted sum, linear, slerp, model_stock. */
export const NATIVE_CONSENSUS = 0;
export const NATIVE_SUM = 1;
export const NATIVE_LINEAR = 2;
export const NATIVE_SLERP = 3;
export const NATIVE_STOCK = 4;

/**
 * A tiesTensor argument block (152 values, see native/gta.cc) with its header set: the kernel, the model count
 * (inputs after the first), the element count and the formats (bit 0: F16 inputs, bit 1: an F16 output).
 */
export function tensorArgs(kernel: number, models: number, numel: number, formats: number): Float64Array {
  const a = new Float64Array(152);
  a[0] = models;
  a[144] = formats & 1;
  a[145] = (formats >> 1) & 1;
  a[74] = numel;
  a[75] = kernel;
  return a;
}

/** tiesTensor flags: keep the mapped inputs for the tensor's next call; give kept ones back after this call. */
const KEEP = 256;
const GIVE_BACK = 512;
/** Where the argument block names the kept inputs (0: none). */
const KEPT_AT = 146;

/** The tiesTensor calls of one tensor (see tensorCalls). */
export interface TensorCalls {
  /**
   * tiesTensor with these flags on the output range [offset, offset + out.length) (an empty out: the first phase
   * only); the call that ends at the tensor's last element gives the inputs back.
   */
  call(flags: number, offset: number, out: Uint16Array): void;
  /** Give the kept inputs back if a call still holds them (an error between the calls); idempotent. */
  close(): void;
}

/**
 * The calls of tiesTensor for one tensor (argument block `a`, see tensorArgs) with its mapped inputs mapped once: the
 * first call keeps them, the one that writes the last element gives them back (`close` after an error), so that the
 * output can go out range by range without faulting the inputs' pages again per range.
 */
export function tensorCalls(k: NativeKernels, base: NativeInput, models: readonly NativeInput[], a: Float64Array, masks?: readonly (Uint8Array | undefined)[]): TensorCalls {
  const numel = a[74]!;
  return {
    call(flags, offset, out) {
      const last = out.length > 0 && offset + out.length === numel;
      a[3] = flags | (last ? GIVE_BACK : KEEP);
      a[72] = offset;
      k.tiesTensor(base, models, out, a, masks);
    },
    close() {
      if (a[KEPT_AT] === 0) return;
      a[3] = 32 | GIVE_BACK;
      a[72] = 0;
      k.tiesTensor(base, models, new Uint16Array(0), a, masks);
    },
  };
}

