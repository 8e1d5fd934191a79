// The generalized task arithmetic family as configured instances of one engine (gta-core.ts): task_arithmetic,
// ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, della, della_linear; plus GTA_METHODS, the list of
// every method of this part of the catalog (sce, ram, ramplus_tl, linear, passthrough, nearswap, negmerge).
// Declarations only: names, parameters and defaults exactly as mergekit; no I/O.

import type { ParamProblem, ParamSpec, TensorParams } from '../../recipe/spec.js';
import { oneDensityPerModel } from './param-checks.js';
import type { MergeMethod } from '../types.js';
import { createGtaMerger, gtaModelStats, type GtaConfig, type Sparsifier } from './gta-core.js';
import { RAM_METHODS } from './ram.js';
import { SCE_METHOD } from './sce.js';
import { SIMPLE_METHODS } from './simple.js';

const MERGEKIT_GTA = 'mergekit: merge_methods/generalized_task_arithmetic.py, sparsify.py';

const COMMON_DIFF =
  'Sums, the sign vote and divisions run in f64 over f32 inputs and round once to f32 (mergekit computes in the tensor dtype, so low bits can differ).';
const RANDOM_DIFF =
  ' Masks come from a counter-based stream keyed by (seed, tensor name, model index, sparsifier), not torch\'s global RNG: the same seed gives the same bytes at any chunking, thread count or tensor order (and dare_linear/dare_ties, della/della_linear draw the same masks), but not mergekit\'s bytes.';
const MAGNITUDE_DIFF =
  ' Top-k ties are broken by element order (exactly k kept) where mergekit\'s argsort is arbitrary; floor(density·N) = 0 keeps nothing instead of aborting with an assertion.';
const OUTLIER_DIFF =
  ' When gamma·N < 1 (n_top = 0) the positions [n_bot, N) are kept; mergekit\'s slice [n_bot:-0] is empty and drops the whole delta of small tensors (under 100 elements at gamma 0.01). Ties are ordered by element position.';
const DELLA_DIFF =
  ' Ranks are exact, equal magnitudes ordered by element position (mergekit: arbitrary); a row of length 1 keeps with probability density instead of mergekit\'s 0/0 = NaN.';
const DISJOINT_DIFF =
  ' Extension `disjoint` (optional, unset by default): unset keeps mergekit exactly, `normalize` deciding between the weighted disjoint mean (true) and the plain sum (false); `disjoint: mean` or `disjoint: sum` overrides `normalize` for the disjoint merge, where mean = Σ m_i w_i δ_i / Σ m_i w_i (the TIES paper\'s dis-mean when all weights are 1) and sum = Σ m_i w_i δ_i (the ViT papers\' dis-sum, usually with lambda 0.3).';
const TRIM_SCOPE_DIFF =
  ' Extension `trim_scope`: tensor (default) is mergekit\'s per-tensor top-k; model is the TIES paper\'s trim over each model\'s whole flattened task vector (k_i = floor(d_i·N_total), all ties at the threshold kept so tensors merge in any order), computed by the whole-model pre-pass `modelStats` before any tensor is merged. With model scope each model\'s density must be one value for the whole model (a tensor whose filtered density differs is an error) and the L1 rescale, if on, stays per tensor.';

function gtaParams(defaultNormalize: boolean, defaultRescale: boolean, consensus: boolean, trimScope: boolean): ParamSpec[] {
  const out: ParamSpec[] = [
    { name: 'lambda', type: 'number', default: 1, description: 'scale of the merged task vector: result = base + lambda·M' },
    {
      name: 'normalize',
      type: 'boolean',
      default: defaultNormalize,
      description: consensus
        ? 'divide by the sum of the weights of the agreeing models at each element (weighted disjoint mean)'
        : 'divide by the sum of the weights (weighted average of the task vectors)',
    },
    {
      name: 'rescale',
      type: 'boolean',
      default: defaultRescale,
      description: 'after sparsifying, rescale each task vector to its original L1 norm (skipped if either norm < 1e-7)',
    },
    { name: 'int8_mask', type: 'boolean', default: false, description: 'accepted for mergekit compatibility; only saves memory there, no effect on results' },
  ];
  if (consensus) {
    out.push({
      name: 'disjoint',
      type: 'string',
      choices: ['mean', 'sum'],
      description: 'weightkit extension: disjoint merge after the sign vote, overriding normalize (mean: divide by the agreeing weights; sum: no division, the dis-sum of the ViT papers); unset: normalize decides',
    });
  }
  if (trimScope) {
    out.push({
      name: 'trim_scope',
      type: 'string',
      choices: ['tensor', 'model'],
      default: 'tensor',
      description: 'weightkit extension: top-k per tensor (mergekit) or over each model\'s whole task vector (TIES paper; one density per model)',
    });
  }
  return out;
}

