// SVD-based merges of task vectors: tsv (TSV-M, Gargiulo et al. CVPR 2025), rtsvm (R-TSVM, an approximate
// reconstruction of Yang et al. 2025) and iso_c (Iso-C, Marczak et al. ICML 2025). 2-D tensors are merged whole in
// an async compute() step whose big products go through ctx.linalg; other tensors are averaged elementwise.
// Deterministic for a given seed whatever the thread count. Imports merge types, errors and src/tensor only.

import { VectorError } from '../../errors.js';
import { jsMatMul, ScratchF32, type MatMulBackend } from '../../tensor/linalg/backend.js';
import { fromArray } from '../../tensor/linalg/matrix.js';
import { polarExact, polarNewtonSchulz } from '../../tensor/linalg/newton-schulz.js';
import { blockKrylovSvd, DEFAULT_KRYLOV_BLOCKS, defaultKrylovBlockSize, randomizedSvd } from '../../tensor/linalg/randomized.js';
import { jacobiSvd } from '../../tensor/linalg/svd.js';
import { randomU32 } from '../../tensor/rng.js';
import { firstNonFinite } from '../../tensor/vector-codecs.js';
import type { ParamSpec } from '../../recipe/spec.js';
import type { Chunk, MergeMethod, Params, TensorContext, TensorMerger, WholeTensorCost } from '../types.js';
import { EMPTY_MERGER, QuantileSelector, tensorError } from './geo-util.js';

/**
 * Randomized-path defaults: q = 3 subspace iterations and p = max(10, ⌈k/4⌉) extra sketch columns. TSV keeps a large
 * share of the spectrum (k = r/T), so its top-k boundary sits where the spectrum is still flat: the error of the
 * captured subspace shrinks like (σ_{k+p}/σ_k)^{2q+1}, and the Halko default p = 10, q = 2 left the merged update
 * 19% (512²) to 25% (1024²) away from the exact TSV-M on a 0.997^i spectrum (bench/svd); p = k/4, q = 3: 0.16% at 512².
 */
export const DEFAULT_POWER_ITERATIONS = 3;

/** The default oversampling for a task rank k (see DEFAULT_POWER_ITERATIONS). */
export function defaultOversampling(k: number): number {
  return Math.max(10, Math.ceil(k / 4));
}

/** Largest min(m, n) that `svd: auto` (and iso_c's `polar: auto`) decomposes exactly. */
const EXACT_MAX_DIM_DEFAULT = 128;

/** Singular triplets with σ ≤ this × the task's largest σ are dropped before concatenation (numerically null). */
export const DROP_RELATIVE = 1e-6;

export type SvdMode = 'exact' | 'randomized' | 'auto';

/** How the randomized path finds each task's top-k subspace (see TSV_PARAMS range_finder). */
export type RangeFinder = 'auto' | 'krylov' | 'subspace';

/**
 * `range_finder: auto` redoes a task by subspace iteration when block Krylov finds σ_k below this fraction of σ_1
 * (a steep spectrum: Krylov's f32 basis blurs those small directions, see TSV_PARAMS range_finder).
 */
export const AUTO_STEEP_RATIO = 1e-3;

/**
 * The range finder of a tensor's parameters: `range_finder` when given, else subspace iteration when a recipe sets
 * its knobs (oversampling, power_iterations: recipes written before block Krylov keep their meaning), else krylov.
 */
export function rangeFinderOf(params: Params): RangeFinder {
  const given = params['range_finder'];
  if (given === 'auto' || given === 'krylov' || given === 'subspace') return given;
  return typeof params['oversampling'] === 'number' || typeof params['power_iterations'] === 'number' ? 'subspace' : 'auto';
}

export interface Common {
  alpha: number;
  weights: Float64Array;
  exact: boolean;
  rangeFinder: RangeFinder;
  /** undefined: DEFAULT_KRYLOV_BLOCKS */
  krylovBlocks: number | undefined;
  /** undefined: max(8, ⌈1.75k/s⌉) per task (defaultKrylovBlockSize) */
  krylovBlockSize: number | undefined;
  /** undefined: max(10, ⌈k/4⌉) per task (see DEFAULT_POWER_ITERATIONS) */
  oversampling: number | undefined;
  powerIterations: number;
  backend: MatMulBackend;
}

export function num(v: unknown, fallback: number): number {
  return typeof v === 'number' ? v : fallback;
}

export function common(ctx: TensorContext, mode: SvdMode): Common {
  const m = ctx.shape[0] ?? 0;
  const n = ctx.shape[1] ?? 0;
  return {
    alpha: num(ctx.params['alpha'], 1),
    weights: Float64Array.from(ctx.modelParams, (p) => num(p['weight'], 1)),
    exact: exactPath([m, n], ctx.params, mode),
    rangeFinder: rangeFinderOf(ctx.params),
    krylovBlocks: typeof ctx.params['krylov_blocks'] === 'number' ? ctx.params['krylov_blocks'] : undefined,
    krylovBlockSize: typeof ctx.params['krylov_block_size'] === 'number' ? ctx.params['krylov_block_size'] : undefined,
    oversampling: typeof ctx.params['oversampling'] === 'number' ? ctx.params['oversampling'] : undefined,
    powerIterations: num(ctx.params['power_iterations'], DEFAULT_POWER_ITERATIONS),
    backend: ctx.linalg ?? jsMatMul,
  };
}

/** out = base + alpha·v, exactly the base where alpha·v is zero (keeps −0 and makes alpha 0 bit-identical). */
export function applyInto(out: Float32Array, base: Float32Array, v: ArrayLike<number>, alpha: number): void {
  for (let i = 0; i < out.length; i++) {
    const d = alpha * v[i]!;
    out[i] = d === 0 ? base[i]! : base[i]! + d;
  }
}

/**
 * Task vectors w_t·(x_t − base) in f32, checked finite in the same pass per model: a difference that is not finite
 * (an input NaN or infinity among them) sends the chunk through `checkInputsFinite`, which names the model and element.
 */
