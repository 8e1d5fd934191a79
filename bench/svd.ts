// TSV-M throughput and accuracy. Speed: one 4096 x 4096 layer merged from 4 synthetic task vectors with a decaying
// spectrum (seconds per layer, the better of two runs, ORT backend with the native dense kernels when built) against its GEMM floor measured
// in the same run: the method's own flop estimate (TSV.wholeTensorCost, the number `merge --dry-run` prints) at the
// 4096³ matmul rate of this machine, i.e. the time the matrix products alone need; TSV-M with the subspace-iteration
// range finder (the earlier default) and Iso-C likewise. Accuracy: on a 1024 x 1024 case the randomized path (block
// Krylov or subspace iteration + Newton polar factors) with its defaults, with range_finder subspace and with Halko's
// p = 10, q = 2 against the exact one (Jacobi, f64).
// BENCH_SVD_SENSITIVITY=1 also merges exactly from inputs perturbed by 1e-3 relative noise: how much the exact
// TSV-M itself moves, the scale any approximation should be judged on. Seeded data; no Math.random.
// Sizes: BENCH_SVD_N (4096), BENCH_SVD_EXACT_N (1024; the exact path is JS Jacobi, several minutes at 1024).

import { pathToFileURL } from 'node:url';
import { createOrtMatMul } from '../src/eval/ort-matmul.js';
import { ISO_C, TSV } from '../src/merge/methods/tsv.js';
import { mergeTensorsAsync } from '../src/merge/run.js';
import type { MergeMethod } from '../src/merge/types.js';
import type { MatMulBackend } from '../src/tensor/linalg/backend.js';
import { orthonormalizeColumns } from '../src/tensor/linalg/qr.js';
import { SeededRandom } from '../src/tensor/rng.js';
import type { BenchResult } from './types.js';

function gaussianF32(len: number, seed: number, scale = 1): Float32Array {
  const rng = new SeededRandom(seed);
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) out[i] = rng.normal() * scale;
  return out;
}

/** τ = U diag(s) Vᵀ (n x n, rank n/2 + n/8) with s_i = 0.01·0.997^i·(1 + task-specific jitter): a decaying spectrum. */
async function taskVector(n: number, t: number, be: MatMulBackend): Promise<Float32Array> {
  const rank = Math.floor(n / 2 + n / 8);
  const u = await orthonormalizeColumns(gaussianF32(n * rank, 100 + t), n, rank, be);
  const v = await orthonormalizeColumns(gaussianF32(n * rank, 200 + t), n, rank, be);
  const rng = new SeededRandom(300 + t);
  for (let j = 0; j < rank; j++) {
    const s = 0.01 * 0.997 ** (j * (4096 / n)) * (1 + 0.1 * rng.next());
    for (let i = 0; i < n; i++) u[i * rank + j] *= s;
  }
  return be.matmul(u, v, n, rank, n, { transB: true });
}

interface Family {
  base: Float32Array;
  models: Float32Array[];
}

async function family(n: number, tasks: number, be: MatMulBackend): Promise<Family> {
  const base = gaussianF32(n * n, 7, 0.02);
  const models: Float32Array[] = [];
  for (let t = 0; t < tasks; t++) {
    const tau = await taskVector(n, t, be);
    models.push(Float32Array.from(base, (b, i) => b + tau[i]!));
  }
  return { base, models };
}

/** The family with every task vector perturbed by Gaussian noise of `rel` times its Frobenius norm. */
function perturbed(fam: Family, rel: number): Family {
  return {
    base: fam.base,
    models: fam.models.map((x, t) => {
      const g = gaussianF32(x.length, 900 + t);
      let nt = 0;
      let ng = 0;
      for (let i = 0; i < x.length; i++) {
        nt += (x[i]! - fam.base[i]!) ** 2;
        ng += g[i]! ** 2;
      }
      const f = rel * Math.sqrt(nt / ng);
      return Float32Array.from(x, (v, i) => v + f * g[i]!);
    }),
  };
}

/** ‖a − b‖ / ‖b − base‖: how far a merged tensor is from a reference merge, relative to the reference's update. */
export function relDiff(a: Float32Array, b: Float32Array, base: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += (b[i]! - base[i]!) ** 2;
  }
  return Math.sqrt(num / den);
}

/** Matmul rate (flop/s) of the backend on n³ products: the best of `runs` after a warm-up. */
async function gemmRate(be: MatMulBackend, n: number, runs = 3): Promise<number> {
  const a = gaussianF32(n * n, 1);
  const b = gaussianF32(n * n, 2);
  await be.matmul(a, b, n, n, n);
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await be.matmul(a, b, n, n, n);
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return (2 * n ** 3) / best;
}

