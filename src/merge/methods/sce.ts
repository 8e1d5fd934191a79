// sce (Select–Calculate–Erase): a variance top-k mask shared by all models, an unweighted sign vote, and
// per-model weights from task-vector energy. Streams f32 chunks with f64 accumulators; bit-identical at any
// chunking. Imports tensor/ kernels, the GTA hot-loop kernels (gta-kernels.ts) and merge types only.

import { UsageError } from '../../errors.js';
import { KEEP_ALL, KEEP_NONE, MagnitudeSelector, applyMagnitudeMaskInto, type MagnitudeThreshold } from '../../tensor/select.js';
import {
  addInto,
  agreeWeightedAdd,
  countNonzero,
  deltaInto,
  divideInto,
  quotientInto,
  signVoteInto,
  squaredDeviationAdd,
  sumSquares,
  weightedMeanOut,
  zeroWhereZero,
} from './gta-kernels.js';
import type { Chunk, MergeMethod, TensorContext, TensorMerger } from '../types.js';
import { warnNotFinite } from './geo-util.js';

const VAR_HIGH = 0;
const VAR_LOW = 1;
const ENERGY = 2;
const DONE = 3;

class SceMerger implements TensorMerger {
  readonly chunking = 'elements' as const;
  private readonly n: number;
  private readonly topk: number;
  private sel = new MagnitudeSelector();
  private nonzero = 0;
  private needLow = false;
  private thr: MagnitudeThreshold = KEEP_ALL;
  private readonly ties = { tiesLeft: 0 };
  private readonly energy: Float64Array;
  private readonly omega: Float64Array;
  private stage = DONE;
  private tau: Float32Array[] = [];
  private v = new Float32Array(0);
  private mask = new Float32Array(0);
  private acc = new Float64Array(0);
  private acc2 = new Float64Array(0);
  private acc3 = new Float64Array(0);

  constructor(private readonly ctx: TensorContext) {
    if (!ctx.hasBase) throw new UsageError('USAGE', `sce needs a base model (tensor '${ctx.name}')`, { where: { tensor: ctx.name } });
    this.n = ctx.modelCount;
    const t = ctx.params.select_topk;
    this.topk = typeof t === 'number' ? t : 1;
    this.energy = new Float64Array(this.n);
    this.omega = new Float64Array(this.n).fill(this.n > 0 ? 1 / this.n : 0);
    if (this.topk <= 0) this.thr = KEEP_NONE;
  }

  private ensure(len: number): void {
    if (this.v.length < len) {
      this.tau = Array.from({ length: this.n }, () => new Float32Array(len));
      this.v = new Float32Array(len);
      this.mask = new Float32Array(len);
      this.acc = new Float64Array(len);
      this.acc2 = new Float64Array(len);
      this.acc3 = new Float64Array(len);
    }
  }

  beginPass(pass: number): boolean {
    if (this.n === 0) return false;
    const selecting = this.topk > 0 && this.topk < 1;
    if (pass === 0) {
      this.stage = selecting ? VAR_HIGH : ENERGY;
    } else if (this.stage === VAR_HIGH) {
      const k = Math.floor(this.nonzero * this.topk);
      this.needLow = this.sel.resolveHigh(k);
      if (!this.needLow) this.thr = this.sel.threshold();
      this.stage = this.needLow ? VAR_LOW : ENERGY;
    } else if (this.stage === VAR_LOW) {
      this.thr = this.sel.threshold();
      this.stage = ENERGY;
    } else if (this.stage === ENERGY) {
      let total = 0;
      for (let i = 0; i < this.n; i++) total += this.energy[i]! / Math.max(1, this.ctx.numel);
      for (let i = 0; i < this.n; i++) {
        this.omega[i] = Math.abs(total) < 1e-6 ? 1 / this.n : this.energy[i]! / Math.max(1, this.ctx.numel) / total;
      }
      if (this.omega.some((w) => !Number.isFinite(w))) warnNotFinite(this.ctx, "sce's model weights");
      this.stage = DONE;
    }
    if (this.stage === VAR_HIGH) {
      this.sel = new MagnitudeSelector();
      this.nonzero = 0;
    }
    if (this.stage === ENERGY) {
      this.energy.fill(0);
      this.ties.tiesLeft = this.thr.ties;
    }
    return this.stage !== DONE;
  }

  /** tau_i = X_i − B (f32) for every model; with `withMask`, zero every tau_i outside the shared select mask. */
  private load(chunk: Chunk, withMask: boolean): void {
    const len = chunk.length;
    this.ensure(len);
    const base = chunk.base!;
    for (let i = 0; i < this.n; i++) {
      const x = chunk.models[i]!;
      const t = this.tau[i]!;
      deltaInto(x, base, t, len);
    }
    if (!withMask || this.thr.all) return;
    if (this.thr.none) {
      for (let i = 0; i < this.n; i++) this.tau[i]!.fill(0, 0, len);
      return;
    }
    this.variance(len);
    const m = this.mask.subarray(0, len);
    // kept positions have a non-zero variance (k <= count_nonzero), so a zero in `m` means dropped
    applyMagnitudeMaskInto(this.v.subarray(0, len), this.thr, this.ties, m);
    for (let i = 0; i < this.n; i++) {
      const t = this.tau[i]!;
      zeroWhereZero(new Uint32Array(t.buffer, t.byteOffset, len), m, len);
    }
  }