export function finiteTaskVectors(ctx: TensorContext, method: string, chunk: Chunk, weights: Float64Array): Float32Array[] {
  const base = chunk.base!;
  let finite = true;
  const taus = chunk.models.map((x, t) => {
    const tau = new Float32Array(chunk.length);
    if (!weightedDifference(tau, x, base, weights[t]!)) finite = false;
    return tau;
  });
  if (!finite) checkInputsFinite(ctx, method, chunk);
  return taus;
}

/**
 * `finiteTaskVectors` one model at a time into one reused buffer: of(t) returns τ_t, valid until the next call (for
 * methods that decompose each task vector in turn: T - 1 fewer arrays of the tensor's size to allocate and fault in).
 */
export function taskVectorStream(ctx: TensorContext, method: string, chunk: Chunk, weights: Float64Array): (t: number) => Float32Array {
  let buffer: Float32Array | undefined;
  return (t) => {
    buffer ??= new Float32Array(chunk.length);
    if (!weightedDifference(buffer, chunk.models[t]!, chunk.base!, weights[t]!)) checkInputsFinite(ctx, method, chunk);
    return buffer;
  };
}

/**
 * tau = w·(x − base); false when a difference is not finite. (A plain function with local accumulators: the same
 * loop inside a closure that updated a captured probe ran 5x slower.)
 */
function weightedDifference(tau: Float32Array, x: Float32Array, base: Float32Array, w: number): boolean {
  let probe = 0;
  for (let i = 0; i < tau.length; i++) {
    const d = x[i]! - base[i]!;
    probe += d * 0; // NaN from here on once d is NaN or infinite
    tau[i] = w * d;
  }
  return probe === 0;
}

/**
 * Refuse NaN or infinity in what a whole-tensor decomposition reads: one such value spreads to every entry of the
 * merged matrix (or, past a rank test, silently drops the task); elementwise methods keep it to its element.
 * `which(i)` names the array for the message.
 */
export function checkFinite(name: string, method: string, arrays: readonly ArrayLike<number>[], which: (i: number) => string): void {
  for (const [t, a] of arrays.entries()) {
    const i = firstNonFinite(a);
    if (i < 0) continue;
    throw new VectorError(
      'VECTOR_NOT_FINITE',
      `tensor '${name}': ${which(t)} has a non-finite value (${a[i]}) at element ${i}; ${method} decomposes whole matrices, where it would corrupt every entry`,
      { where: { tensor: name } },
    );
  }
}

/** Checks a chunk's base and models (named for the message as the context names them: TensorContext.inputName). */
export function checkInputsFinite(ctx: TensorContext, method: string, chunk: Chunk): void {
  const named = (i: number): string => ctx.inputName?.(i === 0 ? 'base' : i - 1) ?? (i === 0 ? 'the base model' : `model ${i} (in recipe order)`);
  checkFinite(ctx.name, method, [chunk.base!, ...chunk.models], named);
}

/**
 * Elementwise mean of the weighted task vectors, scaled by `alpha` (default the `alpha` parameter): base +
 * alpha·mean_t(weight_t·τ_t), exactly the base where that is 0 (non-2-D tensors, or decompose: false).
 */
export function meanMerger(ctx: TensorContext, alpha = num(ctx.params['alpha'], 1)): TensorMerger {
  const weights = Float64Array.from(ctx.modelParams, (p) => num(p['weight'], 1));
  const n = ctx.modelCount;
  return {
    chunking: 'elements',
    emit(chunk: Chunk, out: Float32Array): void {
      const base = chunk.base!;
      for (let i = 0; i < chunk.length; i++) {
        const b = base[i]!;
        let s = 0;
        for (let t = 0; t < n; t++) s += weights[t]! * (chunk.models[t]![i]! - b);
        const d = alpha * (s / n);
        out[i] = d === 0 ? b : b + d;
      }
    },
  };
}

/** Whether a tensor takes the SVD path: 2-D with both dims > 0 and `decompose` not false. */
export function decomposes(ctx: TensorContext): boolean {
  return ctx.shape.length === 2 && ctx.numel > 0 && ctx.params['decompose'] !== false;
}

export function checkInputs(ctx: TensorContext, method: string): void {
  if (!ctx.hasBase) throw tensorError(ctx, `${method} needs a base model (task vectors are model − base)`);
  if (ctx.modelCount < 1) throw tensorError(ctx, `${method} needs at least one model besides the base`);
}

// ---------------------------------------------------------------------------------------------------------------
// R-TSVM knobs

interface RobustOptions {
  reweight: 'huber' | 'clip' | 'none';
  kappa: number;
  clipQuantile: number;
  taskWeighting: boolean;
  adaptiveRank: boolean;
  sparsityEps: number;
}

/** The f32 values at the given ranks of `v` (exact radix selection over the bits). */
function selectRanks(v: Float32Array, ranks: number[]): number[] {
  const bits = new Uint32Array(v.buffer, v.byteOffset, v.length);
  const sel = new QuantileSelector(ranks);
  sel.addHigh(bits, v.length);
  sel.resolveHigh();
  sel.addLow(bits, v.length);
  return sel.values();
}

/** numpy-style median (mean of the two middle values for an even count). */
function median(v: Float32Array): number {
  const n = v.length;
  const [a, b] = selectRanks(v, [Math.floor((n - 1) / 2), Math.ceil((n - 1) / 2)]);
  return (a! + b!) / 2;
}

/**
 * Outlier-aware reweighting of one task vector in place; returns its outlier ratio (the fraction of entries the
 * rule touches). huber: robust z = |τ − med| / (1.4826·MAD) (MAD = 0 falls back to 1.2533·mean absolute
 * deviation; a constant τ is left alone), τ ← min(1, κ/z)·τ. clip: τ ← sign(τ)·min(|τ|, q-quantile of |τ|).
 * none: only the ratio (of z > κ) is measured.
 */
