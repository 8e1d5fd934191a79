// LIFT principal weights (Liu et al., ICML 2025): per weight matrix W, the k largest-magnitude entries of its rank-r
// approximation W_r, compared with the plain magnitude top-k of W; masks optionally written as BOOL/U8 safetensors.
// Guarantees: exactly k entries per mask (exact top-k by radix threshold, ties by element order), one matrix in
// memory at a time. Must not import src/eval, src/cli or onnxruntime (the caller hands a MatMulBackend).

import { UsageError, VectorError } from '../errors.js';
import { openCheckpointSink, sinkKindOf, type CheckpointSink } from '../io/sink.js';
import type { CheckpointReader, TensorDecl, TensorInfo } from '../io/types.js';
import { EXACT_MAX_DIM, jsMatMul, truncatedSvd, type MatMulBackend } from '../tensor/linalg/index.js';
import { firstNonFinite } from '../tensor/vector-codecs.js';
import { topKMagnitude, type MagnitudeThreshold, magnitudeMaskInto } from '../tensor/select.js';
import { energyCaptured, frobeniusSquared, matrixSkipReason, throwIfAborted, type AnalysisProgress, type SkippedTensor } from './spectra.js';

/** LIFT's recommended filter rank r and LoRA-equivalent budget rank R (README: 128 for both). */
export const LIFT_DEFAULT_RANK = 128;
export const LIFT_DEFAULT_BUDGET_RANK = 128;

/**
 * Name components of the matrices LIFT leaves out by default: it masks every nn.Linear except lm_head, and
 * embeddings are nn.Embedding (never masked). Matched against whole dot-separated components, never substrings.
 */
export const LIFT_EXCLUDED_COMPONENTS: readonly string[] = [
  'lm_head',
  'embed_tokens',
  'embed_positions',
  'embed_out',
  'wte',
  'wpe',
  'word_embeddings',
  'position_embeddings',
  'token_type_embeddings',
];

/** True when a tensor name is an embedding or output head LIFT excludes (see LIFT_EXCLUDED_COMPONENTS). */
export function isLiftExcluded(name: string): boolean {
  return name.split('.').some((c) => LIFT_EXCLUDED_COMPONENTS.includes(c));
}

/** How many entries a mask keeps: a fraction f of m·n (round(f·m·n)) or LIFT's LoRA-equivalent min((m + n)·R, m·n). */
export type PrincipalBudget = { fraction: number } | { loraRank: number };

export function budgetCount(m: number, n: number, budget: PrincipalBudget): number {
  if ('fraction' in budget) return Math.min(m * n, Math.round(budget.fraction * m * n));
  return Math.min((m + n) * budget.loraRank, m * n);
}

/**
 * out[i] = 1 for the elements a MagnitudeThreshold keeps (|x| bits above `bits`, or equal and among the first `ties`
 * in order; NaN never), else 0. Returns the count kept.
 */
export function thresholdMaskInto(x: Float32Array, t: MagnitudeThreshold, out: Uint8Array): number {
  return magnitudeMaskInto(x, x.length, t, { ties: t.ties }, out);
}

/** Mask of the k largest |x| (exact k for finite data; ties broken by element order). */
export function topKMask(x: Float32Array, k: number, out: Uint8Array = new Uint8Array(x.length)): Uint8Array {
  thresholdMaskInto(x, topKMagnitude(x, k), out);
  return out;
}

/** Overlap of two masks of the same length: |A ∩ B|, |A ∪ B| and the Jaccard index (1 for two empty masks). */
export function maskOverlap(a: Uint8Array, b: Uint8Array): { intersection: number; union: number; jaccard: number } {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    inter += x & y;
    union += x | y;
  }
  return { intersection: inter, union, jaccard: union === 0 ? 1 : inter / union };
}

export interface LowRankOptions {
  /** 'exact' (Jacobi, f64), 'randomized', or 'auto' (default: exact when min(m, n) <= exactMaxDim). */
  svd?: 'exact' | 'randomized' | 'auto';
  exactMaxDim?: number;
  /** Backend of the randomized SVD and of the U·S·Vᵀ product. Default jsMatMul. */
  backend?: MatMulBackend;
  seed?: number;
}

/** W_r, the rank-r approximation of a row-major m x n matrix, with how it was made and its energy Σσ_r²/‖W‖_F². */
export interface LowRank {
  wr: Float32Array;
  rankUsed: number;
  method: 'exact' | 'randomized' | 'full';
  energy: number;
  singularValues: number[];
}

/**
 * Rank-r approximation U_r·diag(S_r)·V_rᵀ. When r >= min(m, n), W_r is W itself (method 'full', energy 1). The
 * randomized path sketches 2r columns (oversampling r) with 2 power iterations, as LIFT's svd_lowrank option (q = 2r).
 */
