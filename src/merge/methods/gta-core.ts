// The generalized task arithmetic engine behind task_arithmetic, ties, dare_*, breadcrumbs* and della*: ONE
// implementation configured by (sparsifier, consensus, default normalize, default rescale), as in mergekit.
// Streams f32 chunks; reductions accumulate in f64 in element order, so results are bit-identical at any
// chunking. The hot loops live in gta-kernels.ts (small monomorphic kernels, each model's delta computed once per
// chunk and pass, fused with its first consumer). Imports tensor/ kernels and merge types only (no node:, no io,
// no recipe parsing).

import { UsageError } from '../../errors.js';
import { MagnitudeRanker } from '../../tensor/quantile.js';
import { fillUniform, type StreamKey } from '../../tensor/rng.js';
import { KEEP_ALL, KEEP_NONE, MagnitudeSelector, type MagnitudeThreshold } from '../../tensor/select.js';
import { NATIVE_CONSENSUS, NATIVE_SUM, nativeKernels, tensorArgs, tensorCalls } from '../../tensor/native-kernels.js';
import type { Bf16Inputs } from '../../tensor/wasm/workspace.js';
import {
  agreeAdd,
  agreeAddChecked,
  agreeAddMeanOut,
  agreeAddSumOut,
  agreeInit,
  dellaKeepInto,
  deltaInto,
  deltaL1Into,
  deltaMaskMagInto,
  deltaMaskMinBitsInto,
  deltaMaskRandomInto,
  deltaScaleAdd,
  deltaScaleAddOut,
  deltaScaleInit,
  deltaSum1Out,
  deltaSum2Out,
  deltaSum3Out,
  l1Of,
  l1Lanes,
  laneTotal,
  mergeWasm,
  mergeWasmFor,
  meanOut,
  NATIVE_ALL,
  NATIVE_MAG,
  NATIVE_NONE,
  OUT_PTR,
  WASM_MAX_CHUNK,
  WASM_MAX_MODELS,
  type MergeWasm,
  scaleAdd,
  scaleAddOut,
  scaleInit,
  signVoteInto,
  sumOut,
} from './gta-kernels.js';
import type { NativeKernels } from '../../tensor/native-kernels.js';
import type { Bf16Input, Chunk, ModelStatsCollector, Params, TensorContext, TensorMerger, WholeBf16Writer } from '../types.js';

/** How each task vector is thinned before weighting (mergekit's SparsificationMethod, plus 'none'). */
export type Sparsifier = 'none' | 'magnitude' | 'random' | 'outliers' | 'della';

export interface GtaConfig {
  readonly name: string;
  readonly sparsifier: Sparsifier;
  /** mergekit's consensus_method 'sum': weighted sign vote and disjoint merge */
  readonly consensus: boolean;
  readonly defaultNormalize: boolean;
  readonly defaultRescale: boolean;
}

// per-model sparsification modes (plain numbers keep the dispatch monomorphic)
const ALL = 0; // density >= 1 or no sparsifier: delta unchanged
const NONE = 1; // nothing kept
const MAG = 2; // exact top-k by |delta| over this tensor, ties by element order
const MAG_MODEL = 3; // |delta| >= a whole-model threshold (all ties kept)
const RANDOM = 4; // Bernoulli(density)
const OUTLIERS = 5; // breadcrumbs: top (N - n_bot) minus top n_top
const DELLA = 6; // per-row rank-based Bernoulli(d - eps .. d + eps)

const INF_BITS = 0x7f800000;
/** a minBits that keeps no number (NaN is never kept either) */
const MIN_BITS_NONE = 0x7f800001;

interface TieState {
  tiesLeft: number;
}

class ModelPlan {
  mode = ALL;
  keepK = 0;
  dropK = 0;
  keepSel: MagnitudeSelector | undefined;
  dropSel: MagnitudeSelector | undefined;
  keepNeedsLow = false;
  dropNeedsLow = false;
  keepT: MagnitudeThreshold = KEEP_ALL;
  dropT: MagnitudeThreshold = KEEP_NONE;
  readonly keepTies: TieState = { tiesLeft: 0 };
  /** the SAMPLE pass's counts, and the window [lo, hi] (buckets) it gives the HIGH pass (undefined: none) */
  sampleSel: MagnitudeSelector | undefined;
  window: readonly [number, number] | undefined;
  readonly dropTies: TieState = { tiesLeft: 0 };
  minBits = 0;
  key: StreamKey = { k0: 0, k1: 0 };
  rescale = false;
  /** the L1 norms' lanes (see l1Lanes), before and after masking */
  readonly l1Before = l1Lanes();
  readonly l1After = l1Lanes();
  factor = 1;
  kept = 0;
  constructor(
    readonly weight: number,
    readonly density: number,
    readonly epsilon: number,
  ) {}

  resetBudgets(): void {
    this.keepTies.tiesLeft = this.keepT.ties;
    this.dropTies.tiesLeft = this.dropT.ties;
  }
}

/** Fibers DELLA ranks over: mergekit ranks along dim 1 (a 1-D or 0-D tensor is one fiber). */
interface FiberGeometry {
  /** elements per chunking block (a row for >= 2-D tensors, the whole tensor otherwise) */
  readonly block: number;
  readonly fiberLength: number;
  /** stride between consecutive fiber elements inside a block */
  readonly inner: number;
}

function fiberGeometry(shape: readonly number[], numel: number, rowLength: number): FiberGeometry {
  if (shape.length >= 2) {
    const d1 = shape[1]!;
    return { block: Math.max(1, rowLength), fiberLength: d1, inner: d1 === 0 ? 1 : rowLength / d1 };
  }
  return { block: Math.max(1, numel), fiberLength: numel, inner: 1 };
}

function num(p: Params, name: string, fallback: number): number {
  const v = p[name];
  return typeof v === 'number' ? v : fallback;
}

function bool(p: Params, name: string, fallback: boolean): boolean {
  const v = p[name];
  return typeof v === 'boolean' ? v : fallback;
}