function reweightInPlace(tau: Float32Array, o: RobustOptions): number {
  const n = tau.length;
  if (n === 0) return 0;
  const dev = new Float32Array(n);
  if (o.reweight === 'clip') {
    for (let i = 0; i < n; i++) dev[i] = Math.abs(tau[i]!);
    const q = selectRanks(dev, [Math.min(n - 1, Math.max(0, Math.ceil(o.clipQuantile * n) - 1))])[0]!;
    let touched = 0;
    for (let i = 0; i < n; i++) {
      if (dev[i]! > q) {
        tau[i] = tau[i]! > 0 ? q : -q;
        touched++;
      }
    }
    return touched / n;
  }
  const med = median(tau);
  for (let i = 0; i < n; i++) dev[i] = Math.abs(tau[i]! - med);
  let scale = 1.4826 * median(dev);
  if (!(scale > 0)) {
    let s = 0;
    for (let i = 0; i < n; i++) s += dev[i]!;
    scale = 1.2533 * (s / n);
  }
  if (!(scale > 0)) return 0;
  let touched = 0;
  const limit = o.kappa * scale; // z > κ  ⇔  |τ − med| > κ·s
  for (let i = 0; i < n; i++) {
    const d = dev[i]!;
    if (d > limit) {
      touched++;
      if (o.reweight === 'huber') tau[i] = tau[i]! * (limit / d);
    }
  }
  return touched / n;
}

/** ρ_t: fraction of entries with |τ| ≤ eps·max|τ| (an all-zero τ is fully sparse). */
function sparsity(tau: Float32Array, eps: number): number {
  let mx = 0;
  for (let i = 0; i < tau.length; i++) mx = Math.max(mx, Math.abs(tau[i]!));
  if (mx === 0) return 1;
  const cut = eps * mx;
  let z = 0;
  for (let i = 0; i < tau.length; i++) if (Math.abs(tau[i]!) <= cut) z++;
  return z / tau.length;
}

/** k_t ∝ (1 − ρ_t), each floor(r·a_t/Σa), so Σ k_t ≤ r; equal sparsities give ⌊r/T⌋ each (plain TSV-M). */
export function adaptiveRanks(rho: readonly number[], r: number): number[] {
  const a = rho.map((x) => Math.max(0, 1 - x));
  const total = a.reduce((x, y) => x + y, 0);
  if (!(total > 0)) return rho.map(() => 0);
  if (a.every((x) => x === a[0])) return rho.map(() => Math.floor(r / rho.length));
  const k = a.map((x) => Math.min(r, Math.floor((r * x) / total + 1e-9)));
  while (k.reduce((x, y) => x + y, 0) > r) k[k.indexOf(Math.max(...k))]!--;
  return k;
}

// ---------------------------------------------------------------------------------------------------------------
// TSV-M core

interface Triplets {
  /** m x c and n x c, row-major (f64 on the exact path, f32 on the randomized one) */
  u: Float64Array | Float32Array;
  v: Float64Array | Float32Array;
  s: Float64Array;
}

/** Keep the leading columns j < k of a rows x cols array whose σ_j > DROP_RELATIVE·σ_0, into f64 or f32. */
export function leading<A extends Float64Array | Float32Array>(make: (n: number) => A, src: ArrayLike<number>, rows: number, cols: number, keep: number): A {
  const out = make(rows * keep);
  for (let i = 0; i < rows; i++) for (let j = 0; j < keep; j++) out[i * keep + j] = src[i * cols + j]!;
  return out;
}

export function keptCount(s: ArrayLike<number>, k: number): number {
  const top = s[0] ?? 0;
  let c = 0;
  while (c < k && s[c]! > DROP_RELATIVE * top) c++;
  return c;
}

/** Place the blocks side by side: U_cat (rows x Σc_t). */
export function concat<A extends Float64Array | Float32Array>(make: (n: number) => A, blocks: readonly A[], widths: readonly number[], rows: number): A {
  const c = widths.reduce((x, y) => x + y, 0);
  const out = make(rows * c);
  let at = 0;
  for (const [t, b] of blocks.entries()) {
    const w = widths[t]!;
    for (let i = 0; i < rows; i++) out.set(b.subarray(i * w, i * w + w), i * c + at);
    at += w;
  }
  return out;
}

interface TsvReport {
  rank: number;
  polarIterations: number;
}

/** A task's top-k triplets on the randomized path, by the tensor's range finder. */
export function truncatedTaskSvd(tau: Float32Array, m: number, n: number, k: number, c: Common, seed: number, scratch?: ScratchF32): ReturnType<typeof randomizedSvd> {
  const subspace = (): ReturnType<typeof randomizedSvd> =>
    randomizedSvd(tau, m, n, k, { backend: c.backend, seed, oversampling: c.oversampling ?? defaultOversampling(k), powerIterations: c.powerIterations });
  if (c.rangeFinder === 'subspace') return subspace();
  const krylov = blockKrylovSvd(tau, m, n, k, { backend: c.backend, seed, ...(scratch !== undefined ? { scratch } : {}), ...(c.krylovBlocks !== undefined ? { blocks: c.krylovBlocks } : {}), ...(c.krylovBlockSize !== undefined ? { blockSize: c.krylovBlockSize } : {}) });
  if (c.rangeFinder === 'krylov') return krylov;
  return krylov.then((r) => (r.s[k - 1]! < AUTO_STEEP_RATIO * r.s[0]! ? subspace() : r));
}

