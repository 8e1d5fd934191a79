// multislerp (mergekit `multislerp`): one-step barycentric interpolation on the hypersphere. All its vectors lie in the
// span of the inputs, so it runs on the f64 Gram matrix (one statistics pass) and emits a fixed combination Σc_i x_i:
// identical bits at any chunking. Pure: no node: imports.

import type { Chunk, MergeMethod, TensorContext, TensorMerger } from '../types.js';
import { EMPTY_MERGER, accumulateGram, combinationNorm, copyMerger, deltaInto, linearInto, symmetrize, tensorError } from './geo-util.js';

/**
 * Coefficients c with result = Σ c_i x_i (x_i = inputs, or deltas from the base), from the Gram matrix G (n x n,
 * symmetric) of the x_i. Derivation, step by step from mergekit's code, writing every vector as a coefficient
 * vector over the x_i (v = Σ v_i x_i, so ⟨v, v'⟩ = vᵀ G v' and ⟨x_i, v⟩ = (G v)_i):
 *   n_i = sqrt(G_ii), u_i = x_i/(n_i + eps)                      → u_i = a_i e_i with a_i = 1/(n_i + eps)
 *   μ = Σ ŵ_i u_i                                                → m = ŵ ∘ a;  ‖μ‖ = sqrt(mᵀ G m)
 *   ‖μ‖ < eps: 2 inputs → Σ ŵ_i x_i (c = ŵ); otherwise the inputs cancel (error, returns undefined)
 *   μ := μ/‖μ‖                                                   → m := m/‖μ‖
 *   d_i = ⟨u_i, μ⟩ = a_i (G m)_i;  τ = Σ ŵ_i (u_i − d_i μ)        → τ = ŵ ∘ a − (Σ ŵ_i d_i) m
 *   s = ‖τ‖ + eps = sqrt(τᵀ G τ) + eps;  r = cos(s) μ + sin(s)/s τ → r = cos(s) m + (sin(s)/s) τ
 *   result = r · Σ ŵ_i n_i                                       → c = (Σ ŵ_i n_i) r
 * `weights` are the already normalised ŵ when normalize_weights is on. Note that τ = μ₀ − ⟨μ₀,μ⟩μ with μ₀ the
 * unnormalised mean, which vanishes identically: the result is μ·Σŵ_i‖x_i‖ up to rounding and the cos(eps) factor.
 * The steps are kept anyway so that the rounding follows mergekit's formula.
 */
export function multislerpCoefficients(gram: Float64Array, n: number, weights: Float64Array, eps: number): Float64Array | undefined {
  const norms = new Float64Array(n);
  const a = new Float64Array(n);
  const m = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    norms[i] = Math.sqrt(Math.max(0, gram[i * n + i]!));
    a[i] = 1 / (norms[i]! + eps);
    m[i] = weights[i]! * a[i]!;
  }
  const muNorm = combinationNorm(gram, n, m);
  if (muNorm < eps) {
    // weightkit: inputs that are all (near) zero, e.g. a tensor no fine-tune changed, are not antipodal: their
    // weighted mean (the base) is the answer, as mergekit gives for two inputs
    let allZero = true;
    for (let i = 0; i < n; i++) if (!(norms[i]! < eps)) allZero = false;
    return n === 2 || allZero ? Float64Array.from(weights) : undefined;
  } // NaN propagates, as in torch
  for (let i = 0; i < n; i++) m[i] = m[i]! / muNorm;
  let sumWd = 0;
  for (let i = 0; i < n; i++) {
    let gm = 0;
    for (let j = 0; j < n; j++) gm += gram[i * n + j]! * m[j]!;
    sumWd += weights[i]! * (a[i]! * gm);
  }
  const tau = new Float64Array(n);
  for (let i = 0; i < n; i++) tau[i] = weights[i]! * a[i]! - sumWd * m[i]!;
  const s = combinationNorm(gram, n, tau) + eps;
  const cs = Math.cos(s);
  const sn = Math.sin(s) / s;
  let avgNorm = 0;
  for (let i = 0; i < n; i++) avgNorm += norms[i]! * weights[i]!;
  const c = new Float64Array(n);
  for (let i = 0; i < n; i++) c[i] = (cs * m[i]! + sn * tau[i]!) * avgNorm;
  return c;
}

