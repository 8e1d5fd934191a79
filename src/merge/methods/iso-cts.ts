// Iso-CTS (Marczak et al., ICML 2025, "No Task Left Behind"): Iso-C's common subspace (the top singular directions
// of the summed task vector) completed with each task's top directions outside it, both sides orthogonalised by
// their polar factors, with an isotropic (mean) spectrum. 2-D tensors are merged whole in compute() with the big
// products on ctx.linalg; other tensors are averaged. Shares TSV-M's building blocks (tsv.ts).

import { fromArray } from '../../tensor/linalg/matrix.js';
import { randomizedSvd } from '../../tensor/linalg/randomized.js';
import { jacobiSvd } from '../../tensor/linalg/svd.js';
import { randomU32 } from '../../tensor/rng.js';
import type { Chunk, MergeMethod, Params, TensorContext, TensorMerger, WholeTensorCost } from '../types.js';
import { EMPTY_MERGER } from './geo-util.js';
import {
  ALPHA,
  checkInputs,
  common,
  DECOMPOSE,
  decomposes,
  DEFAULT_POWER_ITERATIONS,
  defaultOversampling,
  EIGEN_JS_FLOPS,
  EXACT_MAX_DIM,
  exactPath,
  finiteTaskVectors,
  jacobiFlops,
  keptCount,
  leading,
  meanMerger,
  polarCost,
  polarRecombine,
  WEIGHT,
  wholeTensor,
  type Common,
  type SvdMode,
} from './tsv.js';

/** Python's round(): halves go to the even neighbour (the reference sizes its subspaces with it). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Sizes of the common and task-specific subspaces for rank r, T tasks and the common fraction: common starts at
 * ⌊r·fraction⌋ and gives up what the task part needs to split evenly (T·round((r − common)/T)), as the reference
 * does; never negative.
 */
export function ctsSplit(r: number, tasks: number, fraction: number): { common: number; perTask: number } {
  const c0 = Math.floor(r * fraction);
  let total = roundHalfEven((r - c0) / tasks) * tasks;
  while (total > r) total -= tasks;
  return { common: r - total, perTask: total / tasks };
}

interface CtsReport {
  common: number;
  perTask: number;
  meanSigma: number;
  polarIterations: number;
}

/** σ̄·polar(U_cat)·polar(V_cat)ᵀ with σ̄ = (sum of the kept singular values) / r: the isotropic spectrum. */
async function recombine(us: (Float64Array | Float32Array)[], vs: (Float64Array | Float32Array)[], widths: number[], total: number, r: number, m: number, n: number, c: Common, rep: CtsReport): Promise<ArrayLike<number>> {
  const cw = widths.reduce((a, b) => a + b, 0);
  const mean = total / r;
  rep.meanSigma = mean;
  if (cw === 0) return new Float64Array(m * n);
  const res = await polarRecombine(us, vs, widths, new Float64Array(cw).fill(mean), m, n, c);
  rep.polarIterations = res.iterations;
  return res.out;
}