/** τ = polar(U_cat)·diag(s_cat)·polar(V_cat)ᵀ from each task's top-k_t triplets; returns the m·n values. */
export async function tsvMerge(
  tauOf: (t: number) => Float32Array,
  m: number,
  n: number,
  ranks: readonly number[],
  c: Common,
  seedOf: (t: number) => number,
  report: TsvReport,
): Promise<ArrayLike<number>> {
  const us: (Float64Array | Float32Array)[] = [];
  const vs: (Float64Array | Float32Array)[] = [];
  const widths: number[] = [];
  const ss: number[] = [];
  const f64 = (len: number): Float64Array => new Float64Array(len);
  const f32 = (len: number): Float32Array => new Float32Array(len);
  const scratch = new ScratchF32(); // the tasks' decompositions share their work arrays
  for (const [t, k] of ranks.entries()) {
    if (k === 0) continue;
    const tau = tauOf(t);
    if (c.exact) {
      const svd = jacobiSvd(fromArray(tau, m, n));
      const r = svd.s.length;
      const kept = keptCount(svd.s, k);
      us.push(leading(f64, svd.u.data, m, r, kept));
      vs.push(leading(f64, svd.v.data, n, r, kept));
      widths.push(kept);
      for (let j = 0; j < kept; j++) ss.push(svd.s[j]!);
    } else {
      const svd = await truncatedTaskSvd(tau, m, n, k, c, seedOf(t), scratch);
      const kept = keptCount(svd.s, k);
      us.push(kept === k ? svd.u : leading(f32, svd.u, m, k, kept));
      vs.push(kept === k ? svd.v : leading(f32, svd.v, n, k, kept));
      widths.push(kept);
      for (let j = 0; j < kept; j++) ss.push(svd.s[j]!);
    }
  }
  const cw = ss.length;
  report.rank = cw;
  if (cw === 0) return new Float64Array(m * n);
  const s = Float64Array.from(ss);
  const r = await polarRecombine(us, vs, widths, s, m, n, c);
  report.polarIterations = r.iterations;
  return r.out;
}

/**
 * polar(U_cat)·diag(s)·polar(V_cat)ᵀ (m·n values) from side-by-side blocks of singular vectors (f64 on the exact path,
 * f32 otherwise; s has one weight per column): exact polar factors and products in JS f64, or Newton–Schulz polar
 * factors and one product on the backend. Shared by tsv/rtsvm and iso_cts.
 */
export async function polarRecombine(
  us: readonly (Float64Array | Float32Array)[],
  vs: readonly (Float64Array | Float32Array)[],
  widths: readonly number[],
  s: Float64Array,
  m: number,
  n: number,
  c: Common,
): Promise<{ out: ArrayLike<number>; iterations: number }> {
  const cw = s.length;
  if (c.exact) {
    const f64 = (len: number): Float64Array => new Float64Array(len);
    const pu = polarExact(concat(f64, us as Float64Array[], widths, m), m, cw).p;
    const pv = polarExact(concat(f64, vs as Float64Array[], widths, n), n, cw).p;
    const out = new Float64Array(m * n);
    const row = new Float64Array(cw);
    for (let i = 0; i < m; i++) {
      for (let l = 0; l < cw; l++) row[l] = pu[i * cw + l]! * s[l]!;
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let l = 0; l < cw; l++) acc += row[l]! * pv[j * cw + l]!;
        out[i * n + j] = acc;
      }
    }
    return { out, iterations: 0 };
  }
  const f32 = (len: number): Float32Array => new Float32Array(len);
  const dense = c.backend.dense;
  let pu: Awaited<ReturnType<typeof polarNewtonSchulz>>;
  let pv: typeof pu;
  if (dense !== undefined && dense.threads >= 2 && m === cw && n === cw) {
    // two square factors: both Newton iterations at once on half the threads each (measured: two single-thread
    // inverses side by side take 0.87 s each, one two-thread inverse 0.53 s: the serial parts overlap)
    const threads = Math.floor(dense.threads / 2);
    [pu, pv] = await Promise.all([
      polarNewtonSchulz(concat(f32, us as Float32Array[], widths, m), m, cw, c.backend, { threads, overwrite: true }),
      polarNewtonSchulz(concat(f32, vs as Float32Array[], widths, n), n, cw, c.backend, { threads, overwrite: true }),
    ]);
  } else {
    pu = await polarNewtonSchulz(concat(f32, us as Float32Array[], widths, m), m, cw, c.backend, { overwrite: true });
    pv = await polarNewtonSchulz(concat(f32, vs as Float32Array[], widths, n), n, cw, c.backend, { overwrite: true });
  }
  const us2 = pu.p;
  for (let i = 0; i < m; i++) for (let l = 0; l < cw; l++) us2[i * cw + l] = us2[i * cw + l]! * s[l]!;
  return { out: await c.backend.matmul(us2, pv.p, m, cw, n, { transB: true }), iterations: pu.iterations + pv.iterations };
}

/** A whole-tensor merger whose compute() fills the result. */
export function wholeTensor(run: (chunk: Chunk) => Promise<ArrayLike<number>>, alpha: number, report: () => Record<string, number>): TensorMerger {
  let result: ArrayLike<number> | undefined;
  return {
    chunking: 'tensor',
    async compute(chunk: Chunk): Promise<void> {
      result = await run(chunk);
    },
    emit(chunk: Chunk, out: Float32Array): void {
      if (result === undefined) throw new Error('emit before compute');
      applyInto(out, chunk.base!, result, alpha);
      result = undefined;
    },
    report,
  };
}

