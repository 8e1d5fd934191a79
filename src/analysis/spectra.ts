// Spectra of weight matrices and task vectors: singular values (exact, or top-k randomized for big matrices),
// entropy effective rank (Roy & Vetterli), stable rank, nuclear/Frobenius norms and top-k energy, per 2-D tensor
// of any CheckpointReader (models and vectors alike), one tensor in memory at a time. Results are plain JSON data.
// Pure except for the MatMulBackend it is handed; must not import src/eval, src/cli or onnxruntime.

import { UsageError, VectorError, WeightkitError } from '../errors.js';
import type { CheckpointReader, TensorInfo } from '../io/types.js';
import { isFloatDType } from '../tensor/dtype.js';
import { firstNonFinite } from '../tensor/vector-codecs.js';
import { EXACT_MAX_DIM, jsMatMul, truncatedSvd, type MatMulBackend } from '../tensor/linalg/index.js';

/** Singular values computed for a matrix whose min(m, n) exceeds the exact limit, unless the caller sets `top`. */
export const DEFAULT_SPECTRUM_TOP = 64;

/** How the singular values of one matrix are computed. */
export interface SpectrumOptions {
  /**
   * How many singular values to report (and, on the randomized path, to compute). Default: all of them on the exact
   * path, DEFAULT_SPECTRUM_TOP on the randomized one.
   */
  top?: number;
  /** 'exact' (Jacobi, all values), 'randomized' (top `top`), 'auto' (default: exact when min(m, n) <= exactMaxDim). */
  method?: 'exact' | 'randomized' | 'auto';
  /** Largest min(m, n) 'auto' solves exactly. Default EXACT_MAX_DIM (256). */
  exactMaxDim?: number;
  /** Where the big products of the randomized SVD run. Default jsMatMul; the CLI passes the ORT backend. */
  backend?: MatMulBackend;
  /** Seed of the randomized sketch. Default 0. */
  seed?: number;
}

/** The spectrum statistics of one m x n matrix (JSON-serialisable). */
export interface MatrixSpectrum {
  m: number;
  n: number;
  /** min(m, n): how many singular values the matrix has */
  rank: number;
  method: 'exact' | 'randomized';
  /** how many singular values were computed (= rank on the exact path) */
  computed: number;
  /** true when every singular value was computed: nuclear norm and effective rank are then exact */
  complete: boolean;
  /** the largest singular values, descending (at most `top` of them) */
  singularValues: number[];
  /** ‖A‖_F, from the entries (f64 accumulation) */
  frobeniusNorm: number;
  /** ‖A‖₂ = σ₁ */
  spectralNorm: number;
  /** ‖A‖_F² / ‖A‖₂² (0 for the zero matrix) */
  stableRank: number;
  /** Σσ when complete; null otherwise (see nuclearNormBounds) */
  nuclearNorm: number | null;
  /**
   * [lower, upper] bounds of Σσ: equal to the nuclear norm when complete; otherwise, with tail energy
   * E = ‖A‖_F² − Σ_{i<k} σ_i² and r − k values each at most σ_k: [Σ_{i<k} σ_i + E/σ_k, Σ_{i<k} σ_i + √((r − k)·E)].
   */
  nuclearNormBounds: [number, number];
  /** exp(H(p)), p_i = σ_i / Σσ, over the computed values: exact when complete, that of the top-k spectrum otherwise */
  effectiveRank: number;
  /** Σ_{i<k} σ_i² / ‖A‖_F² over the computed values (clamped to [0, 1]; 1 when complete, up to rounding) */
  energyTopK: number;
}

/** Entropy effective rank (Roy & Vetterli 2007): exp(−Σ p_i ln p_i) with p_i = σ_i / Σσ; 0 for an all-zero spectrum. */
export function effectiveRank(singularValues: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < singularValues.length; i++) sum += Math.abs(singularValues[i]!);
  if (!(sum > 0)) return 0;
  let h = 0;
  for (let i = 0; i < singularValues.length; i++) {
    const p = Math.abs(singularValues[i]!) / sum;
    if (p > 0) h -= p * Math.log(p);
  }
  return Math.exp(h);
}

/** Stable rank ‖A‖_F² / ‖A‖₂² from the squared Frobenius norm and σ₁; 0 for the zero matrix. */
export function stableRank(frobeniusSquared: number, spectralNorm: number): number {
  return spectralNorm > 0 ? frobeniusSquared / (spectralNorm * spectralNorm) : 0;
}