/** M = σ_iso·polar(U_cat)·polar(V_cat)ᵀ (m·n values) for the summed task vector and the tasks, see the module comment. */
async function isoCtsMerge(taus: readonly Float32Array[], m: number, n: number, fraction: number, c: Common, seedOf: (t: number) => number, rep: CtsReport): Promise<ArrayLike<number>> {
  const r = Math.min(m, n);
  const T = taus.length;
  const { common: k, perTask } = ctsSplit(r, T, fraction);
  rep.common = k;
  rep.perTask = perTask;
  const size = m * n;
  if (c.exact) {
    const sum = new Float64Array(size);
    for (const tau of taus) for (let i = 0; i < size; i++) sum[i] = sum[i]! + tau[i]!;
    const svd = jacobiSvd(fromArray(sum, m, n));
    const kc = keptCount(svd.s, k);
    const uc = leading((len) => new Float64Array(len), svd.u.data, m, r, kc);
    const us: Float64Array[] = [uc];
    const vs: Float64Array[] = [leading((len) => new Float64Array(len), svd.v.data, n, r, kc)];
    const widths = [kc];
    let total = 0;
    for (let j = 0; j < kc; j++) total += svd.s[j]!;
    if (perTask > 0) {
      for (const tau of taus) {
        // w = (I − U_c·U_cᵀ)·τ in f64
        const w = Float64Array.from(tau);
        const proj = new Float64Array(kc);
        for (let j = 0; j < n; j++) {
          proj.fill(0);
          for (let i = 0; i < m; i++) {
            const x = tau[i * n + j]!;
            for (let l = 0; l < kc; l++) proj[l] = proj[l]! + uc[i * kc + l]! * x;
          }
          for (let i = 0; i < m; i++) {
            let acc = 0;
            for (let l = 0; l < kc; l++) acc += uc[i * kc + l]! * proj[l]!;
            w[i * n + j] = w[i * n + j]! - acc;
          }
        }
        const ts = jacobiSvd(fromArray(w, m, n));
        const kt = keptCount(ts.s, perTask);
        us.push(leading((len) => new Float64Array(len), ts.u.data, m, r, kt));
        vs.push(leading((len) => new Float64Array(len), ts.v.data, n, r, kt));
        widths.push(kt);
        for (let j = 0; j < kt; j++) total += ts.s[j]!;
      }
    }
    return recombine(us, vs, widths, total, r, m, n, c, rep);
  }
  const be = c.backend;
  const sum = new Float32Array(size);
  for (const tau of taus) for (let i = 0; i < size; i++) sum[i] = sum[i]! + tau[i]!;
  const f32 = (len: number): Float32Array => new Float32Array(len);
  const us: Float32Array[] = [];
  const vs: Float32Array[] = [];
  const widths: number[] = [];
  let total = 0;
  let uc: Float32Array = new Float32Array(0);
  let kc = 0;
  if (k > 0) {
    const svd = await randomizedSvd(sum, m, n, k, { backend: be, seed: seedOf(T), oversampling: c.oversampling ?? defaultOversampling(k), powerIterations: c.powerIterations });
    kc = keptCount(svd.s, k);
    uc = leading(f32, svd.u, m, k, kc);
    us.push(uc);
    vs.push(leading(f32, svd.v, n, k, kc));
    widths.push(kc);
    for (let j = 0; j < kc; j++) total += svd.s[j]!;
  }
  if (perTask > 0) {
    for (const [t, tau] of taus.entries()) {
      let w = tau;
      if (kc > 0) {
        const proj = await be.matmul(uc, tau, kc, m, n, { transA: true }); // U_cᵀ·τ
        const back = await be.matmul(uc, proj, m, kc, n);
        w = Float32Array.from(tau, (x, i) => x - back[i]!);
      }
      const svd = await randomizedSvd(w, m, n, perTask, { backend: be, seed: seedOf(t), oversampling: c.oversampling ?? defaultOversampling(perTask), powerIterations: c.powerIterations });
      const kt = keptCount(svd.s, perTask);
      us.push(leading(f32, svd.u, m, perTask, kt));
      vs.push(leading(f32, svd.v, n, perTask, kt));
      widths.push(kt);
      for (let j = 0; j < kt; j++) total += svd.s[j]!;
    }
  }
  return recombine(us, vs, widths, total, r, m, n, c, rep);
}

function createIsoCts(ctx: TensorContext): TensorMerger {
  checkInputs(ctx, 'iso_cts');
  if (ctx.numel === 0) return EMPTY_MERGER;
  if (!decomposes(ctx)) return meanMerger(ctx);
  const c = common(ctx, (ctx.params['svd'] as SvdMode | undefined) ?? 'auto');
  const fraction = typeof ctx.params['common_space_fraction'] === 'number' ? ctx.params['common_space_fraction'] : 0.8;
  const [m, n] = [ctx.shape[0]!, ctx.shape[1]!];
  const rep: CtsReport = { common: 0, perTask: 0, meanSigma: 0, polarIterations: 0 };
  // stream T seeds the common subspace's sketch, 0..T−1 the tasks'
  const seedOf = (t: number): number => randomU32(ctx.rng(t, 'iso_cts'), 0);
  return wholeTensor(
    (chunk: Chunk) => {
      return isoCtsMerge(finiteTaskVectors(ctx, 'iso_cts', chunk, c.weights), m, n, fraction, c, seedOf, rep);
    },
    c.alpha,
    () => ({ common: rep.common, per_task: rep.perTask, mean_sigma: rep.meanSigma, polar_iterations: rep.polarIterations, exact: c.exact ? 1 : 0 }),
  );
}