function maskOutliersInto(d: Float32Array, n: number, keepT: MagnitudeThreshold, keepTies: TieState, dropT: MagnitudeThreshold, dropTies: TieState): number {
  const u = new Uint32Array(d.buffer, d.byteOffset, n);
  const kb = keepT.bits;
  const db = dropT.bits;
  let kt = keepTies.tiesLeft;
  let dt = dropTies.tiesLeft;
  const keepAll = keepT.all;
  let kept = 0;
  for (let j = 0; j < n; j++) {
    const a = u[j]! & 0x7fffffff;
    // membership of each top-k set is decided independently, each with its own tie budget in element order
    let inKeep = keepAll || (a > kb && a <= INF_BITS);
    if (!inKeep && a === kb && kt > 0) {
      inKeep = true;
      kt--;
    }
    let inDrop = a > db && a <= INF_BITS;
    if (!inDrop && a === db && dt > 0) {
      inDrop = true;
      dt--;
    }
    if (inKeep && !inDrop) kept++;
    else d[j] = 0;
  }
  keepTies.tiesLeft = kt;
  dropTies.tiesLeft = dt;
  return kept;
}

/** Shared scratch of one merger: grown to the largest chunk, then reused. */
class Scratch {
  delta = new Float32Array(0);
  /** Uint32Array view of `delta` (masks clear bits) */
  deltaU = new Uint32Array(0);
  rand = new Float64Array(0);
  sum = new Float64Array(0);
  vote = new Float64Array(0);
  div = new Float64Array(0);
  /** masked f32 deltas of every model (consensus needs them all before the vote is known) */
  masked: Float32Array[] = [];
  maskedU: Uint32Array[] = [];
  gather = new Float32Array(0);
  ranks = new Int32Array(0);
  readonly ranker = new MagnitudeRanker();

  ensure(n: number, models: number, consensus: boolean): void {
    if (this.delta.length < n) {
      this.delta = new Float32Array(n);
      this.deltaU = new Uint32Array(this.delta.buffer);
      this.rand = new Float64Array(n);
      this.sum = new Float64Array(n);
      if (consensus) {
        this.vote = new Float64Array(n);
        this.div = new Float64Array(n);
        this.masked = Array.from({ length: models }, () => new Float32Array(n));
        this.maskedU = this.masked.map((m) => new Uint32Array(m.buffer));
      }
    }
  }

  ensureFiber(n: number): void {
    if (this.gather.length < n) {
      this.gather = new Float32Array(n);
      this.ranks = new Int32Array(n);
    }
  }
}

function maskDellaInto(d: Float32Array, n: number, offset: number, p: ModelPlan, geo: FiberGeometry, s: Scratch): number {
  const r = s.rand.subarray(0, n);
  fillUniform(p.key, offset, r);
  const du = new Uint32Array(d.buffer, d.byteOffset, n);
  const len = geo.fiberLength;
  const inner = geo.inner;
  s.ensureFiber(len);
  const g = s.gather;
  // fibers that fit are ranked on the SIMD module (same ranks, faster), others by the JS ranker
  const w = len <= WASM_MAX_CHUNK ? mergeWasm() : undefined;
  let kept = 0;
  for (let b = 0; b < n; b += geo.block) {
    for (let k = 0; k < inner; k++) {
      const start = b + k;
      let fiber: Float32Array = g;
      if (inner === 1) fiber = d.subarray(start, start + len); // a contiguous fiber
      else for (let t = 0; t < len; t++) g[t] = d[start + t * inner]!;
      let ranks: Int32Array = s.ranks;
      if (w !== undefined) ranks = w.rankInto(fiber, len);
      else s.ranker.rankInto(fiber, len, ranks);
      kept += dellaKeepInto(du, r, ranks, start, inner, len, p.density - p.epsilon, p.epsilon);
    }
  }
  return kept;
}

const SAMPLE = 0;
const HIGH = 1;
const LOW = 2;
const NORM = 3;
const DONE = 4;

/**
 * The HIGH pass of a magnitude top-k may count by bucket only inside a window around the threshold, the rest by two
 * SIMD compares (native kernels, BF16 inputs of a tensor held in memory): the window comes from a SAMPLE pass over
 * 1/32 of the elements (SAMPLE_BLOCK elements of each piece, at an offset that moves from piece to piece, so every
 * row and column range is represented) and spans the sample's ranks k/N ± WINDOW_MARGIN. A threshold outside the
 * window (a sample far off the tensor, which only costs time) repeats the HIGH pass without one.
 */
const SAMPLE_MIN_ELEMENTS = 1 << 21;
export const SAMPLE_BLOCK = 512;

/** Where the SAMPLE pass reads its SAMPLE_BLOCK elements in the piece-th piece (of len elements) of a tensor. */
export function sampleOffset(piece: number, len: number): number {
  const m = Math.min(SAMPLE_BLOCK, len);
  return len > m ? (piece * 7919) % (len - m + 1) : 0;
}

/** Selectors of finished tensors, reset and reused by the next ones on this thread (see MagnitudeSelector.reset). */
const selectorPool: MagnitudeSelector[] = [];

function takeSelector(): MagnitudeSelector {
  const s = selectorPool.pop();
  if (s === undefined) return new MagnitudeSelector();
  s.reset();
  return s;
}

/** Give back a selector whose result has been read (its owner no longer uses it). */
function giveSelector(s: MagnitudeSelector | undefined): void {
  if (s !== undefined && selectorPool.length < 64) selectorPool.push(s);
}
const WINDOW_MARGIN = 0.01;

/** Whole-model TIES trim thresholds (trim_scope: model), the result of ModelTrimCollector. */
export interface ModelTrimStats {
  readonly kind: 'gta-model-trim';
  /** the density each model was trimmed with (one value per model) */
  readonly density: readonly number[];
  /** keep |delta| iff its f32 bits (sign cleared) >= minBits[i]; all ties at the threshold are kept */
  readonly minBits: readonly number[];
  /** elements each model was trimmed over */
  readonly numel: number;
}

function minBitsOf(t: MagnitudeThreshold): number {
  if (t.all) return 0;
  if (t.none) return MIN_BITS_NONE;
  // with a tie budget the threshold value itself is the k-th largest: keep every element equal to it
  return t.ties > 0 ? t.bits : t.bits + 1;
}

/**
 * The TIES paper's trim over the whole flattened task vector of each model: k_i = floor(d_i * N_total) with
 * N_total the element count of every merged tensor, threshold = the k_i-th largest |delta_i|, all ties kept.
 * Pass 0 builds high-bit histograms, pass 1 (only if needed) low-bit histograms inside the boundary buckets.
 */
export class ModelTrimCollector implements ModelStatsCollector {
  private sels: MagnitudeSelector[] = [];
  private needLow: boolean[] = [];
  private minBits: number[] = [];
  private total = 0;
  private delta = new Float32Array(0);
  private done = false;

  constructor(private readonly densities: readonly number[]) {}

