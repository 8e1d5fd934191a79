// `analyze distance`: a metric space of models or vectors (Deep Language Geometry, paper-methods.md §16): a streamed
// Gram matrix and pairwise squared distances over every shared float tensor, classical MDS to 2-D with its stress,
// and average-linkage hierarchical clustering as data. The n x n steps are pure functions (n is small). Must not
// import src/cli or ORT.

import { UsageError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import type { CheckpointReader } from '../io/types.js';
import { symmetricEigen } from '../tensor/linalg/index.js';
import { runStream, type StreamJob, type StreamProgress } from '../vectors/stream.js';
import { defaultLabels, openModelOrVector, sharedTensors } from './vectors.js';

export type DistanceMetric = 'cosine' | 'l2';

export interface MdsResult {
  /** one [x, y] per point (dims coordinates in general) */
  coords: number[][];
  /** the top eigenvalues of the double-centred matrix B = −½ J D² J, descending */
  eigenvalues: number[];
  /** Kruskal stress-1: sqrt(Σ (d_ij − ‖x_i − x_j‖)² / Σ d_ij²) over i < j (0 when all distances are 0) */
  stress: number;
}

export interface ClusterMerge {
  /** cluster ids: 0..n−1 are the points, n + s the cluster made by merge s */
  left: number;
  right: number;
  /** average-linkage distance at which they merge */
  distance: number;
  /** points in the new cluster */
  size: number;
}

export interface Clustering {
  linkage: 'average';
  /** n − 1 merges, in order (scipy's linkage-matrix convention) */
  merges: ClusterMerge[];
  /** the dendrogram's leaf order (left to right) */
  order: number[];
}

export interface DistanceReport {
  kind: 'weightkit.analyze.distance';
  version: 1;
  metric: DistanceMetric;
  /** with a base, the points are the task vectors M_i − base */
  base: string | null;
  paths: string[];
  labels: string[];
  /** elements compared per point */
  numel: number;
  tensors: number;
  /** n x n distances: cosine 1 − cos(x_i, x_j), l2 ‖x_i − x_j‖ */
  matrix: number[][];
  /** n x n cosine similarities (also reported under l2) */
  cosine: number[][];
  /** ‖x_i‖ */
  norms: number[];
  mds: MdsResult;
  clustering: Clustering;
  skipped: string[];
  bytesRead: number;
}

export interface AnalyzeDistanceOptions {
  /** models (checkpoints) or stored vectors; at least two */
  paths: readonly string[];
  base?: string;
  metric?: DistanceMetric;
  labels?: readonly string[];
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

function square(n: number): number[][] {
  return Array.from({ length: n }, () => new Array<number>(n).fill(0));
}

function checkMatrix(d: readonly (readonly number[])[], what: string): number {
  const n = d.length;
  for (const row of d) if (row.length !== n) throw new UsageError('USAGE', `${what}: expected a square matrix, got a row of ${row.length} for ${n} rows`);
  return n;
}

/** Classical (Torgerson) MDS: B = −½ J D² J, coordinates from the top `dims` eigenpairs (negative eigenvalues → 0). */
export function classicalMds(d: readonly (readonly number[])[], dims = 2): MdsResult {
  const n = checkMatrix(d, 'classicalMds');
  const sq = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) sq[i * n + j] = d[i]![j]! * d[i]![j]!;
  const rowMean = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += sq[i * n + j]!;
    rowMean[i] = s / n;
    total += s;
  }
  const mean = n > 0 ? total / (n * n) : 0;
  const b = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) b[i * n + j] = -0.5 * (sq[i * n + j]! - rowMean[i]! - rowMean[j]! + mean);
  }
  const eig = symmetricEigen({ rows: n, cols: n, data: b });
  const k = Math.min(dims, n);
  const coords = Array.from({ length: n }, () => new Array<number>(dims).fill(0));
  const eigenvalues: number[] = [];
  for (let c = 0; c < k; c++) {
    const lambda = eig.values[c]!;
    eigenvalues.push(lambda);
    const s = Math.sqrt(Math.max(0, lambda));
    for (let i = 0; i < n; i++) coords[i]![c] = eig.vectors.data[i * n + c]! * s;
  }
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let e = 0;
      for (let c = 0; c < dims; c++) e += (coords[i]![c]! - coords[j]![c]!) ** 2;
      num += (d[i]![j]! - Math.sqrt(e)) ** 2;
      den += d[i]![j]! ** 2;
    }
  }
  return { coords, eigenvalues, stress: den > 0 ? Math.sqrt(num / den) : 0 };
}

