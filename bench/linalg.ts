// Linear-algebra throughput: 1024³ matmul on JS vs ORT (1 and 2 threads) in one run; randomized SVD of a 4096 x 4096
// matrix with a known decaying spectrum (so the error is measured against the exact answer) at k = 64 and k = 1024;
// the polar factor of concatenated orthonormal blocks (TSV-M's shape). Seeded data; no Math.random.
// BENCH_LINALG_POLAR_N (default 1024) sets the polar size; 4096 runs the full TSV-M case (JS eigen: minutes).

import { pathToFileURL } from 'node:url';
import { createOrtMatMul } from '../src/eval/ort-matmul.js';
import { jsMatMul, type MatMulBackend } from '../src/tensor/linalg/backend.js';
import { orthonormalityError } from '../src/tensor/linalg/matrix.js';
import { polarFactor } from '../src/tensor/linalg/polar.js';
import { orthonormalizeColumns } from '../src/tensor/linalg/qr.js';
import { randomizedSvd } from '../src/tensor/linalg/randomized.js';
import { symmetricEigen } from '../src/tensor/linalg/svd.js';
import { SeededRandom } from '../src/tensor/rng.js';
import type { BenchResult } from './types.js';

function gaussianF32(len: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed);
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) out[i] = rng.normal();
  return out;
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function matmulRate(be: MatMulBackend, size: number, runs: number): Promise<number> {
  const a = gaussianF32(size * size, 1);
  const b = gaussianF32(size * size, 2);
  await be.matmul(a, b, size, size, size);
  const times: number[] = [];
  for (let r = 0; r < runs; r++) times.push(await seconds(() => be.matmul(a, b, size, size, size)));
  times.sort((x, y) => x - y);
  return (2 * size ** 3) / times[Math.floor(times.length / 2)]! / 1e9;
}

/** A = U diag(s) Vᵀ, n x n, U and V with `rank` orthonormal columns, s_i = 0.995^i (a decaying spectrum). */
async function decayingMatrix(n: number, rank: number, be: MatMulBackend): Promise<{ a: Float32Array; s: Float64Array }> {
  const u = await orthonormalizeColumns(gaussianF32(n * rank, 11), n, rank, be);
  const v = await orthonormalizeColumns(gaussianF32(n * rank, 12), n, rank, be);
  const s = new Float64Array(rank);
  for (let i = 0; i < rank; i++) s[i] = 0.995 ** i;
  for (let i = 0; i < n; i++) for (let j = 0; j < rank; j++) u[i * rank + j] *= s[j]!;
  return { a: await be.matmul(u, v, n, rank, n, { transB: true }), s };
}

/** ‖A − U diag(s) Vᵀ‖_F / ‖A‖_F with the product on the backend. */
async function relError(a: Float32Array, n: number, u: Float32Array, s: Float64Array, v: Float32Array, be: MatMulBackend): Promise<number> {
  const k = s.length;
  const us = Float32Array.from(u);
  for (let i = 0; i < n; i++) for (let j = 0; j < k; j++) us[i * k + j] *= s[j]!;
  const rec = await be.matmul(us, v, n, k, n, { transB: true });
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - rec[i]!) ** 2;
    den += a[i]! * a[i]!;
  }
  return Math.sqrt(num / den);
}