function isoCtsCost(shape: readonly number[], T: number, params: Params): WholeTensorCost | undefined {
  if (shape.length !== 2 || params['decompose'] === false || T < 1) return undefined;
  const [m, n] = [shape[0]!, shape[1]!];
  if (m * n === 0) return undefined;
  const r = Math.min(m, n);
  const fraction = typeof params['common_space_fraction'] === 'number' ? params['common_space_fraction'] : 0.8;
  const { common: k, perTask } = ctsSplit(r, T, fraction);
  const held = (2 * T + 4) * m * n * 4; // base, inputs, task vectors and their sum in f32, the f64 result
  if (exactPath(shape, params, params['svd'])) {
    return { bytes: held + (m * n + (m + n) * r) * 8 * 3, flops: 0, jsFlops: (T + 1) * jacobiFlops(m, n) + 4 * T * m * n * k + jacobiFlops(m, r) + jacobiFlops(n, r) + 2 * m * r * n };
  }
  const q = typeof params['power_iterations'] === 'number' ? params['power_iterations'] : DEFAULT_POWER_ITERATIONS;
  let js = 0;
  const rsvd = (kk: number): number => {
    if (kk === 0) return 0;
    const p = typeof params['oversampling'] === 'number' ? params['oversampling'] : defaultOversampling(kk);
    const l = Math.min(kk + p, m, n);
    js += EIGEN_JS_FLOPS * l ** 3;
    return (2 * q + 2) * 2 * m * n * l + (2 * q + 1) * 7 * Math.max(m, n) * l * l + 4 * l ** 3 + 2 * (m + n) * l * kk;
  };
  const l = Math.min(k + (typeof params['oversampling'] === 'number' ? params['oversampling'] : defaultOversampling(Math.max(k, 1))), m, n);
  const pu = polarCost(m, r);
  const pv = polarCost(n, r);
  const flops = rsvd(k) + T * (rsvd(perTask) + (k > 0 ? 4 * m * n * k : 0)) + pu.flops + pv.flops + 2 * m * r * n;
  return { bytes: held + 2 * (m + n) * r * 4 + Math.max((m + 3 * n) * l * 4 + l * l * 24, pu.bytes, pv.bytes), flops, jsFlops: js };
}

export const ISO_CTS: MergeMethod = {
  name: 'iso_cts',
  base: 'required',
  vocabToBase: true,
  minModels: 1,
  params: [
    ALPHA,
    { name: 'common_space_fraction', type: 'number', min: 0, max: 1, default: 0.8, description: 'share of the rank r = min(m, n) given to the common subspace of Σ_t τ_t; the rest is split evenly between the tasks' },
    { name: 'svd', type: 'string', choices: ['exact', 'randomized', 'auto'], default: 'auto', description: "the SVDs and polar factors: 'exact' (Jacobi in f64, small tensors), 'randomized' (Halko range finder, and polar factors by scaled Newton for square ones with the native kernels, Newton–Schulz-type products otherwise, on the linalg backend), 'auto' (exact up to exact_max_dim)" },
    EXACT_MAX_DIM,
    { name: 'oversampling', type: 'number', integer: true, min: 0, description: 'randomized SVDs: extra sketch columns p (unset: max(10, ⌈k/4⌉) for a subspace of rank k)' },
    { name: 'power_iterations', type: 'number', integer: true, min: 0, default: DEFAULT_POWER_ITERATIONS, description: 'randomized SVDs: subspace iterations q' },
    DECOMPOSE,
  ],
  modelParams: [WEIGHT],
  summary: 'Iso-CTS: Iso-C\'s common subspace completed with each task\'s own directions, orthogonalised, isotropic spectrum.',
  formula:
    'For each 2-D tensor: τ_t = weight_t·(X_t − B), τ_Σ = Σ_t τ_t = U S Vᵀ, r = min(m, n); k = r − T·round((r − ⌊r·f⌋)/T) ' +
    'common directions (f = common_space_fraction) and s = (r − k)/T per task; for each task the top s triplets of ' +
    '(I − U_k U_kᵀ)·τ_t; U_cat = [U_k, U_1 … U_T], V_cat likewise; τ = σ̄·polar(U_cat)·polar(V_cat)ᵀ with σ̄ the mean of ' +
    'the r kept singular values (common and task-specific). Other tensors: τ = mean_t τ_t. Result B + alpha·τ. ' +
    'common_space_fraction 1 gives Iso-C; the paper uses alpha 1.5. Cost: T + 1 SVDs (exact: Jacobi in JS f64; ' +
    'randomized: the common one of rank k ≈ 0.8r is close to a full decomposition, each task one of rank s plus two ' +
    'm·k·n projection products) and two polar factors of m x r and n x r, like TSV-M; `merge --dry-run` prints the ' +
    'estimate. Memory about (2T + 4)·m·n f32 plus the factors.',
  reference: 'Marczak et al., "No Task Left Behind: Isotropic Model Merging with Common and Task-Specific Subspaces", ICML 2025 (danielm1405/iso-merging; FusionBench iso_cts).',
  differences:
    'Not in mergekit. As for tsv: triplets with σ ≤ 1e-6·σ_max of their decomposition are left out of U_cat/V_cat ' +
    '(the reference keeps arbitrary vectors for them), while their zero σ still count in the mean, as in the ' +
    'reference; the polar factor is the partial isometry on the range. Subspace sizes use Python\'s round, as the ' +
    'reference; a common size that would go negative is clamped. NaN or infinity in a decomposed tensor: ' +
    'VECTOR_NOT_FINITE, as for tsv.',
  random: true,
  linalg: true,
  scratchBytesPerElement: 56,
  wholeTensorCost: isoCtsCost,
  create: createIsoCts,
};
