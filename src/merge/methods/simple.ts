// Element-wise methods with no statistics passes: linear, passthrough, nearswap (mergekit) and negmerge (NegMerge,
// ICML 2025). Per-element math in f64 over f32 inputs, rounded once to f32; chunking cannot change a result.
// Imports merge types, errors and the elementwise kernels of gta-kernels.ts only.

import { UsageError } from '../../errors.js';
import { NATIVE_LINEAR, nativeKernels, tensorArgs, tensorCalls } from '../../tensor/native-kernels.js';
import { quotientInto, scaleAdd, scaleInit } from './gta-kernels.js';
import type { Bf16Input, Chunk, MergeMethod, TensorContext, TensorMerger, WholeBf16Writer } from '../types.js';

function numParam(v: unknown, fallback: number): number {
  return typeof v === 'number' ? v : fallback;
}

class LinearMerger implements TensorMerger {
  readonly chunking = 'elements' as const;
  private readonly weights: Float64Array;
  private readonly divisor: number;
  private sum = new Float64Array(0);
  readonly wholeBf16?: (inputs: readonly Bf16Input[], numel: number, release: boolean, formats: number) => WholeBf16Writer | undefined;

  constructor(private readonly ctx: TensorContext) {
    this.weights = Float64Array.from(ctx.modelParams, (p) => numParam(p.weight, 1));
    let wsum = 0;
    for (const w of this.weights) wsum += w;
    const normalize = ctx.params.normalize !== false;
    if (normalize && Math.abs(wsum) < 1e-12) {
      throw new UsageError(
        'RECIPE_WEIGHT_SUM_ZERO',
        `linear: the weights for tensor '${ctx.name}' sum to ${wsum}, so normalize would divide by zero; set normalize: false or change the weights`,
        { where: { tensor: ctx.name } },
      );
    }
    this.divisor = normalize ? wsum : 1;
    // BF16 tensors on the native kernel (the same operations, see native/gta.cc linearOut): up to 9 models
    if (nativeKernels() !== undefined && this.weights.length >= 1 && this.weights.length <= 9) this.wholeBf16 = (inputs, numel, release, formats) => this.nativeWhole(inputs, numel, release, formats);
  }

  private nativeWhole(inputs: readonly Bf16Input[], numel: number, release: boolean, formats: number): WholeBf16Writer | undefined {
    const k = nativeKernels();
    // the base, when the recipe has one, is not part of the sum
    const xs = this.ctx.hasBase ? inputs.slice(1) : inputs;
    if (k === undefined || xs.length !== this.weights.length) return undefined;
    const a = tensorArgs(NATIVE_LINEAR, xs.length - 1, numel, formats);
    a[1] = this.divisor;
    a[79] = this.weights[0]!;
    for (let i = 1; i < xs.length; i++) a[8 + 8 * (i - 1) + 3] = this.weights[i]!;
    const calls = tensorCalls(k, xs[0]!, xs.slice(1), a);
    return { write: (offset, bits) => calls.call(32 | (release ? 4 : 0), offset, bits), close: () => calls.close() };
  }

  emit(chunk: Chunk, out: Float32Array): void {
    const len = chunk.length;
    if (this.sum.length < len) this.sum = new Float64Array(len);
    const sum = this.sum;
    const n = this.weights.length;
    if (n === 0) sum.fill(0, 0, len);
    // sum = ((0 + x_0 * w_0) + x_1 * w_1) + ..., out = f32(sum / z): the same operations as a zero-filled sum
    for (let i = 0; i < n; i++) {
      if (i === 0) scaleInit(chunk.models[0]!, sum, len, this.weights[0]!);
      else scaleAdd(chunk.models[i]!, sum, len, this.weights[i]!);
    }
    quotientInto(sum, out, len, this.divisor);
  }
}

class PassthroughMerger implements TensorMerger {
  readonly chunking = 'elements' as const;
  private readonly scale: number | undefined;

  constructor(ctx: TensorContext) {
    if (ctx.modelCount !== 1) {
      throw new UsageError('USAGE', `passthrough expects exactly one input for tensor '${ctx.name}' (got ${ctx.modelCount})`, { where: { tensor: ctx.name } });
    }
    const s = ctx.modelParams[0]!.scale;
    this.scale = typeof s === 'number' ? s : undefined;
  }

  emit(chunk: Chunk, out: Float32Array): void {
    const x = chunk.models[0]!;
    const len = chunk.length;
    if (this.scale === undefined) {
      out.set(x.subarray(0, len));
      return;
    }
    const s = this.scale;
    for (let j = 0; j < len; j++) out[j] = x[j]! * s;
  }
}

class NearswapMerger implements TensorMerger {
  readonly chunking = 'elements' as const;
  private readonly t: number;

  constructor(ctx: TensorContext) {
    if (!ctx.hasBase) throw new UsageError('USAGE', `nearswap needs a base model (tensor '${ctx.name}')`, { where: { tensor: ctx.name } });
    this.t = numParam(ctx.params.t, NaN);
    if (!Number.isFinite(this.t)) throw new UsageError('USAGE', `nearswap needs the parameter 't' (tensor '${ctx.name}')`, { where: { tensor: ctx.name } });
  }

  emit(chunk: Chunk, out: Float32Array): void {
    const len = chunk.length;
    const a = chunk.base!;
    const b = chunk.models[0]!;
    const t = this.t;
    for (let j = 0; j < len; j++) {
      const x = a[j]!;
      const y = b[j]!;
      const diff = Math.fround(Math.abs(x - y)); // |a − b| in f32, as mergekit
      const w = Math.min(1, Math.max(0, t / Math.max(diff, 1e-6)));
      out[j] = w * y + (1 - w) * x;
    }
  }
}