async function timedMerge(method: MergeMethod, fam: Family, n: number, params: Record<string, string | number>, be?: MatMulBackend): Promise<{ out: Float32Array; s: number }> {
  const t0 = performance.now();
  const out = await mergeTensorsAsync(method, fam, { shape: [n, n], params, ...(be ? { linalg: be } : {}), name: 'layer' });
  return { out, s: (performance.now() - t0) / 1000 };
}

export async function benchSvd(): Promise<BenchResult[]> {
  const n = Number(process.env['BENCH_SVD_N'] ?? 4096);
  const exactN = Number(process.env['BENCH_SVD_EXACT_N'] ?? 1024);
  const sensitivity = process.env['BENCH_SVD_SENSITIVITY'] === '1';
  const be = await createOrtMatMul({ threads: 2 });
  const results: BenchResult[] = [];
  try {
    await speed(be, n, results);
    await accuracy(be, exactN, sensitivity, results);
  } finally {
    await be.dispose();
  }
  return results;
}

/** Seconds per n² layer of tsv and iso_c against their GEMM floor. */
async function speed(be: MatMulBackend, n: number, results: BenchResult[]): Promise<void> {
  const rate = await gemmRate(be, n);
  results.push({ name: `ORT matmul ${n}³ (${be.name}), the floor's rate`, value: rate / 1e9, unit: 'GFLOP/s' });
  const fam = await family(n, 4, be);
  for (const [method, params] of [
    [TSV, { svd: 'randomized' }],
    [TSV, { svd: 'randomized', range_finder: 'subspace' }],
    [ISO_C, { polar: 'newton_schulz' }],
  ] as const) {
    const cost = method.wholeTensorCost!([n, n], 4, params)!;
    const flops = cost.flops;
    // a merge runs layer after layer: the steady state is the second of two runs (the first also pays for fresh
    // memory and cold caches; printed too)
    const first = (await timedMerge(method, fam, n, params, be)).s;
    const s = Math.min(first, (await timedMerge(method, fam, n, params, be)).s);
    const floor = flops / rate;
    results.push({
      name: `${method.name} ${n}x${n}, 4 tasks (${be.name}${'range_finder' in params ? ', range_finder subspace' : ''})`,
      value: s,
      unit: 's per layer (lower is better)',
      note: `best of 2 runs, first ${first.toFixed(2)} s; GEMM floor ${floor.toPrecision(3)} s (${(flops / 1e12).toFixed(2)} TFLOP estimated at ${(rate / 1e9).toFixed(0)} GFLOP/s): ratio ${(s / floor).toFixed(2)}; achieved ${(flops / s / 1e9).toFixed(0)} GFLOP/s; plus ${((cost.jsFlops ?? 0) / 1e9).toFixed(0)} GFLOP estimated in JS loops${method === TSV ? '; target < 10 s' : ''}`,
    });
  }
}

/** Randomized vs exact TSV-M on an exactN² layer (and, optionally, the exact merge's own sensitivity). */
async function accuracy(be: MatMulBackend, exactN: number, sensitivity: boolean, results: BenchResult[]): Promise<void> {
  const fam = await family(exactN, 4, be);
  const exact = await timedMerge(TSV, fam, exactN, { svd: 'exact' });
  for (const [label, params] of [
    ['defaults: range_finder auto = block Krylov here, 14 blocks of ⌈1.75k/14⌉ columns', { svd: 'randomized' }],
    ['range_finder subspace, p = max(10, k/4), q = 3', { svd: 'randomized', range_finder: 'subspace' }],
    ["Halko's p = 10, q = 2", { svd: 'randomized', oversampling: 10, power_iterations: 2 }],
  ] as const) {
    const r = await timedMerge(TSV, fam, exactN, params, be);
    results.push({
      name: `tsv ${exactN}² randomized (${label}) vs exact: ‖Δθ‖/‖θ_exact − base‖`,
      value: relDiff(r.out, exact.out, fam.base),
      unit: 'relative error (lower is better)',
      note: `randomized ${r.s.toFixed(2)} s, exact (JS Jacobi) ${exact.s.toFixed(1)} s`,
    });
  }
  if (sensitivity) {
    const moved = await timedMerge(TSV, perturbed(fam, 1e-3), exactN, { svd: 'exact' });
    results.push({
      name: `tsv ${exactN}² exact, inputs perturbed by 1e-3: ‖Δθ‖/‖θ_exact − base‖`,
      value: relDiff(moved.out, exact.out, fam.base),
      unit: 'relative change (the conditioning baseline)',
    });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const r of await benchSvd()) console.log(`${r.name}: ${r.value.toPrecision(4)} ${r.unit}${r.note ? ` (${r.note})` : ''}`);
}
