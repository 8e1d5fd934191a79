// karcher (mergekit `karcher`): iterative Riemannian mean of the inputs' directions on the sphere times their mean
// norm. The iterates lie in the span of the inputs, so it runs on the f64 Gram matrix (one statistics pass) and emits a
// fixed combination Σc_i x_i: identical bits at any chunking. Pure: no node: imports.

import type { Chunk, MergeMethod, TensorContext, TensorMerger } from '../types.js';
import { EMPTY_MERGER, accumulateGram, combinationNorm, copyMerger, linearInto, symmetrize, tensorError, warnNotFinite } from './geo-util.js';

/**
 * Coefficients c with result = Σ c_i x_i, from the Gram matrix G of the inputs, following mergekit's
 * `karcher_merge_tensors` with equal α_i = 1/n. Every vector is a coefficient vector over the x_i
 * (⟨v, v'⟩ = vᵀ G v', ⟨v, x_i⟩ = (G v)_i):
 *   n_i = sqrt(G_ii); inputs with n_i > tol are kept (u_i = e_i/n_i) and their α renormalised to α̃;
 *   u = Σ α̃_i u_i normalised (or u_first kept if ‖u‖ < tol);
 *   repeat ≤ max_iter: cos θ_i = clamp((G u)_i/n_i, −1, 1); T = Σ_{θ_i ≥ tol} α̃_i θ_i/sin θ_i (u_i − cos θ_i u);
 *     stop if ‖T‖ < tol; u := cos‖T‖ u + sin‖T‖ T/‖T‖, renormalised when ‖u‖ > tol;
 *   c = (Σ_i α_i n_i over all inputs) u.
 * Returns the coefficients and the number of update steps taken.
 */
export function karcherCoefficients(gram: Float64Array, n: number, maxIter: number, tol: number): { coef: Float64Array; iterations: number } {
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) norms[i] = Math.sqrt(Math.max(0, gram[i * n + i]!));
  const alpha = 1 / n;
  const valid: number[] = [];
  for (let i = 0; i < n; i++) if (norms[i]! > tol) valid.push(i);
  const coef = new Float64Array(n);
  if (valid.length === 0) return { coef, iterations: 0 };
  let alphaSum = 0;
  for (let k = 0; k < valid.length; k++) alphaSum += alpha;
  const a = alpha / alphaSum; // α_i / Σ_valid α_j (equal weights)
  let u = new Float64Array(n);
  for (const i of valid) u[i] = a / norms[i]!;
  const normU = combinationNorm(gram, n, u);
  if (normU < tol) {
    u.fill(0);
    u[valid[0]!] = 1 / norms[valid[0]!]!;
  } else {
    for (let i = 0; i < n; i++) u[i] = u[i]! / normU;
  }
  const gu = new Float64Array(n);
  const tv = new Float64Array(n);
  let iterations = 0;
  for (let it = 0; it < maxIter; it++) {
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += gram[i * n + j]! * u[j]!;
      gu[i] = s;
    }
    tv.fill(0);
    for (const i of valid) {
      const dot = Math.min(1, Math.max(-1, gu[i]! / norms[i]!));
      const theta = Math.acos(dot);
      if (theta < tol) continue;
      const f = (a * theta) / Math.sin(theta);
      tv[i] = tv[i]! + f / norms[i]!;
      for (let j = 0; j < n; j++) tv[j] = tv[j]! - f * dot * u[j]!;
    }
    const normT = combinationNorm(gram, n, tv);
    if (normT < tol) break;
    const c = Math.cos(normT);
    const s = Math.sin(normT) / normT;
    const next = new Float64Array(n);
    for (let j = 0; j < n; j++) next[j] = c * u[j]! + s * tv[j]!;
    u = next;
    iterations++;
    const un = combinationNorm(gram, n, u);
    if (un > tol) for (let j = 0; j < n; j++) u[j] = u[j]! / un;
  }
  let scale = 0;
  for (let i = 0; i < n; i++) scale += alpha * norms[i]!;
  for (let j = 0; j < n; j++) coef[j] = scale * u[j]!;
  return { coef, iterations };
}

function createKarcher(ctx: TensorContext): TensorMerger {
  if (ctx.numel === 0) return EMPTY_MERGER;
  // a base, if the driver passes one, is one more input (mergekit adds it and averages it like the others)
  const n = ctx.modelCount + (ctx.hasBase ? 1 : 0);
  if (n === 0) throw tensorError(ctx, 'karcher needs at least one input');
  if (n === 1) return copyMerger(ctx.hasBase ? 'base' : 0);
  const maxIter = ctx.params['max_iter'] as number;
  const tol = ctx.params['tol'] as number;
  const gram = new Float64Array(n * n);
  const inputs = (chunk: Chunk): Float32Array[] => (chunk.base ? [chunk.base, ...chunk.models] : [...chunk.models]);
  let coef: Float64Array | undefined;
  let iterations = 0;
  return {
    chunking: 'elements',
    beginPass(pass: number): boolean {
      if (pass === 0) {
        gram.fill(0);
        coef = undefined;
        return true;
      }
      symmetrize(gram, n);
      ({ coef, iterations } = karcherCoefficients(gram, n, maxIter, tol));
      if (coef.some((c) => !Number.isFinite(c))) warnNotFinite(ctx, "karcher's mean");
      return false;
    },
    observe(_pass, chunk: Chunk): void {
      accumulateGram(gram, inputs(chunk), undefined, 0, chunk.length);
    },
    emit(chunk: Chunk, out: Float32Array): void {
      if (!coef) throw tensorError(ctx, 'karcher: emit before the statistics pass');
      linearInto(out, undefined, 0, inputs(chunk), coef, 0, chunk.length);
    },
    report: (): Record<string, number> => ({ iterations, ...Object.fromEntries(Array.from(coef ?? [], (c, i) => [`c${i}`, c])) }),
  };
}

export const KARCHER: MergeMethod = {
  name: 'karcher',
  base: 'input',
  minModels: 1,
  params: [
    { name: 'max_iter', type: 'number', integer: true, min: 0, default: 10, description: 'maximum number of Karcher iterations' },
    { name: 'tol', type: 'number', min: 0, default: 1e-5, description: 'convergence tolerance (also the norm below which an input is ignored)' },
  ],
  modelParams: [],
  summary: 'Iterative Riemannian (Karcher) mean of the inputs\' directions on the hypersphere, times their mean norm; equal weights.',
  formula:
    'All inputs flattened, α_i = 1/n. n_i = ‖x_i‖, u_i = x_i/n_i; inputs with n_i ≤ tol are dropped from the direction ' +
    'and the α of the rest renormalised. u starts as the normalised Σα_i u_i (u_1 if that norm < tol); up to max_iter ' +
    'times: T = Σ α_i θ_i/sin θ_i · (u_i − cos θ_i·u) over the inputs with θ_i = arccos⟨u,u_i⟩ ≥ tol; stop when ' +
    '‖T‖ < tol, else u := cos‖T‖·u + sin‖T‖·T/‖T‖, renormalised. The result is (Σ_i α_i n_i over all inputs)·u. ' +
    'Computed exactly as a combination Σc_i x_i whose coefficients come from the Gram matrix.',
  reference: 'H. Karcher, "Riemannian center of mass and mollifier smoothing", CPAM 1977; mergekit merge_methods/karcher.py.',
  differences:
    'Computed from the f64 Gram matrix of the inputs (one statistics pass) and emitted as a fixed linear combination ' +
    'rounded once to f32; mergekit iterates over the full tensors in the input dtype with fp32 norms.',
  create: createKarcher,
};