  beginPass(pass: number): boolean {
    const n = this.densities.length;
    if (pass === 0) {
      this.sels = this.densities.map(() => new MagnitudeSelector());
      // BF16 pieces count their inexact deltas apart, which usually makes pass 1 unnecessary (see GtaMerger)
      for (const sel of this.sels) sel.trackInexact();
      this.needLow = this.densities.map(() => false);
      this.minBits = this.densities.map(() => 0);
      this.total = 0;
      this.done = false;
      return n > 0;
    }
    if (pass === 1) {
      let any = false;
      for (let i = 0; i < n; i++) {
        const d = this.densities[i]!;
        if (d >= 1) continue;
        const k = Math.floor(d * this.total);
        if (k <= 0) {
          this.minBits[i] = MIN_BITS_NONE;
          continue;
        }
        if (this.sels[i]!.resolveHigh(k)) {
          this.needLow[i] = true;
          any = true;
        } else this.minBits[i] = minBitsOf(this.sels[i]!.threshold());
      }
      this.done = !any;
      return any;
    }
    if (!this.done) {
      for (let i = 0; i < n; i++) if (this.needLow[i]) this.minBits[i] = minBitsOf(this.sels[i]!.threshold());
      this.done = true;
    }
    return false;
  }

  observe(pass: number, _tensorName: string, chunk: Chunk): void {
    const len = chunk.length;
    if (pass === 0) this.total += len;
    if (this.delta.length < len) this.delta = new Float32Array(len);
    const d = this.delta;
    const raw = (chunk as Bf16Inputs).bf16;
    const bf = raw !== undefined ? 1 : 0;
    const w = len <= WASM_MAX_CHUNK ? mergeWasmFor(raw !== undefined ? raw[0]! : chunk.base!) : undefined;
    let bp = -1;
    for (let i = 0; i < this.densities.length; i++) {
      if (w !== undefined) {
        // the delta and its high-bits counts on the SIMD module (see GtaMerger.observeWasm)
        if (pass === 0 ? this.densities[i]! >= 1 : !this.needLow[i]) continue;
        if (bp < 0) bp = raw !== undefined ? raw[0]!.byteOffset : w.place(chunk.base!, len, w.base);
        const xp = raw !== undefined ? raw[i + 1]!.byteOffset : w.place(chunk.models[i]!, len, w.model(0));
        const sel = this.sels[i]!;
        if (pass === 0 && raw !== undefined && sel.tracksInexact()) w.deltaHistInexact(sel, len, xp, bp);
        else if (pass === 0) {
          sel.dropInexact(); // counts without their inexact counts
          w.deltaHistHigh(sel, len, xp, bp, bf);
        } else sel.addLowList(w.outU, w.deltaBinList(0, len, sel.lowBin(), xp, bp, bf));
        continue;
      }
      if (pass === 0 ? this.densities[i]! >= 1 : !this.needLow[i]) continue;
      if (pass === 0) this.sels[i]!.addHighDelta(chunk.models[i]!, chunk.base!, d, len);
      else this.sels[i]!.addLowDelta(chunk.models[i]!, chunk.base!, d, len);
    }
  }

  result(): ModelTrimStats {
    if (!this.done) throw new UsageError('USAGE', 'model statistics requested before the pre-pass finished');
    return { kind: 'gta-model-trim', density: [...this.densities], minBits: [...this.minBits], numel: this.total };
  }
}

function isModelTrimStats(x: unknown): x is ModelTrimStats {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'gta-model-trim';
}

/** tiesTensor flags for tests: 1 counts thresholds exactly (no sampled window), 2 makes every window list overflow, 4 gives mapped pages back behind the passes, 64 runs the separate mask and consensus kernels instead of the fused one (up to 4 models). */
let nativeTensorFlags = 0;

/** Tests only: tiesTensor flags (see nativeTensorFlags); 0 restores the default. */
export function setNativeTensorFlags(flags: number): void {
  nativeTensorFlags = flags;
}

/** One tensor's merger for a configured GTA method. */
class GtaMerger implements TensorMerger {
  readonly chunking: 'elements' | 'rows' | 'tensor';
  readonly wholeBf16?: (inputs: readonly Bf16Input[], numel: number, release: boolean, formats: number) => WholeBf16Writer | undefined;
  private readonly plans: ModelPlan[];
  private readonly lambda: number;
  private readonly divide: boolean;
  private readonly weightSum: number;
  private readonly geo: FiberGeometry;
  /** every model's delta is used whole (no sparsification) */
  private readonly dense: boolean;
  /** every model's mask is one the native TIES kernel makes (magnitude threshold, all or none) */
  private readonly nativeModes: boolean;
  private readonly scratch = new Scratch();
  /** emitWasm's input offsets (a dense sum reads the inputs themselves) */
  private readonly inputPtrs: number[] = [];
  private stage = DONE;
  /** the executor holds the whole tensor across passes (setResident) */
  private resident = false;
  /** SAMPLE pass state: pieces seen, and whether every one was BF16 in the module's memory */
  private samplePieces = 0;
  private sampleOk = true;
  /** set when a windowed HIGH pass missed a threshold: the next HIGH pass counts every bucket */
  private recount = false;
  private windowsOff = false;

