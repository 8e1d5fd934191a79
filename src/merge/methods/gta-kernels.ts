// Hot loops of the GTA engine (gta-core.ts), one small monomorphic function per loop shape: plain typed-array
// parameters (one array type each) and a numeric length, so V8 keeps every array and bound in registers
// (STYLE.md "Hot loops"). Each kernel fuses the delta x - base (rounded to f32, as mergekit subtracts in the
// tensor dtype) with its first consumer so a model's delta is computed once per chunk and pass.
//
// Every kernel performs exactly the f32/f64 operations of the straightforward loops it replaces, in the same
// order, so results are bit-identical to them. Two tricks keep it branch-free:
//  - masks clear the f32 BITS of a dropped delta (u & -keep), which gives +0 like `d[j] = 0`, also for NaN/inf;
//  - the sign-consensus sums multiply by agree ∈ {0, 1} instead of branching. That equals the branchy sum only
//    for finite products, so callers use it only when the vote sums are finite (a non-finite product makes the
//    vote sum non-finite too, see signVoteInto) and fall back to the *Checked kernels otherwise.
// Accumulators are f64 (house rule: f32 math with f64 accumulators); `0 + v` starts a sum exactly like a
// zero-filled accumulator would (it turns -0 into +0).
//
// The end of this file loads the SIMD module (src/tensor/wasm/merge-kernels.wat): gta-core.ts runs every chunk of
// at most WASM_MAX_CHUNK elements there (3-6x faster than these loops; inputs that live in an executor workspace
// are read in place, others copied into fixed regions) and keeps the JS kernels for larger chunks and runtimes
// without WebAssembly SIMD. test/merge/gta-paths.test.ts
// checks both paths give the same bits.

import type { StreamKey } from '../../tensor/rng.js';
import type { NativeKernels } from '../../tensor/native-kernels.js';
import type { HighCountHolder, MagnitudeSelector } from '../../tensor/select.js';
import { instantiateMergeKernels, workspaceOf, type Workspace } from '../../tensor/wasm/workspace.js';

const ABS = 0x7fffffff;
const INF_BITS = 0x7f800000;

/** d = f32(x - b) */
export function deltaInto(x: Float32Array, b: Float32Array, d: Float32Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = x[j]! - b[j]!;
}

// ---- L1 norms (DARE's and DELLA's rescale) ----
//
// A norm is summed in sixteen f64 lanes: element g of the tensor (g = the chunk's offset + j) is added to lane g & 15,
// each lane in element order from +0, and the total is ((l0 + l1) + l2) + ... + l15 (laneTotal). The order depends
// on nothing but the tensor, so any chunking gives the same bits, and the native and WebAssembly kernels sum in the
// same lanes with vector adds instead of one latency-bound chain (native/gta.cc randomNormsC, l1_random in
// merge-kernels.wat). Lanes are never -0: they start at +0 and only add |d| >= +0.

/** A sum's sixteen lanes, zeroed. */
export function l1Lanes(): Float64Array {
  return new Float64Array(16);
}

/** The total of a sum's sixteen lanes: ((l0 + l1) + l2) + ... + l15. */
export function laneTotal(lanes: Float64Array): number {
  let s = lanes[0]!;
  for (let l = 1; l < 16; l++) s += lanes[l]!;
  return s;
}

/** d = f32(x - b); lanes[(offset + j) & 15] += |d| (the L1 norm before masking). */
export function deltaL1Into(x: Float32Array, b: Float32Array, d: Float32Array, n: number, offset: number, lanes: Float64Array): void {
  for (let j = 0; j < n; j++) {
    // the f32 difference (an assignment's value would be the unrounded one)
    const v = Math.fround(x[j]! - b[j]!);
    d[j] = v;
    lanes[(offset + j) & 15] += Math.abs(v);
  }
}

/** lanes[(offset + j) & 15] += |d[j]| */
export function l1Of(d: Float32Array, n: number, offset: number, lanes: Float64Array): void {
  for (let j = 0; j < n; j++) lanes[(offset + j) & 15] += Math.abs(d[j]!);
}

// ---- sparsifying masks fused with the delta; `du` is a Uint32Array view of `d`'s memory ----

/** Tie budget carried across chunks (see select.ts applyMagnitudeMaskInto). */
export interface TieBudget {
  tiesLeft: number;
}

/**
 * d = f32(x - b), kept iff |d| bits > `bits` (NaN never), or == `bits` while the tie budget lasts (element
 * order). Returns how many were kept.
 */