/** Average-linkage (UPGMA) agglomerative clustering; ties merge the pair with the smallest ids first. */
export function averageLinkage(d: readonly (readonly number[])[]): Clustering {
  const n = checkMatrix(d, 'averageLinkage');
  // active clusters: id -> members; distances between active clusters by id pair
  const members = new Map<number, number[]>();
  for (let i = 0; i < n; i++) members.set(i, [i]);
  const dist = new Map<string, number>();
  const key = (a: number, b: number): string => (a < b ? `${a},${b}` : `${b},${a}`);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) dist.set(key(i, j), (d[i]![j]! + d[j]![i]!) / 2);
  const merges: ClusterMerge[] = [];
  const children = new Map<number, [number, number]>();
  for (let s = 0; s < n - 1; s++) {
    const ids = [...members.keys()].sort((x, y) => x - y);
    let best: [number, number] = [ids[0]!, ids[1]!];
    let bestD = Infinity;
    for (let x = 0; x < ids.length; x++) {
      for (let y = x + 1; y < ids.length; y++) {
        const v = dist.get(key(ids[x]!, ids[y]!))!;
        if (v < bestD) {
          bestD = v;
          best = [ids[x]!, ids[y]!];
        }
      }
    }
    const [a, b] = best;
    const ma = members.get(a)!;
    const mb = members.get(b)!;
    const id = n + s;
    members.delete(a);
    members.delete(b);
    for (const c of members.keys()) {
      const dv = (dist.get(key(a, c))! * ma.length + dist.get(key(b, c))! * mb.length) / (ma.length + mb.length);
      dist.set(key(id, c), dv);
    }
    members.set(id, [...ma, ...mb]);
    children.set(id, [a, b]);
    merges.push({ left: a, right: b, distance: bestD, size: ma.length + mb.length });
  }
  const order: number[] = [];
  const walk = (c: number): void => {
    const ch = children.get(c);
    if (!ch) order.push(c);
    else {
      walk(ch[0]);
      walk(ch[1]);
    }
  };
  if (n > 0) walk(n === 1 ? 0 : 2 * n - 2);
  return { linkage: 'average', merges, order };
}

/** Distances from streamed sums: ⟨x_i, x_j⟩ (Gram) and Σ (x_i − x_j)² (exact, no cancellation). */
export function distancesFrom(gram: readonly (readonly number[])[], sqDiff: readonly (readonly number[])[], metric: DistanceMetric): { matrix: number[][]; cosine: number[][] } {
  const n = gram.length;
  const matrix = square(n);
  const cosine = square(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const den = Math.sqrt(gram[i]![i]! * gram[j]![j]!);
      const c = i === j ? (gram[i]![i]! > 0 ? 1 : 0) : den > 0 ? Math.max(-1, Math.min(1, gram[i]![j]! / den)) : 0;
      cosine[i]![j] = c;
      matrix[i]![j] = i === j ? 0 : metric === 'cosine' ? 1 - c : Math.sqrt(sqDiff[i]![j]!);
    }
  }
  return { matrix, cosine };
}