  constructor(
    private readonly cfg: GtaConfig,
    private readonly ctx: TensorContext,
  ) {
    if (!ctx.hasBase) throw new UsageError('USAGE', `${cfg.name} needs a base model (tensor '${ctx.name}')`, { where: { tensor: ctx.name } });
    const p = ctx.params;
    this.lambda = num(p, 'lambda', 1);
    const normalize = bool(p, 'normalize', cfg.defaultNormalize);
    const rescale = bool(p, 'rescale', cfg.defaultRescale);
    const disjoint = p.disjoint;
    this.divide = cfg.consensus && typeof disjoint === 'string' ? disjoint === 'mean' : normalize;
    const scope = p.trim_scope === 'model' ? 'model' : 'tensor';
    const stats = ctx.modelStats;
    if (scope === 'model' && cfg.sparsifier === 'magnitude' && !isModelTrimStats(stats)) {
      throw new UsageError(
        'USAGE',
        `${cfg.name} with trim_scope: model needs the whole-model statistics pre-pass (method.modelStats), which did not run for tensor '${ctx.name}'`,
        { where: { tensor: ctx.name } },
      );
    }
    const N = ctx.numel;
    this.geo = fiberGeometry(ctx.shape, N, ctx.rowLength);
    let wsum = 0;
    this.plans = ctx.modelParams.map((mp, i) => {
      const w = num(mp, 'weight', 1);
      wsum += w;
      const d = num(mp, 'density', 1);
      const plan = new ModelPlan(w, d, num(mp, 'epsilon', 0.15));
      plan.mode = this.modeFor(plan, i, N, mp, scope, stats);
      plan.rescale = rescale && plan.mode !== ALL && plan.mode !== NONE;
      // one stream per sparsifier (not per method name): dare_linear and dare_ties draw the same masks for a seed
      if (plan.mode === RANDOM || plan.mode === DELLA) plan.key = ctx.rng(i, cfg.sparsifier === 'della' ? 'della' : 'dare');
      return plan;
    });
    this.weightSum = Math.abs(wsum) < 1e-8 ? 1 : wsum;
    this.dense = this.plans.every((x) => x.mode === ALL);
    this.nativeModes = this.plans.every((x) => x.mode === ALL || x.mode === NONE || x.mode === MAG || x.mode === MAG_MODEL);
    const n = this.plans.length;
    // offered to the executor only where it applies: it maps or reads the whole tensor for it
    // (TIES masks with the consensus; whole, DARE-, DELLA- or breadcrumbs-masked deltas with it or in a sum),
    // rescaling only DARE's and DELLA's
    const native = this.plans.every(
      (x) => x.mode === ALL || x.mode === NONE || x.mode === RANDOM || x.mode === OUTLIERS || x.mode === DELLA || (cfg.consensus && (x.mode === MAG || x.mode === MAG_MODEL)),
    );
    if (nativeKernels() !== undefined && native && n > 0 && n <= WASM_MAX_MODELS && this.plans.every((x) => !x.rescale || x.mode === RANDOM || x.mode === DELLA)) {
      this.wholeBf16 = (inputs, numel, release, formats) => this.nativeWhole(inputs, numel, release, formats);
    }
    const needsRows = cfg.sparsifier === 'della' && this.plans.some((x) => x.mode === DELLA);
    this.chunking = needsRows ? (ctx.shape.length >= 2 ? 'rows' : 'tensor') : 'elements';
  }

  private modeFor(plan: ModelPlan, i: number, N: number, mp: Params, scope: 'tensor' | 'model', stats: unknown): number {
    const d = plan.density;
    switch (this.cfg.sparsifier) {
      case 'none':
        return ALL;
      case 'magnitude': {
        if (scope === 'model') {
          const s = stats as ModelTrimStats;
          if (s.density.length !== this.ctx.modelCount || s.density[i] !== d) {
            throw new UsageError(
              'RECIPE_PARAM_SCOPE',
              `${this.cfg.name} with trim_scope: model needs one density per model: tensor '${this.ctx.name}' resolves density ${d} for model ${i}, but the whole-model trim used ${s.density[i]}`,
              { where: { tensor: this.ctx.name } },
            );
          }
          if (d >= 1) return ALL;
          plan.minBits = s.minBits[i]!;
          return MAG_MODEL;
        }
        if (d >= 1) return ALL;
        plan.keepK = Math.floor(d * N);
        return plan.keepK <= 0 ? NONE : MAG;
      }
      case 'random':
        if (d >= 1) return ALL;
        return d <= 0 ? NONE : RANDOM;
      case 'outliers': {
        if (d >= 1) return ALL;
        const gamma = num(mp, 'gamma', 0.01);
        const target = Math.floor(d * N);
        let nTop = Math.floor(gamma * N);
        let nBot = N - target - nTop;
        if (nBot < 0) {
          nTop += nBot;
          nBot = 0;
        }
        plan.keepK = N - nBot;
        plan.dropK = nTop;
        return plan.keepK <= plan.dropK ? NONE : OUTLIERS;
      }
      case 'della': {
        if (d >= 1) return ALL;
        if (d <= 0) return NONE;
        const e = plan.epsilon;
        if (!(d - e > 0 && d + e < 1)) {
          throw new UsageError(
            'RECIPE_PARAM_RANGE',
            `${this.cfg.name}: model ${i} has density ${d} and epsilon ${e} on tensor '${this.ctx.name}'; density ± epsilon must lie strictly inside (0, 1)`,
            { where: { tensor: this.ctx.name } },
          );
        }
        return DELLA;
      }
    }
  }

  beginPass(pass: number): boolean {
    if (pass === 0) this.stage = this.next(-1);
    else {
      this.finish(this.stage);
      this.stage = this.next(this.stage);
    }
    this.start(this.stage);
    return this.stage !== DONE;
  }

  setResident(resident: boolean): void {
    this.resident = resident;
  }

  private next(after: number): number {
    if (after < SAMPLE && this.wantsSample()) return SAMPLE;
    if (after < HIGH && this.plans.some((p) => p.mode === MAG || p.mode === OUTLIERS)) return HIGH;
    if (after === HIGH && this.recount) {
      this.recount = false;
      this.windowsOff = true;
      return HIGH;
    }
    if (after < LOW && this.plans.some((p) => p.keepNeedsLow || p.dropNeedsLow)) return LOW;
    if (after < NORM && this.plans.some((p) => p.rescale)) return NORM;
    return DONE;
  }

  /** Whether a SAMPLE pass pays: a large tensor held in memory, a magnitude top-k, native window counting. */
  private wantsSample(): boolean {
    return this.resident && this.ctx.numel >= SAMPLE_MIN_ELEMENTS && this.plans.some((p) => p.mode === MAG) && nativeKernels() !== undefined;
  }

  private start(stage: number): void {
    if (stage === SAMPLE) {
      this.samplePieces = 0;
      this.sampleOk = true;
      for (const p of this.plans) p.sampleSel = p.mode === MAG ? takeSelector() : undefined;
    } else if (stage === HIGH) {
      for (const p of this.plans) {
        p.keepNeedsLow = false;
        p.dropNeedsLow = false;
        p.keepSel = p.mode === MAG || p.mode === OUTLIERS ? takeSelector() : undefined;
        p.dropSel = p.mode === OUTLIERS && p.dropK > 0 ? takeSelector() : undefined;
        // BF16 pieces count their inexact deltas apart (observeWasm), which usually makes the low pass unnecessary
        if (p.mode === MAG) p.keepSel!.trackInexact();
        if (p.mode === MAG && p.window !== undefined && !this.windowsOff) p.keepSel!.setWindow(p.window[0], p.window[1]);
      }
    } else if (stage === NORM) {
      for (const p of this.plans) {
        p.l1Before.fill(0);
        p.l1After.fill(0);
        p.factor = 1;
        p.resetBudgets();
      }
    }
  }