export function deltaMaskMagInto(
  x: Float32Array,
  b: Float32Array,
  d: Float32Array,
  du: Uint32Array,
  n: number,
  bits: number,
  budget: TieBudget,
): number {
  let ties = budget.tiesLeft;
  let kept = 0;
  for (let j = 0; j < n; j++) {
    d[j] = x[j]! - b[j]!;
    const u = du[j]!;
    const a = u & ABS;
    let keep = +(a > bits) & +(a <= INF_BITS);
    if (a === bits && ties > 0) {
      // rare: only elements exactly at the threshold
      keep = 1;
      ties--;
    }
    du[j] = u & -keep;
    kept += keep;
  }
  budget.tiesLeft = ties;
  return kept;
}

/** d = f32(x - b), kept iff minBits <= |d| bits <= inf bits (whole-model TIES trim, all ties kept). */
export function deltaMaskMinBitsInto(x: Float32Array, b: Float32Array, d: Float32Array, du: Uint32Array, n: number, minBits: number): number {
  let kept = 0;
  for (let j = 0; j < n; j++) {
    d[j] = x[j]! - b[j]!;
    const u = du[j]!;
    const a = u & ABS;
    const keep = +(a >= minBits) & +(a <= INF_BITS);
    du[j] = u & -keep;
    kept += keep;
  }
  return kept;
}

/** d = f32(x - b), kept iff r[j] < density (DARE's Bernoulli mask from pre-drawn uniforms). */
export function deltaMaskRandomInto(
  x: Float32Array,
  b: Float32Array,
  d: Float32Array,
  du: Uint32Array,
  r: Float64Array,
  n: number,
  density: number,
): number {
  let kept = 0;
  for (let j = 0; j < n; j++) {
    d[j] = x[j]! - b[j]!;
    const keep = +(r[j]! < density);
    du[j] = du[j]! & -keep;
    kept += keep;
  }
  return kept;
}

/**
 * DELLA's keep step over one fiber (elements start + t * stride, t < len, ranked by |d| into ranks[t]): keep iff
 * r < lo + rn * 2 * eps with the normalised rank rn = rank / (len - 1) (0.5 for a one-element fiber); a dropped
 * element's bits are cleared. Returns how many were kept.
 */
export function dellaKeepInto(
  du: Uint32Array,
  r: Float64Array,
  ranks: Int32Array,
  start: number,
  stride: number,
  len: number,
  lo: number,
  eps: number,
): number {
  const den = len - 1;
  let kept = 0;
  for (let t = 0; t < len; t++) {
    const idx = start + t * stride;
    const rn = den > 0 ? ranks[t]! / den : 0.5;
    const keep = +(r[idx]! < lo + rn * 2 * eps);
    du[idx] = du[idx]! & -keep;
    kept += keep;
  }
  return kept;
}

// ---- weighted sums: acc[j] (f64) += d[j] * sc, in model order ----

/** acc = 0 + d * sc */
export function scaleInit(d: Float32Array, acc: Float64Array, n: number, sc: number): void {
  for (let j = 0; j < n; j++) acc[j] = 0 + d[j]! * sc;
}

/** acc += d * sc */
export function scaleAdd(d: Float32Array, acc: Float64Array, n: number, sc: number): void {
  for (let j = 0; j < n; j++) acc[j] = acc[j]! + d[j]! * sc;
}

/** acc = 0 + f32(x - b) * sc */
export function deltaScaleInit(x: Float32Array, b: Float32Array, acc: Float64Array, n: number, sc: number): void {
  for (let j = 0; j < n; j++) acc[j] = 0 + Math.fround(x[j]! - b[j]!) * sc;
}

/** acc += f32(x - b) * sc */
export function deltaScaleAdd(x: Float32Array, b: Float32Array, acc: Float64Array, n: number, sc: number): void {
  for (let j = 0; j < n; j++) acc[j] = acc[j]! + Math.fround(x[j]! - b[j]!) * sc;
}

/** out = f32(b + ((acc + d * sc) / z) * lambda): the last model's term fused with the output */
export function scaleAddOut(d: Float32Array, acc: Float64Array, b: Float32Array, out: Float32Array, n: number, sc: number, z: number, lambda: number): void {
  for (let j = 0; j < n; j++) out[j] = b[j]! + ((acc[j]! + d[j]! * sc) / z) * lambda;
}

/** out = f32(b + ((acc + f32(x - b) * sc) / z) * lambda) */
export function deltaScaleAddOut(x: Float32Array, b: Float32Array, acc: Float64Array, out: Float32Array, n: number, sc: number, z: number, lambda: number): void {
  for (let j = 0; j < n; j++) {
    const bj = b[j]!;
    out[j] = bj + ((acc[j]! + Math.fround(x[j]! - bj) * sc) / z) * lambda;
  }
}