export async function lowRankApproximation(w: Float32Array, m: number, n: number, rank: number, options: LowRankOptions = {}): Promise<LowRank> {
  const full = Math.min(m, n);
  if (rank >= full) return { wr: w, rankUsed: full, method: 'full', energy: frobeniusSquared(w) > 0 ? 1 : 0, singularValues: [] };
  const choice = options.svd ?? 'auto';
  const exact = choice === 'exact' || (choice === 'auto' && full <= (options.exactMaxDim ?? EXACT_MAX_DIM));
  const backend = options.backend ?? jsMatMul;
  const svd = await truncatedSvd(w, m, n, rank, {
    method: exact ? 'exact' : 'randomized',
    backend,
    seed: options.seed ?? 0,
    oversampling: rank,
    powerIterations: 2,
  });
  const us = new Float32Array(m * rank);
  for (let i = 0; i < m; i++) for (let j = 0; j < rank; j++) us[i * rank + j] = svd.u[i * rank + j]! * svd.s[j]!;
  const wr = rank === 0 ? new Float32Array(m * n) : await backend.matmul(us, svd.v, m, rank, n, { transB: true });
  return { wr, rankUsed: rank, method: exact ? 'exact' : 'randomized', energy: energyCaptured(svd.s, frobeniusSquared(w)), singularValues: Array.from(svd.s) };
}

/** One matrix's principal mask and its comparison with the magnitude mask of the same size. */
export interface PrincipalMatrix {
  /** 1 where the entry is principal */
  mask: Uint8Array;
  /** the plain magnitude top-k mask of W */
  magnitudeMask: Uint8Array;
  rankUsed: number;
  method: LowRank['method'];
  /** entries kept (= k) */
  kept: number;
  /** principal entries that are also magnitude top-k */
  overlap: number;
  /** |P ∪ M| */
  union: number;
  /** |P ∩ M| / |P ∪ M| */
  jaccard: number;
  /** overlap / kept (1 when nothing is kept) */
  overlapFraction: number;
  /** Σ_{i<r} σ_i² / ‖W‖_F² */
  energy: number;
}

/** LIFT principal mask of one row-major m x n matrix: the k largest |W_r| entries, and its overlap with top-k |W|. */
export async function principalMask(w: Float32Array, m: number, n: number, rank: number, k: number, options: LowRankOptions = {}): Promise<PrincipalMatrix> {
  checkRank(rank);
  const lr = await lowRankApproximation(w, m, n, rank, options);
  const mask = topKMask(lr.wr, k);
  const magnitudeMask = topKMask(w, k);
  const o = maskOverlap(mask, magnitudeMask);
  let kept = 0;
  for (let i = 0; i < mask.length; i++) kept += mask[i]!;
  return {
    mask,
    magnitudeMask,
    rankUsed: lr.rankUsed,
    method: lr.method,
    kept,
    overlap: o.intersection,
    union: o.union,
    jaccard: o.jaccard,
    overlapFraction: kept === 0 ? 1 : o.intersection / kept,
    energy: lr.energy,
  };
}

function checkRank(rank: number): void {
  if (!(Number.isSafeInteger(rank) && rank >= 1)) throw new UsageError('USAGE', `rank: expected a positive integer, got ${String(rank)}`);
}

function checkBudget(b: PrincipalBudget): void {
  if ('fraction' in b) {
    if (!(Number.isFinite(b.fraction) && b.fraction > 0 && b.fraction <= 1)) {
      throw new UsageError('USAGE', `fraction: expected a number in (0, 1], got ${String(b.fraction)}`);
    }
  } else if (!(Number.isSafeInteger(b.loraRank) && b.loraRank >= 1)) {
    throw new UsageError('USAGE', `loraRank: expected a positive integer, got ${String(b.loraRank)}`);
  }
}

export interface PrincipalOptions extends LowRankOptions {
  /** LIFT's filter_rank r. Default LIFT_DEFAULT_RANK (128). */
  rank?: number;
  /** Entries kept per matrix. Default { loraRank: LIFT_DEFAULT_BUDGET_RANK } (LIFT's budget). */
  budget?: PrincipalBudget;
  /** Also mask the embeddings and lm_head (LIFT leaves them out). Default false. */
  includeEmbeddings?: boolean;
  /** Write the masks here (.safetensors file or a folder); nothing is written when absent. */
  out?: string;
  /** Mask dtype. Default BOOL. */
  maskDType?: 'BOOL' | 'U8';
  overwrite?: boolean;
  onProgress?: (p: AnalysisProgress) => void;
  signal?: AbortSignal;
}