/** Σ a_i² in f64. */
export function frobeniusSquared(a: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  const n = a.length;
  let i = 0;
  for (; i + 2 <= n; i += 2) {
    const x = a[i]!;
    const y = a[i + 1]!;
    s0 += x * x;
    s1 += y * y;
  }
  if (i < n) s0 += a[i]! * a[i]!;
  return s0 + s1;
}

/** Fraction of ‖A‖_F² captured by the top k singular values: Σ_{i<k} σ_i² / ‖A‖_F², clamped to [0, 1] (0 for A = 0). */
export function energyCaptured(singularValues: ArrayLike<number>, frobeniusSq: number, k: number = singularValues.length): number {
  if (!(frobeniusSq > 0)) return 0;
  let e = 0;
  const kk = Math.min(k, singularValues.length);
  for (let i = 0; i < kk; i++) e += singularValues[i]! * singularValues[i]!;
  return Math.min(1, Math.max(0, e / frobeniusSq));
}

function checkTop(top: number | undefined): void {
  if (top !== undefined && !(Number.isSafeInteger(top) && top >= 1)) {
    throw new UsageError('USAGE', `top: expected a positive integer, got ${String(top)}`);
  }
}

/** Statistics from singular values already known (descending) and the matrix's squared Frobenius norm. */
export function spectrumFromValues(
  s: ArrayLike<number>,
  m: number,
  n: number,
  frobeniusSq: number,
  method: 'exact' | 'randomized',
  top?: number,
): MatrixSpectrum {
  const rank = Math.min(m, n);
  const computed = s.length;
  const complete = computed >= rank;
  let sum = 0;
  for (let i = 0; i < computed; i++) sum += s[i]!;
  const sigma1 = computed > 0 ? s[0]! : 0;
  let bounds: [number, number] = [sum, sum];
  if (!complete) {
    let head = 0;
    for (let i = 0; i < computed; i++) head += s[i]! * s[i]!;
    const tail = Math.max(0, frobeniusSq - head);
    const last = computed > 0 ? s[computed - 1]! : 0;
    bounds = [sum + (last > 0 ? Math.min(tail / last, Math.sqrt((rank - computed) * tail)) : 0), sum + Math.sqrt((rank - computed) * tail)];
  }
  const shown = Math.min(computed, top ?? computed);
  return {
    m,
    n,
    rank,
    method,
    computed,
    complete,
    singularValues: Array.from({ length: shown }, (_, i) => s[i]!),
    frobeniusNorm: Math.sqrt(frobeniusSq),
    spectralNorm: sigma1,
    stableRank: stableRank(frobeniusSq, sigma1),
    nuclearNorm: complete ? sum : null,
    nuclearNormBounds: bounds,
    effectiveRank: effectiveRank(s),
    energyTopK: energyCaptured(s, frobeniusSq),
  };
}

/** The spectrum of a row-major f32 m x n matrix (see SpectrumOptions for exact vs randomized). */
export async function matrixSpectrum(a: Float32Array, m: number, n: number, options: SpectrumOptions = {}): Promise<MatrixSpectrum> {
  checkTop(options.top);
  if (a.length !== m * n) throw new UsageError('USAGE', `matrix: expected ${m} x ${n} = ${m * n} values, got ${a.length}`);
  const rank = Math.min(m, n);
  const method = options.method ?? 'auto';
  const exact = method === 'exact' || (method === 'auto' && rank <= (options.exactMaxDim ?? EXACT_MAX_DIM));
  const f2 = frobeniusSquared(a);
  if (rank === 0) return spectrumFromValues([], m, n, 0, exact ? 'exact' : 'randomized', options.top);
  const k = exact ? rank : Math.min(rank, options.top ?? DEFAULT_SPECTRUM_TOP);
  const svd = await truncatedSvd(a, m, n, k, {
    method: exact ? 'exact' : 'randomized',
    backend: options.backend ?? jsMatMul,
    seed: options.seed ?? 0,
  });
  return spectrumFromValues(svd.s, m, n, f2, exact ? 'exact' : 'randomized', options.top);
}

/** One tensor's record: its name, dtype and shape with the spectrum of the matrix. */
export interface TensorSpectrum extends MatrixSpectrum {
  name: string;
  dtype: string;
  shape: number[];
}