// Whole sums of up to three unsparsified models in one loop, no accumulator array (task_arithmetic):
// out = f32(b + ((((0 + d0 * s0) + d1 * s1) + d2 * s2) / z) * lambda), d_i = f32(x_i - b).

export function deltaSum1Out(x0: Float32Array, b: Float32Array, out: Float32Array, n: number, s0: number, z: number, lambda: number): void {
  for (let j = 0; j < n; j++) {
    const bj = b[j]!;
    out[j] = bj + ((0 + Math.fround(x0[j]! - bj) * s0) / z) * lambda;
  }
}

export function deltaSum2Out(x0: Float32Array, x1: Float32Array, b: Float32Array, out: Float32Array, n: number, s0: number, s1: number, z: number, lambda: number): void {
  for (let j = 0; j < n; j++) {
    const bj = b[j]!;
    out[j] = bj + ((0 + Math.fround(x0[j]! - bj) * s0 + Math.fround(x1[j]! - bj) * s1) / z) * lambda;
  }
}

export function deltaSum3Out(
  x0: Float32Array,
  x1: Float32Array,
  x2: Float32Array,
  b: Float32Array,
  out: Float32Array,
  n: number,
  s0: number,
  s1: number,
  s2: number,
  z: number,
  lambda: number,
): void {
  for (let j = 0; j < n; j++) {
    const bj = b[j]!;
    out[j] = bj + ((0 + Math.fround(x0[j]! - bj) * s0 + Math.fround(x1[j]! - bj) * s1 + Math.fround(x2[j]! - bj) * s2) / z) * lambda;
  }
}

/** out = f32(b + (acc / z) * lambda) */
export function sumOut(acc: Float64Array, b: Float32Array, out: Float32Array, n: number, z: number, lambda: number): void {
  for (let j = 0; j < n; j++) out[j] = b[j]! + (acc[j]! / z) * lambda;
}

// ---- TIES sign consensus ----

/**
 * s = +1 where the weighted vote sum s >= 0 (also -0), else -1 (NaN votes -1). Returns 0 when every sum was
 * finite, NaN otherwise (then some product d * sc was non-finite and the branch-free agree kernels must not be
 * used: inf * 0 is NaN).
 */
export function signVoteInto(s: Float64Array, n: number): number {
  let chk = 0;
  for (let j = 0; j < n; j++) {
    const v = s[j]!;
    chk += v - v;
    s[j] = +(v >= 0) * 2 - 1;
  }
  return chk;
}

/** agree = v * s > 0 with v = d * sc; m = 0 + v * agree; z = 0 + w * agree (finite v, w only) */
export function agreeInit(d: Float32Array, s: Float64Array, m: Float64Array, z: Float64Array, n: number, sc: number, w: number): void {
  for (let j = 0; j < n; j++) {
    const v = d[j]! * sc;
    const agree = +(v * s[j]! > 0);
    m[j] = 0 + v * agree;
    z[j] = 0 + w * agree;
  }
}

/** m += v * agree; z += w * agree (finite v, w only) */
export function agreeAdd(d: Float32Array, s: Float64Array, m: Float64Array, z: Float64Array, n: number, sc: number, w: number): void {
  for (let j = 0; j < n; j++) {
    const v = d[j]! * sc;
    const agree = +(v * s[j]! > 0);
    m[j] = m[j]! + v * agree;
    z[j] = z[j]! + w * agree;
  }
}

/** The last model's agree step fused with the disjoint mean: out = b + ((m + v·agree) / (Z or 1)) * lambda. */
export function agreeAddMeanOut(
  d: Float32Array,
  s: Float64Array,
  m: Float64Array,
  z: Float64Array,
  b: Float32Array,
  out: Float32Array,
  n: number,
  sc: number,
  w: number,
  lambda: number,
): void {
  for (let j = 0; j < n; j++) {
    const v = d[j]! * sc;
    const agree = +(v * s[j]! > 0);
    const zz = z[j]! + w * agree;
    // zz === 0 (no model agreed) divides by 1: zz + 1 is exactly 1 then
    out[j] = b[j]! + ((m[j]! + v * agree) / (zz + +(zz === 0))) * lambda;
  }
}

/** The last model's agree step fused with the disjoint sum: out = b + (m + v·agree) * lambda. */
export function agreeAddSumOut(d: Float32Array, s: Float64Array, m: Float64Array, b: Float32Array, out: Float32Array, n: number, sc: number, lambda: number): void {
  for (let j = 0; j < n; j++) {
    const v = d[j]! * sc;
    const agree = +(v * s[j]! > 0);
    out[j] = b[j]! + (m[j]! + v * agree) * lambda;
  }
}

