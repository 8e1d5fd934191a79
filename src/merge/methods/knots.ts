// KnOTS (Stoica et al., ICLR 2025): per 2-D tensor, the SVD of the task vectors concatenated along the input axis
// gives one shared basis U and per-task representations R_t = Uᵀ·τ_t = diag(s)·V_tᵀ, merged by TIES (or DARE) and
// mapped back through U. Decompositions run in compute() (products on ctx.linalg) and, for the paper's whole-model
// trim, again in an async pre-pass (observeTensor); both give the same bits. Imports merge types, errors, src/tensor.

import { jsMatMul, type MatMulBackend } from '../../tensor/linalg/backend.js';
import { symmetricEigenF32 } from '../../tensor/linalg/eigen.js';
import { matrix } from '../../tensor/linalg/matrix.js';
import { orthonormalizeColumns } from '../../tensor/linalg/qr.js';
import { LOW_RANK_FALLBACK_MIN_WORK, lowRankOrthonormalBasis } from '../../tensor/linalg/randomized.js';
import { symmetricEigen } from '../../tensor/linalg/svd.js';
import { fillUniform, randomU32, SeededRandom, type StreamKey } from '../../tensor/rng.js';
import { MagnitudeSelector, topKMagnitude, type MagnitudeThreshold } from '../../tensor/select.js';
import { UsageError } from '../../errors.js';
import type { ParamSpec } from '../../recipe/spec.js';
import { oneDensityPerModel } from './param-checks.js';
import type { Chunk, MergeMethod, ModelStatsCollector, Params, TensorContext, TensorMerger, WholeTensorCost } from '../types.js';
import { EMPTY_MERGER, tensorError } from './geo-util.js';
import { checkInputs, EIGEN_JS_FLOPS, finiteTaskVectors, meanMerger, num, wholeTensor } from './tsv.js';

// ---------------------------------------------------------------------------------------------------------------
// the shared basis and the task representations

/** One tensor's decomposition: the kept left singular vectors U (O x r) and R_t = Uᵀ·τ_t (r x I, f32) per task. */
export interface KnotsFactors {
  /** kept components (σ > threshold) */
  readonly rank: number;
  /** their singular values, descending */
  readonly s: Float64Array;
  /** O x rank row-major: f64 on the exact path, f32 on the iterative one */
  readonly u: Float64Array | Float32Array;
  /** per task, rank x I row-major */
  readonly reps: Float32Array[];
  /** 0 exact (JS f64), 1 low-rank sketch, 2 full Gram on the backend */
  readonly route: number;
  /** sketch width of the low-rank route (0 otherwise) */
  readonly width: number;
}

export interface FactorOptions {
  /** keep σ > this (absolute), or > this·σ_max with `relative` */
  readonly epsilon: number;
  readonly relative: boolean;
  readonly exact: boolean;
  readonly powerIterations: number;
  readonly backend: MatMulBackend;
  readonly seed: number;
}

/** Sketch width the low-rank route starts with: 4 rank-16 LoRAs (rank 64) plus the 16 extra columns they need. */
const START_WIDTH = 80;

/** Extra sketch columns the low-rank route wants beyond the kept rank r before it trusts the subspace. */
function extraColumns(r: number): number {
  return Math.max(10, Math.ceil(r / 4));
}

/** The core Gram B·Bᵀ is summed in JS f64 up to this sketch width (exact rank decisions), on the backend above. */
const F64_CORE_MAX = 256;

function threshold(s: ArrayLike<number>, o: FactorOptions): number {
  return o.relative ? o.epsilon * (s[0] ?? 0) : o.epsilon;
}

/** σ from eigenvalues of a Gram (descending) and how many exceed the threshold. */
function spectrum(values: ArrayLike<number>, o: FactorOptions): { s: Float64Array; rank: number } {
  const s = Float64Array.from(values, (x) => Math.sqrt(Math.max(0, x)));
  const thr = threshold(s, o);
  let rank = 0;
  while (rank < s.length && s[rank]! > thr) rank++;
  return { s: s.slice(0, rank), rank };
}

/** Σ_t τ_t·τ_tᵀ (O x O) in f64 from the f32 task vectors (exact products, f64 sums). */
function rowGramF64(taus: readonly Float32Array[], O: number, I: number): Float64Array {
  const g = new Float64Array(O * O);
  for (const tau of taus) {
    for (let i = 0; i < O; i++) {
      const ri = i * I;
      for (let j = i; j < O; j++) {
        const rj = j * I;
        let acc = 0;
        for (let c = 0; c < I; c++) acc += tau[ri + c]! * tau[rj + c]!;
        g[i * O + j] = g[i * O + j]! + acc;
      }
    }
  }
  for (let i = 0; i < O; i++) for (let j = 0; j < i; j++) g[i * O + j] = g[j * O + i]!;
  return g;
}

