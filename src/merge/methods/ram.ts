// ram and ramplus_tl (Reinforced Agent Merging): entries changed by one model are taken as is, entries changed
// by several are averaged over those models; ramplus_tl boosts each model's unique entries by a per-tensor factor.
// Streams f32 chunks, f64 per-element math; bit-identical at any chunking. Imports merge types and the
// elementwise kernels of gta-kernels.ts only.

import { UsageError } from '../../errors.js';
import { deltaCountActive } from './gta-kernels.js';
import type { Chunk, MergeMethod, TensorContext, TensorMerger } from '../types.js';

class RamMerger implements TensorMerger {
  readonly chunking = 'elements' as const;
  private readonly n: number;
  /** activity threshold, rounded to f32 as torch compares an f32 tensor with a Python float */
  private readonly eps: number;
  private readonly epsRaw: number;
  private readonly r: number;
  private readonly alpha: number;
  private readonly shared: Float64Array;
  private readonly unique: Float64Array;
  /** boost of each model's unique entries (1 for plain ram) */
  private readonly boost: Float64Array;
  private tau: Float32Array[] = [];
  private count = new Float64Array(0);
  private sum = new Float64Array(0);

  constructor(
    private readonly plus: boolean,
    ctx: TensorContext,
  ) {
    const name = plus ? 'ramplus_tl' : 'ram';
    if (!ctx.hasBase) throw new UsageError('USAGE', `${name} needs a base model (tensor '${ctx.name}')`, { where: { tensor: ctx.name } });
    this.n = ctx.modelCount;
    const p = ctx.params;
    this.epsRaw = typeof p.epsilon === 'number' ? p.epsilon : 1e-5;
    this.eps = Math.fround(this.epsRaw);
    this.r = typeof p.r === 'number' ? p.r : 0.1;
    this.alpha = typeof p.alpha === 'number' ? p.alpha : 0.2;
    this.shared = new Float64Array(this.n);
    this.unique = new Float64Array(this.n);
    this.boost = new Float64Array(this.n).fill(1);
  }

  beginPass(pass: number): boolean {
    if (!this.plus || this.n === 0) return false;
    if (pass === 0) {
      this.shared.fill(0);
      this.unique.fill(0);
      return true;
    }
    for (let i = 0; i < this.n; i++) {
      const rho = this.shared[i]! / Math.max(this.unique[i]!, this.epsRaw);
      this.boost[i] = 1 + this.r * Math.min(this.alpha, Math.max(0, rho));
    }
    return false;
  }

  /** tau_i (f32) for every model and, per element, how many models are active (|tau_i| > epsilon) */
  private load(chunk: Chunk): void {
    const len = chunk.length;
    if (this.count.length < len) {
      this.tau = Array.from({ length: this.n }, () => new Float32Array(len));
      this.count = new Float64Array(len);
      this.sum = new Float64Array(len);
    }
    const base = chunk.base!;
    const count = this.count;
    const eps = this.eps;
    count.fill(0, 0, len);
    for (let i = 0; i < this.n; i++) {
      const x = chunk.models[i]!;
      const t = this.tau[i]!;
      deltaCountActive(x, base, t, count, len, eps);
    }
  }

  observe(_pass: number, chunk: Chunk): void {
    this.load(chunk);
    const len = chunk.length;
    const count = this.count;
    const eps = this.eps;
    for (let i = 0; i < this.n; i++) {
      const t = this.tau[i]!;
      let sh = this.shared[i]!;
      let un = this.unique[i]!;
      for (let j = 0; j < len; j++) {
        if (Math.abs(t[j]!) > eps) {
          const c = count[j]!;
          if (c === 1) un++;
          else sh++;
        }
      }
      this.shared[i] = sh;
      this.unique[i] = un;
    }
  }

  emit(chunk: Chunk, out: Float32Array): void {
    const len = chunk.length;
    const base = chunk.base!;
    if (this.n === 0) {
      for (let j = 0; j < len; j++) out[j] = base[j]!;
      return;
    }
    this.load(chunk);
    const count = this.count;
    const sum = this.sum;
    const eps = this.eps;
    sum.fill(0, 0, len);
    for (let i = 0; i < this.n; i++) {
      const t = this.tau[i]!;
      const b = this.boost[i]!;
      for (let j = 0; j < len; j++) {
        const v = t[j]!;
        if (Math.abs(v) > eps) {
          const c = count[j]!;
          sum[j] += c === 1 ? v * b : v / c;
        }
      }
    }
    for (let j = 0; j < len; j++) out[j] = base[j]! + sum[j]!;
  }
}

const REF_RAM = 'Reinforced Agent Merging (arXiv 2601.13572); mergekit: merge_methods/ram.py';
const DIFF_RAM =
  'Per-element sums and divisions run in f64 over f32 inputs and round once (mergekit computes in the tensor dtype). Epsilon is compared in f32, as torch compares an f32 tensor with a Python float.';

export const RAM_METHODS: readonly MergeMethod[] = [
  {
    name: 'ram',
    base: 'required',
    vocabToBase: true,
    minModels: 1,
    params: [{ name: 'epsilon', type: 'number', default: 1e-5, min: 0, description: 'an entry is active in a model when |X_i − B| > epsilon' }],
    modelParams: [],
    summary: 'RAM: keep entries changed by one model as is, average entries changed by several over those models.',
    formula:
      'τ_i = X_i − B; a_i = [|τ_i| > ε]; c = Σ_i a_i per element. Result = B + Σ_i a_i τ_i / c where c >= 1 (an entry with c = 1 is unique and taken as is); inactive entries keep B. No user weights.',
    reference: REF_RAM,
    differences: DIFF_RAM,
    create: (ctx) => new RamMerger(false, ctx),
    scratchBytesPerElement: 20,
  },
  {
    name: 'ramplus_tl',
    base: 'required',
    vocabToBase: true,
    minModels: 1,
    params: [
      { name: 'r', type: 'number', default: 0.1, min: 0, description: 'boost strength for unique entries' },
      { name: 'alpha', type: 'number', default: 0.2, min: 0, description: 'cap on the shared/unique ratio rho' },
      { name: 'epsilon', type: 'number', default: 1e-5, min: 0, description: 'an entry is active in a model when |X_i − B| > epsilon' },
    ],
    modelParams: [],
    summary: 'RAM+ (tensor-local): RAM with each model\'s unique entries boosted by how much that model overlaps the others in this tensor.',
    formula:
      'As ram, and per model i within this tensor: ρ_i = (#active shared entries of i) / max(#active unique entries of i, ε), λ_i = 1 + r·clamp(ρ_i, 0, α); unique entries are multiplied by λ_i: result = B + Σ_i a_i τ_i·(c = 1 ? λ_i : 1/c).',
    reference: REF_RAM,
    differences: DIFF_RAM + ' The counts come from a statistics pass over the whole tensor, so chunking does not change them.',
    create: (ctx) => new RamMerger(true, ctx),
    scratchBytesPerElement: 20,
  },
];