/**
 * SCE's agree step: num += v * w and den += w where v * s > 0, v = t[j], branch-free. Exact only when every
 * v * w is finite (finite t and |w| <= 1e200); callers check and loop with a branch otherwise.
 */
export function agreeWeightedAdd(t: Float32Array, s: Float64Array, num: Float64Array, den: Float64Array, n: number, w: number): void {
  for (let j = 0; j < n; j++) {
    const v = t[j]!;
    const agree = +(v * s[j]! > 0);
    num[j] = num[j]! + v * w * agree;
    den[j] = den[j]! + w * agree;
  }
}

/** t[j] := +0 where m[j] is zero (either sign), branch-free on the bits of t (tu views t). */
export function zeroWhereZero(tu: Uint32Array, m: Float32Array, n: number): void {
  for (let j = 0; j < n; j++) tu[j] = tu[j]! & -+(m[j] !== 0);
}

// ---- SCE's elementwise steps (sce.ts) ----

/** acc += t */
export function addInto(t: Float32Array, acc: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) acc[j] = acc[j]! + t[j]!;
}

/** acc = acc / d */
export function divideInto(acc: Float64Array, n: number, d: number): void {
  for (let j = 0; j < n; j++) acc[j] = acc[j]! / d;
}

/** sq += (t - mean)^2 */
export function squaredDeviationAdd(t: Float32Array, mean: Float64Array, sq: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    const dv = t[j]! - mean[j]!;
    sq[j] = sq[j]! + dv * dv;
  }
}

/** v = f32(sq / d) */
export function quotientInto(sq: Float64Array, v: Float32Array, n: number, d: number): void {
  for (let j = 0; j < n; j++) v[j] = sq[j]! / d;
}

/** how many v[j] !== 0 (NaN counts) */
export function countNonzero(v: Float32Array, n: number): number {
  let c = 0;
  for (let j = 0; j < n; j++) c += +(v[j]! !== 0);
  return c;
}

/** acc + sum of t^2 in element order */
export function sumSquares(t: Float32Array, n: number, acc: number): number {
  for (let j = 0; j < n; j++) {
    const v = t[j]!;
    acc += v * v;
  }
  return acc;
}

/** out = f32(b + num / max(den, 1e-6)) */
export function weightedMeanOut(b: Float32Array, num: Float64Array, den: Float64Array, out: Float32Array, n: number): void {
  for (let j = 0; j < n; j++) out[j] = b[j]! + num[j]! / Math.max(den[j]!, 1e-6);
}

// ---- RAM (ram.ts) ----

/** t = f32(x - b); count += 1 where |t| > eps (branch-free) */
export function deltaCountActive(x: Float32Array, b: Float32Array, t: Float32Array, count: Float64Array, n: number, eps: number): void {
  for (let j = 0; j < n; j++) {
    const v = Math.fround(x[j]! - b[j]!);
    t[j] = v;
    count[j] = count[j]! + +(Math.abs(v) > eps);
  }
}

/** Branchy agree step for chunks with non-finite products: m += v, z += w only where v * s > 0. */
export function agreeAddChecked(d: Float32Array, s: Float64Array, m: Float64Array, z: Float64Array, n: number, sc: number, w: number): void {
  for (let j = 0; j < n; j++) {
    const v = d[j]! * sc;
    if (v * s[j]! > 0) {
      m[j] = m[j]! + v;
      z[j] = z[j]! + w;
    }
  }
}

/** out = b + (m / (z === 0 ? 1 : z)) * lambda */
export function meanOut(m: Float64Array, z: Float64Array, b: Float32Array, out: Float32Array, n: number, lambda: number): void {
  for (let j = 0; j < n; j++) {
    const zz = z[j]!;
    out[j] = b[j]! + (m[j]! / (zz + +(zz === 0))) * lambda;
  }
}

// ---- the SIMD module (src/tensor/wasm/merge-kernels.wat): the same operations, four or two lanes at a time ----

/** Largest chunk and model count the module's fixed regions hold (the executor's COMPUTE_CHUNK_ELEMENTS). */
export const WASM_MAX_CHUNK = 16384;
export const WASM_MAX_MODELS = 8;