/** Why a tensor has no spectrum. */
export interface SkippedTensor {
  name: string;
  shape: number[];
  reason: 'not 2-D' | 'not float' | 'empty' | 'excluded' | 'non-finite values';
}

/** Progress of a per-tensor pass (the shape of the CLI's streamProgress). */
export interface AnalysisProgress {
  tensor: string;
  index: number;
  count: number;
  bytesRead: number;
  bytesWritten: number;
}

export interface CheckpointSpectraOptions extends SpectrumOptions {
  /** Keep only the tensors this returns true for (others are listed as excluded). Default: every 2-D float tensor. */
  include?: (t: TensorInfo) => boolean;
  /** Called with each record as soon as it is computed (streaming consumers). */
  onTensor?: (r: TensorSpectrum) => void;
  onProgress?: (p: AnalysisProgress) => void;
  signal?: AbortSignal;
}

export interface CheckpointSpectra {
  path: string;
  tensors: TensorSpectrum[];
  skipped: SkippedTensor[];
}

/** Why `t` is not a matrix this module analyses, or undefined when it is one. */
export function matrixSkipReason(t: TensorInfo): SkippedTensor['reason'] | undefined {
  if (t.shape.length !== 2) return 'not 2-D';
  if (!isFloatDType(t.dtype)) return 'not float';
  if (t.numel === 0) return 'empty';
  return undefined;
}

/** Throw INTERRUPTED when the signal has fired (between tensors). */
export function throwIfAborted(signal: AbortSignal | undefined, file: string): void {
  if (signal?.aborted) throw new WeightkitError('INTERRUPTED', 'stopped before finishing', { where: { file } });
}

/** The spectrum of one 2-D tensor of a checkpoint or vector (read as f32; nothing else is loaded). */
export async function readTensorSpectrum(reader: CheckpointReader, name: string, options: SpectrumOptions = {}): Promise<TensorSpectrum> {
  const t = reader.info(name);
  const why = matrixSkipReason(t);
  if (why !== undefined) {
    throw new UsageError('USAGE', `tensor '${name}': expected a non-empty 2-D float matrix, got ${t.dtype} [${t.shape.join(', ')}]`, {
      where: { file: reader.path, tensor: name },
    });
  }
  const [m, n] = t.shape as [number, number];
  const a = await reader.readF32(name);
  const bad = firstNonFinite(a);
  if (bad >= 0) {
    throw new VectorError('VECTOR_NOT_FINITE', `tensor '${name}': non-finite value (${a[bad]}) at element ${bad}; its spectrum is undefined`, { where: { file: reader.path, tensor: name } });
  }
  const s = await matrixSpectrum(a, m, n, options);
  return { name, dtype: t.dtype, shape: [m, n], ...s };
}

/**
 * Spectra of every 2-D float tensor of a checkpoint or vector reader, in the reader's order, one tensor in memory at
 * a time. Other tensors are listed in `skipped` with the reason.
 */
export async function readCheckpointSpectra(reader: CheckpointReader, options: CheckpointSpectraOptions = {}): Promise<CheckpointSpectra> {
  checkTop(options.top);
  const all = reader.tensors();
  const skipped: SkippedTensor[] = [];
  const chosen: TensorInfo[] = [];
  for (const t of all) {
    const why = matrixSkipReason(t) ?? (options.include && !options.include(t) ? 'excluded' : undefined);
    if (why !== undefined) skipped.push({ name: t.name, shape: [...t.shape], reason: why });
    else chosen.push(t);
  }
  const tensors: TensorSpectrum[] = [];
  let bytesRead = 0;
  for (let i = 0; i < chosen.length; i++) {
    throwIfAborted(options.signal, reader.path);
    const t = chosen[i]!;
    let r: TensorSpectrum;
    try {
      r = await readTensorSpectrum(reader, t.name, options);
    } catch (e) {
      // a broken tensor is listed, not fatal: the rest of the checkpoint is still described
      if (!(e instanceof VectorError && e.code === 'VECTOR_NOT_FINITE')) throw e;
      skipped.push({ name: t.name, shape: [...t.shape], reason: 'non-finite values' });
      continue;
    }
    bytesRead += t.byteLength;
    tensors.push(r);
    options.onTensor?.(r);
    options.onProgress?.({ tensor: t.name, index: i + 1, count: chosen.length, bytesRead, bytesWritten: 0 });
  }
  return { path: reader.path, tensors, skipped };
}