function gtaModelParams(sparsifier: Sparsifier): ParamSpec[] {
  const out: ParamSpec[] = [
    { name: 'weight', type: 'number', required: true, description: 'scale of this model\'s task vector' },
    {
      name: 'density',
      type: 'number',
      default: 1,
      min: 0,
      max: 1,
      description: sparsifier === 'none' ? 'accepted for mergekit compatibility; unused (no sparsification)' : 'fraction of the task vector to keep (1 keeps all)',
    },
  ];
  if (sparsifier === 'outliers') {
    out.push({ name: 'gamma', type: 'number', default: 0.01, min: 0, max: 1, description: 'fraction of the largest-magnitude entries to drop as outliers' });
  }
  if (sparsifier === 'della') {
    out.push({
      name: 'epsilon',
      type: 'number',
      default: 0.15,
      min: 0,
      max: 0.5,
      description: 'half-width of the keep-probability range density ± epsilon (must stay inside (0, 1))',
    });
  }
  return out;
}

interface GtaDecl {
  readonly name: string;
  readonly sparsifier: Sparsifier;
  readonly consensus: boolean;
  readonly normalize: boolean;
  readonly rescale: boolean;
  readonly summary: string;
  readonly formula: string;
  readonly reference: string;
  readonly differences: string;
}

/**
 * Plan-time checks (MethodSpec.checkParams): DELLA's keep probabilities density ± epsilon must lie strictly inside
 * (0, 1); with trim_scope: model each model's density must be one value over the whole model (the pre-pass trims each
 * model's whole task vector at one density). The merge checks both again per tensor.
 */
function gtaCheckParams(sparsifier: GtaDecl['sparsifier'], t: TensorParams, state: Map<string, unknown>): ParamProblem[] {
  const problems: ParamProblem[] = [];
  t.modelParams.forEach((mp, i) => {
    const d = mp['density'];
    if (typeof d !== 'number') return;
    if (sparsifier === 'della') {
      const e = mp['epsilon'];
      if (typeof e === 'number' && d > 0 && d < 1 && !(d - e > 0 && d + e < 1)) {
        problems.push({ param: 'epsilon', model: i, message: `density ${d} ± epsilon ${e} must lie strictly inside (0, 1)` });
      }
    } else if (t.params['trim_scope'] === 'model') {
      const p = oneDensityPerModel(t, i, d, state);
      if (p) problems.push(p);
    }
  });
  return problems;
}