const REGION = 65536;
/** byte offsets of the base and out regions */
export const BASE_PTR = 0;
export const OUT_PTR = REGION;
const MODEL_PTR = 2 * REGION;
const PARAM_PTR = 10 * REGION;
const TABLE_PTR = PARAM_PTR + 1024;
/** the native TIES piece's arguments (native/gta.cc): i32 header, f64 lambda at +32, 32 bytes per model from +64 */
const NATIVE_ARGS_PTR = PARAM_PTR + 2048;
/** native model modes */
export const NATIVE_ALL = 0;
export const NATIVE_NONE = 1;
export const NATIVE_MAG = 2;
const RANK_IN_PTR = 17 * REGION;
const RANK_OUT_PTR = 18 * REGION;
/** hist_high's histogram slots: u32 x HIST_BINS each, by |d| bits >>> 16 */
const HIST_PTR = 19 * REGION;
const HIST_SLOTS = 8;
const HIST_BINS = 32768;
/** slot s's inexact counts (delta_hist_inexact) lie this far past the slot */
const INEXACT_OFFSET = 1 << 20;
/** a slot is handed over before its counts could pass the u32 range */
const HIST_MAX = 0xffffffff;

interface MergeExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  ties_left(): number;
  delta_mag(x: number, b: number, d: number, n: number, bits: number, ties: number, bf: number): number;
  delta_all(x: number, b: number, d: number, n: number, bf: number): void;
  ties_out(m: number, n: number, b: number, o: number, divide: number, lambda: number, bf: number): void;
  ties_out3(n: number, b: number, o: number, divide: number, lambda: number, bf: number): void;
  sum_out(m: number, n: number, b: number, o: number, z: number, lambda: number, raw: number, bf: number): void;
  delta_random(x: number, b: number, d: number, n: number, start: number, k0: number, k1: number, thr: number, bf: number): number;
  bin_list(x: number, n: number, bin: number): number;
  delta_bin_list(x: number, b: number, d: number, n: number, bin: number, bf: number): number;
  rank_into(n: number): void;
  hist_high(d: number, n: number, h: number): void;
  delta_hist_high(x: number, b: number, n: number, h: number, bf: number): void;
  delta_hist_inexact(x: number, b: number, n: number, h: number): void;
  l1_random(x: number, b: number, n: number, start: number, k0: number, k1: number, thr: number): void;
}

/**
 * The module with views of its regions. Inputs are byte offsets into its memory: either arrays that already live
 * there (an executor workspace, see place()) or the regions `base` and `model(i)` after the caller filled them.
 * Every delta goes to a model region; outputs go to `out` or to any offset in the memory.
 */
export class MergeWasm implements HighCountHolder {
  private buf!: ArrayBuffer;
  base!: Float32Array;
  out!: Float32Array;
  /** the out region as u32 (bin_list's output) */
  outU!: Uint32Array;
  private models!: Float32Array[];
  private modelsU!: Uint32Array[];
  private params!: Float64Array;
  private lanes!: Float64Array;
  private nargs!: Int32Array;
  /** the selectors queued by nativeWindow, by model */
  private readonly windowSel: (MagnitudeSelector | undefined)[] = new Array<MagnitudeSelector | undefined>(WASM_MAX_MODELS).fill(undefined);
  private nlambda!: Float64Array;
  private table!: Int32Array;
  private rankIn!: Float32Array;
  /** rankInto's output */
  ranks!: Int32Array;
  private hists!: Uint32Array[];
  private inexactHists!: Uint32Array[];
  /** the selector whose high-pass counts each histogram slot holds */
  private readonly histOwner: (MagnitudeSelector | undefined)[] = new Array<MagnitudeSelector | undefined>(HIST_SLOTS).fill(undefined);
  /** elements counted in each slot, and when it was last used (the least recently used one is handed over) */
  private readonly histCount = new Float64Array(HIST_SLOTS);
  private readonly histUsed = new Float64Array(HIST_SLOTS);
  /** whether a slot's inexact counts may be nonzero */
  private readonly inexactUsed = new Uint8Array(HIST_SLOTS);
  private clock = 0;

  constructor(private readonly ex: MergeExports) {
    this.views();
  }