  private finish(stage: number): void {
    if (stage === SAMPLE) {
      const N = this.ctx.numel;
      for (const p of this.plans) {
        const sel = p.sampleSel;
        p.sampleSel = undefined;
        p.window = undefined;
        if (sel === undefined) continue;
        const S = sel.counted();
        if (this.sampleOk && S >= 1000) {
          const q = p.keepK / N;
          const hiRank = Math.floor((q - WINDOW_MARGIN) * S);
          const loRank = Math.ceil((q + WINDOW_MARGIN) * S);
          const hi = hiRank < 1 ? INF_BITS >>> 16 : sel.bucketsAtRanks([hiRank])[0]!;
          const lo = loRank >= S ? 0 : sel.bucketsAtRanks([loRank])[0]!;
          p.window = [lo, hi];
        }
        giveSelector(sel);
      }
    } else if (stage === HIGH) {
      for (const p of this.plans) {
        if (!p.keepSel) continue;
        p.keepNeedsLow = p.keepSel.resolveHigh(p.keepK);
        if (p.keepSel.windowMissed()) this.recount = true;
      }
      if (this.recount) {
        // a window missed its threshold (or could not be counted): next() repeats the pass without windows
        for (const p of this.plans) this.dropSelectors(p);
        return;
      }
      for (const p of this.plans) {
        if (p.keepSel && !p.keepNeedsLow) p.keepT = p.keepSel.threshold();
        if (p.dropSel) {
          p.dropNeedsLow = p.dropSel.resolveHigh(p.dropK);
          if (!p.dropNeedsLow) p.dropT = p.dropSel.threshold();
        } else p.dropT = KEEP_NONE;
        if (!p.keepNeedsLow && !p.dropNeedsLow) this.dropSelectors(p);
      }
    } else if (stage === LOW) {
      for (const p of this.plans) {
        if (p.keepNeedsLow) p.keepT = p.keepSel!.threshold();
        if (p.dropNeedsLow) p.dropT = p.dropSel!.threshold();
        this.dropSelectors(p);
      }
    } else if (stage === NORM) {
      for (const p of this.plans) {
        // mergekit's rescaled_masked_tensor: match the L1 norm unless either norm is below 1e-7
        const before = laneTotal(p.l1Before);
        const after = laneTotal(p.l1After);
        if (p.rescale && before >= 1e-7 && after >= 1e-7) p.factor = before / after;
      }
    }
  }

  /** The plan's selectors back to the pool (their thresholds, if any, have been read). */
  private dropSelectors(p: ModelPlan): void {
    giveSelector(p.keepSel);
    giveSelector(p.dropSel);
    p.keepSel = undefined;
    p.dropSel = undefined;
  }

  observe(_pass: number, chunk: Chunk): void {
    const len = chunk.length;
    const s = this.scratch;
    s.ensure(len, this.plans.length, this.cfg.consensus);
    const d = s.delta;
    const stage = this.stage;
    if (stage === SAMPLE) {
      this.observeSample(chunk);
      return;
    }
    if (len <= WASM_MAX_CHUNK && stage !== NORM) {
      // BF16 inputs in a workspace are read as stored bits (their f32 views are then never widened)
      const raw = (chunk as Bf16Inputs).bf16;
      const wasm = mergeWasmFor(raw !== undefined ? raw[0]! : chunk.base!);
      if (wasm !== undefined) {
        this.observeWasm(wasm, chunk, raw);
        return;
      }
    }
    const base = chunk.base!;
    for (let i = 0; i < this.plans.length; i++) {
      const p = this.plans[i]!;
      const x = chunk.models[i]!;
      if (stage === HIGH) {
        if (!p.keepSel) continue;
        if (p.window !== undefined && !this.windowsOff) {
          this.recount = true; // windowed counts come from the native kernels only: count again without a window
          continue;
        }
        p.keepSel.addHighDelta(x, base, d, len);
        p.dropSel?.addHigh(d.subarray(0, len));
      } else if (stage === LOW) {
        if (p.keepNeedsLow) {
          p.keepSel!.addLowDelta(x, base, d, len);
          if (p.dropNeedsLow) p.dropSel!.addLow(d.subarray(0, len));
        } else if (p.dropNeedsLow) p.dropSel!.addLowDelta(x, base, d, len);
      } else if (stage === NORM) {
        if (!p.rescale) continue;
        const w = p.mode === RANDOM && len <= WASM_MAX_CHUNK ? mergeWasmFor(base) : undefined;
        if (w !== undefined) {
          // both norms in one pass on the SIMD module (the DARE mask drawn there)
          const bp = w.place(base, len, w.base);
          const xp = w.place(x, len, w.model(0));
          w.l1Random(0, len, chunk.offset, p.key, p.density, p.l1Before, p.l1After, xp, bp);
          continue;
        }
        deltaL1Into(x, base, d, len, chunk.offset, p.l1Before);
        this.maskedDelta(p, chunk.offset, x, base, d, s.deltaU, len);
        l1Of(d, len, chunk.offset, p.l1After);
      }
    }
  }

  /** The SAMPLE pass: SAMPLE_BLOCK elements of each piece (BF16 in the module's memory) into each sample histogram. */
  private observeSample(chunk: Chunk): void {
    const len = chunk.length;
    const raw = (chunk as Bf16Inputs).bf16;
    const w = raw !== undefined && len <= WASM_MAX_CHUNK ? mergeWasmFor(raw[0]!) : undefined;
    if (w === undefined) {
      this.sampleOk = false;
      return;
    }
    const m = Math.min(SAMPLE_BLOCK, len);
    const off = sampleOffset(this.samplePieces++, len);
    const bp = raw![0]!.byteOffset + 2 * off;
    for (let i = 0; i < this.plans.length; i++) {
      const sel = this.plans[i]!.sampleSel;
      if (sel !== undefined) w.deltaHistHigh(sel, m, raw![i + 1]!.byteOffset + 2 * off, bp, 1);
    }
  }