/** AᵀA (n x n, n = T·I) of the concatenation A = [τ_1 … τ_T] in f64, by rank-1 updates per row. */
function colGramF64(taus: readonly Float32Array[], O: number, I: number): Float64Array {
  const n = taus.length * I;
  const g = new Float64Array(n * n);
  const x = new Float64Array(n);
  for (let i = 0; i < O; i++) {
    for (const [t, tau] of taus.entries()) for (let c = 0; c < I; c++) x[t * I + c] = tau[i * I + c]!;
    for (let a = 0; a < n; a++) {
      const xa = x[a]!;
      if (xa === 0) continue;
      const ra = a * n;
      for (let b = a; b < n; b++) g[ra + b] = g[ra + b]! + xa * x[b]!;
    }
  }
  for (let a = 0; a < n; a++) for (let b = 0; b < a; b++) g[a * n + b] = g[b * n + a]!;
  return g;
}

/**
 * Exact path (JS f64): eigendecomposition of the smaller Gram of A = [τ_1 … τ_T]. O <= T·I: A·Aᵀ = Σ_t τ_t τ_tᵀ gives U,
 * and R_t = Uᵀτ_t; otherwise AᵀA gives V, R_t = diag(s)·V_tᵀ and U = A·V·diag(1/s).
 */
function exactFactors(taus: readonly Float32Array[], O: number, I: number, o: FactorOptions): KnotsFactors {
  const T = taus.length;
  const n = T * I;
  if (O <= n) {
    const eig = symmetricEigen(matrix(O, O, rowGramF64(taus, O, I)));
    const { s, rank } = spectrum(eig.values, o);
    const u = new Float64Array(O * rank);
    for (let i = 0; i < O; i++) for (let j = 0; j < rank; j++) u[i * rank + j] = eig.vectors.data[i * O + j]!;
    const acc = new Float64Array(I);
    const reps = taus.map((tau) => {
      const rep = new Float32Array(rank * I);
      for (let j = 0; j < rank; j++) {
        acc.fill(0);
        for (let i = 0; i < O; i++) {
          const w = u[i * rank + j]!;
          if (w === 0) continue;
          const ri = i * I;
          for (let c = 0; c < I; c++) acc[c] = acc[c]! + w * tau[ri + c]!;
        }
        for (let c = 0; c < I; c++) rep[j * I + c] = acc[c]!;
      }
      return rep;
    });
    return { rank, s, u, reps, route: 0, width: 0 };
  }
  const eig = symmetricEigen(matrix(n, n, colGramF64(taus, O, I)));
  const { s, rank } = spectrum(eig.values, o);
  const v = eig.vectors.data;
  const reps = taus.map((_, t) => {
    const rep = new Float32Array(rank * I);
    for (let j = 0; j < rank; j++) for (let c = 0; c < I; c++) rep[j * I + c] = s[j]! * v[(t * I + c) * n + j]!;
    return rep;
  });
  const u = new Float64Array(O * rank);
  for (let i = 0; i < O; i++) {
    for (let j = 0; j < rank; j++) {
      let acc = 0;
      for (const [t, tau] of taus.entries()) for (let c = 0; c < I; c++) acc += tau[i * I + c]! * v[(t * I + c) * n + j]!;
      u[i * rank + j] = acc / s[j]!;
    }
  }
  return { rank, s, u, reps, route: 0, width: 0 };
}

