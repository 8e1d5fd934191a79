// Shared kernels for the geometric merge methods (slerp, nuslerp, multislerp, karcher, model_stock, arcee_fusion):
// sequential f64 Gram accumulation carried across chunks, linear combinations emitted with one f32 rounding, and an
// exact streaming quantile selector over f32 bits. Chunking-independent by construction. Imports only errors/types.

import { UsageError } from '../../errors.js';
import type { Chunk, TensorContext, TensorMerger } from '../types.js';
import { nativeKernels, tensorArgs, tensorCalls } from '../../tensor/native-kernels.js';
import type { Bf16Input, WholeBf16Writer } from '../types.js';

/** Length of the vectors along the last axis (torch `dim=-1`): 1 for a 0-d tensor, the whole tensor for 1-D. */
export function lastAxisLength(shape: readonly number[]): number {
  return shape.length === 0 ? 1 : shape[shape.length - 1]!;
}

/** A typed error about one tensor (argument or data problem a recipe can fix). */
export function tensorError(ctx: TensorContext, message: string): UsageError {
  return new UsageError('USAGE', `tensor '${ctx.name}': ${message}`, { where: { tensor: ctx.name } });
}

/**
 * Tell that a whole-tensor coefficient came out NaN or infinite (an input holds NaN or infinite values): the method
 * goes on as mergekit does, and every value of the tensor's result is NaN.
 */
export function warnNotFinite(ctx: TensorContext, what: string): void {
  ctx.warn?.(`tensor '${ctx.name}': ${what} is not finite (an input holds NaN or infinite values), so every value of the merged tensor is NaN`);
}

/** Merger that copies one input: mergekit returns a lone input tensor unchanged. */
export function copyMerger(from: 'base' | number): TensorMerger {
  return {
    chunking: 'elements',
    emit(chunk: Chunk, out: Float32Array): void {
      const src = from === 'base' ? chunk.base : chunk.models[from];
      if (src) out.set(src.subarray(0, chunk.length));
    },
  };
}

/** Merger for a tensor with no elements. */
export const EMPTY_MERGER: TensorMerger = { chunking: 'elements', emit(): void {} };

/**
 * Add the products of elements [start, end) to the upper triangle of the n x n Gram matrix `g` (row-major),
 * sequentially in element order: g[i*n+j] += d_i[k] * d_j[k] with d_i = x_i - base (or x_i without a base).
 * Each entry is carried in a local f64 that starts from its stored value, so the result is the same for any
 * split of the elements into calls.
 */
export function accumulateGram(
  g: Float64Array,
  xs: readonly Float32Array[],
  base: Float32Array | undefined,
  start: number,
  end: number,
): void {
  const n = xs.length;
  for (let i = 0; i < n; i++) {
    const a = xs[i]!;
    for (let j = i; j < n; j++) {
      const c = xs[j]!;
      let s = g[i * n + j]!;
      if (base) {
        for (let k = start; k < end; k++) {
          const bk = base[k]!;
          s += (a[k]! - bk) * (c[k]! - bk);
        }
      } else {
        for (let k = start; k < end; k++) s += a[k]! * c[k]!;
      }
      g[i * n + j] = s;
    }
  }
}

/** Copy the upper triangle of a row-major n x n matrix into the lower one. */
export function symmetrize(g: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) g[i * n + j] = g[j * n + i]!;
}

/** aᵀ G b for a symmetric row-major n x n G. */
export function quadForm(g: Float64Array, n: number, a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    let r = 0;
    for (let j = 0; j < n; j++) r += g[i * n + j]! * b[j]!;
    s += a[i]! * r;
  }
  return s;
}

/** Norm of the combination Σ c_i x_i from the Gram matrix (clamped at 0 against rounding). */
export function combinationNorm(g: Float64Array, n: number, c: Float64Array): number {
  return Math.sqrt(Math.max(0, quadForm(g, n, c, c)));
}

/**
 * out[k] = baseCoef * base[k] + Σ_i coef[i] * x_i[k] over [start, end), in f64, rounded once to f32.
 * Without a base the base term is omitted.
 */
export function linearInto(
  out: Float32Array,
  base: Float32Array | undefined,
  baseCoef: number,
  xs: readonly Float32Array[],
  coef: Float64Array,
  start: number,
  end: number,
): void {
  const n = xs.length;
  if (n === 1 && base) {
    const x = xs[0]!;
    const c = coef[0]!;
    for (let k = start; k < end; k++) out[k] = baseCoef * base[k]! + c * x[k]!;
    return;
  }
  if (n === 2 && !base) {
    const x0 = xs[0]!;
    const x1 = xs[1]!;
    const c0 = coef[0]!;
    const c1 = coef[1]!;
    for (let k = start; k < end; k++) out[k] = c0 * x0[k]! + c1 * x1[k]!;
    return;
  }
  for (let k = start; k < end; k++) {
    let s = base ? baseCoef * base[k]! : 0;
    for (let i = 0; i < n; i++) s += coef[i]! * xs[i]![k]!;
    out[k] = s;
  }
}

/** out[k] = base[k] + Σ_i coef[i] * (x_i[k] - base[k]) over [start, end), in f64, rounded once to f32. */
export function deltaInto(
  out: Float32Array,
  base: Float32Array,
  xs: readonly Float32Array[],
  coef: Float64Array,
  start: number,
  end: number,
): void {
  const n = xs.length;
  if (n === 2) {
    const x0 = xs[0]!;
    const x1 = xs[1]!;
    const c0 = coef[0]!;
    const c1 = coef[1]!;
    for (let k = start; k < end; k++) {
      const b = base[k]!;
      out[k] = b + (c0 * (x0[k]! - b) + c1 * (x1[k]! - b));
    }
    return;
  }
  for (let k = start; k < end; k++) {
    const b = base[k]!;
    let s = 0;
    for (let i = 0; i < n; i++) s += coef[i]! * (xs[i]![k]! - b);
    out[k] = b + s;
  }
}