  /**
   * The HIGH and LOW passes on the SIMD module: deltas and high-bits counts there, low-pass candidates here. `raw`:
   * the inputs' BF16 bits (base first) in the module's memory, read instead of the f32 views.
   */
  private observeWasm(w: MergeWasm, chunk: Chunk, raw: readonly Uint16Array[] | undefined): void {
    const len = chunk.length;
    const high = this.stage === HIGH;
    const bf = raw !== undefined ? 1 : 0;
    const nat = high && bf === 1 ? nativeKernels() : undefined;
    let windowed = false;
    let bp = -1;
    for (let i = 0; i < this.plans.length; i++) {
      const p = this.plans[i]!;
      if (high ? !p.keepSel : !p.keepNeedsLow && !p.dropNeedsLow) continue;
      // inputs in the module's memory (an executor workspace) are read in place, others copied to its regions
      if (bp < 0) bp = raw !== undefined ? raw[0]!.byteOffset : w.place(chunk.base!, len, w.base);
      const xp = raw !== undefined ? raw[i + 1]!.byteOffset : w.place(chunk.models[i]!, len, w.model(0));
      if (high) {
        if (p.window !== undefined && !this.windowsOff) {
          // a windowed selector takes windowed counts only: without them (not expected) the pass is redone unwindowed
          if (bf === 1 && nat !== undefined) {
            w.nativeWindow(i, p.keepSel!, len, xp, p.window[0], p.window[1]);
            windowed = true;
          } else this.recount = true;
        } else if (bf === 1 && p.keepSel!.tracksInexact()) w.deltaHistInexact(p.keepSel!, len, xp, bp);
        else if (p.dropSel) {
          w.deltaAll(0, len, xp, bp, bf);
          w.histHigh(p.keepSel!, 0, len);
          w.histHigh(p.dropSel, 0, len);
        } else {
          p.keepSel!.dropInexact(); // counts without their inexact counts
          w.deltaHistHigh(p.keepSel!, len, xp, bp, bf);
        }
      } else if (p.keepNeedsLow) {
        p.keepSel!.addLowList(w.outU, w.deltaBinList(0, len, p.keepSel!.lowBin(), xp, bp, bf));
        if (p.dropNeedsLow) p.dropSel!.addLowList(w.outU, w.binList(0, len, p.dropSel!.lowBin()));
      } else p.dropSel!.addLowList(w.outU, w.deltaBinList(0, len, p.dropSel!.lowBin(), xp, bp, bf));
    }
    if (windowed) w.histWindows(nat!, len, bp);
  }

  /** d = the model's sparsified delta f32(x - base) over the chunk (du views d); returns how many were kept. */
  private maskedDelta(p: ModelPlan, offset: number, x: Float32Array, base: Float32Array, d: Float32Array, du: Uint32Array, len: number): number {
    switch (p.mode) {
      case ALL:
        deltaInto(x, base, d, len);
        return len;
      case NONE:
        d.fill(0, 0, len);
        return 0;
      case MAG: {
        const t = p.keepT;
        if (t.all) {
          deltaInto(x, base, d, len);
          return len;
        }
        if (t.none) {
          d.fill(0, 0, len);
          return 0;
        }
        return deltaMaskMagInto(x, base, d, du, len, t.bits, p.keepTies);
      }
      case MAG_MODEL:
        return deltaMaskMinBitsInto(x, base, d, du, len, p.minBits);
      case RANDOM: {
        const r = this.scratch.rand.subarray(0, len);
        fillUniform(p.key, offset, r);
        return deltaMaskRandomInto(x, base, d, du, r, len, p.density);
      }
      case OUTLIERS:
        deltaInto(x, base, d, len);
        return maskOutliersInto(d, len, p.keepT, p.keepTies, p.dropT, p.dropTies);
      default:
        deltaInto(x, base, d, len);
        return maskDellaInto(d, len, offset, p, this.geo, this.scratch);
    }
  }

  /** Before a chunk's output: the first chunk restarts the tie budgets and kept counts. */
  private beginEmit(chunk: Chunk): void {
    if (chunk.offset !== 0) return;
    for (const p of this.plans) {
      p.resetBudgets();
      p.kept = 0;
    }
  }

  /**
   * The chunk's output as BF16 bits straight from the native TIES kernel (no f32 output, no separate rounding pass);
   * false when that kernel does not apply (then the executor calls emit).
   */
  emitBf16(chunk: Chunk, bits: Uint16Array): boolean {
    const len = chunk.length;
    const n = this.plans.length;
    const raw = (chunk as Bf16Inputs).bf16;
    if (raw === undefined || !this.cfg.consensus || !this.nativeModes || n === 0 || n > WASM_MAX_MODELS || len > WASM_MAX_CHUNK) return false;
    const k = nativeKernels();
    const w = k !== undefined ? mergeWasmFor(raw[0]!) : undefined;
    if (w === undefined || !w.holds(bits)) return false;
    this.beginEmit(chunk);
    this.emitNative(k!, w, len, raw, raw[0]!.byteOffset, bits.byteOffset, true);
    return true;
  }