function createTsv(ctx: TensorContext, robust: RobustOptions | undefined, name: string): TensorMerger {
  checkInputs(ctx, name);
  if (ctx.numel === 0) return EMPTY_MERGER;
  if (!decomposes(ctx)) return meanMerger(ctx);
  const c = common(ctx, (ctx.params['svd'] as SvdMode | undefined) ?? 'auto');
  const m = ctx.shape[0]!;
  const n = ctx.shape[1]!;
  const r = Math.min(m, n);
  const T = ctx.modelCount;
  const rep: TsvReport = { rank: 0, polarIterations: 0 };
  const extra: Record<string, number> = {};
  const seedOf = (t: number): number => randomU32(ctx.rng(t, 'tsv'), 0);
  return wholeTensor(
    async (chunk) => {
      const even = Array.from({ length: T }, () => Math.floor(r / T));
      // plain TSV-M decomposes each task vector in turn: made one at a time in one buffer
      if (!robust) return tsvMerge(taskVectorStream(ctx, name, chunk, c.weights), m, n, even, c, seedOf, rep);
      const taus = finiteTaskVectors(ctx, name, chunk, c.weights);
      let ranks = even;
      if (robust.adaptiveRank) {
        const rho = taus.map((t) => sparsity(t, robust.sparsityEps));
        ranks = adaptiveRanks(rho, r);
        rho.forEach((x, t) => (extra[`sparsity_${t}`] = x));
      }
      if (robust.reweight !== 'none' || robust.taskWeighting) {
        const ratios = taus.map((t) => (robust.reweight === 'none' ? reweightInPlace(Float32Array.from(t), robust) : reweightInPlace(t, robust)));
        ratios.forEach((x, t) => (extra[`outlier_ratio_${t}`] = x));
        if (robust.taskWeighting) {
          const inv = ratios.map((x) => 1 / Math.max(x, 1 / chunk.length));
          const mean = inv.reduce((a, b) => a + b, 0) / inv.length;
          taus.forEach((tau, t) => {
            const w = inv[t]! / mean;
            for (let i = 0; i < tau.length; i++) tau[i] = tau[i]! * w;
          });
        }
      }
      ranks.forEach((k, t) => (extra[`rank_${t}`] = k));
      return tsvMerge((t) => taus[t]!, m, n, ranks, c, seedOf, rep);
    },
    c.alpha,
    () => ({ ...extra, rank: rep.rank, polar_iterations: rep.polarIterations, exact: c.exact ? 1 : 0 }),
  );
}