class NegMergeMerger implements TensorMerger {
  readonly chunking = 'elements' as const;
  private readonly n: number;
  private readonly lambda: number;
  private sum = new Float64Array(0);
  private sgn = new Float64Array(0);
  private tau = new Float32Array(0);

  constructor(ctx: TensorContext) {
    if (!ctx.hasBase) throw new UsageError('USAGE', `negmerge needs a base model (tensor '${ctx.name}')`, { where: { tensor: ctx.name } });
    this.n = ctx.modelCount;
    this.lambda = numParam(ctx.params.lambda, 1);
  }

  emit(chunk: Chunk, out: Float32Array): void {
    const len = chunk.length;
    const base = chunk.base!;
    const n = this.n;
    if (n === 0) {
      out.set(base.subarray(0, len));
      return;
    }
    if (this.sum.length < len) {
      this.sum = new Float64Array(len);
      this.sgn = new Float64Array(len);
      this.tau = new Float32Array(len);
    }
    const sum = this.sum;
    const sgn = this.sgn;
    const tau = this.tau;
    sum.fill(0, 0, len);
    sgn.fill(0, 0, len);
    for (let i = 0; i < n; i++) {
      const x = chunk.models[i]!;
      for (let j = 0; j < len; j++) tau[j] = x[j]! - base[j]!;
      for (let j = 0; j < len; j++) {
        const v = tau[j]!;
        sum[j] += v;
        sgn[j] += v > 0 ? 1 : v < 0 ? -1 : 0;
      }
    }
    const lambda = this.lambda;
    for (let j = 0; j < len; j++) {
      // all n task vectors non-zero with one sign: |Σ sign| = n
      const keep = Math.abs(sgn[j]!) === n;
      out[j] = keep ? base[j]! - lambda * (sum[j]! / n) : base[j]!;
    }
  }
}

export const SIMPLE_METHODS: readonly MergeMethod[] = [
  {
    name: 'linear',
    base: 'input',
    minModels: 1,
    params: [{ name: 'normalize', type: 'boolean', default: true, description: 'divide by the sum of the weights' }],
    modelParams: [{ name: 'weight', type: 'number', required: true, description: 'weight of this model in the average' }],
    summary: 'Weighted average of the inputs (a given base_model is one more input and needs a weight).',
    formula: 'R = Σ_i w_i X_i; with normalize (default) R := R / Σ_i w_i.',
    reference: 'Wortsman et al., "Model soups", ICML 2022 (arXiv 2203.05482); mergekit: merge_methods/linear.py',
    differences:
      'Weights that sum to 0 (|Σ w| < 1e-12) under normalize raise a RECIPE_WEIGHT_SUM_ZERO UsageError naming the tensor instead of emitting inf/NaN. Sums run in f64 and round once (mergekit stacks and sums in the input dtype). Embedding shape rectification is the executor\'s job.',
    create: (ctx) => new LinearMerger(ctx),
    scratchBytesPerElement: 8,
  },
  {
    name: 'passthrough',
    base: 'none',
    minModels: 1,
    maxModels: 1,
    params: [],
    modelParams: [{ name: 'scale', type: 'number', description: 'multiply the tensor by this factor (unset: copy unchanged)' }],
    summary: 'Copy one input tensor unchanged, or scaled (frankenmerges with slices).',
    formula: 'R = X, or R = scale·X when scale is set.',
    reference: 'mergekit: merge_methods/passthrough.py',
    differences: 'The scaled product is computed in f64 and rounded once to f32.',
    create: (ctx) => new PassthroughMerger(ctx),
  },
  {
    name: 'nearswap',
    base: 'required',
    minModels: 1,
    maxModels: 1,
    params: [{ name: 't', type: 'number', required: true, min: 0, description: 'sameness threshold: entries within t of the base take the other model\'s value' }],
    modelParams: [],
    summary: 'NearSwap: take the other model where it is close to the base, move only partway where it is far.',
    formula: 'Per element: w = clamp(t / max(|B − X|, 1e-6), 0, 1); R = w·X + (1 − w)·B.',
    reference: 'alchemonaut, QuartetAnemoi-70B-t0.0001 (Hugging Face model card); mergekit: merge_methods/nearswap.py',
    differences: '|B − X| is rounded to f32 as in mergekit; the interpolation runs in f64 and rounds once.',
    create: (ctx) => new NearswapMerger(ctx),
  },
  {
    name: 'negmerge',
    base: 'required',
    vocabToBase: true,
    minModels: 1,
    params: [{ name: 'lambda', type: 'number', default: 1, description: 'forgetting strength: result = base − lambda·τ_NM' }],
    modelParams: [],
    summary: 'NegMerge (unlearning): negate the consensus of several forget-set task vectors, keeping only entries where all agree in sign.',
    formula:
      'τ_i = X_i − B for n models fine-tuned on the forget set; mask = 1 where all n τ_i are non-zero with the same sign (|Σ_i sign(τ_i)| = n), else 0; τ_NM = mask ⊙ (1/n)·Σ_i τ_i (the mean over all n, which there equals the mean of the agreeing values); result = B − λ·τ_NM. Pick λ on validation (the paper sweeps linspace(0, 1, 21) and keeps retain accuracy >= 0.95 × zero-shot).',
    reference: 'Kim, Han, Choe, "NegMerge: Sign-Consensual Weight Merging for Machine Unlearning", ICML 2025 (naver-ai/negmerge)',
    differences: 'Not a mergekit method. No per-model weights; sums in f64, rounded once.',
    create: (ctx) => new NegMergeMerger(ctx),
    scratchBytesPerElement: 20,
  },
];