/** The per-matrix record of `readPrincipalWeights` (JSON-serialisable). */
export interface PrincipalRecord {
  name: string;
  shape: [number, number];
  rankUsed: number;
  method: LowRank['method'];
  numel: number;
  kept: number;
  overlap: number;
  union: number;
  jaccard: number;
  overlapFraction: number;
  energy: number;
}

export interface PrincipalReport {
  model: string;
  rank: number;
  budget: PrincipalBudget;
  maskDType: 'BOOL' | 'U8';
  out?: string;
  matrices: PrincipalRecord[];
  skipped: SkippedTensor[];
  totals: { numel: number; kept: number; overlap: number; jaccard: number; overlapFraction: number };
}

/**
 * Principal-weight masks of every 2-D float matrix of a model (embeddings and lm_head excluded unless asked), one
 * matrix in memory at a time. Writes the masks (same tensor names, BOOL/U8, metadata method/rank/budget/svd) when
 * `out` is given: published only when every matrix is done.
 */
export async function readPrincipalWeights(reader: CheckpointReader, options: PrincipalOptions = {}): Promise<PrincipalReport> {
  const rank = options.rank ?? LIFT_DEFAULT_RANK;
  checkRank(rank);
  const budget = options.budget ?? { loraRank: LIFT_DEFAULT_BUDGET_RANK };
  checkBudget(budget);
  const maskDType = options.maskDType ?? 'BOOL';
  if (options.out !== undefined && sinkKindOf(options.out) === 'onnx') {
    throw new UsageError('USAGE', `out: masks are written as safetensors (a .safetensors file or a folder), got ${options.out}`, { where: { file: options.out } });
  }
  const skipped: SkippedTensor[] = [];
  const chosen: TensorInfo[] = [];
  for (const t of reader.tensors()) {
    const why = matrixSkipReason(t) ?? (!options.includeEmbeddings && isLiftExcluded(t.name) ? 'excluded' : undefined);
    if (why !== undefined) skipped.push({ name: t.name, shape: [...t.shape], reason: why });
    else chosen.push(t);
  }
  let sink: CheckpointSink | undefined;
  if (options.out !== undefined) {
    const decls: TensorDecl[] = chosen.map((t) => ({ name: t.name, dtype: maskDType, shape: [...t.shape] }));
    sink = await openCheckpointSink(options.out, decls, {
      overwrite: options.overwrite ?? false,
      inputs: [reader.path],
      metadata: {
        weightkit_masks: 'lift_principal',
        method: 'lift_principal',
        source: reader.path,
        rank: String(rank),
        ...('fraction' in budget ? { fraction: String(budget.fraction) } : { lora_rank: String(budget.loraRank) }),
        svd: options.svd ?? 'auto',
        excluded: JSON.stringify(skipped.filter((s) => s.reason === 'excluded').map((s) => s.name)),
      },
    });
  }
  const matrices: PrincipalRecord[] = [];
  let bytesRead = 0;
  let bytesWritten = 0;
  try {
    for (let i = 0; i < chosen.length; i++) {
      throwIfAborted(options.signal, reader.path);
      const t = chosen[i]!;
      const [m, n] = t.shape as [number, number];
      const w = await reader.readF32(t.name);
      const bad = firstNonFinite(w);
      if (bad >= 0) {
        throw new VectorError('VECTOR_NOT_FINITE', `tensor '${t.name}': non-finite value (${w[bad]}) at element ${bad}; its principal weights are undefined`, { where: { file: reader.path, tensor: t.name } });
      }
      bytesRead += t.byteLength;
      const k = budgetCount(m, n, budget);
      const p = await principalMask(w, m, n, rank, k, options);
      matrices.push({
        name: t.name,
        shape: [m, n],
        rankUsed: p.rankUsed,
        method: p.method,
        numel: m * n,
        kept: p.kept,
        overlap: p.overlap,
        union: p.union,
        jaccard: p.jaccard,
        overlapFraction: p.overlapFraction,
        energy: p.energy,
      });
      if (sink) {
        await sink.write(t.name, p.mask);
        bytesWritten += p.mask.byteLength;
      }
      options.onProgress?.({ tensor: t.name, index: i + 1, count: chosen.length, bytesRead, bytesWritten });
    }
    if (sink) await sink.close();
  } catch (e) {
    if (sink) await sink.abort();
    throw e;
  }
  let numel = 0;
  let kept = 0;
  let overlap = 0;
  let union = 0;
  for (const r of matrices) {
    numel += r.numel;
    kept += r.kept;
    overlap += r.overlap;
    union += r.union;
  }
  return {
    model: reader.path,
    rank,
    budget,
    maskDType,
    ...(options.out !== undefined ? { out: options.out } : {}),
    matrices,
    skipped,
    totals: { numel, kept, overlap, jaccard: union === 0 ? 1 : overlap / union, overlapFraction: kept === 0 ? 1 : overlap / kept },
  };
}