function gtaMethod(d: GtaDecl): MergeMethod {
  const cfg: GtaConfig = {
    name: d.name,
    sparsifier: d.sparsifier,
    consensus: d.consensus,
    defaultNormalize: d.normalize,
    defaultRescale: d.rescale,
  };
  const random = d.sparsifier === 'random' || d.sparsifier === 'della';
  const trimScope = d.sparsifier === 'magnitude';
  let differences = COMMON_DIFF;
  if (random) differences += RANDOM_DIFF;
  if (d.sparsifier === 'magnitude') differences += MAGNITUDE_DIFF;
  if (d.sparsifier === 'outliers') differences += OUTLIER_DIFF;
  if (d.sparsifier === 'della') differences += DELLA_DIFF;
  if (d.consensus) differences += ' Sign vote and mask exactly as mergekit: weighted deltas, a sum of exactly 0 elects +1, zero deltas excluded from vote and divisor.' + DISJOINT_DIFF;
  if (trimScope) differences += TRIM_SCOPE_DIFF;
  if (d.differences) differences += ' ' + d.differences;
  return {
    name: d.name,
    base: 'required',
    minModels: 1,
    params: gtaParams(d.normalize, d.rescale, d.consensus, trimScope),
    modelParams: gtaModelParams(d.sparsifier),
    summary: d.summary,
    formula: d.formula,
    reference: `${d.reference}; ${MERGEKIT_GTA}`,
    differences,
    ...(random ? { random: true } : {}),
    vocabToBase: true,
    create: (ctx) => createGtaMerger(cfg, ctx),
    ...(trimScope ? { modelStats: (params, modelParams) => gtaModelStats(cfg, params, modelParams) } : {}),
    ...(trimScope || d.sparsifier === 'della' ? { checkParams: (t, state) => gtaCheckParams(d.sparsifier, t, state) } : {}),
    // f32 delta + f64 random/sum (+ f64 vote and divisor, and one f32 masked delta per model, counted for 4 models)
    scratchBytesPerElement: d.consensus ? 4 + 16 + 16 + 4 * 4 : 4 + 16,
  };
}

const REF_TA = 'Ilharco et al., "Editing Models with Task Arithmetic", ICLR 2023 (arXiv 2212.04089)';
const REF_TIES = 'Yadav et al., "TIES-Merging: Resolving Interference When Merging Models", NeurIPS 2023 (arXiv 2306.01708)';
const REF_DARE = 'Yu et al., "Language Models are Super Mario: Absorbing Abilities from Homologous Models as a Free Lunch", ICML 2024 (arXiv 2311.03099)';
const REF_BREADCRUMBS = 'Davari & Belilovsky, "Model Breadcrumbs: Scaling Multi-Task Model Merging with Sparse Masks", ECCV 2024 (arXiv 2312.06795)';
const REF_DELLA = 'Deep et al., "DELLA-Merging: Reducing Interference in Model Merging through Magnitude-Based Sampling" (arXiv 2406.11617)';

const VOTE =
  'Δ_i = w_i·δ_i\'; elected sign s = +1 where Σ_i Δ_i >= 0, else −1; m_i = [sign(Δ_i) = s] (zero entries never match); M = Σ_i m_i Δ_i; with normalize (or disjoint: mean) M /= Σ_i m_i w_i, replaced by 1 where it is 0; result = B + λ·M.';
const NO_VOTE = 'M = Σ_i w_i δ_i\'; with normalize M /= Σ_i w_i (replaced by 1 when |Σ_i w_i| < 1e-8); result = B + λ·M.';
const RESCALE = 'with rescale, δ_i\' is multiplied by ‖δ_i‖₁ / ‖δ_i\'‖₁ over the tensor (skipped when either norm < 1e-7)';
const MAGNITUDE = 'δ_i = X_i − B keeps its top k = floor(d_i·N) entries by |δ_i| over the whole tensor (d_i >= 1 keeps all; k = 0 keeps none)';
const BERNOULLI = 'δ_i = X_i − B keeps each entry independently with probability d_i (d_i >= 1 keeps all)';
const OUTLIERS =
  'δ_i = X_i − B: target = floor(d_i·N), n_top = floor(γ_i·N), n_bot = N − target − n_top (if negative, n_top += n_bot and n_bot = 0); keep the entries ranked [n_bot, N − n_top) by ascending |δ_i|, i.e. drop the n_top largest outliers and the n_bot smallest (d_i >= 1 keeps all)';
const DELLA_PRUNE =
  'δ_i = X_i − B: in each row (mergekit ranks along dim 1; a 1-D tensor is one row) rank |δ_i| ascending, r = 0..n−1, and keep each entry with probability (d_i − ε_i) + 2ε_i·r/(n − 1) (d_i >= 1 keeps all, d_i <= 0 keeps none; otherwise 0 < d_i − ε_i and d_i + ε_i < 1 is required)';