/** Columns [0, k) of a row-major rows x cols array, as f32. */
function leadingF32(src: ArrayLike<number>, rows: number, cols: number, k: number): Float32Array {
  const out = new Float32Array(rows * k);
  for (let i = 0; i < rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = src[i * cols + j]!;
  return out;
}

/** Σ_t τ_t·X_t (O x l) where X (T·I x l) is stacked by task. */
async function sumProducts(taus: readonly Float32Array[], x: Float32Array, O: number, I: number, l: number, be: MatMulBackend): Promise<Float32Array> {
  const out = new Float32Array(O * l);
  for (const [t, tau] of taus.entries()) {
    const p = await be.matmul(tau, x.subarray(t * I * l, (t + 1) * I * l), O, I, l);
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + p[i]!;
  }
  return out;
}

/** [τ_1ᵀQ; …; τ_Tᵀ Q] (T·I x l). */
async function stackedTransposeProducts(taus: readonly Float32Array[], q: Float32Array, O: number, I: number, l: number, be: MatMulBackend): Promise<Float32Array> {
  const out = new Float32Array(taus.length * I * l);
  for (const [t, tau] of taus.entries()) out.set(await be.matmul(tau, q, I, O, l, { transA: true }), t * I * l);
  return out;
}

/**
 * Low-rank route: a randomized range finder for A = [τ_1 … τ_T] that never forms A (Y = Σ_t τ_t Ω_t, power iterations
 * through τ_tᵀ), the core B = QᵀA decomposed by the eigen of B·Bᵀ (f64 up to F64_CORE_MAX columns), R_t = Wᵀ·(Qᵀτ_t).
 * The width doubles until the kept rank leaves extraColumns(r) spare columns; undefined once it would pass half of
 * min(O, T·I) (the full route is cheaper there): dense full-rank inputs.
 */
async function lowRankFactors(taus: readonly Float32Array[], O: number, I: number, o: FactorOptions): Promise<KnotsFactors | undefined> {
  const be = o.backend;
  const n = taus.length * I;
  const minDim = Math.min(O, n);
  let l = Math.min(minDim, START_WIDTH);
  let calls = 0;
  const orth = (y: Float32Array, rows: number, cols: number): Promise<Float32Array> => {
    const salt = ++calls;
    const big = rows * cols * cols >= LOW_RANK_FALLBACK_MIN_WORK;
    return orthonormalizeColumns(y, rows, cols, be, big ? { fallback: (yy, mm, ll) => lowRankOrthonormalBasis(yy, mm, ll, be, (o.seed + 0x9e3779b9 * salt) >>> 0) } : {});
  };
  for (;;) {
    if (2 * l > minDim) return undefined;
    const omega = new Float32Array(n * l);
    new SeededRandom((o.seed ^ Math.imul(l, 0x85ebca6b)) >>> 0).fillNormal(omega);
    let q = await orth(await sumProducts(taus, omega, O, I, l, be), O, l);
    for (let it = 0; it < o.powerIterations; it++) {
      const z = await orth(await stackedTransposeProducts(taus, q, O, I, l, be), n, l);
      q = await orth(await sumProducts(taus, z, O, I, l, be), O, l);
    }
    const bt = await stackedTransposeProducts(taus, q, O, I, l, be); // Bᵀ = AᵀQ, n x l
    let values: ArrayLike<number>;
    let w: ArrayLike<number>;
    if (l <= F64_CORE_MAX) {
      const g = new Float64Array(l * l);
      const row = new Float64Array(l);
      for (let a = 0; a < n; a++) {
        for (let j = 0; j < l; j++) row[j] = bt[a * l + j]!;
        for (let i = 0; i < l; i++) {
          const x = row[i]!;
          if (x === 0) continue;
          for (let j = i; j < l; j++) g[i * l + j] = g[i * l + j]! + x * row[j]!;
        }
      }
      for (let i = 0; i < l; i++) for (let j = 0; j < i; j++) g[i * l + j] = g[j * l + i]!;
      const eig = symmetricEigen(matrix(l, l, g));
      values = eig.values;
      w = eig.vectors.data;
    } else {
      const g32 = await be.matmul(bt, bt, l, n, l, { transA: true });
      const g = new Float64Array(l * l);
      for (let i = 0; i < l; i++) for (let j = 0; j < l; j++) g[i * l + j] = 0.5 * (g32[i * l + j]! + g32[j * l + i]!);
      const eig = await symmetricEigenF32(g, l, be);
      values = eig.values;
      w = eig.vectors;
    }
    const { s, rank } = spectrum(values, o);
    if (rank + extraColumns(rank) > l && l < minDim) {
      l = Math.min(minDim, Math.max(2 * l, rank + 2 * extraColumns(rank)));
      continue;
    }
    const wr = leadingF32(w, l, l, rank);
    const u = await be.matmul(q, wr, O, l, rank);
    const reps: Float32Array[] = [];
    for (let t = 0; t < taus.length; t++) reps.push(await be.matmul(wr, bt.subarray(t * I * l, (t + 1) * I * l), rank, l, I, { transA: true, transB: true }));
    return { rank, s, u, reps, route: 1, width: l };
  }
}

/**
 * Full route on the backend (dense full-rank inputs): the f32 Gram of the smaller side symmetrised in f64, its
 * eigendecomposition (Householder reduction in JS, back-transformation on the backend), then R_t = Uᵀτ_t (O <= T·I) or
 * R_t = diag(s)·V_tᵀ and U = A·V·diag(1/s). Singular values below about 1e-3·σ_max are as accurate as an f32 Gram allows.
 */
async function fullFactors(taus: readonly Float32Array[], O: number, I: number, o: FactorOptions): Promise<KnotsFactors> {
  const be = o.backend;
  const T = taus.length;
  const n = T * I;
  if (O <= n) {
    const g = new Float64Array(O * O);
    for (const tau of taus) {
      const p = await be.matmul(tau, tau, O, I, O, { transB: true });
      for (let i = 0; i < O; i++) for (let j = 0; j < O; j++) g[i * O + j] = g[i * O + j]! + 0.5 * (p[i * O + j]! + p[j * O + i]!);
    }
    const eig = await symmetricEigenF32(g, O, be);
    const { s, rank } = spectrum(eig.values, o);
    const u = leadingF32(eig.vectors, O, O, rank);
    const reps: Float32Array[] = [];
    for (const tau of taus) reps.push(await be.matmul(u, tau, rank, O, I, { transA: true }));
    return { rank, s, u, reps, route: 2, width: 0 };
  }
  const g = new Float64Array(n * n);
  for (let a = 0; a < T; a++) {
    for (let b = a; b < T; b++) {
      const p = await be.matmul(taus[a]!, taus[b]!, I, O, I, { transA: true });
      for (let i = 0; i < I; i++) {
        for (let j = 0; j < I; j++) {
          const x = p[i * I + j]!;
          g[(a * I + i) * n + b * I + j] = x;
          g[(b * I + j) * n + a * I + i] = x;
        }
      }
    }
  }
  const eig = await symmetricEigenF32(g, n, be);
  const { s, rank } = spectrum(eig.values, o);
  const v = eig.vectors;
  const reps = taus.map((_, t) => {
    const rep = new Float32Array(rank * I);
    for (let j = 0; j < rank; j++) for (let c = 0; c < I; c++) rep[j * I + c] = s[j]! * v[(t * I + c) * n + j]!;
    return rep;
  });
  const vr = leadingF32(v, n, n, rank);
  const u = await sumProducts(taus, vr, O, I, rank, be);
  for (let i = 0; i < O; i++) for (let j = 0; j < rank; j++) u[i * rank + j] = u[i * rank + j]! / s[j]!;
  return { rank, s, u, reps, route: 2, width: 0 };
}

/** The KnOTS decomposition of one tensor's task vectors (O x I each), by the path the options choose. */
export async function knotsFactors(taus: readonly Float32Array[], O: number, I: number, o: FactorOptions): Promise<KnotsFactors> {
  // a tensor no model changes (every layer a LoRA does not adapt): rank 0 without a decomposition
  if (taus.every((tau) => tau.every((x) => x === 0))) return { rank: 0, s: new Float64Array(0), u: new Float64Array(0), reps: taus.map(() => new Float32Array(0)), route: 0, width: 0 };
  if (o.exact) return exactFactors(taus, O, I, o);
  return (await lowRankFactors(taus, O, I, o)) ?? fullFactors(taus, O, I, o);
}

// ---------------------------------------------------------------------------------------------------------------
// the TIES / DARE merge of the representations

const ABS = 0x7fffffff;
/** minBits that keeps nothing (above the bits of infinity) */
const MIN_BITS_NONE = 0x7f800001;

/** Keep |x| iff its f32 bits >= minBits: every element tied with the k-th largest is kept. */
function minBitsOf(t: MagnitudeThreshold): number {
  if (t.all) return 0;
  if (t.none) return MIN_BITS_NONE;
  return t.ties > 0 ? t.bits : t.bits + 1;
}

/** minBits of the top floor(density·N) magnitudes of one representation (tensor scope). */
function localMinBits(rep: Float32Array, density: number): number {
  if (density >= 1) return 0;
  return minBitsOf(topKMagnitude(rep, Math.floor(density * rep.length)));
}

export interface MaskConfig {
  readonly mask: 'ties' | 'dare';
  readonly density: readonly number[];
  readonly disjoint: 'mean' | 'sum';
  /** ties: per task, keep |R| bits >= minBits[t] (from the pre-pass with trim_scope model; else per tensor) */
  readonly minBits?: readonly number[];
  /** dare: the random stream of each task */
  readonly keys?: readonly StreamKey[];
}

/**
 * The TIES (or DARE) merge of R_1 … R_T (N entries each): trimmed or randomly dropped (rescaled by 1/density),
 * sign elected per entry by the sign of the sum of values (an exact 0 takes the majority of the elected signs of this
 * tensor, +1 when that is 0 too), and the agreeing nonzero entries averaged (disjoint mean) or summed. Sums in f64.
 */
export function mergeRepresentations(reps: readonly Float32Array[], cfg: MaskConfig, kept: number[]): Float64Array {
  const N = reps[0]?.length ?? 0;
  const T = reps.length;
  const masked = reps.map((rep, t) => {
    const d = cfg.density[t]!;
    const out = new Float32Array(N);
    let k = 0;
    if (cfg.mask === 'dare') {
      if (d >= 1) {
        out.set(rep);
        k = N;
      } else if (d > 0) {
        const u = new Float64Array(N);
        fillUniform(cfg.keys![t]!, 0, u);
        for (let p = 0; p < N; p++) {
          if (u[p]! < d) {
            out[p] = rep[p]! / d;
            k++;
          }
        }
      }
    } else {
      const minBits = cfg.minBits?.[t] ?? localMinBits(rep, d);
      const bits = new Uint32Array(rep.buffer, rep.byteOffset, N);
      for (let p = 0; p < N; p++) {
        if ((bits[p]! & ABS) >= minBits) {
          out[p] = rep[p]!;
          k++;
        }
      }
    }
    kept[t] = N === 0 ? 1 : k / N;
    return out;
  });
  const sums = new Float64Array(N);
  for (const m of masked) for (let p = 0; p < N; p++) sums[p] = sums[p]! + m[p]!;
  let majority = 0;
  for (let p = 0; p < N; p++) majority += Math.sign(sums[p]!);
  const tie = majority < 0 ? -1 : 1;
  const out = new Float64Array(N);
  const mean = cfg.disjoint === 'mean';
  for (let p = 0; p < N; p++) {
    const g = sums[p]! > 0 ? 1 : sums[p]! < 0 ? -1 : tie;
    let acc = 0;
    let count = 0;
    for (let t = 0; t < T; t++) {
      const x = masked[t]![p]!;
      if (g > 0 ? x > 0 : x < 0) {
        acc += x;
        count++;
      }
    }
    out[p] = mean && count > 0 ? acc / count : acc;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// the method

/** Whole-model trim thresholds (trim_scope: model), the result of KnotsTrimCollector. */
export interface KnotsTrimStats {
  readonly kind: 'knots-model-trim';
  readonly density: readonly number[];
  /** per task: keep |R_t| bits >= minBits[t] */
  readonly minBits: readonly number[];
  /** entries of each task's whole-model representation */
  readonly numel: number;
}

function isKnotsTrimStats(x: unknown): x is KnotsTrimStats {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'knots-model-trim';
}

/** Whether a tensor takes the KnOTS path: 2-D with both dims > 0 and `decompose` not false. */
function decomposes(ctx: TensorContext): boolean {
  return ctx.shape.length === 2 && ctx.numel > 0 && ctx.params['decompose'] !== false;
}

function factorOptions(ctx: TensorContext): FactorOptions {
  const O = ctx.shape[0] ?? 0;
  const n = ctx.modelCount * (ctx.shape[1] ?? 0);
  return {
    epsilon: num(ctx.params['sv_epsilon'], 1e-5),
    relative: ctx.params['sv_relative'] === true,
    exact: exactPath(Math.min(O, n), ctx.params),
    powerIterations: num(ctx.params['power_iterations'], 2),
    backend: ctx.linalg ?? jsMatMul,
    seed: randomU32(ctx.rng(0, 'knots-sketch'), 0),
  };
}

function exactPath(minDim: number, params: Params): boolean {
  const mode = params['svd'] ?? 'auto';
  return mode === 'exact' || (mode === 'auto' && minDim <= num(params['exact_max_dim'], EXACT_MAX_DIM_DEFAULT));
}

/** The task vectors of a whole-tensor chunk (checked finite, weighted) and their decomposition. */
async function decompose(ctx: TensorContext, chunk: Chunk): Promise<KnotsFactors> {
  const weights = Float64Array.from(ctx.modelParams, (p) => num(p['weight'], 1));
  return knotsFactors(finiteTaskVectors(ctx, 'knots', chunk, weights), ctx.shape[0]!, ctx.shape[1]!, factorOptions(ctx));
}

/** Largest representation bytes (all tasks, all tensors) the trim pre-pass keeps to skip a second decomposition. */
export const PREPASS_CACHE_BYTES = 256 * 2 ** 20;

/**
 * The paper's trim over each task's whole-model representation (every decomposed tensor's R_t, flattened): pass 0
 * decomposes each tensor and counts the high bits of |R_t|; if a boundary bucket needs its low bits, they come from
 * the representations kept in memory (when all of them fit in PREPASS_CACHE_BYTES), else pass 1 decomposes again.
 */
export class KnotsTrimCollector implements ModelStatsCollector {
  private sels: MagnitudeSelector[] = [];
  private needLow: boolean[] = [];
  private minBits: number[] = [];
  private total = 0;
  private cache: Float32Array[][] | undefined = [];
  private cachedBytes = 0;
  private done = false;

  constructor(
    private readonly densities: readonly number[],
    private readonly cacheBytes = PREPASS_CACHE_BYTES,
  ) {}

  beginPass(pass: number): boolean {
    const T = this.densities.length;
    if (pass === 0) {
      this.sels = this.densities.map(() => new MagnitudeSelector());
      this.needLow = this.densities.map(() => false);
      this.minBits = this.densities.map(() => 0);
      this.total = 0;
      this.cache = [];
      this.cachedBytes = 0;
      this.done = false;
      return T > 0;
    }
    if (pass === 1) {
      let any = false;
      for (let t = 0; t < T; t++) {
        const d = this.densities[t]!;
        if (d >= 1) continue;
        const k = Math.floor(d * this.total);
        if (this.sels[t]!.resolveHigh(k)) {
          this.needLow[t] = true;
          any = true;
        } else this.minBits[t] = minBitsOf(this.sels[t]!.threshold());
      }
      if (any && this.cache !== undefined) {
        for (const reps of this.cache) this.addLow(reps);
        any = false;
        this.finishLow();
      }
      this.cache = undefined;
      this.done = !any;
      return any;
    }
    if (!this.done) this.finishLow();
    return false;
  }

  private finishLow(): void {
    for (let t = 0; t < this.densities.length; t++) if (this.needLow[t]) this.minBits[t] = minBitsOf(this.sels[t]!.threshold());
    this.done = true;
  }

  private addLow(reps: readonly Float32Array[]): void {
    for (let t = 0; t < reps.length; t++) if (this.needLow[t]) this.sels[t]!.addLow(reps[t]!);
  }

  observe(): void {
    throw new UsageError('USAGE', 'knots: the whole-model trim needs whole tensors (observeTensor)');
  }

  async observeTensor(pass: number, ctx: TensorContext, chunk: Chunk): Promise<void> {
    if (!decomposes(ctx) || !ctx.hasBase) return;
    const { reps } = await decompose(ctx, chunk);
    if (pass === 0) {
      this.total += reps[0]?.length ?? 0;
      for (let t = 0; t < reps.length; t++) if (this.densities[t]! < 1) this.sels[t]!.addHigh(reps[t]!);
      if (this.cache !== undefined) {
        this.cachedBytes += reps.reduce((a, r) => a + r.byteLength, 0);
        if (this.cachedBytes <= this.cacheBytes) this.cache.push(reps);
        else this.cache = undefined;
      }
    } else this.addLow(reps);
  }

  result(): KnotsTrimStats {
    if (!this.done) throw new UsageError('USAGE', 'model statistics requested before the pre-pass finished');
    return { kind: 'knots-model-trim', density: [...this.densities], minBits: [...this.minBits], numel: this.total };
  }
}

function maskOf(params: Params): 'ties' | 'dare' {
  return params['mask'] === 'dare' ? 'dare' : 'ties';
}

function modelStats(params: Params, modelParams: readonly Params[]): ModelStatsCollector | undefined {
  if (maskOf(params) !== 'ties' || (params['trim_scope'] ?? 'model') !== 'model') return undefined;
  const densities = modelParams.map((p) => num(p['density'], DEFAULT_DENSITY));
  if (densities.every((d) => d >= 1)) return undefined;
  return new KnotsTrimCollector(densities);
}

function createKnots(ctx: TensorContext): TensorMerger {
  checkInputs(ctx, 'knots');
  const lambda = num(ctx.params['lambda'], 0.6);
  if (ctx.numel === 0) return EMPTY_MERGER;
  if (!decomposes(ctx)) return meanMerger(ctx, lambda);
  const mask = maskOf(ctx.params);
  const density = ctx.modelParams.map((p) => num(p['density'], DEFAULT_DENSITY));
  let minBits: readonly number[] | undefined;
  if (mask === 'ties' && (ctx.params['trim_scope'] ?? 'model') === 'model' && density.some((d) => d < 1)) {
    const stats = ctx.modelStats;
    if (!isKnotsTrimStats(stats)) throw tensorError(ctx, 'knots with trim_scope: model needs the whole-model pre-pass (method.modelStats), which did not run');
    density.forEach((d, t) => {
      if (d !== stats.density[t]) {
        throw tensorError(ctx, `with trim_scope: model each model's density must be one value for the whole model: model ${t} has density ${d} here, ${stats.density[t]} for the model`);
      }
    });
    minBits = stats.minBits;
  }
  const [O, I] = [ctx.shape[0]!, ctx.shape[1]!];
  const cfg: MaskConfig = {
    mask,
    density,
    disjoint: ctx.params['disjoint'] === 'sum' ? 'sum' : 'mean',
    ...(minBits ? { minBits } : {}),
    ...(mask === 'dare' ? { keys: density.map((_, t) => ctx.rng(t, 'knots-dare')) } : {}),
  };
  const rep: Record<string, number> = { rank: 0, route: 0, width: 0 };
  return wholeTensor(
    async (chunk) => {
      const f = await decompose(ctx, chunk);
      const kept: number[] = [];
      const merged = mergeRepresentations(f.reps, cfg, kept);
      Object.assign(rep, { rank: f.rank, route: f.route, width: f.width, sigma_max: f.s[0] ?? 0 });
      kept.forEach((k, t) => (rep[`kept_fraction_${t}`] = k));
      const r = f.rank;
      if (r === 0) return new Float64Array(O * I);
      if (f.u instanceof Float64Array) {
        const out = new Float64Array(O * I);
        for (let i = 0; i < O; i++) {
          for (let j = 0; j < r; j++) {
            const w = f.u[i * r + j]!;
            if (w === 0) continue;
            for (let c = 0; c < I; c++) out[i * I + c] = out[i * I + c]! + w * merged[j * I + c]!;
          }
        }
        return out;
      }
      return (ctx.linalg ?? jsMatMul).matmul(f.u, Float32Array.from(merged), O, r, I);
    },
    lambda,
    () => ({ ...rep }),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// declarations

const EXACT_MAX_DIM_DEFAULT = 128;
const DEFAULT_DENSITY = 0.2;

/**
 * Estimated work of one tensor. Exact path: the f64 Gram of the smaller side of A = [τ_1 … τ_T] (min²·max) and its
 * eigendecomposition (~9·min³) in JS. Iterative path: the full route (backend Gram 2·min²·max, eigen reduction
 * 1.4·min³ in JS plus a min³ back-transformation, R_t and the reconstruction 4·O·min·I·T), unless every model's
 * update rank is known (LoRA models, from the plan): then the low-rank route (lowRankCost), about 1/50 of it for 4
 * rank-16 LoRAs on 4096², and nothing for a tensor no adapter touches. trim_scope model (mask ties) decomposes every
 * tensor twice.
 */
/**
 * The low-rank route's cost when the update ranks are known (LoRA models: rank <= Σ r_t): the widths it tries
 * (START_WIDTH, doubling until the rank leaves extraColumns spare), each with 2(q + 1) products of A's size times the
 * width; undefined where it would give up for the full route (width past half of min(O, T·I)).
 */
function lowRankCost(O: number, I: number, T: number, rank: number, q: number): { flops: number; jsFlops: number; bytes: number } | undefined {
  const n = T * I;
  const minDim = Math.min(O, n);
  let l = Math.min(minDim, START_WIDTH);
  let flops = 0;
  let jsFlops = 0;
  for (;;) {
    if (2 * l > minDim) return undefined;
    flops += 4 * (q + 1) * O * n * l + (2 * q + 1) * 4 * O * l * l + 2 * n * l * l * (l > F64_CORE_MAX ? 1 : 0);
    jsFlops += (l <= F64_CORE_MAX ? n * l * l : 0) + EIGEN_JS_FLOPS * l ** 3;
    if (rank + extraColumns(rank) > l && l < minDim) {
      l = Math.min(minDim, Math.max(2 * l, rank + 2 * extraColumns(rank)));
      continue;
    }
    flops += 2 * O * l * rank + 2 * rank * l * n;
    return { flops, jsFlops, bytes: (3 * O + 2 * n) * l * 4 + l * l * 16 };
  }
}

function knotsCost(shape: readonly number[], T: number, params: Params, updateRanks: readonly (number | undefined)[] = []): WholeTensorCost | undefined {
  if (shape.length !== 2 || params['decompose'] === false || T < 1) return undefined;
  const [O, I] = [shape[0]!, shape[1]!];
  if (O * I === 0) return undefined;
  const n = T * I;
  const lo = Math.min(O, n);
  const hi = Math.max(O, n);
  const held = (2 * T + 1) * O * I * 4 + O * I * 8; // base, inputs and task vectors in f32, the f64 result
  const reps = 2 * lo * n * 4 + lo * O * 8; // R_t, masked copies, U
  const twice = maskOf(params) === 'ties' && (params['trim_scope'] ?? 'model') === 'model' ? 2 : 1;
  if (updateRanks.length === T && updateRanks.every((r) => r !== undefined)) {
    // LoRA models: the update has rank <= Σ r_t (0: no model adapts this tensor, the merge is the base)
    const rank = Math.min(lo, updateRanks.reduce((a, r) => a! + r!, 0)!);
    if (rank === 0) return { bytes: held, flops: 0, jsFlops: 0 };
    const low = exactPath(lo, params) ? undefined : lowRankCost(O, I, T, rank, typeof params['power_iterations'] === 'number' ? params['power_iterations'] : 2);
    if (low !== undefined) return { bytes: held + low.bytes + 2 * rank * n * 4 + rank * O * 8, flops: twice * low.flops, jsFlops: twice * low.jsFlops };
  }
  if (exactPath(lo, params)) {
    return { bytes: held + 2 * lo * lo * 8 + reps, flops: 0, jsFlops: twice * (lo * lo * hi + 9 * lo ** 3 + 2 * lo * O * n) + 2 * O * lo * I };
  }
  return {
    bytes: held + lo * lo * 20 + reps,
    flops: twice * (2 * lo * lo * hi + 2 * lo ** 3 + 2 * lo * O * n) + 2 * O * lo * I,
    jsFlops: twice * EIGEN_JS_FLOPS * lo ** 3,
  };
}

const KNOTS_PARAMS: readonly ParamSpec[] = [
  { name: 'lambda', type: 'number', default: 0.6, description: 'scale of the merged update: result = base + lambda·U·R_merged (the paper\'s scaling_coeffs; 0.6 for ViT-B/32 rank-16 LoRAs)' },
  { name: 'mask', type: 'string', choices: ['ties', 'dare'], default: 'ties', description: "'ties': keep each task's top density fraction of |R_t| (the paper's KnOTS-TIES); 'dare': keep each entry with probability density and rescale by 1/density (KnOTS-DARE); both then elect signs and take the disjoint mean" },
  { name: 'trim_scope', type: 'string', choices: ['model', 'tensor'], default: 'model', description: "mask ties: 'model' trims over each task's representation of the whole model (the paper; a pre-pass decomposes every tensor once more), 'tensor' per tensor" },
  { name: 'disjoint', type: 'string', choices: ['mean', 'sum'], default: 'mean', description: "after the sign vote: 'mean' of the agreeing entries (the paper's merging_type mean) or their 'sum'" },
  { name: 'sv_epsilon', type: 'number', min: 0, default: 1e-5, description: 'components with σ <= sv_epsilon are dropped before the split into R_t (the paper: 1e-5, absolute)' },
  { name: 'sv_relative', type: 'boolean', default: false, description: 'read sv_epsilon relative to the tensor\'s largest σ (σ <= sv_epsilon·σ_max dropped): scale-free, but not the paper\'s rule' },
  { name: 'svd', type: 'string', choices: ['exact', 'randomized', 'auto'], default: 'auto', description: "'exact' (Gram eigendecomposition in JS f64), 'randomized' (low-rank sketch on the linalg backend, growing until the kept rank has spare columns; the full f32 Gram for dense inputs), 'auto' (exact up to exact_max_dim)" },
  { name: 'exact_max_dim', type: 'number', integer: true, min: 1, default: EXACT_MAX_DIM_DEFAULT, description: "with 'auto': tensors with min(rows, models·cols) up to this are decomposed exactly" },
  { name: 'power_iterations', type: 'number', integer: true, min: 0, default: 2, description: 'low-rank route: subspace iterations of the sketch' },
  { name: 'decompose', type: 'boolean', default: true, description: 'whether a 2-D tensor takes the KnOTS path; false (through a tensor filter) averages it like 1-D tensors' },
];

export const KNOTS: MergeMethod = {
  name: 'knots',
  base: 'required',
  vocabToBase: true,
  // mask ties with trim_scope: model (the default) trims each task over the whole model at one density
  checkParams: (t, state) =>
    maskOf(t.params) === 'ties' && (t.params['trim_scope'] ?? 'model') === 'model'
      ? t.modelParams.flatMap((mp, i) => {
          const d = mp['density'];
          const p = typeof d === 'number' ? oneDensityPerModel(t, i, d, state) : undefined;
          return p ? [p] : [];
        })
      : [],
  minModels: 1,
  params: KNOTS_PARAMS,
  modelParams: [
    { name: 'weight', type: 'number', default: 1, description: 'scales this model\'s task vector before the decomposition' },
    { name: 'density', type: 'number', min: 0, max: 1, default: DEFAULT_DENSITY, description: "mask ties: fraction of the task's representation kept (the paper's topK 20); mask dare: keep probability (the paper's KnOTS-DARE drops 0.1, i.e. density 0.9)" },
  ],
  summary: 'KnOTS: align LoRA task updates in the shared SVD basis of their concatenation, then merge with TIES or DARE.',
  formula:
    'For each 2-D tensor (O x I; decompose true): τ_t = weight_t·(X_t − B); A = [τ_1 … τ_T] (O x T·I) = U·diag(s)·Vᵀ, ' +
    'components with σ <= sv_epsilon dropped (rank r); R_t = diag(s)·V_tᵀ = Uᵀ·τ_t (r x I), V_t the rows of V of task t. ' +
    'mask ties: R̂_t keeps the k_t = ⌊density_t·N⌋ largest |R_t| (all ties at the k-th kept) with N the entries of R_t ' +
    'over the whole model (trim_scope model: every decomposed tensor) or this tensor; mask dare: R̂_t = R_t ⊙ m_t / density_t ' +
    'with m_t ~ Bernoulli(density_t) (seeded per tensor and model). γ = sign(Σ_t R̂_t) per entry (an exact 0: the ' +
    'majority of this tensor\'s γ, +1 if none); R_m = Σ_{t: sign R̂_t = γ} R̂_t divided by their count (disjoint mean) or ' +
    'not (sum). Result B + lambda·U·R_m. Other tensors: B + lambda·mean_t τ_t. One model with density 1 and lambda 1 ' +
    'gives B + τ_1 (up to f32 rounding and the dropped σ <= sv_epsilon); lambda 0 gives B. Cost: LoRA updates have rank ' +
    '<= Σ r_t, which the low-rank route exploits (a sketch never forming A, products on the linalg backend: ' +
    '1.2-1.3 s for a 4096² layer with 4 rank-16 LoRAs on 2 cores, bench/knots); dense full-rank task vectors take the ' +
    'full Gram of the smaller side of A (min(O, T·I)² entries, its eigendecomposition ~1.4·min³ flops in JS: 2.1 s ' +
    'for 1024² with 4 tasks, against 15.5 s on the exact JS f64 path; 91 s for 4096², mostly the JS reduction of the ' +
    '4096² Gram). `merge --dry-run` estimates LoRA models (`base+adapter`) by their adapters\' ranks and dense ones by the full route. trim_scope model decomposes every ' +
    'tensor twice (the pre-pass keeps up to 256 MiB of R_t for the exact selection, else decomposes a third time).',
  reference: 'Stoica et al., "Model Merging with SVD to Tie the KnOTS", ICLR 2025 (arXiv 2410.19735; gstoica27/KnOTS task_merger.py, masking_ops.py).',
  differences:
    'Not in mergekit. The reference takes only the LoRA-adapted layers and leaves other parameters at the base; here ' +
    'every 2-D tensor is decomposed (unchanged ones have rank 0 and contribute nothing to the trim) and other tensors ' +
    'take the mean task vector, scaled by lambda (zero for LoRA inputs, so the base). The trim keeps ⌊density·N⌋ entries ' +
    'plus ties, where the reference\'s kthvalue(N − k) keeps one more. The reference breaks an exact zero vote with the ' +
    'majority sign over the whole model, here over the tensor. Per-model weights scale τ_t before the decomposition ' +
    '(the reference has one lambda). sv_epsilon is absolute as in the paper; note that a `base+adapter` model reaches ' +
    'the method as f32(base + ΔW), whose difference from the base carries rounding noise with σ around ' +
    '2^-25·|W|·(√O + √(T·I)) (about 6e-6 for |W| ≈ 1 on 4096 x 16384: 4 rank-16 LoRAs still come out at rank 64, ' +
    'bench/knots), so for larger weights raise sv_epsilon (or use sv_relative) when the rank comes out far above ' +
    'Σ r_t (the tensor report gives the rank). KnOTS\'s TIES step is not invariant to rotations inside (near-)equal ' +
    'singular values, so on dense task vectors with a flat spectrum the result moves with rounding: the f32 route ' +
    'differs from the exact one by 2.8e-3 (relative) on 1024² with 4 tasks, where the exact one itself moves by ' +
    '6.6e-3 under 1e-6 input noise. The exact path decomposes the Gram of the ' +
    'smaller side in f64 (σ resolved to about 1e-8·σ_max), not the concatenation itself. NaN or infinity in a ' +
    'decomposed tensor: VECTOR_NOT_FINITE naming the tensor.',
  random: true,
  linalg: true,
  scratchBytesPerElement: 48,
  wholeTensorCost: knotsCost,
  modelStats,
  create: createKnots,
};