export async function benchLinalg(opts: { polarN?: number } = {}): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const ort1 = await createOrtMatMul({ threads: 1 });
  const ort2 = await createOrtMatMul({ threads: 2 });
  try {
    results.push({ name: 'matmul 1024^3 JS', value: await matmulRate(jsMatMul, 1024, 3), unit: 'GFLOP/s', note: 'ref 1.92 (platform 6.4)' });
    results.push({ name: 'matmul 1024^3 ORT 1 thread', value: await matmulRate(ort1, 1024, 5), unit: 'GFLOP/s', note: 'ref 63.1' });
    results.push({ name: 'matmul 1024^3 ORT 2 threads', value: await matmulRate(ort2, 1024, 5), unit: 'GFLOP/s', note: 'ref 135.8' });
    results.push({ name: 'matmul 4096x4096x1034 ORT 2 threads', value: await (async () => {
      const a = gaussianF32(4096 * 4096, 3);
      const b = gaussianF32(4096 * 1034, 4);
      await ort2.matmul(a, b, 4096, 4096, 1034);
      const t = await seconds(() => ort2.matmul(a, b, 4096, 4096, 1034));
      return (2 * 4096 * 4096 * 1034) / t / 1e9;
    })(), unit: 'GFLOP/s', note: 'the rSVD product shape at k = 1024' });

    for (const l of [256, 512, 1034]) {
      const g = gaussianF32(l * l, 5);
      const sym = new Float64Array(l * l);
      for (let i = 0; i < l; i++) for (let j = 0; j < l; j++) sym[i * l + j] = g[i * l + j]! + g[j * l + i]!;
      const t = await seconds(async () => symmetricEigen({ rows: l, cols: l, data: sym }));
      results.push({ name: `symmetricEigen ${l}x${l} (JS)`, value: t, unit: 's' });
    }

    const n = 4096;
    const { a, s } = await decayingMatrix(n, 2048, ort2);
    for (const k of [64, 1024]) {
      let res!: Awaited<ReturnType<typeof randomizedSvd>>;
      const t = await seconds(async () => {
        res = await randomizedSvd(a, n, n, k, { backend: ort2, seed: 1 });
      });
      const err = await relError(a, n, res.u, res.s, res.v, ort2);
      let tail = 0;
      let all = 0;
      for (let i = 0; i < s.length; i++) {
        all += s[i]! ** 2;
        if (i >= k) tail += s[i]! ** 2;
      }
      const optimal = Math.sqrt(tail / all);
      let worstS = 0;
      for (let i = 0; i < k; i++) worstS = Math.max(worstS, Math.abs(res.s[i]! - s[i]!) / s[i]!);
      results.push({ name: `randomizedSvd 4096^2 k=${k} (ORT 2t, q=2, p=10)`, value: t, unit: 's' });
      results.push({ name: `  rank-${k} rel. error / optimal`, value: err / optimal, unit: 'ratio', note: `error ${err.toExponential(3)}, optimal ${optimal.toExponential(3)}` });
      results.push({ name: `  max rel. error of top-${k} singular values`, value: worstS, unit: 'ratio' });
      results.push({ name: `  orthonormality ‖UᵀU−I‖max`, value: orthonormalityError(res.u, n, k), unit: 'abs' });
    }

    const pn = opts.polarN ?? 1024;
    const block = pn / 4;
    const cat = new Float32Array(pn * pn);
    for (let t = 0; t < 4; t++) {
      const q = await orthonormalizeColumns(gaussianF32(pn * block, 100 + t), pn, block, ort2);
      for (let i = 0; i < pn; i++) for (let j = 0; j < block; j++) cat[i * pn + t * block + j] = q[i * block + j]!;
    }
    let pol!: Awaited<ReturnType<typeof polarFactor>>;
    const tp = await seconds(async () => {
      pol = await polarFactor(cat, pn, pn, ort2);
    });
    results.push({ name: `polarFactor ${pn}x${pn} (4 blocks of ${block} orthonormal columns, ORT 2t)`, value: tp, unit: 's' });
    results.push({ name: `  orthonormality ‖PᵀP−I‖max`, value: orthonormalityError(pol.p, pn, pn), unit: 'abs' });
  } finally {
    await ort1.dispose();
    await ort2.dispose();
  }
  return results;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const polarN = Number(process.env['BENCH_LINALG_POLAR_N'] ?? 1024);
  for (const row of await benchLinalg({ polarN })) {
    console.log(`${row.name.padEnd(64)} ${row.value.toPrecision(4).padStart(10)} ${row.unit.padEnd(8)} ${row.note ?? ''}`.trimEnd());
  }
}