function createMultislerp(ctx: TensorContext): TensorMerger {
  if (ctx.numel === 0) return EMPTY_MERGER;
  const n = ctx.modelCount;
  if (n === 0) {
    if (ctx.hasBase) return copyMerger('base');
    throw tensorError(ctx, 'multislerp needs at least one model');
  }
  if (n === 1) return copyMerger(0); // mergekit returns a single tensor as is (even with a base)
  const eps = ctx.params['eps'] as number;
  const weights = Float64Array.from(ctx.modelParams, (p) => p['weight'] as number);
  if (ctx.params['normalize_weights'] !== false) {
    let sum = 0;
    for (const w of weights) sum += w;
    if (sum === 0 || !Number.isFinite(sum)) {
      throw tensorError(ctx, `multislerp: the weights sum to ${sum}, so normalize_weights cannot divide by it (set normalize_weights: false or change the weights)`);
    }
    for (let i = 0; i < n; i++) weights[i] = weights[i]! / sum;
  }
  const gram = new Float64Array(n * n);
  let coef: Float64Array | undefined;
  return {
    chunking: 'elements',
    beginPass(pass: number): boolean {
      if (pass === 0) {
        gram.fill(0);
        coef = undefined;
        return true;
      }
      symmetrize(gram, n);
      coef = multislerpCoefficients(gram, n, weights, eps);
      if (!coef) {
        throw tensorError(
          ctx,
          'multislerp: the weighted mean of the unit inputs is zero (antipodal inputs whose weights cancel, e.g. a and −a with equal weights); use different weights',
        );
      }
      return false;
    },
    observe(_pass, chunk: Chunk): void {
      accumulateGram(gram, chunk.models, chunk.base, 0, chunk.length);
    },
    emit(chunk: Chunk, out: Float32Array): void {
      if (!coef) throw tensorError(ctx, 'multislerp: emit before the statistics pass');
      if (chunk.base) deltaInto(out, chunk.base, chunk.models, coef, 0, chunk.length);
      else linearInto(out, undefined, 0, chunk.models, coef, 0, chunk.length);
    },
    report: (): Record<string, number> => Object.fromEntries(Array.from(coef ?? [], (c, i) => [`c${i}`, c])),
  };
}

export const MULTISLERP: MergeMethod = {
  name: 'multislerp',
  base: 'optional',
  minModels: 1,
  params: [
    { name: 'normalize_weights', type: 'boolean', default: true, description: 'divide the weights by their sum' },
    { name: 'eps', type: 'number', default: 1e-8, min: 0, description: 'numerical-stability constant added to norms' },
  ],
  modelParams: [{ name: 'weight', type: 'number', required: true, description: 'barycentric weight of the model' }],
  summary: 'One-step barycentric interpolation of any number of models on the hypersphere, rescaled by the weighted mean norm.',
  formula:
    'With a base, x_i = X_i − B, else x_i = X_i (flattened); ŵ = w/Σw if normalize_weights. u_i = x_i/(‖x_i‖+eps), ' +
    'μ = Σŵ_i u_i; if ‖μ‖ < eps, two inputs give Σŵ_i x_i and more are an error (antipodal); μ := μ/‖μ‖; the tangent ' +
    'vectors τ_i = u_i − ⟨u_i,μ⟩μ are averaged, τ = Σŵ_i τ_i; with s = ‖τ‖+eps the exponential map gives ' +
    'r = cos(s)·μ + sin(s)/s·τ, and the result is r·Σŵ_i‖x_i‖ (+ B). A projection approximation: no θ/sin θ factor ' +
    'and no iteration (τ is in fact zero up to rounding, so the result is the normalised weighted mean direction times ' +
    'the weighted mean norm). Computed exactly as a combination Σc_i x_i whose coefficients come from the Gram matrix.',
  reference: 'C. Goddard, "Multi-SLERP" (goddard.blog/posts/multislerp-wow-what-a-cool-idea); mergekit merge_methods/multislerp.py.',
  differences:
    'Computed from the f64 Gram matrix of the inputs (one statistics pass) and emitted as a fixed linear combination ' +
    'rounded once to f32, where mergekit works on the stacked tensors in the input dtype. Weights summing to 0 with ' +
    'normalize_weights are an error naming the tensor instead of a NaN tensor. The antipodal case is a UsageError ' +
    'naming the tensor, except when every input has norm < eps (e.g. a tensor that no fine-tune changed, in ' +
    'task-vector space): mergekit raises there with more than two inputs; weightkit returns the weighted mean (the base).',
  create: createMultislerp,
};
