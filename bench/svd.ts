// TSV-M throughput and accuracy: one 4096 x 4096 layer merged from 4 synthetic task vectors with a decaying spectrum
// (seconds per layer, ORT backend), and the randomized path (rSVD + Newton–Schulz polar) against the exact one
// (Jacobi in f64) on a 1024 x 1024 case in the same run. Seeded data; no Math.random. Sizes: BENCH_SVD_N (4096),
// BENCH_SVD_EXACT_N (1024; the exact path is JS Jacobi, several minutes at 1024).

import { pathToFileURL } from 'node:url';
import { createOrtMatMul } from '../src/eval/ort-matmul.js';
import { ISO_C, TSV } from '../src/merge/methods/tsv.js';
import { mergeTensorsAsync } from '../src/merge/run.js';
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

async function family(n: number, tasks: number, be: MatMulBackend): Promise<{ base: Float32Array; models: Float32Array[] }> {
  const base = gaussianF32(n * n, 7, 0.02);
  const models: Float32Array[] = [];
  for (let t = 0; t < tasks; t++) {
    const tau = await taskVector(n, t, be);
    models.push(Float32Array.from(base, (b, i) => b + tau[i]!));
  }
  return { base, models };
}

function relDiff(a: Float32Array, b: Float32Array, base: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += (b[i]! - base[i]!) ** 2;
  }
  return Math.sqrt(num / den);
}

export async function benchSvd(): Promise<BenchResult[]> {
  const n = Number(process.env['BENCH_SVD_N'] ?? 4096);
  const exactN = Number(process.env['BENCH_SVD_EXACT_N'] ?? 1024);
  const be = await createOrtMatMul({ threads: 2 });
  const results: BenchResult[] = [];
  try {
    {
      const fam = await family(n, 4, be);
      const t0 = performance.now();
      await mergeTensorsAsync(TSV, fam, { shape: [n, n], params: { svd: 'randomized' }, linalg: be, name: 'layer' });
      const s = (performance.now() - t0) / 1000;
      results.push({ name: `tsv ${n}x${n}, 4 tasks (randomized, ${be.name})`, value: s, unit: 's per layer (lower is better)', note: 'target < 10 s on 2 cores' });
      const t1 = performance.now();
      await mergeTensorsAsync(ISO_C, fam, { shape: [n, n], params: { polar: 'newton_schulz' }, linalg: be, name: 'layer' });
      results.push({ name: `iso_c ${n}x${n}, 4 tasks (Newton–Schulz, ${be.name})`, value: (performance.now() - t1) / 1000, unit: 's per layer (lower is better)' });
    }
    {
      const fam = await family(exactN, 4, be);
      const t0 = performance.now();
      const approx = await mergeTensorsAsync(TSV, fam, { shape: [exactN, exactN], params: { svd: 'randomized' }, linalg: be, name: 'layer' });
      const tr = (performance.now() - t0) / 1000;
      const t1 = performance.now();
      const exact = await mergeTensorsAsync(TSV, fam, { shape: [exactN, exactN], params: { svd: 'exact' }, name: 'layer' });
      const te = (performance.now() - t1) / 1000;
      results.push({
        name: `tsv ${exactN}x${exactN} randomized vs exact: ‖Δθ‖/‖θ_exact − base‖`,
        value: relDiff(approx, exact, fam.base),
        unit: 'relative error (lower is better)',
        note: `randomized ${tr.toFixed(2)} s, exact (JS Jacobi) ${te.toFixed(1)} s`,
      });
    }
  } finally {
    await be.dispose();
  }
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const r of await benchSvd()) console.log(`${r.name}: ${r.value.toPrecision(4)} ${r.unit}${r.note ? ` (${r.note})` : ''}`);
}
