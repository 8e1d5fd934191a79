// `analyze vectors`: how task vectors δ_k = M_k − B (or stored vectors) differ and interfere, per tensor, per layer
// and overall: norms, relative change, sparsity, kurtosis/outliers, pairwise cosine, sign conflicts, top-k mask
// overlap (exact thresholds, select.ts) and optional spectra. Streams row chunks through src/vectors/stream.ts with
// f64 accumulators in element order, so results do not depend on the memory budget. Must not import src/cli or ORT.

import { UsageError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import type { CheckpointReader, TensorInfo } from '../io/types.js';
import { inferLayout, splitLayerName } from '../plan/layout.js';
import { isFloatDType } from '../tensor/dtype.js';
import { MagnitudeSelector, type MagnitudeThreshold, magnitudeMaskInto } from '../tensor/select.js';
import { VECTOR_METADATA_KEY } from '../vectors/format.js';
import { pairTensors } from '../vectors/pairing.js';
import { openVector } from '../vectors/reader.js';
import { runStream, type ChunkInputs, type StreamJob, type StreamProgress } from '../vectors/stream.js';
import { matrixSpectrum, type MatrixSpectrum, type SpectrumOptions } from './spectra.js';

/** Default --density of the top-k mask overlap. */
export const DEFAULT_OVERLAP_DENSITY = 0.1;
/** |δ| ≤ NEAR_ZERO_RELATIVE · max|δ| (per tensor) counts as near zero. */
export const NEAR_ZERO_RELATIVE = 1e-6;
/** |δ − mean| > OUTLIER_Z · std (per tensor) counts as an outlier. */
export const OUTLIER_Z = 3;

/** Where a tensor sits: before the numbered layers (embeddings), in layer i, or after them (norm, heads). */
export type LayerKey = 'pre' | number | 'post';

/** Statistics of one vector over a tensor or a group of tensors. */
export interface VectorStats {
  /** ‖δ‖ (f64 accumulation) */
  norm: number;
  /** ‖W_base‖ over the same elements; null without a base */
  baseNorm: number | null;
  /** ‖δ‖ / ‖W_base‖; null without a base (or a zero base) */
  relativeChange: number | null;
  mean: number;
  std: number;
  maxAbs: number;
  /** fraction of exact zeros */
  zeroFraction: number;
  /** fraction with |δ| ≤ 1e-6 · max|δ| of its tensor */
  nearZeroFraction: number;
  /** excess kurtosis m4/m2² − 3 (0 for a Gaussian; 0 when the variance is 0) */
  kurtosis: number;
  /** fraction with |δ − mean| > 3 std of its tensor (0.27% for a Gaussian) */
  outlierRatio: number;
}

/** Statistics of a tensor, a layer or the whole model. Matrices are K x K over the vectors (diagonal: 1 or 0). */
export interface GroupStats {
  numel: number;
  tensors: number;
  vectors: VectorStats[];
  /** cos(δ_i, δ_j) = ⟨δ_i, δ_j⟩ / (‖δ_i‖ ‖δ_j‖); 0 when a vector is zero */
  cosine: number[][];
  /** among positions where δ_i and δ_j are both non-zero, the fraction with opposite signs */
  signConflict: number[][];
  /** among positions where at least two vectors are non-zero, the fraction with both signs present */
  signConflictAll: number;
  /** Jaccard |A∩B| / |A∪B| of the top-k |δ| masks (k = round(density · numel) per tensor; 1 for two empty masks) */
  jaccard: number[][];
}

export interface TensorVectorStats extends GroupStats {
  name: string;
  shape: number[];
  layer: LayerKey;
  /** per vector, with --spectra and a 2-D tensor */
  spectra?: MatrixSpectrum[];
}

export interface LayerVectorStats extends GroupStats {
  layer: LayerKey;
}

export interface VectorsReport {
  kind: 'weightkit.analyze.vectors';
  version: 1;
  mode: 'base' | 'vectors';
  base: string | null;
  /** one per vector: the fine-tuned model's or the vector's path */
  paths: string[];
  labels: string[];
  density: number;
  notes: string[];
  global: GroupStats;
  layers: LayerVectorStats[];
  tensors: TensorVectorStats[];
  skipped: { name: string; reason: string }[];
  bytesRead: number;
}

export interface AnalyzeVectorsOptions {
  /** with `models`: the base model; vectors are M_k − base */
  base?: string;
  models?: readonly string[];
  /** stored vectors (or any checkpoints taken as vectors as they are) */
  vectors?: readonly string[];
  /** display names (default: the file or folder names) */
  labels?: readonly string[];
  /** top-k mask density in (0, 1] (default 0.1) */
  density?: number;
  /** singular values, effective and stable rank of every 2-D task vector (holds one tensor per vector in memory) */
  spectra?: boolean;
  spectrum?: SpectrumOptions;
  /** chunk buffers in bytes (default 256 MiB) */
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

/** Open a checkpoint, or a stored vector (dense logical tensors) when its metadata says it is one. */
export async function openModelOrVector(path: string): Promise<CheckpointReader> {
  const r = await openCheckpointPath(path);
  if (r.format !== 'onnx' && r.metadata()[VECTOR_METADATA_KEY] !== undefined) {
    await r.close();
    return openVector(path);
  }
  return r;
}

/** A display label per path: the last path component (without .safetensors), made unique with #n. */
export function defaultLabels(paths: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return paths.map((p) => {
    const parts = p.replace(/[\\/]+$/, '').split(/[\\/]/);
    let l = (parts[parts.length - 1] ?? p).replace(/\.safetensors$/, '');
    if (l === 'model' && parts.length > 1) l = parts[parts.length - 2]!;
    const n = (seen.get(l) ?? 0) + 1;
    seen.set(l, n);
    return n === 1 ? l : `${l}#${n}`;
  });
}

/** The float tensors every input shares (in the first input's order), checked pairwise: missing and mismatched
 * tensors throw TENSOR_NOT_FOUND / TENSOR_SHAPE_MISMATCH; non-float tensors are listed as skipped. */
export function sharedTensors(readers: readonly CheckpointReader[], roles: readonly string[]): { shared: TensorInfo[]; skipped: string[] } {
  if (readers.length < 2) return { shared: readers[0]?.tensors().filter((t) => isFloatDType(t.dtype)) ?? [], skipped: readers[0]?.tensors().filter((t) => !isFloatDType(t.dtype)).map((t) => t.name) ?? [] };
  let shared: TensorInfo[] = [];
  const skipped = new Set<string>();
  for (let k = 1; k < readers.length; k++) {
    const p = pairTensors(readers[0]!, readers[k]!, { roles: [roles[0]!, roles[k]!] });
    if (k === 1) shared = p.shared;
    else {
      const names = new Set(p.shared.map((t) => t.name));
      shared = shared.filter((t) => names.has(t.name));
    }
    for (const s of p.skipped) skipped.add(s);
  }
  const keep = new Set(shared.map((t) => t.name));
  for (const t of readers[0]!.tensors()) if (!keep.has(t.name)) skipped.add(t.name);
  return { shared, skipped: [...skipped] };
}

/** Layer key of every name (inferLayout's prefix; unnumbered embeddings 'pre', other unnumbered tensors 'post'). */
export function layerKeys(names: readonly string[]): Map<string, LayerKey> {
  const layout = inferLayout(names);
  const pre = new Set(layout.pre);
  const out = new Map<string, LayerKey>();
  for (const n of names) {
    const l = layout.prefix === undefined ? undefined : splitLayerName(n, layout.prefix);
    out.set(n, l ? l.index : pre.has(n) ? 'pre' : 'post');
  }
  return out;
}

export function compareLayerKeys(a: LayerKey, b: LayerKey): number {
  const rank = (k: LayerKey): number => (k === 'pre' ? -1 : k === 'post' ? Number.MAX_SAFE_INTEGER : k);
  return rank(a) - rank(b);
}

/** Raw accumulators of one tensor or group (everything additive, combined exactly). */
interface Acc {
  numel: number;
  tensors: number;
  baseSq: number;
  hasBase: boolean;
  // per vector
  sum: Float64Array;
  sumSq: Float64Array;
  maxAbs: Float64Array;
  zeros: Float64Array;
  nearZeros: Float64Array;
  outliers: Float64Array;
  // central moments about the group mean (M2, M3, M4 sums), combined by Pébay's formulas
  m2: Float64Array;
  m3: Float64Array;
  m4: Float64Array;
  kept: Float64Array;
  // per pair (i, j), row-major K x K, upper triangle used
  dot: Float64Array;
  conflicts: Float64Array;
  both: Float64Array;
  inter: Float64Array;
  conflictAll: number;
  multi: number;
}

function newAcc(k: number, hasBase: boolean): Acc {
  const v = (): Float64Array => new Float64Array(k);
  const p = (): Float64Array => new Float64Array(k * k);
  return {
    numel: 0,
    tensors: 0,
    baseSq: 0,
    hasBase,
    sum: v(),
    sumSq: v(),
    maxAbs: v(),
    zeros: v(),
    nearZeros: v(),
    outliers: v(),
    m2: v(),
    m3: v(),
    m4: v(),
    kept: v(),
    dot: p(),
    conflicts: p(),
    both: p(),
    inter: p(),
    conflictAll: 0,
    multi: 0,
  };
}

/** into += a (exact for counts and sums; Pébay's pairwise update for the central moments). */
function addAcc(into: Acc, a: Acc): void {
  const K = into.sum.length;
  for (let k = 0; k < K; k++) {
    const na = into.numel;
    const nb = a.numel;
    const n = na + nb;
    if (nb === 0) continue;
    if (na === 0) {
      into.m2[k] = a.m2[k]!;
      into.m3[k] = a.m3[k]!;
      into.m4[k] = a.m4[k]!;
    } else {
      const d = a.sum[k]! / nb - into.sum[k]! / na;
      const M2a = into.m2[k]!;
      const M3a = into.m3[k]!;
      const M2b = a.m2[k]!;
      const M3b = a.m3[k]!;
      into.m4[k] =
        into.m4[k]! + a.m4[k]! + (d ** 4 * na * nb * (na * na - na * nb + nb * nb)) / n ** 3 + (6 * d * d * (na * na * M2b + nb * nb * M2a)) / (n * n) + (4 * d * (na * M3b - nb * M3a)) / n;
      into.m3[k] = M3a + M3b + (d ** 3 * na * nb * (na - nb)) / (n * n) + (3 * d * (na * M2b - nb * M2a)) / n;
      into.m2[k] = M2a + M2b + (d * d * na * nb) / n;
    }
  }
  for (let k = 0; k < K; k++) {
    into.sum[k] = into.sum[k]! + a.sum[k]!;
    into.sumSq[k] = into.sumSq[k]! + a.sumSq[k]!;
    into.maxAbs[k] = Math.max(into.maxAbs[k]!, a.maxAbs[k]!);
    into.zeros[k] = into.zeros[k]! + a.zeros[k]!;
    into.nearZeros[k] = into.nearZeros[k]! + a.nearZeros[k]!;
    into.outliers[k] = into.outliers[k]! + a.outliers[k]!;
    into.kept[k] = into.kept[k]! + a.kept[k]!;
  }
  for (let i = 0; i < K * K; i++) {
    into.dot[i] = into.dot[i]! + a.dot[i]!;
    into.conflicts[i] = into.conflicts[i]! + a.conflicts[i]!;
    into.both[i] = into.both[i]! + a.both[i]!;
    into.inter[i] = into.inter[i]! + a.inter[i]!;
  }
  into.numel += a.numel;
  into.tensors += a.tensors;
  into.baseSq += a.baseSq;
  into.conflictAll += a.conflictAll;
  into.multi += a.multi;
}

function finish(a: Acc): GroupStats {
  const K = a.sum.length;
  const n = a.numel;
  const baseNorm = Math.sqrt(a.baseSq);
  const vectors: VectorStats[] = [];
  for (let k = 0; k < K; k++) {
    const norm = Math.sqrt(a.sumSq[k]!);
    const m2 = n > 0 ? a.m2[k]! / n : 0;
    const m4 = n > 0 ? a.m4[k]! / n : 0;
    vectors.push({
      norm,
      baseNorm: a.hasBase ? baseNorm : null,
      relativeChange: a.hasBase && baseNorm > 0 ? norm / baseNorm : null,
      mean: n > 0 ? a.sum[k]! / n : 0,
      std: Math.sqrt(Math.max(0, m2)),
      maxAbs: a.maxAbs[k]!,
      zeroFraction: n > 0 ? a.zeros[k]! / n : 0,
      nearZeroFraction: n > 0 ? a.nearZeros[k]! / n : 0,
      kurtosis: m2 > 0 ? m4 / (m2 * m2) - 3 : 0,
      outlierRatio: n > 0 ? a.outliers[k]! / n : 0,
    });
  }
  const mat = (f: (i: number, j: number) => number): number[][] =>
    Array.from({ length: K }, (_, i) => Array.from({ length: K }, (_, j) => (i === j ? f(i, i) : f(Math.min(i, j), Math.max(i, j)))));
  return {
    numel: n,
    tensors: a.tensors,
    vectors,
    cosine: mat((i, j) => {
      const d = i === j ? a.sumSq[i]! : a.dot[i * K + j]!;
      const den = Math.sqrt(a.sumSq[i]! * a.sumSq[j]!);
      return den > 0 ? d / den : 0;
    }),
    signConflict: mat((i, j) => (i === j ? 0 : a.both[i * K + j]! > 0 ? a.conflicts[i * K + j]! / a.both[i * K + j]! : 0)),
    signConflictAll: a.multi > 0 ? a.conflictAll / a.multi : 0,
    jaccard: mat((i, j) => {
      if (i === j) return 1;
      const inter = a.inter[i * K + j]!;
      const union = a.kept[i]! + a.kept[j]! - inter;
      return union > 0 ? inter / union : 1;
    }),
  };
}

const ABS = 0x7fffffff;


/**
 * Cache-sized working buffers shared by every job of a run: observe/emit calls are synchronous, so two jobs never
 * use them at the same time, and a finished job keeps no chunk-sized memory.
 */
interface PieceScratch {
  deltas: Float32Array[];
  pos: Uint8Array;
  neg: Uint8Array;
  nz: Uint8Array;
  masks: Uint8Array[];
  /** small accumulator hand-over for the loop helpers */
  tmp: Float64Array;
}

/** Elements per piece: every statistic of a piece runs on L1/L2-resident data. */
const PIECE = 16384;

function newScratch(k: number): PieceScratch {
  return {
    deltas: Array.from({ length: k }, () => new Float32Array(PIECE)),
    pos: new Uint8Array(PIECE),
    neg: new Uint8Array(PIECE),
    nz: new Uint8Array(PIECE),
    masks: Array.from({ length: k }, () => new Uint8Array(PIECE)),
    tmp: new Float64Array(4),
  };
}

interface JobState {
  acc: Acc;
  selectors: MagnitudeSelector[];
  thresholds: MagnitudeThreshold[];
  ties: { ties: number }[];
  needLow: boolean[];
  full: Float32Array[] | undefined;
  spectra: MatrixSpectrum[] | undefined;
}

function diffInto(x: Float32Array, b: Float32Array, d: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) d[i] = x[i]! - b[i]!;
}

/** The vectors of elements [p0, p1) of a chunk: the inputs themselves (no base) or f32(M_k − B) in the scratch. */
function deltasOf(sc: PieceScratch, ins: ChunkInputs, p0: number, p1: number, hasBase: boolean, K: number): Float32Array[] {
  const out: Float32Array[] = [];
  const n = p1 - p0;
  for (let k = 0; k < K; k++) {
    if (!hasBase) {
      out.push((ins[k] as Float32Array).subarray(p0, p1));
      continue;
    }
    const d = sc.deltas[k]!;
    diffInto((ins[k + 1] as Float32Array).subarray(p0, p1), (ins[0] as Float32Array).subarray(p0, p1), d, n);
    out.push(d.subarray(0, n));
  }
  return out;
}

/** Σx, Σx², max|x|, #zeros of d[0..n) added to out[0..3]. */
function momentsInto(d: Float32Array, n: number, out: Float64Array): void {
  let s1 = out[0]!;
  let s2 = out[1]!;
  let mx = out[2]!;
  let z = out[3]!;
  for (let i = 0; i < n; i++) {
    const x = d[i]!;
    s1 += x;
    s2 += x * x;
    const ax = Math.abs(x);
    mx = ax > mx ? ax : mx;
    z += +(x === 0);
  }
  out[0] = s1;
  out[1] = s2;
  out[2] = mx;
  out[3] = z;
}

/** ⟨x, y⟩, #positions where both are non-zero, and how many of those differ in sign, added to out[0..2]. */
function pairInto(x: Float32Array, y: Float32Array, n: number, out: Float64Array): void {
  const ux = new Uint32Array(x.buffer, x.byteOffset, n);
  const uy = new Uint32Array(y.buffer, y.byteOffset, n);
  let dot = out[0]!;
  let both = out[1]!;
  let c = out[2]!;
  for (let e = 0; e < n; e++) {
    dot += x[e]! * y[e]!;
    const a = ux[e]!;
    const b = uy[e]!;
    const nz = +((a & ABS) !== 0) & +((b & ABS) !== 0);
    both += nz;
    c += ((a ^ b) >>> 31) & nz;
  }
  out[0] = dot;
  out[1] = both;
  out[2] = c;
}

/** Mark the signs of d's non-zero entries: pos/neg flags and a non-zero count per position. */
function markSigns(d: Float32Array, n: number, pos: Uint8Array, neg: Uint8Array, nz: Uint8Array): void {
  const u = new Uint32Array(d.buffer, d.byteOffset, n);
  for (let e = 0; e < n; e++) {
    const a = u[e]!;
    const on = +((a & ABS) !== 0);
    const sign = a >>> 31;
    pos[e] |= on & (1 - sign);
    neg[e] |= on & sign;
    nz[e] += on;
  }
}

function sumSquares(b: Float32Array, n: number, s: number): number {
  for (let i = 0; i < n; i++) s += b[i]! * b[i]!;
  return s;
}

/** Positions with two or more non-zero entries, and how many of those hold both signs, added to out[0..1]. */
function conflictsInto(pos: Uint8Array, neg: Uint8Array, nz: Uint8Array, n: number, out: Float64Array): void {
  let multi = out[0]!;
  let all = out[1]!;
  for (let e = 0; e < n; e++) {
    const m = +(nz[e]! >= 2);
    multi += m;
    all += m & pos[e]! & neg[e]!;
  }
  out[0] = multi;
  out[1] = all;
}

/** Pass 0: sums, max, zeros, base norm, pairwise products and sign conflicts, the high histogram of |δ|. */
function observeFirst(st: JobState, sc: PieceScratch, ds: Float32Array[], base: Float32Array | undefined, n: number): void {
  const a = st.acc;
  const K = ds.length;
  const t = sc.tmp;
  if (base) a.baseSq = sumSquares(base, n, a.baseSq);
  if (K === 3) {
    firstPass3(a, ds[0]!, ds[1]!, ds[2]!, n);
    for (let k = 0; k < K; k++) st.selectors[k]!.addHigh(ds[k]!);
    return;
  }
  for (let k = 0; k < K; k++) {
    const d = ds[k]!;
    t[0] = a.sum[k]!;
    t[1] = a.sumSq[k]!;
    t[2] = a.maxAbs[k]!;
    t[3] = a.zeros[k]!;
    momentsInto(d, n, t);
    a.sum[k] = t[0]!;
    a.sumSq[k] = t[1]!;
    a.maxAbs[k] = t[2]!;
    a.zeros[k] = t[3]!;
    st.selectors[k]!.addHigh(d);
  }
  for (let i = 0; i < K; i++) {
    for (let j = i + 1; j < K; j++) {
      t[0] = a.dot[i * K + j]!;
      t[1] = a.both[i * K + j]!;
      t[2] = a.conflicts[i * K + j]!;
      pairInto(ds[i]!, ds[j]!, n, t);
      a.dot[i * K + j] = t[0]!;
      a.both[i * K + j] = t[1]!;
      a.conflicts[i * K + j] = t[2]!;
    }
  }
  if (K >= 2) {
    sc.pos.fill(0, 0, n);
    sc.neg.fill(0, 0, n);
    sc.nz.fill(0, 0, n);
    for (let k = 0; k < K; k++) markSigns(ds[k]!, n, sc.pos, sc.neg, sc.nz);
    t[0] = a.multi;
    t[1] = a.conflictAll;
    conflictsInto(sc.pos, sc.neg, sc.nz, n, t);
    a.multi = t[0]!;
    a.conflictAll = t[1]!;
  }
}

/**
 * observeFirst's statistics for three vectors in one pass over the piece (the common case of three fine-tunes):
 * moments, pairwise products / shared nonzeros / sign conflicts, and the all-vector conflict counts, each
 * accumulator updated in element order exactly as momentsInto / pairInto / markSigns + conflictsInto do, so the
 * results are bit-identical to the general path while each delta is read once instead of five times.
 */
function firstPass3(a: Acc, d0: Float32Array, d1: Float32Array, d2: Float32Array, n: number): void {
  const u0 = new Uint32Array(d0.buffer, d0.byteOffset, n);
  const u1 = new Uint32Array(d1.buffer, d1.byteOffset, n);
  const u2 = new Uint32Array(d2.buffer, d2.byteOffset, n);
  let s10 = a.sum[0]!, s11 = a.sum[1]!, s12 = a.sum[2]!;
  let s20 = a.sumSq[0]!, s21 = a.sumSq[1]!, s22 = a.sumSq[2]!;
  let mx0 = a.maxAbs[0]!, mx1 = a.maxAbs[1]!, mx2 = a.maxAbs[2]!;
  let z0 = a.zeros[0]!, z1 = a.zeros[1]!, z2 = a.zeros[2]!;
  let dot01 = a.dot[1]!, dot02 = a.dot[2]!, dot12 = a.dot[5]!;
  let both01 = a.both[1]!, both02 = a.both[2]!, both12 = a.both[5]!;
  let c01 = a.conflicts[1]!, c02 = a.conflicts[2]!, c12 = a.conflicts[5]!;
  let multi = a.multi;
  let all = a.conflictAll;
  for (let e = 0; e < n; e++) {
    const x0 = d0[e]!;
    const x1 = d1[e]!;
    const x2 = d2[e]!;
    s10 += x0;
    s11 += x1;
    s12 += x2;
    s20 += x0 * x0;
    s21 += x1 * x1;
    s22 += x2 * x2;
    const ax0 = Math.abs(x0);
    const ax1 = Math.abs(x1);
    const ax2 = Math.abs(x2);
    mx0 = ax0 > mx0 ? ax0 : mx0;
    mx1 = ax1 > mx1 ? ax1 : mx1;
    mx2 = ax2 > mx2 ? ax2 : mx2;
    z0 += +(x0 === 0);
    z1 += +(x1 === 0);
    z2 += +(x2 === 0);
    dot01 += x0 * x1;
    dot02 += x0 * x2;
    dot12 += x1 * x2;
    const b0 = u0[e]!;
    const b1 = u1[e]!;
    const b2 = u2[e]!;
    const on0 = +((b0 & ABS) !== 0);
    const on1 = +((b1 & ABS) !== 0);
    const on2 = +((b2 & ABS) !== 0);
    const n01 = on0 & on1;
    const n02 = on0 & on2;
    const n12 = on1 & on2;
    both01 += n01;
    both02 += n02;
    both12 += n12;
    c01 += ((b0 ^ b1) >>> 31) & n01;
    c02 += ((b0 ^ b2) >>> 31) & n02;
    c12 += ((b1 ^ b2) >>> 31) & n12;
    const g0 = b0 >>> 31;
    const g1 = b1 >>> 31;
    const g2 = b2 >>> 31;
    const pos = (on0 & (1 - g0)) | (on1 & (1 - g1)) | (on2 & (1 - g2));
    const neg = (on0 & g0) | (on1 & g1) | (on2 & g2);
    const m = +(on0 + on1 + on2 >= 2);
    multi += m;
    all += m & pos & neg;
  }
  a.sum[0] = s10;
  a.sum[1] = s11;
  a.sum[2] = s12;
  a.sumSq[0] = s20;
  a.sumSq[1] = s21;
  a.sumSq[2] = s22;
  a.maxAbs[0] = mx0;
  a.maxAbs[1] = mx1;
  a.maxAbs[2] = mx2;
  a.zeros[0] = z0;
  a.zeros[1] = z1;
  a.zeros[2] = z2;
  a.dot[1] = dot01;
  a.dot[2] = dot02;
  a.dot[5] = dot12;
  a.both[1] = both01;
  a.both[2] = both02;
  a.both[5] = both12;
  a.conflicts[1] = c01;
  a.conflicts[2] = c02;
  a.conflicts[5] = c12;
  a.multi = multi;
  a.conflictAll = all;
}

/** Pass 1: central moments about the tensor mean, outliers, near zeros; the low histogram where needed. */
function observeSecond(st: JobState, ds: Float32Array[], n: number, numel: number): void {
  const a = st.acc;
  for (let k = 0; k < ds.length; k++) {
    const d = ds[k]!;
    const mean = numel > 0 ? a.sum[k]! / numel : 0;
    const variance = numel > 0 ? Math.max(0, a.sumSq[k]! / numel - mean * mean) : 0;
    const cut = OUTLIER_Z * Math.sqrt(variance);
    const tiny = NEAR_ZERO_RELATIVE * a.maxAbs[k]!;
    let m2 = a.m2[k]!;
    let m3 = a.m3[k]!;
    let m4 = a.m4[k]!;
    let out = a.outliers[k]!;
    let near = a.nearZeros[k]!;
    for (let i = 0; i < n; i++) {
      const x = d[i]!;
      const c = x - mean;
      const c2 = c * c;
      m2 += c2;
      m3 += c2 * c;
      m4 += c2 * c2;
      if (Math.abs(c) > cut) out++;
      if (Math.abs(x) <= tiny) near++;
    }
    a.m2[k] = m2;
    a.m3[k] = m3;
    a.m4[k] = m4;
    a.outliers[k] = out;
    a.nearZeros[k] = near;
    if (st.needLow[k]) st.selectors[k]!.addLow(d);
  }
}

/** Emit pass: the top-k masks and their pairwise intersections; the full matrices for spectra. */
function emitMasks(st: JobState, sc: PieceScratch, ds: Float32Array[], n: number, offset: number): void {
  const a = st.acc;
  const K = ds.length;
  for (let k = 0; k < K; k++) {
    a.kept[k] = a.kept[k]! + magnitudeMaskInto(ds[k]!, n, st.thresholds[k]!, st.ties[k]!, sc.masks[k]!);
    if (st.full) st.full[k]!.set(ds[k]!, offset);
  }
  for (let i = 0; i < K; i++) {
    for (let j = i + 1; j < K; j++) {
      const x = sc.masks[i]!;
      const y = sc.masks[j]!;
      let c = 0;
      for (let e = 0; e < n; e++) c += x[e]! & y[e]!;
      a.inter[i * K + j] = a.inter[i * K + j]! + c;
    }
  }
}

function checkDensity(d: number): void {
  if (!(Number.isFinite(d) && d > 0 && d <= 1)) throw new UsageError('USAGE', `density: expected a number in (0, 1], got ${String(d)}`);
}

export interface VectorInputs {
  /** the base model (mode 'base'), else undefined */
  base?: CheckpointReader;
  /** the fine-tuned models (with base) or the vectors */
  inputs: readonly CheckpointReader[];
  labels: readonly string[];
}

/** analyzeVectors over readers the caller owns. */
export async function analyzeVectorReaders(src: VectorInputs, options: Omit<AnalyzeVectorsOptions, 'base' | 'models' | 'vectors' | 'labels'> = {}): Promise<VectorsReport> {
  const density = options.density ?? DEFAULT_OVERLAP_DENSITY;
  checkDensity(density);
  const K = src.inputs.length;
  if (K < 1) throw new UsageError('USAGE', 'analyze vectors: give at least one model (with --base) or vector');
  if (src.labels.length !== K) throw new UsageError('USAGE', `labels: expected ${K}, got ${src.labels.length}`);
  const hasBase = src.base !== undefined;
  const all = hasBase ? [src.base!, ...src.inputs] : [...src.inputs];
  const roles = hasBase ? ['base', ...src.labels.map((l) => `fine-tuned model '${l}'`)] : src.labels.map((l) => `vector '${l}'`);
  const { shared, skipped } = sharedTensors(all, roles);
  const layerOf = layerKeys(shared.map((t) => t.name));
  const states: JobState[] = [];
  const scratch = newScratch(K);
  const tensorSpectra: (MatrixSpectrum[] | undefined)[] = [];
  const jobs: StreamJob[] = shared.map((t, ti) => {
    const numel = t.shape.reduce((x, y) => x * y, 1);
    const k = Math.round(density * numel);
    const wantSpectra = Boolean(options.spectra) && t.shape.length === 2 && numel > 0;
    const st: JobState = {
      acc: newAcc(K, hasBase),
      selectors: [],
      thresholds: [],
      ties: [],
      needLow: [],
      full: undefined,
      spectra: undefined,
    };
    st.acc.numel = numel;
    st.acc.tensors = 1;
    states.push(st);
    const job: StreamJob = {
      name: t.name,
      shape: t.shape,
      inputs: all.map((r) => ({ reader: r, tensor: t.name })),
      outputs: [],
      passes: 2,
      scratchBytesPerElement: wantSpectra ? 4 * K : 0,
      prepare: async () => {
        st.selectors = Array.from({ length: K }, () => new MagnitudeSelector());
        if (wantSpectra) st.full = Array.from({ length: K }, () => new Float32Array(numel));
      },
      observe: (pass, ins, chunk) => {
        for (let p0 = 0; p0 < chunk.numel; p0 += PIECE) {
          const p1 = Math.min(chunk.numel, p0 + PIECE);
          const ds = deltasOf(scratch, ins, p0, p1, hasBase, K);
          if (pass === 0) observeFirst(st, scratch, ds, hasBase ? (ins[0] as Float32Array).subarray(p0, p1) : undefined, p1 - p0);
          else observeSecond(st, ds, p1 - p0, numel);
        }
        if (pass === 0) {
          if (chunk.r1 >= t.shape[0]! || t.shape.length === 0) {
            st.needLow = st.selectors.map((s) => s.resolveHigh(k));
          }
        } else {
          if (chunk.r1 >= t.shape[0]! || t.shape.length === 0) {
            st.thresholds = st.selectors.map((s) => s.threshold());
            st.ties = st.thresholds.map((th) => ({ ties: th.ties }));
            st.selectors = [];
          }
        }
      },
      emit: (ins, _outs, chunk) => {
        for (let p0 = 0; p0 < chunk.numel; p0 += PIECE) {
          const p1 = Math.min(chunk.numel, p0 + PIECE);
          emitMasks(st, scratch, deltasOf(scratch, ins, p0, p1, hasBase, K), p1 - p0, chunk.offset + p0);
        }
      },
      afterChunk: async (chunk) => {
        if (!st.full || chunk.r1 < t.shape[0]!) return;
        const full = st.full;
        st.full = undefined;
        const out: MatrixSpectrum[] = [];
        for (const m of full) out.push(await matrixSpectrum(m, t.shape[0]!, t.shape[1]!, options.spectrum ?? {}));
        tensorSpectra[ti] = out;
      },
    };
    return job;
  });
  const r = await runStream(jobs, {
    sinks: [],
    ...(options.budgetBytes !== undefined ? { budgetBytes: options.budgetBytes } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  const global = newAcc(K, hasBase);
  const layers = new Map<LayerKey, Acc>();
  const tensors: TensorVectorStats[] = shared.map((t, i) => {
    const acc = states[i]!.acc;
    const layer = layerOf.get(t.name)!;
    addAcc(global, acc);
    let l = layers.get(layer);
    if (!l) layers.set(layer, (l = newAcc(K, hasBase)));
    addAcc(l, acc);
    const sp = tensorSpectra[i];
    return { name: t.name, shape: [...t.shape], layer, ...finish(acc), ...(sp ? { spectra: sp } : {}) };
  });
  const notes: string[] = [];
  if (!hasBase) notes.push('no base model: relative change ‖δ‖/‖W‖ is not available (vectors analysed as given)');
  if (K < 2) notes.push('one vector: no pairwise statistics');
  return {
    kind: 'weightkit.analyze.vectors',
    version: 1,
    mode: hasBase ? 'base' : 'vectors',
    base: hasBase ? src.base!.path : null,
    paths: src.inputs.map((x) => x.path),
    labels: [...src.labels],
    density,
    notes,
    global: finish(global),
    layers: [...layers.entries()].sort((x, y) => compareLayerKeys(x[0], y[0])).map(([layer, acc]) => ({ layer, ...finish(acc) })),
    tensors,
    skipped: skipped.map((name) => ({ name, reason: 'not a float tensor in every input' })),
    bytesRead: r.bytesRead,
  };
}

/** `analyze vectors`: opens the inputs (--base B M1.. or --vectors V1..), analyses them, closes them. */
export async function analyzeVectors(options: AnalyzeVectorsOptions): Promise<VectorsReport> {
  const hasModels = options.models !== undefined && options.models.length > 0;
  const hasVectors = options.vectors !== undefined && options.vectors.length > 0;
  if (hasModels === hasVectors) throw new UsageError('USAGE', 'analyze vectors: give --base with models, or --vectors (one of them)');
  if (hasModels && options.base === undefined) throw new UsageError('USAGE', 'analyze vectors: models need --base (or pass stored vectors with --vectors)');
  if (hasVectors && options.base !== undefined) throw new UsageError('USAGE', 'analyze vectors: --base goes with models, not with --vectors');
  checkDensity(options.density ?? DEFAULT_OVERLAP_DENSITY);
  const paths = [...(hasModels ? options.models! : options.vectors!)];
  const labels = options.labels ? [...options.labels] : defaultLabels(paths);
  const opened: CheckpointReader[] = [];
  try {
    const base = options.base !== undefined ? await openCheckpointPath(options.base) : undefined;
    if (base) opened.push(base);
    const inputs: CheckpointReader[] = [];
    for (const p of paths) {
      const r = hasModels ? await openCheckpointPath(p) : await openModelOrVector(p);
      opened.push(r);
      inputs.push(r);
    }
    return await analyzeVectorReaders({ ...(base ? { base } : {}), inputs, labels }, options);
  } finally {
    for (const r of opened) await r.close();
  }
}
