// KnOTS speed and the rank it finds. (1) One 4096 x 4096 layer merged from 4 rank-16 LoRA updates presented as the
// recipes present `base+adapter` models, f32(base + B·A), on the ORT backend: seconds, the low-rank route's rank and
// width, against the GEMM floor of its products; also with a base of |W| ≈ 1 (rounding noise of base + ΔW near
// sv_epsilon). (2) A dense 1024² layer with 4 full-rank task vectors: the full Gram route, seconds, and its distance
// to the exact (JS f64) path next to the exact path's own change under 1e-6 relative input noise (KnOTS's TIES step
// is not rotation invariant, so near-degenerate singular subspaces make it sensitive). Seeded data; no Math.random. Sizes: BENCH_KNOTS_N (4096), BENCH_KNOTS_DENSE_N (1024).

import { pathToFileURL } from 'node:url';
import { createOrtMatMul } from '../src/eval/ort-matmul.js';
import { KNOTS, knotsFactors } from '../src/merge/methods/knots.js';
import { mergeTensorsAsync } from '../src/merge/run.js';
import type { MatMulBackend } from '../src/tensor/linalg/backend.js';
import { SeededRandom } from '../src/tensor/rng.js';
import { relDiff } from './svd.js';
import type { BenchResult } from './types.js';

function gaussianF32(len: number, seed: number, scale = 1): Float32Array {
  const rng = new SeededRandom(seed);
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) out[i] = rng.normal() * scale;
  return out;
}

/** f32(base + B·A) for T LoRAs of rank r (B: n x r, A: r x n, entries giving |ΔW| ≈ 1e-3), through the backend. */
async function loraModels(base: Float32Array, n: number, T: number, r: number, be: MatMulBackend): Promise<Float32Array[]> {
  const models: Float32Array[] = [];
  for (let t = 0; t < T; t++) {
    const b = gaussianF32(n * r, 10 + t, 0.016);
    const a = gaussianF32(r * n, 20 + t, 0.016);
    const d = await be.matmul(b, a, n, r, n);
    models.push(Float32Array.from(base, (x, i) => x + d[i]!));
  }
  return models;
}


async function timed<T>(f: () => Promise<T>): Promise<{ value: T; s: number }> {
  const t0 = performance.now();
  const value = await f();
  return { value, s: (performance.now() - t0) / 1000 };
}

async function gemmRate(be: MatMulBackend, n: number): Promise<number> {
  const a = gaussianF32(n * n, 1);
  const b = gaussianF32(n * n, 2);
  await be.matmul(a, b, n, n, n);
  const { s } = await timed(() => be.matmul(a, b, n, n, n));
  return (2 * n ** 3) / s;
}

export async function benchKnots(): Promise<BenchResult[]> {
  const n = Number(process.env['BENCH_KNOTS_N'] ?? 4096);
  const dn = Number(process.env['BENCH_KNOTS_DENSE_N'] ?? 1024);
  const be = await createOrtMatMul({ threads: 2 });
  const results: BenchResult[] = [];
  try {
    const rate = await gemmRate(be, 2048);
    results.push({ name: `ORT matmul 2048³ (${be.name})`, value: rate / 1e9, unit: 'GFLOP/s' });
    for (const baseScale of [0.02, 1]) {
      const base = gaussianF32(n * n, 7, baseScale);
      const models = await loraModels(base, n, 4, 16, be);
      const params = { trim_scope: 'tensor' };
      const { s } = await timed(() => mergeTensorsAsync(KNOTS, { base, models }, { shape: [n, n], params, linalg: be, name: 'layer' }));
      const taus = models.map((x) => Float32Array.from(x, (v, i) => v - base[i]!));
      const f = await knotsFactors(taus, n, n, { epsilon: 1e-5, relative: false, exact: false, powerIterations: 2, backend: be, seed: 1 });
      // products of the low-rank route: (2q + 3) passes of T products O x I x l, plus R_t and the reconstruction
      const flops = 7 * 4 * 2 * n * n * f.width + 4 * 2 * f.rank * f.width * n + 2 * n * f.rank * n;
      results.push({
        name: `knots ${n}², 4 rank-16 LoRAs, |W| ≈ ${baseScale} (${be.name})`,
        value: s,
        unit: 's per layer (lower is better)',
        note: `rank ${f.rank} (Σ r_t = 64), route ${f.route === 1 ? 'low-rank' : f.route === 2 ? 'full Gram' : 'exact'}, width ${f.width}, σ_max ${f.s[0]?.toExponential(2)}, σ_min kept ${f.s[f.rank - 1]?.toExponential(2)}; GEMM floor ${(flops / rate).toFixed(2)} s`,
      });
    }
    const base = gaussianF32(dn * dn, 8, 0.02);
    const models = Array.from({ length: 4 }, (_, t) => Float32Array.from(gaussianF32(dn * dn, 30 + t, 1e-3), (d, i) => base[i]! + d));
    const fast = await timed(() => mergeTensorsAsync(KNOTS, { base, models }, { shape: [dn, dn], params: { trim_scope: 'tensor', svd: 'randomized' }, linalg: be, name: 'layer' }));
    const exact = await timed(() => mergeTensorsAsync(KNOTS, { base, models }, { shape: [dn, dn], params: { trim_scope: 'tensor', svd: 'exact' }, name: 'layer' }));
    // the conditioning baseline: how far the exact merge itself moves when the task vectors move by 1e-6 relative
    const noisy = models.map((x, t) => {
      const z = gaussianF32(x.length, 60 + t);
      return Float32Array.from(x, (v, i) => v + (v - base[i]!) * 1e-6 * z[i]!);
    });
    const moved = await mergeTensorsAsync(KNOTS, { base, models: noisy }, { shape: [dn, dn], params: { trim_scope: 'tensor', svd: 'exact' }, name: 'layer' });
    const cost = KNOTS.wholeTensorCost!([dn, dn], 4, { trim_scope: 'tensor', svd: 'randomized' })!;
    results.push({
      name: `knots ${dn}², 4 dense tasks, full Gram route (${be.name})`,
      value: fast.s,
      unit: 's per layer (lower is better)',
      note: `estimate ${(cost.flops / 1e9).toFixed(0)} GFLOP backend + ${((cost.jsFlops ?? 0) / 1e9).toFixed(1)} GFLOP JS; exact path (JS f64) ${exact.s.toFixed(1)} s; ‖Δθ‖/‖θ_exact − base‖ = ${relDiff(fast.value, exact.value, base).toExponential(2)}, the exact path's own change under 1e-6 relative input noise ${relDiff(moved, exact.value, base).toExponential(2)}`,
    });
  } finally {
    await be.dispose();
  }
  return results;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const r of await benchKnots()) console.log(`${r.name}: ${r.value.toPrecision(4)} ${r.unit}${r.note ? ` (${r.note})` : ''}`);
}