  private views(): void {
    const buf = (this.buf = this.ex.memory.buffer);
    this.base = new Float32Array(buf, BASE_PTR, WASM_MAX_CHUNK);
    this.out = new Float32Array(buf, OUT_PTR, WASM_MAX_CHUNK);
    this.outU = new Uint32Array(buf, OUT_PTR, WASM_MAX_CHUNK);
    this.models = Array.from({ length: WASM_MAX_MODELS }, (_, i) => new Float32Array(buf, MODEL_PTR + i * REGION, WASM_MAX_CHUNK));
    this.modelsU = this.models.map((m) => new Uint32Array(m.buffer, m.byteOffset, WASM_MAX_CHUNK));
    this.params = new Float64Array(buf, PARAM_PTR, 4 * WASM_MAX_MODELS);
    this.lanes = new Float64Array(buf, PARAM_PTR + 512, 32);
    this.nargs = new Int32Array(buf, NATIVE_ARGS_PTR, 16 + 8 * WASM_MAX_MODELS);
    this.nlambda = new Float64Array(buf, NATIVE_ARGS_PTR + 32, 1);
    this.table = new Int32Array(buf, TABLE_PTR, WASM_MAX_MODELS);
    this.rankIn = new Float32Array(buf, RANK_IN_PTR, WASM_MAX_CHUNK);
    this.ranks = new Int32Array(buf, RANK_OUT_PTR, WASM_MAX_CHUNK);
    this.hists = Array.from({ length: HIST_SLOTS }, (_, i) => new Uint32Array(buf, HIST_PTR + i * HIST_BINS * 4, HIST_BINS));
    this.inexactHists = Array.from({ length: HIST_SLOTS }, (_, i) => new Uint32Array(buf, HIST_PTR + INEXACT_OFFSET + i * HIST_BINS * 4, HIST_BINS));
  }

  /**
   * sel.addHighArithmeticBits over model(i)[0..n) (values made by IEEE arithmetic, e.g. deltaAll's), counted on
   * the module into a histogram slot of sel's; the counts reach sel when it resolves (or when the slot is needed
   * for another selector).
   */
  histHigh(sel: MagnitudeSelector, i: number, n: number): void {
    this.ex.hist_high(MODEL_PTR + i * REGION, n, this.histSlot(sel, n));
  }

  /** histHigh over d = f32(x - b) of the inputs at x and b (the delta is not stored); bf: both are BF16 bits. */
  deltaHistHigh(sel: MagnitudeSelector, n: number, x: number, b = BASE_PTR, bf = 0): void {
    this.ex.delta_hist_high(x, b, n, this.histSlot(sel, n), bf);
  }

  /**
   * deltaHistHigh over the BF16 bits at x and b, the inexact deltas (low 16 f32 bits nonzero) counted apart and
   * handed to sel with addInexactCounts as well, so that sel may resolve without a low pass (trackInexact).
   */
  deltaHistInexact(sel: MagnitudeSelector, n: number, x: number, b: number): void {
    this.ex.delta_hist_inexact(x, b, n, this.histSlot(sel, n, true));
  }

  /** The byte offset of sel's histogram slot, with room for n more counts. */
  private histSlot(sel: MagnitudeSelector, n: number, inexact = false): number {
    const owner = this.histOwner;
    let s = owner.indexOf(sel);
    if (s >= 0 && this.histCount[s]! + n > HIST_MAX) this.handOver(s);
    if (s < 0 || owner[s] === undefined) {
      s = owner.indexOf(undefined);
      if (s < 0) {
        // all slots taken: hand over the least recently used one
        s = 0;
        for (let t = 1; t < HIST_SLOTS; t++) if (this.histUsed[t]! < this.histUsed[s]!) s = t;
        this.handOver(s);
      }
      owner[s] = sel;
      sel.holdCountsIn(this);
    }
    this.histCount[s] = this.histCount[s]! + n;
    this.histUsed[s] = ++this.clock;
    if (inexact) this.inexactUsed[s] = 1;
    return HIST_PTR + s * HIST_BINS * 4;
  }

  /** Slot s's counts to their selector; the slot is cleared and freed. */
  private handOver(s: number): void {
    const sel = this.histOwner[s];
    if (sel === undefined) return;
    const h = this.hists[s]!;
    sel.addMagnitudeCounts(h);
    h.fill(0);
    if (this.inexactUsed[s] === 1) {
      const e = this.inexactHists[s]!;
      sel.addMagnitudeCounts(e);
      sel.addInexactCounts(e);
      e.fill(0);
      this.inexactUsed[s] = 0;
    }
    this.histOwner[s] = undefined;
    this.histCount[s] = 0;
  }

  /** HighCountHolder: the counts held for sel (if any) to sel. */
  release(sel: MagnitudeSelector): void {
    const s = this.histOwner.indexOf(sel);
    if (s >= 0) this.handOver(s);
  }

  /** Re-derive the views if the memory grew since (growing detaches them). */
  sync(): this {
    if (this.ex.memory.buffer !== this.buf) this.views();
    return this;
  }

  /** Whether `a` is a view of this module's memory (then its byteOffset is a pointer the kernels take). */
  holds(a: ArrayBufferView): boolean {
    return a.buffer === this.buf;
  }

  /** The offset of a's first n elements in the memory: a's own if it lives there, else `region`'s after a copy. */
  place(a: Float32Array, n: number, region: Float32Array): number {
    if (a.buffer === this.buf) return a.byteOffset;
    region.set(a.length === n ? a : a.subarray(0, n));
    return region.byteOffset;
  }