/** Throw unless a 'rows' chunk holds whole vectors of `len` elements. */
export function assertWholeVectors(ctx: TensorContext, chunk: Chunk, len: number): void {
  if (chunk.offset % len !== 0 || chunk.length % len !== 0) {
    throw tensorError(ctx, `chunk [${chunk.offset}, ${chunk.offset + chunk.length}) does not hold whole vectors of ${len} elements`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Exact quantiles by radix selection over the IEEE bits of f32 values (total order: -NaN.. < -inf < .. < -0 < +0 <
// .. < +inf < NaN; every NaN is ordered last, as torch.sort does). Two passes: 16 high bits, then 16 low bits
// inside the (at most `ranks.length`) boundary buckets. Never sorts; any chunking gives the same answer.

const BINS = 65536;

/** Order-preserving unsigned key of an f32 bit pattern. */
export function f32Key(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return 0xffffffff;
  return bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}

/** The f32 value of a key (inverse of f32Key, NaN for the NaN key). */
export function keyValue(key: number): number {
  if (key === 0xffffffff) return NaN;
  const bits = new Uint32Array([key & 0x80000000 ? key & 0x7fffffff : ~key >>> 0]);
  return new Float32Array(bits.buffer)[0]!;
}

/**
 * Streaming selection of the values at given ascending ranks (0-based) of a multiset of f32 values. Call
 * `addHigh` on every value batch, then `resolveHigh()`, then `addLow` on every batch (same values, any
 * chunking), then `values()`.
 */
export class QuantileSelector {
  private readonly hi = new Float64Array(BINS);
  private readonly lows: Float64Array[] = [];
  private readonly bins: number[] = [];
  /** per rank: index into bins/lows, and the rank inside that bin */
  private readonly slot: number[] = [];
  private readonly inner: number[] = [];
  private count = 0;

  constructor(private readonly ranks: readonly number[]) {}

  reset(): void {
    this.hi.fill(0);
    this.count = 0;
    this.bins.length = 0;
    this.lows.length = 0;
    this.slot.length = 0;
    this.inner.length = 0;
  }

  addHigh(bits: Uint32Array, length: number): void {
    const hi = this.hi;
    for (let i = 0; i < length; i++) hi[f32Key(bits[i]!) >>> 16]!++;
    this.count += length;
  }

  /** Total number of values seen by addHigh. */
  get size(): number {
    return this.count;
  }

  resolveHigh(): void {
    for (const r of this.ranks) {
      if (!(r >= 0 && r < this.count)) throw new RangeError(`QuantileSelector: rank ${r} outside [0, ${this.count})`);
      let below = 0;
      let b = 0;
      while (below + this.hi[b]! <= r) below += this.hi[b++]!;
      let s = this.bins.indexOf(b);
      if (s < 0) {
        s = this.bins.length;
        this.bins.push(b);
        this.lows.push(new Float64Array(BINS));
      }
      this.slot.push(s);
      this.inner.push(r - below);
    }
  }

  addLow(bits: Uint32Array, length: number): void {
    const nb = this.bins.length;
    const b0 = this.bins[0] ?? -1;
    const b1 = this.bins[1] ?? -1;
    const b2 = nb > 2 ? this.bins[2]! : -1;
    const l0 = this.lows[0];
    const l1 = this.lows[1];
    const l2 = this.lows[2];
    for (let i = 0; i < length; i++) {
      const key = f32Key(bits[i]!);
      const h = key >>> 16;
      if (h === b0) l0![key & 0xffff]!++;
      else if (h === b1) l1![key & 0xffff]!++;
      else if (h === b2) l2![key & 0xffff]!++;
      else if (nb > 3) {
        const s = this.bins.indexOf(h);
        if (s >= 0) this.lows[s]![key & 0xffff]!++;
      }
    }
  }

  /** The f32 values at the requested ranks, in the order given. */
  values(): number[] {
    return this.ranks.map((_, q) => {
      const s = this.slot[q]!;
      const low = this.lows[s]!;
      const r = this.inner[q]!;
      let below = 0;
      let l = 0;
      while (l < BINS && below + low[l]! <= r) below += low[l++]!;
      if (l === BINS) throw new Error('QuantileSelector: low pass saw fewer values than the high pass');
      return keyValue(((this.bins[s]! << 16) | l) >>> 0);
    });
  }
}

/**
 * A geometric method's native whole-tensor run (slerp, model_stock; see TensorMerger.wholeBf16): a first call for its
 * Gram sums (`kernel`: NATIVE_SLERP or NATIVE_STOCK, native/gta.cc tiesCore), then `finish`, which reads them from the argument block and
 * writes the result's coefficients into it (false: leave the tensor to the JS path), then the result range by range.
 */
export function nativeGramWhole(
  kernel: number,
  inputs: readonly Bf16Input[],
  numel: number,
  release: boolean,
  formats: number,
  finish: (args: Float64Array) => boolean,
): WholeBf16Writer | undefined {
  const k = nativeKernels();
  if (k === undefined || inputs.length < 2) return undefined;
  const a = tensorArgs(kernel, inputs.length - 1, numel, formats);
  const flags = release ? 4 : 0;
  const calls = tensorCalls(k, inputs[0]!, inputs.slice(1), a);
  let ok = false;
  try {
    calls.call(flags | 16, 0, new Uint16Array(0));
    ok = finish(a);
  } finally {
    if (!ok) calls.close();
  }
  if (!ok) return undefined;
  return { write: (offset, bits) => calls.call(flags | 32, offset, bits), close: () => calls.close() };
}