  /** population variance across models at each element, in f64 (models summed in order), rounded to f32 into `v` */
  private variance(len: number): void {
    const n = this.n;
    const mean = this.acc;
    const sq = this.acc2;
    const v = this.v;
    mean.fill(0, 0, len);
    sq.fill(0, 0, len);
    for (let i = 0; i < n; i++) addInto(this.tau[i]!, mean, len);
    divideInto(mean, len, n);
    for (let i = 0; i < n; i++) squaredDeviationAdd(this.tau[i]!, mean, sq, len);
    quotientInto(sq, v, len, n);
  }

  observe(_pass: number, chunk: Chunk): void {
    const len = chunk.length;
    if (this.stage === VAR_HIGH || this.stage === VAR_LOW) {
      this.load(chunk, false);
      this.variance(len);
      const v = this.v.subarray(0, len);
      if (this.stage === VAR_HIGH) {
        this.nonzero += countNonzero(v, len);
        this.sel.addHigh(v);
      } else this.sel.addLow(v);
      return;
    }
    // ENERGY: mean of the masked tau_i^2
    this.load(chunk, true);
    for (let i = 0; i < this.n; i++) this.energy[i] = sumSquares(this.tau[i]!, len, this.energy[i]!);
  }

  emit(chunk: Chunk, out: Float32Array): void {
    const len = chunk.length;
    const base = chunk.base!;
    if (this.n === 0) {
      for (let j = 0; j < len; j++) out[j] = base[j]!;
      return;
    }
    if (chunk.offset === 0) this.ties.tiesLeft = this.thr.ties;
    this.load(chunk, true);
    const n = this.n;
    // unweighted sign vote on the masked tau, then the omega-weighted mean of the agreeing entries
    const sign = this.acc;
    const num = this.acc2;
    const den = this.acc3;
    sign.fill(0, 0, len);
    num.fill(0, 0, len);
    den.fill(0, 0, len);
    for (let i = 0; i < n; i++) addInto(this.tau[i]!, sign, len);
    // every vote sum finite => every tau finite; with bounded weights every v * w is then finite too
    let fast = signVoteInto(sign, len) === 0;
    for (let i = 0; i < n; i++) fast &&= Math.abs(this.omega[i]!) <= 1e200;
    for (let i = 0; i < n; i++) {
      const t = this.tau[i]!;
      const w = this.omega[i]!;
      if (fast) {
        agreeWeightedAdd(t, sign, num, den, len, w);
        continue;
      }
      for (let j = 0; j < len; j++) {
        const v = t[j]!;
        if (v * sign[j]! > 0) {
          num[j] += v * w;
          den[j] += w;
        }
      }
    }
    weightedMeanOut(base, num, den, out, len);
  }
}

export const SCE_METHOD: MergeMethod = {
  name: 'sce',
  base: 'required',
  vocabToBase: true,
  minModels: 1,
  params: [
    {
      name: 'select_topk',
      type: 'number',
      default: 1,
      min: 0,
      max: 1,
      description: 'fraction of the positions with non-zero variance across models to keep (1 keeps all, 0 keeps none)',
    },
    { name: 'int8_mask', type: 'boolean', default: false, description: 'accepted for mergekit compatibility; no effect on results' },
  ],
  modelParams: [],
  summary: 'SCE: keep the positions where the models disagree most, vote a sign, average with energy-based weights.',
  formula:
    'τ_i = X_i − B. Select: if 0 < select_topk < 1, v = population variance of the τ_i at each position, k = floor(count_nonzero(v)·select_topk), and every τ_i keeps only the k positions with the largest v (select_topk <= 0 keeps none). Calculate: ω_i = mean(τ_i²) / Σ_j mean(τ_j²) over the masked τ (uniform 1/n when that sum is < 1e-6). Erase: s = +1 where Σ_i τ_i >= 0 else −1 (unweighted), m_i = [sign(τ_i) = s]. Result = B + Σ_i ω_i m_i τ_i / max(Σ_i ω_i m_i, 1e-6). No user weights.',
  reference: 'FuseChat / SCE: Wan et al., "FuseChat: Knowledge Fusion of Chat Models" (arXiv 2408.07990); mergekit: merge_methods/sce.py',
  differences:
    'Variance, energies and the vote run in f64 over f32 inputs and round once (the variance is rounded to f32 before the top-k, as mergekit computes it in f32). Top-k ties on the variance are broken by element order (exact k) where torch.topk is arbitrary.',
  create: (ctx) => new SceMerger(ctx),
  scratchBytesPerElement: 16,
};