  /**
   * The tensor on the native kernel (tiesTensor): thresholds, DARE/DELLA norms and DELLA's masks over the whole
   * tensor, then masks, consensus and BF16/F16 rounding range by range (one call when the first range is the whole
   * tensor), when every model's mask is a magnitude threshold, a DARE draw, a DELLA rank draw, a breadcrumbs band, all
   * or none (rescaling only DARE's and DELLA's); or the weighted sum of such deltas (task_arithmetic, dare_linear,
   * della_linear, breadcrumbs) range by range (offered only then, see the constructor).
   */
  private nativeWhole(inputs: readonly Bf16Input[], numel: number, release: boolean, formats: number): WholeBf16Writer | undefined {
    const n = this.plans.length;
    const k = nativeKernels();
    if (k === undefined || inputs.length !== n + 1) return undefined;
    const sum = !this.cfg.consensus;
    const a = tensorArgs(sum ? NATIVE_SUM : NATIVE_CONSENSUS, n, numel, formats);
    const masks: (Uint8Array | undefined)[] = [];
    // DELLA's fibers (fiberGeometry)
    a[76] = this.geo.block;
    a[77] = this.geo.fiberLength;
    a[78] = this.geo.inner;
    // a sum takes its divisor (as emitWasm's sumOut), TIES whether to divide by the agreeing weights
    a[1] = sum ? (this.divide ? this.weightSum : 1) : this.divide ? 1 : 0;
    a[2] = this.lambda;
    this.plans.forEach((p, i) => {
      const o = 8 + 8 * i;
      if (p.mode === MAG_MODEL) {
        a[o] = 3;
        a[o + 1] = p.minBits - 1;
      } else if (p.mode === NONE) a[o] = 1;
      else if (p.mode === MAG) {
        a[o] = 2;
        a[o + 1] = p.keepK;
      } else if (p.mode === OUTLIERS) {
        // breadcrumbs: in the top keepK and not in the top dropK
        a[o] = 5;
        a[o + 1] = p.keepK;
        a[80 + 8 * i] = p.dropK;
      } else if (p.mode === DELLA) {
        // DELLA: ranks in each fiber, draws from its own stream; the mask lives in `masks` across this tensor's calls
        a[o] = 6;
        a[o + 1] = p.epsilon;
        const r = 80 + 8 * i;
        a[r] = p.key.k0 >>> 0;
        a[r + 1] = p.key.k1 >>> 0;
        a[r + 2] = p.density - p.epsilon; // maskDellaInto's lo
        a[r + 3] = p.rescale ? 1 : 0;
        masks[i] = new Uint8Array(Math.floor(numel / 8) + 16);
      } else if (p.mode === RANDOM) {
        a[o] = 4;
        const r = 80 + 8 * i;
        a[r] = p.key.k0 >>> 0;
        a[r + 1] = p.key.k1 >>> 0;
        a[r + 2] = Math.ceil(p.density * 4294967296) - 1; // as MergeWasm.deltaRandom
        a[r + 3] = p.rescale ? 1 : 0;
      } else a[o] = 0;
      a[o + 2] = p.factor * p.weight;
      a[o + 3] = p.weight;
    });
    const flags = nativeTensorFlags | (release ? 4 : 0);
    const base = inputs[0]!;
    const models = inputs.slice(1);
    // a sum of whole or drawn deltas needs no first phase; DARE's rescaled norms, breadcrumbs' thresholds and DELLA's
    // masks do
    let prepared = sum && !this.plans.some((p) => (p.mode === RANDOM && p.rescale) || p.mode === OUTLIERS || p.mode === DELLA);
    const empty = new Uint16Array(0);
    const calls = tensorCalls(k, base, models, a, masks);
    return {
      write: (offset, bits) => {
        if (!prepared && (offset !== 0 || bits.length !== numel)) {
          calls.call(flags | 16, 0, empty); // the thresholds first, over the whole tensor
          prepared = true;
        }
        calls.call(flags | (prepared ? 32 : 0), offset, bits);
        prepared = true;
        this.plans.forEach((p, i) => {
          p.kept = a[8 + 8 * i + 4]!;
          if ((p.mode === RANDOM || p.mode === DELLA) && p.rescale) p.factor = a[80 + 8 * i + 6]!;
        });
      },
      close: () => calls.close(),
    };
  }

  emit(chunk: Chunk, out: Float32Array): void {
    const len = chunk.length;
    const plans = this.plans;
    const n = plans.length;
    this.beginEmit(chunk);
    if (n === 0) {
      const base = chunk.base!;
      for (let j = 0; j < len; j++) out[j] = base[j]!;
      return;
    }
    const s = this.scratch;
    s.ensure(len, n, this.cfg.consensus);
    if (len <= WASM_MAX_CHUNK && n <= WASM_MAX_MODELS) {
      // BF16 inputs in a workspace are read as stored bits (their f32 views are then never widened)
      const raw = (chunk as Bf16Inputs).bf16;
      const wasm = mergeWasmFor(raw !== undefined ? raw[0]! : chunk.base!);
      if (wasm !== undefined) {
        this.emitWasm(wasm, chunk, out, raw);
        return;
      }
    }
    if (this.cfg.consensus) this.emitConsensus(chunk, out);
    else this.emitSum(chunk, out);
  }

  /**
   * emitSum or emitConsensus on the SIMD module: inputs and output that live in its memory (an executor workspace)
   * are used in place, others copied through its fixed regions; the magnitude and DARE masks and the whole sum or
   * vote run there, each delta written to its model region; other masks are written there by the JS kernels.
   * `raw`: the inputs' BF16 bits (base first) in the module's memory, read instead of the f32 views (which the JS
   * masks still widen when they run).
   */
  private emitWasm(w: MergeWasm, chunk: Chunk, out: Float32Array, raw: readonly Uint16Array[] | undefined): void {
    const len = chunk.length;
    const plans = this.plans;
    const n = plans.length;
    const bf = raw !== undefined ? 1 : 0;
    const bp = raw !== undefined ? raw[0]!.byteOffset : w.place(chunk.base!, len, w.base);
    const direct = w.holds(out);
    const op = direct ? out.byteOffset : OUT_PTR;
    const nat = raw !== undefined && this.cfg.consensus && this.nativeModes ? nativeKernels() : undefined;
    if (nat !== undefined) {
      this.emitNative(nat, w, len, raw!, bp, op);
      if (!direct) out.set(w.out.subarray(0, len));
      return;
    }
    const xs = this.inputPtrs;
    for (let i = 0; i < n; i++) {
      const p = plans[i]!;
      w.setParams(i, p.factor * p.weight, p.weight);
      const t = p.keepT;
      if (p.mode === ALL || p.mode === MAG_MODEL || (p.mode === MAG && !t.none)) {
        const xp = raw !== undefined ? raw[i + 1]!.byteOffset : w.place(chunk.models[i]!, len, w.model(i));
        xs[i] = xp;
        if (p.mode === MAG_MODEL) p.kept += w.deltaMag(i, len, p.minBits - 1, 0, xp, bp, bf);
        else if (p.mode === MAG && !t.all) {
          p.kept += w.deltaMag(i, len, t.bits, p.keepTies.tiesLeft, xp, bp, bf);
          p.keepTies.tiesLeft = w.tiesLeft();
        } else {
          p.kept += len;
          if (this.cfg.consensus || !this.dense) w.deltaAll(i, len, xp, bp, bf); // a dense sum_out takes the inputs themselves
        }
      } else if (p.mode === RANDOM) {
        const xp = raw !== undefined ? raw[i + 1]!.byteOffset : w.place(chunk.models[i]!, len, w.model(i));
        p.kept += w.deltaRandom(i, len, chunk.offset, p.key, p.density, xp, bp, bf);
      } else p.kept += this.maskedDelta(p, chunk.offset, chunk.models[i]!, chunk.base!, w.model(i), w.modelU(i), len);
    }
    if (this.cfg.consensus) w.tiesOut(n, len, this.divide, this.lambda, bp, op, bf);
    else if (this.dense) w.sumOut(n, len, this.divide ? this.weightSum : 1, this.lambda, true, bp, op, xs, bf);
    else w.sumOut(n, len, this.divide ? this.weightSum : 1, this.lambda, false, bp, op, undefined, bf);
    if (!direct) out.set(w.out.subarray(0, len));
  }