  /** byte offset of model region i */
  modelPtr(i: number): number {
    return MODEL_PTR + i * REGION;
  }

  /** model region i (an input copied there, or a delta) */
  model(i: number): Float32Array {
    return this.models[i]!;
  }

  modelU(i: number): Uint32Array {
    return this.modelsU[i]!;
  }

  /** model i's scale sc_i = factor * weight and weight w_i */
  setParams(i: number, sc: number, w: number): void {
    const p = this.params;
    p[4 * i] = sc;
    p[4 * i + 1] = sc;
    p[4 * i + 2] = w;
    p[4 * i + 3] = w;
  }

  /** model(i) := deltaMaskMagInto(x, b) with `ties` ties; returns kept (ties left: tiesLeft()); bf: x, b are BF16 bits */
  deltaMag(i: number, n: number, bits: number, ties: number, x = this.modelPtr(i), b = BASE_PTR, bf = 0): number {
    return this.ex.delta_mag(x, b, MODEL_PTR + i * REGION, n, bits, ties, bf);
  }

  tiesLeft(): number {
    return this.ex.ties_left();
  }

  /** model(i) := f32(x - b) (x defaults to model(i) itself, b to the base region; bf: x, b are BF16 bits) */
  deltaAll(i: number, n: number, x = this.modelPtr(i), b = BASE_PTR, bf = 0): void {
    this.ex.delta_all(x, b, MODEL_PTR + i * REGION, n, bf);
  }

  /** outU[0..k) := low 16 bits of |model(i)[j]| bits for every j < n whose high bits are `bin`; returns k */
  binList(i: number, n: number, bin: number): number {
    return this.ex.bin_list(MODEL_PTR + i * REGION, n, bin);
  }

  /** model(i) := f32(x - b), then binList(i, n, bin) (bf: x, b are BF16 bits) */
  deltaBinList(i: number, n: number, bin: number, x = this.modelPtr(i), b = BASE_PTR, bf = 0): number {
    return this.ex.delta_bin_list(x, b, MODEL_PTR + i * REGION, n, bin, bf);
  }

  /**
   * DARE's L1 norms over the input at x, added into their lanes (see l1Lanes): before[(start + j) & 15] += |d_j|,
   * after[...] += |d_j| if kept (else +0), with d = f32(x - b) and deltaRandom's mask (nothing else is written).
   */
  l1Random(i: number, n: number, start: number, key: StreamKey, density: number, before: Float64Array, after: Float64Array, x = this.modelPtr(i), b = BASE_PTR): void {
    const thr = Math.ceil(density * 4294967296) - 1;
    this.lanes.set(before, 0);
    this.lanes.set(after, 16);
    this.ex.l1_random(x, b, n, start, key.k0, key.k1, thr);
    before.set(this.lanes.subarray(0, 16));
    after.set(this.lanes.subarray(16, 32));
  }

  /** ranks[0..n) := MagnitudeRanker ranks of x[0..n) (n <= WASM_MAX_CHUNK); returns the `ranks` view */
  rankInto(x: Float32Array, n: number): Int32Array {
    this.rankIn.set(x.length === n ? x : x.subarray(0, n));
    this.ex.rank_into(n);
    return this.ranks;
  }

  /**
   * out := the TIES consensus of the m masked deltas in model(0..m) (see ties_out in the .wat); exactly n written at
   * o; bf: the base at b is BF16 bits
   */
  tiesOut(m: number, n: number, divide: boolean, lambda: number, b = BASE_PTR, o = OUT_PTR, bf = 0): void {
    // three models (the common TIES recipe): unrolled, each product computed once (same bits, ~10% faster)
    if (m === 3) this.ex.ties_out3(n, b, o, divide ? 1 : 0, lambda, bf);
    else this.ex.ties_out(m, n, b, o, divide ? 1 : 0, lambda, bf);
  }

  /** Model i of the next tiesNative call: input bits at xp, mode NATIVE_*, threshold bits and tie budget (NATIVE_MAG). */
  setNativeModel(i: number, xp: number, mode: number, bits = 0, ties = 0): void {
    const a = this.nargs;
    const o = 16 + 8 * i;
    a[o] = xp;
    a[o + 1] = mode;
    a[o + 2] = bits;
    a[o + 3] = ties;
  }