export const GTA_FAMILY: readonly MergeMethod[] = [
  gtaMethod({
    name: 'task_arithmetic',
    sparsifier: 'none',
    consensus: false,
    normalize: false,
    rescale: false,
    summary: 'Add weighted task vectors (model − base) to the base.',
    formula: `δ_i = X_i − B (no sparsification; density and rescale have no effect); ${NO_VOTE}`,
    reference: REF_TA,
    differences: '',
  }),
  gtaMethod({
    name: 'ties',
    sparsifier: 'magnitude',
    consensus: true,
    normalize: true,
    rescale: false,
    summary: 'TIES: trim each task vector to its largest entries, elect a sign per entry, average the agreeing entries.',
    formula: `${MAGNITUDE}; ${RESCALE}; ${VOTE}`,
    reference: REF_TIES,
    differences: 'The vote uses weighted deltas and divides by the agreeing weights (mergekit), where the paper votes on unweighted trimmed vectors and divides by the count.',
  }),
  gtaMethod({
    name: 'dare_linear',
    sparsifier: 'random',
    consensus: false,
    normalize: false,
    rescale: true,
    summary: 'DARE: randomly drop task-vector entries, rescale, add the weighted sum to the base.',
    formula: `${BERNOULLI}; ${RESCALE}; ${NO_VOTE}`,
    reference: REF_DARE,
    differences: 'As mergekit, the rescale is a deterministic L1 norm match, not the paper\'s 1/density.',
  }),
  gtaMethod({
    name: 'dare_ties',
    sparsifier: 'random',
    consensus: true,
    normalize: false,
    rescale: true,
    summary: 'DARE drop-and-rescale followed by the TIES sign vote; sums the agreeing entries by default.',
    formula: `${BERNOULLI}; ${RESCALE}; ${VOTE}`,
    reference: `${REF_DARE}; ${REF_TIES}`,
    differences: 'As mergekit, the rescale is a deterministic L1 norm match, not the paper\'s 1/density.',
  }),
  gtaMethod({
    name: 'breadcrumbs',
    sparsifier: 'outliers',
    consensus: false,
    normalize: false,
    rescale: false,
    summary: 'Model Breadcrumbs: drop the largest outliers and the smallest entries of each task vector, add the weighted sum.',
    formula: `${OUTLIERS}; ${RESCALE}; ${NO_VOTE}`,
    reference: REF_BREADCRUMBS,
    differences: '',
  }),
  gtaMethod({
    name: 'breadcrumbs_ties',
    sparsifier: 'outliers',
    consensus: true,
    normalize: false,
    rescale: false,
    summary: 'Model Breadcrumbs sparsification followed by the TIES sign vote.',
    formula: `${OUTLIERS}; ${RESCALE}; ${VOTE}`,
    reference: `${REF_BREADCRUMBS}; ${REF_TIES}`,
    differences: '',
  }),
  gtaMethod({
    name: 'della',
    sparsifier: 'della',
    consensus: true,
    normalize: true,
    rescale: true,
    summary: 'DELLA: magnitude-ranked random pruning per row, L1 rescale, TIES sign vote, weighted disjoint mean.',
    formula: `${DELLA_PRUNE}; ${RESCALE}; ${VOTE}`,
    reference: REF_DELLA,
    differences: 'As mergekit, the rescale is a tensor-level L1 norm match, not the paper\'s per-entry 1/p.',
  }),
  gtaMethod({
    name: 'della_linear',
    sparsifier: 'della',
    consensus: false,
    normalize: false,
    rescale: true,
    summary: 'DELLA pruning and L1 rescale, then the weighted sum of the task vectors (no sign vote).',
    formula: `${DELLA_PRUNE}; ${RESCALE}; ${NO_VOTE}`,
    reference: REF_DELLA,
    differences: 'As mergekit, the rescale is a tensor-level L1 norm match, not the paper\'s per-entry 1/p.',
  }),
];

/** Every method of this part of the catalog, in the order `weightkit methods` lists them. */
export const GTA_METHODS: readonly MergeMethod[] = [...GTA_FAMILY, SCE_METHOD, ...RAM_METHODS, ...SIMPLE_METHODS];