function createIsoC(ctx: TensorContext): TensorMerger {
  checkInputs(ctx, 'iso_c');
  if (ctx.numel === 0) return EMPTY_MERGER;
  if (!decomposes(ctx)) return meanMerger(ctx);
  const mode = (ctx.params['polar'] as string | undefined) ?? 'auto';
  const c = common(ctx, mode === 'newton_schulz' ? 'randomized' : (mode as SvdMode));
  const m = ctx.shape[0]!;
  const n = ctx.shape[1]!;
  const r = Math.min(m, n);
  let meanSigma = 0;
  let iterations = 0;
  return wholeTensor(
    async (chunk) => {
      const base = chunk.base!;
      checkInputsFinite(ctx, 'iso_c', chunk);
      const sum = new Float64Array(chunk.length);
      for (const [t, x] of chunk.models.entries()) {
        const w = c.weights[t]!;
        for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + w * (x[i]! - base[i]!);
      }
      if (c.exact) {
        const { p, s } = polarExact(sum, m, n);
        let total = 0;
        for (const x of s) total += x;
        meanSigma = total / r;
        for (let i = 0; i < p.length; i++) p[i] = p[i]! * meanSigma;
        return p;
      }
      const s32 = Float32Array.from(sum);
      const pol = await polarNewtonSchulz(s32, m, n, c.backend);
      iterations = pol.iterations;
      // the nuclear norm is trace(Pᵀ·τ) = Σ P_ij·τ_ij
      let nuclear = 0;
      for (let i = 0; i < s32.length; i++) nuclear += pol.p[i]! * s32[i]!;
      meanSigma = nuclear / r;
      const p = pol.p;
      for (let i = 0; i < p.length; i++) p[i] = p[i]! * meanSigma;
      return p;
    },
    c.alpha,
    () => ({ mean_sigma: meanSigma, polar_iterations: iterations, exact: c.exact ? 1 : 0 }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// declarations

export const ALPHA: ParamSpec = { name: 'alpha', type: 'number', default: 1, description: 'scale of the merged task vector: θ = base + alpha·τ' };
export const EXACT_MAX_DIM: ParamSpec = {
  name: 'exact_max_dim',
  type: 'number',
  integer: true,
  min: 1,
  default: EXACT_MAX_DIM_DEFAULT,
  description: "with 'auto': tensors with min(rows, cols) up to this are decomposed exactly (Jacobi, f64), larger ones iteratively on the linalg backend",
};
export const DECOMPOSE: ParamSpec = {
  name: 'decompose',
  type: 'boolean',
  default: true,
  description: 'whether a 2-D tensor takes the SVD path; set false through a tensor filter to average it instead (FusionBench leaves text_projection out)',
};
export const WEIGHT: ParamSpec = { name: 'weight', type: 'number', default: 1, description: 'scales this model\'s task vector before the decomposition' };
const TSV_PARAMS: readonly ParamSpec[] = [
  ALPHA,
  { name: 'svd', type: 'string', choices: ['exact', 'randomized', 'auto'], default: 'auto', description: "per-task SVD and polar factors: 'exact' (Jacobi in f64, small tensors), 'randomized' (a range finder, see range_finder, and the polar factors by Newton iterations: scaled Newton for square ones with the native kernels, Newton–Schulz-type products otherwise, on the linalg backend), 'auto' (exact up to exact_max_dim)" },
  EXACT_MAX_DIM,
  {
    name: 'range_finder',
    type: 'string',
    choices: ['auto', 'krylov', 'subspace'],
    description:
      "randomized path: how each task's top-k subspace is found: 'krylov' (block Krylov: about 0.7x the products of 'subspace' and 50-150x closer to the exact merge when the spectrum is still flat at the cut; when it falls steeply, σ_k below ~1e-3·σ_1, its small directions are blurred by f32 rounding and 'subspace' lands ~7x closer: measured 3.2e-3 vs 4.5e-4), 'subspace' (Halko subspace iteration with oversampling and power_iterations; the default when either of those is set), or 'auto' (the default: krylov, and a task whose σ_k < 1e-3·σ_1 again by subspace)",
  },
  { name: 'krylov_blocks', type: 'number', integer: true, min: 1, default: DEFAULT_KRYLOV_BLOCKS, description: 'block Krylov: blocks s (2s products with the task vector; the basis has s·b columns)' },
  { name: 'krylov_block_size', type: 'number', integer: true, min: 1, description: 'block Krylov: columns b per block (unset: max(8, ⌈1.75k/s⌉) for a task rank k, a basis of 1.75k columns; widened when s·b < k)' },
  { name: 'oversampling', type: 'number', integer: true, min: 0, description: "range_finder subspace: extra sketch columns p (unset: max(10, ⌈k/4⌉) for a task rank k, since TSV cuts the spectrum where it is still flat)" },
  { name: 'power_iterations', type: 'number', integer: true, min: 0, description: `range_finder subspace: subspace iterations q (unset: ${DEFAULT_POWER_ITERATIONS}; the subspace error shrinks like (σ_{k+p}/σ_k)^{2q+1})` },
  DECOMPOSE,
];

// ---- cost estimates for the plan (order of magnitude: flops count a multiply-add as 2) ----

/** JS flops of an l x l eigenproblem per l³: the Householder reduction (4/3) plus inverse iteration and sorting. */
export const EIGEN_JS_FLOPS = 1.5;

/** Newton steps assumed for a polar factor (measured: 5 on a 4096² TSV-M U_cat, each one 2n³-flop inverse). */
const NEWTON_STEPS_ESTIMATE = 5;

/**
 * Flops and working bytes of the polar factor of an a x b matrix with the native kernels: the scaled Newton iteration
 * on a square one; a tall or wide one through an orthonormal basis (about 3 CholeskyQR passes of a Gram and a product
 * each, R = QᵀA and Q·polar(R), 2·hi·lo² flops apiece) and Newton on the lo x lo R. Without the addon the
 * Polar-Express + Newton–Schulz products run instead (about 10 steps of 3.5·hi·lo² + 1.5·lo³ multiply-adds: measured
 * on a 4096² TSV-M U_cat), several times more.
 */
export function polarCost(a: number, b: number): { flops: number; bytes: number } {
  const [hi, lo] = a >= b ? [a, b] : [b, a];
  const newton = NEWTON_STEPS_ESTIMATE * 2 * lo ** 3;
  if (hi === lo) return { flops: newton, bytes: 3 * lo * lo * 4 };
  return { flops: newton + (3 * 1.75 + 2) * 2 * hi * lo * lo, bytes: (3 * hi * lo + 3 * lo * lo) * 4 };
}

/** Flops of an exact (Jacobi, f64) SVD of an a x b matrix: about 10 sweeps of r²/2 rotations over both factors. */
export function jacobiFlops(a: number, b: number): number {
  const r = Math.min(a, b);
  return 30 * a * b * r + 30 * r * r * r;
}

export function exactPath(shape: readonly number[], params: Params, mode: unknown): boolean {
  const maxDim = typeof params['exact_max_dim'] === 'number' ? params['exact_max_dim'] : EXACT_MAX_DIM_DEFAULT;
  return mode === 'exact' || ((mode ?? 'auto') === 'auto' && Math.min(shape[0]!, shape[1]!) <= maxDim);
}

function tsvCost(shape: readonly number[], T: number, params: Params, robust: boolean): WholeTensorCost | undefined {
  if (shape.length !== 2 || params['decompose'] === false || T < 1) return undefined;
  const [m, n] = [shape[0]!, shape[1]!];
  if (m * n === 0) return undefined;
  const r = Math.min(m, n);
  const k = Math.floor(r / T);
  const c = k * T;
  // base and inputs in f32, the task vectors (plain TSV-M: one at a time; R-TSVM: all T), the f64 result
  const held = (T + 1 + (robust ? T : 1) + 2) * m * n * 4;
  if (k === 0) return { bytes: held, flops: 0 };
  if (exactPath(shape, params, params['svd'])) {
    return { bytes: held + (m * n + (m + n) * r) * 8 * 2, flops: 0, jsFlops: T * jacobiFlops(m, n) + jacobiFlops(m, c) + jacobiFlops(n, c) + 2 * m * c * n };
  }
  const t = taskSvdCost(m, n, k, params);
  const pu = polarCost(m, c);
  const pv = polarCost(n, c);
  const cat = 2 * (m + n) * c * 4; // the per-task blocks and U_cat, V_cat
  return { bytes: held + cat + Math.max(t.bytes, pu.bytes, pv.bytes), flops: T * t.flops + pu.flops + pv.flops + 2 * m * c * n, jsFlops: T * t.jsFlops };
}

/**
 * Flops, JS flops and working bytes of one task's randomized top-k SVD of an m x n matrix (range_finder auto is
 * estimated as block Krylov: a steep spectrum's extra subspace pass is not known before the data). Block Krylov (b columns,
 * s blocks, l = s·b): 2s products with A, block Gram–Schmidt (a pass against the two latest blocks, one against every
 * earlier block; the rare third pass is not counted), the l² Gram of
 * Bᵀ, an l x l top-k eigenproblem (native, counted here; in JS without the addon), U and V. Subspace iteration
 * (l = k + p): 2q + 2 products, an orthonormalisation after each, and an l x l eigenproblem in JS.
 */
function taskSvdCost(m: number, n: number, k: number, params: Params): { flops: number; jsFlops: number; bytes: number } {
  const big = Math.max(m, n);
  if (rangeFinderOf(params) !== 'subspace') {
    const s0 = typeof params['krylov_blocks'] === 'number' ? params['krylov_blocks'] : DEFAULT_KRYLOV_BLOCKS;
    const b = Math.max(Math.min(m, n, typeof params['krylov_block_size'] === 'number' ? params['krylov_block_size'] : defaultKrylovBlockSize(k, s0)), Math.ceil(k / s0));
    const s = Math.max(1, Math.min(s0, Math.floor(Math.min(m, n) / Math.max(b, 1))));
    const l = s * b;
    const flops = 2 * s * 2 * m * n * b + 4 * big * b * b * s * s + 8 * big * b * b * s + s * 7 * big * b * b + 1.5 * n * l * l + (4 / 3) * l ** 3 + 2 * l * l * k + 4 * (m + n) * l * k + 7 * n * k * k;
    return { flops, jsFlops: 0, bytes: (m + 2 * n) * l * 4 + l * l * 12 };
  }
  const p = typeof params['oversampling'] === 'number' ? params['oversampling'] : defaultOversampling(k);
  const q = typeof params['power_iterations'] === 'number' ? params['power_iterations'] : DEFAULT_POWER_ITERATIONS;
  const l = Math.min(k + p, m, n);
  const flops = (2 * q + 2) * 2 * m * n * l + (2 * q + 1) * 3.5 * 2 * big * l * l + 4 * l ** 3 + 2 * (m + n) * l * k;
  return { flops, jsFlops: EIGEN_JS_FLOPS * l ** 3, bytes: (m + 3 * n) * l * 4 + l * l * 24 };
}

function isoCost(shape: readonly number[], T: number, params: Params): WholeTensorCost | undefined {
  if (shape.length !== 2 || params['decompose'] === false || T < 1) return undefined;
  const [m, n] = [shape[0]!, shape[1]!];
  if (m * n === 0) return undefined;
  const held = (T + 1) * m * n * 4 + m * n * 12; // base and inputs in f32, the f64 sum and its f32 copy
  const mode = params['polar'] === 'newton_schulz' ? 'randomized' : params['polar'];
  if (exactPath(shape, params, mode)) return { bytes: held + (m * n + (m + n) * Math.min(m, n)) * 8 * 2, flops: 0, jsFlops: jacobiFlops(m, n) };
  const pol = polarCost(m, n);
  return { bytes: held + pol.bytes, flops: pol.flops };
}

const TSV_COST =
  ' Cost per m x n tensor, T tasks, r = min(m, n): exact path, T + 2 Jacobi SVDs in JS f64 (~0.05 s at 128²); randomized ' +
  'path, per task a block Krylov basis of l = 1.75k columns (14 blocks, 28 products of m·n·b multiply-adds, block ' +
  'Gram–Schmidt) and the top-k eigenpairs of its l x l core (native with the addon, in JS otherwise), or with ' +
  'range_finder subspace (2q + 2)·m·n·l products (l = k + p) and an l x l eigenproblem in JS; then two polar factors ' +
  '(square ones: about 5 scaled Newton steps, one n³-class inverse each, both factors at once, with the native ' +
  'kernels; otherwise Polar-Express quintic + Newton–Schulz products, about 10 steps, 25 m·c² products on a 4096² ' +
  'U_cat; c = Σ k_t ≤ r) and one m·c·n product. Memory: the whole tensor (base and T inputs in f32, one task ' +
  'vector at a time, all T for rtsvm, the f64 result) plus U_cat, V_cat and an iterate of each. Runs on the calling ' +
  'thread with the linalg backend (ORT from the CLI) and the native dense kernels. Measured (bench/svd, 2 cores, ' +
  'steady state): 8.5 s for a 4096² layer with 4 tasks (9.0 s on the first run; 1.19x its estimated 2.8 TFLOP at ' +
  "ONNX Runtime's GEMM speed, measured in the same run; 14.5 s with range_finder subspace, 44 s before the native " +
  'kernels). `merge --dry-run` prints the ' +
  'estimated flops and largest working set of the tensors merged whole.';

export const TSV: MergeMethod = {
  name: 'tsv',
  base: 'required',
  vocabToBase: true,
  minModels: 1,
  params: TSV_PARAMS,
  modelParams: [WEIGHT],
  summary: 'TSV-M: each task\'s top ⌊r/T⌋ singular triplets, singular vectors decorrelated by their polar factors.',
  formula:
    'For each 2-D tensor (decompose true): τ_t = weight_t·(X_t − B) = U_t Σ_t V_tᵀ, k = ⌊r/T⌋ with r = min(m, n); ' +
    'U_cat = [U_1[:, :k] … U_T[:, :k]], s_cat, V_cat likewise; Û = polar(U_cat), V̂ = polar(V_cat) (the nearest matrices ' +
    'with orthonormal columns, P·Qᵀ from U_cat = P S Qᵀ); τ = Û·diag(s_cat)·V̂ᵀ. Other tensors: τ = mean_t τ_t. ' +
    'Result B + alpha·τ. One task gives B + alpha·τ_1; alpha 0 gives B.' + TSV_COST,
  reference:
    'Gargiulo et al., "Task Singular Vectors: Reducing Task Interference in Model Merging", CVPR 2025 (AntoAndGar/task_singular_vectors; FusionBench TaskSingularVectorMerging).',
  differences:
    'Not in mergekit. Triplets with σ ≤ 1e-6·σ_max of their task (numerically null, arbitrary vectors) are left out ' +
    'instead of the reference\'s zero padding, and the polar factor is the partial isometry on the range of U_cat ' +
    '(the reference completes null directions arbitrarily; they meet zero singular values either way when U_cat has ' +
    'full column rank). The randomized path seeds one stream per (seed, tensor, task). Every 2-D tensor (including ' +
    'embeddings) takes the SVD path unless decompose is false; a tensor with r < T gets k = 0, i.e. the base. A NaN ' +
    'or infinity in a tensor that takes the SVD path is VECTOR_NOT_FINITE naming the tensor, model and element (a ' +
    'decomposition would spread it to the whole tensor); averaged tensors keep it to its element.',
  random: true,
  linalg: true,
  scratchBytesPerElement: 48,
  wholeTensorCost: (shape, T, params) => tsvCost(shape, T, params, false),
  create: (ctx) => createTsv(ctx, undefined, 'tsv'),
};

export const RTSVM: MergeMethod = {
  name: 'rtsvm',
  base: 'required',
  vocabToBase: true,
  minModels: 1,
  params: [
    ...TSV_PARAMS,
    { name: 'reweight', type: 'string', choices: ['huber', 'clip', 'none'], default: 'huber', description: "outlier-aware weighting of task-vector entries: 'huber' (min(1, κ/z) on the robust z-score), 'clip' (at the clip_quantile of |τ|), 'none'" },
    { name: 'kappa', type: 'number', min: 0, exclusiveMin: true, default: 3, description: 'Huber threshold on the robust z-score |τ − median| / (1.4826·MAD)' },
    { name: 'clip_quantile', type: 'number', min: 0, max: 1, exclusiveMin: true, default: 0.999, description: "with reweight 'clip': quantile of |τ| to clip at" },
    { name: 'task_weighting', type: 'boolean', default: false, description: 'also scale each task per tensor by the inverse of its outlier ratio, normalised to mean 1' },
    { name: 'adaptive_rank', type: 'boolean', default: true, description: 'per-task ranks k_t ∝ 1 − sparsity instead of ⌊r/T⌋' },
    { name: 'sparsity_eps', type: 'number', min: 0, default: 1e-6, description: 'an entry counts as zero when |τ| ≤ sparsity_eps·max|τ|' },
  ],
  modelParams: [WEIGHT],
  summary: 'R-TSVM (approximate reconstruction): TSV-M with outlier-aware reweighting and sparsity-adaptive ranks.',
  formula:
    'APPROXIMATE: the paper\'s method section is not public; this is the best-effort reconstruction of ' +
    'paper-methods.md §6 with every knob exposed. Per 2-D tensor, before TSV-M: ρ_t = fraction of |τ_t| ≤ ' +
    'sparsity_eps·max|τ_t| and (adaptive_rank) k_t = ⌊r·(1 − ρ_t)/Σ_s(1 − ρ_s)⌋ (Σ k_t ≤ r; equal sparsities give ' +
    '⌊r/T⌋); z = |τ − median(τ)| / (1.4826·MAD) (MAD = 0: 1.2533·mean absolute deviation) and (huber) τ ← min(1, κ/z)·τ, ' +
    'or (clip) τ ← sign(τ)·min(|τ|, quantile_q |τ|); (task_weighting) τ_t ← τ_t·(1/o_t)/mean_s(1/o_s) with o_t the ' +
    'outlier ratio (at least 1/numel). Then TSV-M with ranks k_t. With reweight none, task_weighting false and ' +
    'adaptive_rank false it is exactly tsv (same bits). Non-2-D tensors: mean of τ_t, as tsv.' + TSV_COST +
    ' Reweighting adds two exact radix-selection medians per task (O(m·n)).',
  reference:
    'Yang et al., "Mix Data or Merge Models? Balancing the Helpfulness, Honesty, and Harmlessness of LLMs via Model Merging", arXiv 2502.06876 (R-TSVM, renamed RESM in v3); no public code.',
  differences: 'Not in mergekit. Approximate: whether the paper reweights entries, singular values or whole tasks, and what its "sparsity" is, is unknown.',
  random: true,
  linalg: true,
  scratchBytesPerElement: 56,
  wholeTensorCost: (shape, T, params) => tsvCost(shape, T, params, true),
  create: (ctx) =>
    createTsv(
      ctx,
      {
        reweight: (ctx.params['reweight'] as RobustOptions['reweight'] | undefined) ?? 'huber',
        kappa: num(ctx.params['kappa'], 3),
        clipQuantile: num(ctx.params['clip_quantile'], 0.999),
        taskWeighting: ctx.params['task_weighting'] === true,
        adaptiveRank: ctx.params['adaptive_rank'] !== false,
        sparsityEps: num(ctx.params['sparsity_eps'], 1e-6),
      },
      'rtsvm',
    ),
};

export const ISO_C: MergeMethod = {
  name: 'iso_c',
  base: 'required',
  vocabToBase: true,
  minModels: 1,
  params: [
    { ...ALPHA, description: 'scale of the isotropic task vector: θ = base + alpha·τ_iso (FusionBench config 1.0; its reported results use 1.5)' },
    { name: 'polar', type: 'string', choices: ['exact', 'newton_schulz', 'auto'], default: 'auto', description: "'exact' (Jacobi SVD in f64, small tensors), 'newton_schulz' (matrix products on the linalg backend), 'auto' (exact up to exact_max_dim)" },
    EXACT_MAX_DIM,
    DECOMPOSE,
  ],
  modelParams: [WEIGHT],
  summary: 'Iso-C: the summed task vector with its singular spectrum flattened to the mean singular value.',
  formula:
    'For each 2-D tensor: τ_Σ = Σ_t weight_t·(X_t − B) = U S Vᵀ; τ_iso = mean(diag S)·U Vᵀ = (‖τ_Σ‖_*/r)·polar(τ_Σ) with ' +
    'r = min(m, n) (the mean over all r singular values); other tensors τ = mean_t τ_t; result B + alpha·τ. ' +
    'Cost: exact path one Jacobi SVD in JS f64; iterative path about 10 Polar-Express/Newton–Schulz steps of m·r² ' +
    'backend products (16.8 s for a 4096² layer on 2 cores with ORT), the nuclear norm as trace(Pᵀτ_Σ). Memory ' +
    'about (T + 6)·m·n f32. Runs on the calling thread with the linalg backend.',
  reference: 'Marczak et al., "No Task Left Behind: Isotropic Model Merging with Common and Task-Specific Subspaces", ICML 2025 (FusionBench isotropic_merging).',
  differences:
    'Not in mergekit. The polar factor is the partial isometry on the range of τ_Σ: directions with σ ≈ 0 (a ' +
    'rank-deficient sum) get no weight, where the reference gives arbitrary completed singular vectors the mean σ. ' +
    'NaN or infinity in a decomposed tensor: VECTOR_NOT_FINITE, as for tsv.',
  linalg: true,
  scratchBytesPerElement: 40,
  wholeTensorCost: isoCost,
  create: createIsoC,
};

export const SVD_METHODS: readonly MergeMethod[] = [TSV, RTSVM, ISO_C];