/** The distance report over readers the caller owns (points = inputs, or inputs − base). */
export async function analyzeDistanceReaders(
  src: { base?: CheckpointReader; inputs: readonly CheckpointReader[]; labels: readonly string[] },
  options: Omit<AnalyzeDistanceOptions, 'paths' | 'base' | 'labels'> = {},
): Promise<DistanceReport> {
  const metric = options.metric ?? 'cosine';
  if (metric !== 'cosine' && metric !== 'l2') throw new UsageError('USAGE', `metric: expected cosine or l2, got '${String(metric)}'`);
  const n = src.inputs.length;
  if (n < 2) throw new UsageError('USAGE', `analyze distance: expected at least 2 models or vectors, got ${n}`);
  const hasBase = src.base !== undefined;
  const all = hasBase ? [src.base!, ...src.inputs] : [...src.inputs];
  const roles = hasBase ? ['base', ...src.labels.map((l) => `'${l}'`)] : src.labels.map((l) => `'${l}'`);
  const { shared, skipped } = sharedTensors(all, roles);
  const gram = new Float64Array(n * n);
  const sqd = new Float64Array(n * n);
  let numel = 0;
  // one accumulator set per tensor, added in tensor order afterwards: results do not depend on lane timing
  const perTensor: { g: Float64Array; s: Float64Array }[] = [];
  const jobs: StreamJob[] = shared.map((t, ti) => {
    numel += t.shape.reduce((a, b) => a * b, 1);
    const acc = { g: new Float64Array(n * n), s: new Float64Array(n * n) };
    perTensor[ti] = acc;
    const deltas: Float32Array[] = Array.from({ length: n }, () => new Float32Array(0));
    return {
      name: t.name,
      shape: t.shape,
      inputs: all.map((r) => ({ reader: r, tensor: t.name })),
      outputs: [],
      scratchBytesPerElement: hasBase ? 4 * n : 0,
      emit: (ins, _outs, chunk) => {
        const len = chunk.numel;
        const xs: Float32Array[] = [];
        for (let k = 0; k < n; k++) {
          if (!hasBase) xs.push((ins[k] as Float32Array).subarray(0, len));
          else {
            if (deltas[k]!.length < len) deltas[k] = new Float32Array(len);
            const d = deltas[k]!;
            const x = ins[k + 1] as Float32Array;
            const b = ins[0] as Float32Array;
            for (let e = 0; e < len; e++) d[e] = x[e]! - b[e]!;
            xs.push(d.subarray(0, len));
          }
        }
        for (let i = 0; i < n; i++) {
          const x = xs[i]!;
          let g = acc.g[i * n + i]!;
          for (let e = 0; e < len; e++) g += x[e]! * x[e]!;
          acc.g[i * n + i] = g;
          for (let j = i + 1; j < n; j++) {
            const y = xs[j]!;
            let dot = acc.g[i * n + j]!;
            let s = acc.s[i * n + j]!;
            for (let e = 0; e < len; e++) {
              const a = x[e]!;
              const b = y[e]!;
              dot += a * b;
              const df = a - b;
              s += df * df;
            }
            acc.g[i * n + j] = dot;
            acc.s[i * n + j] = s;
          }
        }
      },
    };
  });
  const r = await runStream(jobs, {
    sinks: [],
    ...(options.budgetBytes !== undefined ? { budgetBytes: options.budgetBytes } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.onProgress ? { onProgress: options.onProgress } : {}),
  });
  for (const acc of perTensor) {
    for (let i = 0; i < n * n; i++) {
      gram[i] = gram[i]! + acc.g[i]!;
      sqd[i] = sqd[i]! + acc.s[i]!;
    }
  }
  const g = square(n);
  const s = square(n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      g[i]![j] = g[j]![i] = gram[i * n + j]!;
      s[i]![j] = s[j]![i] = i === j ? 0 : sqd[i * n + j]!;
    }
  }
  const { matrix, cosine } = distancesFrom(g, s, metric);
  return {
    kind: 'weightkit.analyze.distance',
    version: 1,
    metric,
    base: hasBase ? src.base!.path : null,
    paths: src.inputs.map((x) => x.path),
    labels: [...src.labels],
    numel,
    tensors: shared.length,
    matrix,
    cosine,
    norms: Array.from({ length: n }, (_, i) => Math.sqrt(gram[i * n + i]!)),
    mds: classicalMds(matrix),
    clustering: averageLinkage(matrix),
    skipped,
    bytesRead: r.bytesRead,
  };
}

/** `analyze distance`: opens the models or vectors (and the base), builds the report, closes them. */
export async function analyzeDistance(options: AnalyzeDistanceOptions): Promise<DistanceReport> {
  const labels = options.labels ? [...options.labels] : defaultLabels(options.paths);
  if (labels.length !== options.paths.length) throw new UsageError('USAGE', `labels: expected ${options.paths.length}, got ${labels.length}`);
  if (options.paths.length < 2) throw new UsageError('USAGE', `analyze distance: expected at least 2 models or vectors, got ${options.paths.length}`);
  const opened: CheckpointReader[] = [];
  try {
    const base = options.base !== undefined ? await openCheckpointPath(options.base) : undefined;
    if (base) opened.push(base);
    const inputs: CheckpointReader[] = [];
    for (const p of options.paths) {
      const r = await openModelOrVector(p);
      opened.push(r);
      inputs.push(r);
    }
    return await analyzeDistanceReaders({ ...(base ? { base } : {}), inputs, labels }, options);
  } finally {
    for (const r of opened) await r.close();
  }
}