  /**
   * emitWasm's TIES step on the native kernels (BF16 inputs in the module's memory; every model's mask a magnitude
   * threshold or none): the same masks, counts, tie budgets and bits.
   */
  private emitNative(k: NativeKernels, w: MergeWasm, len: number, raw: readonly Uint16Array[], bp: number, op: number, bf16 = false): void {
    const plans = this.plans;
    const n = plans.length;
    for (let i = 0; i < n; i++) {
      const p = plans[i]!;
      w.setParams(i, p.factor * p.weight, p.weight);
      const xp = raw[i + 1]!.byteOffset;
      const t = p.keepT;
      if (p.mode === MAG_MODEL) w.setNativeModel(i, xp, NATIVE_MAG, p.minBits - 1, 0);
      else if (p.mode === NONE || (p.mode === MAG && t.none)) w.setNativeModel(i, xp, NATIVE_NONE);
      else if (p.mode === MAG && !t.all) w.setNativeModel(i, xp, NATIVE_MAG, t.bits, p.keepTies.tiesLeft);
      else w.setNativeModel(i, xp, NATIVE_ALL);
    }
    w.tiesNative(k, n, len, this.divide, this.lambda, bp, op, bf16);
    for (let i = 0; i < n; i++) {
      const p = plans[i]!;
      p.kept += w.nativeKept(i);
      if (p.mode === MAG && !p.keepT.all && !p.keepT.none) p.keepTies.tiesLeft = w.nativeTiesLeft(i);
    }
  }

  /** out = base + lambda * (sum_i w_i * f_i * delta_i') / z, the model terms added in model order. */
  private emitSum(chunk: Chunk, out: Float32Array): void {
    const len = chunk.length;
    const base = chunk.base!;
    const plans = this.plans;
    const n = plans.length;
    const s = this.scratch;
    const d = s.delta;
    const M = s.sum;
    const lambda = this.lambda;
    const z = this.divide ? this.weightSum : 1;
    if (n <= 3 && this.dense) {
      // task_arithmetic: one loop over the chunk, no accumulator
      const ms = chunk.models;
      for (const p of plans) p.kept += len;
      const s0 = plans[0]!.factor * plans[0]!.weight;
      if (n === 1) deltaSum1Out(ms[0]!, base, out, len, s0, z, lambda);
      else {
        const s1 = plans[1]!.factor * plans[1]!.weight;
        if (n === 2) deltaSum2Out(ms[0]!, ms[1]!, base, out, len, s0, s1, z, lambda);
        else deltaSum3Out(ms[0]!, ms[1]!, ms[2]!, base, out, len, s0, s1, plans[2]!.factor * plans[2]!.weight, z, lambda);
      }
      return;
    }
    for (let i = 0; i < n; i++) {
      const p = plans[i]!;
      const x = chunk.models[i]!;
      const sc = p.factor * p.weight;
      const last = i === n - 1 && i > 0;
      if (p.mode === ALL) {
        // unsparsified: the delta goes straight into the sum
        p.kept += len;
        if (i === 0) deltaScaleInit(x, base, M, len, sc);
        else if (last) deltaScaleAddOut(x, base, M, out, len, sc, z, lambda);
        else deltaScaleAdd(x, base, M, len, sc);
      } else {
        p.kept += this.maskedDelta(p, chunk.offset, x, base, d, s.deltaU, len);
        if (i === 0) scaleInit(d, M, len, sc);
        else if (last) scaleAddOut(d, M, base, out, len, sc, z, lambda);
        else scaleAdd(d, M, len, sc);
      }
    }
    if (n === 1) sumOut(M, base, out, len, z, lambda);
  }

  /**
   * TIES consensus: Delta_i = w_i * f_i * delta_i'; vote s = +1 where sum_i Delta_i >= 0, else -1; keep the
   * Delta_i whose sign equals s and divide by the weights that agreed (disjoint mean) or not (disjoint sum).
   */
  private emitConsensus(chunk: Chunk, out: Float32Array): void {
    const len = chunk.length;
    const base = chunk.base!;
    const plans = this.plans;
    const n = plans.length;
    const s = this.scratch;
    const S = s.vote;
    const M = s.sum;
    const Z = s.div;
    const lambda = this.lambda;
    let finite = true;
    for (let i = 0; i < n; i++) {
      const p = plans[i]!;
      const D = s.masked[i]!;
      p.kept += this.maskedDelta(p, chunk.offset, chunk.models[i]!, base, D, s.maskedU[i]!, len);
      const sc = p.factor * p.weight;
      finite &&= Number.isFinite(sc) && Number.isFinite(p.weight);
      if (i === 0) scaleInit(D, S, len, sc);
      else scaleAdd(D, S, len, sc);
    }
    // every vote sum finite => every product finite => the branch-free agree kernels are exact
    if (signVoteInto(S, len) === 0 && finite) {
      for (let i = 0; i < n; i++) {
        const p = plans[i]!;
        const D = s.masked[i]!;
        const sc = p.factor * p.weight;
        if (i === 0) agreeInit(D, S, M, Z, len, sc, p.weight);
        else if (i < n - 1) agreeAdd(D, S, M, Z, len, sc, p.weight);
        else if (this.divide) agreeAddMeanOut(D, S, M, Z, base, out, len, sc, p.weight, lambda);
        else agreeAddSumOut(D, S, M, base, out, len, sc, lambda);
      }
      if (n > 1) return;
    } else {
      M.fill(0, 0, len);
      Z.fill(0, 0, len);
      for (let i = 0; i < n; i++) {
        const p = plans[i]!;
        agreeAddChecked(s.masked[i]!, S, M, Z, len, p.factor * p.weight, p.weight);
      }
    }
    if (this.divide) meanOut(M, Z, base, out, len, lambda);
    else sumOut(M, base, out, len, 1, lambda);
  }

  report(): Record<string, number> {
    const r: Record<string, number> = {};
    const N = this.ctx.numel;
    this.plans.forEach((p, i) => {
      r[`kept_fraction_${i}`] = N === 0 ? 1 : p.kept / N;
      r[`rescale_${i}`] = p.factor;
    });
    return r;
  }
}

/** A TensorMerger factory for one configured member of the family. */
export function createGtaMerger(cfg: GtaConfig, ctx: TensorContext): TensorMerger {
  return new GtaMerger(cfg, ctx);
}

/** The whole-model pre-pass for `trim_scope: model` (magnitude sparsifier only); undefined otherwise. */
export function gtaModelStats(cfg: GtaConfig, params: Params, modelParams: readonly Params[]): ModelStatsCollector | undefined {
  if (cfg.sparsifier !== 'magnitude' || params.trim_scope !== 'model') return undefined;
  return new ModelTrimCollector(modelParams.map((mp) => num(mp, 'density', 1)));
}