  /**
   * The TIES piece on the native kernels (native/gta.cc): each model's delta of BF16 inputs, masked as set by
   * setNativeModel, into model(i), then tiesOut's consensus to o; the same bits as deltaMag/deltaAll + tiesOut.
   * Read kept counts and tie budgets back with nativeKept/nativeTiesLeft.
   */
  tiesNative(k: NativeKernels, m: number, n: number, divide: boolean, lambda: number, b: number, o: number, bf16 = false): void {
    const a = this.nargs;
    a[0] = n;
    a[1] = m;
    a[2] = b;
    a[3] = o;
    a[4] = divide ? 1 : 0;
    a[5] = bf16 ? 1 : 0; // o receives BF16 bits (round to nearest even) instead of f32
    this.nlambda[0] = lambda;
    k.tiesPiece(this.buf);
  }

  /**
   * sel's HIGH-pass counts over d = f32(x - b) of BF16 inputs, windowed (setWindow's buckets [lo, hi]; the others
   * only counted as above/below) on the native kernels: queue one model with nativeWindow, then run histWindows.
   */
  nativeWindow(i: number, sel: MagnitudeSelector, n: number, x: number, lo: number, hi: number): void {
    const a = this.nargs;
    const o = 16 + 8 * i;
    a[o] = x;
    a[o + 1] = this.histSlot(sel, n, true);
    a[o + 2] = (lo << 16) >>> 0;
    a[o + 3] = Math.min(((hi + 1) << 16) - 1, INF_BITS);
    a[o + 4] = 0;
    a[o + 5] = 0;
    this.windowSel[i] = sel;
  }

  /** Runs the models queued by nativeWindow over n elements with the base at b, and hands over their outside counts. */
  histWindows(k: NativeKernels, n: number, b: number): void {
    const a = this.nargs;
    a[0] = n;
    a[2] = b;
    k.histWindows(this.buf);
    for (let i = 0; i < WASM_MAX_MODELS; i++) {
      const sel = this.windowSel[i];
      if (sel === undefined) continue;
      const o = 16 + 8 * i;
      sel.addOutsideCounts(a[o + 4]! >>> 0, a[o + 5]! >>> 0);
      this.windowSel[i] = undefined;
      a[o] = 0;
    }
  }

  nativeKept(i: number): number {
    return this.nargs[16 + 8 * i + 4]!;
  }

  nativeTiesLeft(i: number): number {
    return this.nargs[16 + 8 * i + 3]!;
  }

  /**
   * out := base + ((sum of d_i * sc_i) / z) * lambda with d_i = f32(x_i - base) if `raw` (x_i the inputs), else
   * d_i = x_i (deltas); x_i is at xs[i], by default model(i). Exactly n outputs are written at o. bf: the base (and
   * with `raw` the inputs) are BF16 bits.
   */
  sumOut(m: number, n: number, z: number, lambda: number, raw: boolean, b = BASE_PTR, o = OUT_PTR, xs?: readonly number[], bf = 0): void {
    const t = this.table;
    for (let i = 0; i < m; i++) t[i] = xs?.[i] ?? MODEL_PTR + i * REGION;
    this.ex.sum_out(m, n, b, o, z, lambda, raw ? 1 : 0, bf);
  }

  /**
   * model(i) := f32(x - b) where fillUniform(key, start)[j] < density, else +0; returns kept (bf: x, b are BF16 bits).
   * For 0 < density < 1: u / 2^32 < density <=> u < density * 2^32 (exact) <=> u <= ceil(density * 2^32) - 1.
   */
  deltaRandom(i: number, n: number, start: number, key: StreamKey, density: number, x = this.modelPtr(i), b = BASE_PTR, bf = 0): number {
    const thr = Math.ceil(density * 4294967296) - 1; // see also l1Random
    return this.ex.delta_random(x, b, MODEL_PTR + i * REGION, n, start, key.k0, key.k1, thr, bf);
  }
}

let cached: MergeWasm | undefined | null = null;

/** The shared instance, made on first use; undefined where WebAssembly SIMD is unavailable (JS kernels then). */
export function mergeWasm(): MergeWasm | undefined {
  if (cached === null) {
    const ex = instantiateMergeKernels();
    cached = ex === undefined ? undefined : new MergeWasm(ex as MergeExports);
  }
  return cached;
}

const attached = new WeakMap<Workspace, MergeWasm>();

/**
 * The instance to run a piece on: the one whose memory holds `a` (an executor workspace: its arrays are read in
 * place), else the shared one (arrays copied into its regions).
 */
export function mergeWasmFor(a: ArrayBufferView): MergeWasm | undefined {
  const ws = workspaceOf(a.buffer);
  if (ws === undefined) return mergeWasm();
  let w = attached.get(ws);
  if (w === undefined) {
    w = new MergeWasm(ws.exports as MergeExports);
    attached.set(ws, w);
  }
  return w.sync();
}
