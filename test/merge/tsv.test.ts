// TSV-M, R-TSVM and Iso-C: hand-checkable formulas, an in-test exact reference (Jacobi), identities, neutral
// R-TSVM == TSV-M bit for bit, the Newton–Schulz polar factor, determinism through merge, and errors.

import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RecipeProblems, WeightkitError } from '../../src/errors.js';
import { adaptiveRanks, ISO_C, RTSVM, TSV } from '../../src/merge/methods/tsv.js';
import { mergeTensors, mergeTensorsAsync } from '../../src/merge/run.js';
import { buildPlan, merge } from '../../src/plan/merge.js';
import { jsMatMul } from '../../src/tensor/linalg/backend.js';
import { fromArray } from '../../src/tensor/linalg/matrix.js';
import { polarExact, polarNewtonSchulz } from '../../src/tensor/linalg/newton-schulz.js';
import { jacobiSvd } from '../../src/tensor/linalg/svd.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { tempDir, tinyFamily } from '../plan/helpers.js';
import { add, maxAbs, maxAbsDiff, randomF32, refPolar } from './svd-ref.js';
import { withSpectrum } from '../tensor/linalg/helpers.js';





/** Reference TSV-M (paper §5, zero padding included) in f64: base + alpha·Û diag(s) V̂ᵀ. */
function refTsv(base: Float32Array, models: Float32Array[], m: number, n: number, alpha: number): Float64Array {
  const T = models.length;
  const r = Math.min(m, n);
  const k = Math.floor(r / T);
  const ucat = new Float64Array(m * r);
  const vcat = new Float64Array(n * r);
  const s = new Float64Array(r);
  models.forEach((x, t) => {
    const tau = Float32Array.from(x, (v, i) => v - base[i]!);
    const svd = jacobiSvd(fromArray(tau, m, n));
    for (let j = 0; j < k; j++) {
      s[t * k + j] = svd.s[j]!;
      for (let i = 0; i < m; i++) ucat[i * r + t * k + j] = svd.u.data[i * r + j]!;
      for (let i = 0; i < n; i++) vcat[i * r + t * k + j] = svd.v.data[i * r + j]!;
    }
  });
  // only the non-padded columns have full rank; the padding meets s = 0
  const c = T * k;
  const pick = (a: Float64Array, rows: number): Float64Array => {
    const o = new Float64Array(rows * c);
    for (let i = 0; i < rows; i++) for (let j = 0; j < c; j++) o[i * c + j] = a[i * r + j]!;
    return o;
  };
  const pu = refPolar(pick(ucat, m), m, c);
  const pv = refPolar(pick(vcat, n), n, c);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let l = 0; l < c; l++) acc += pu[i * c + l]! * s[l]! * pv[j * c + l]!;
    out[i * n + j] = base[i * n + j]! + alpha * acc;
  }
  return out;
}

function family(m: number, n: number, T: number, seed: number): { base: Float32Array; models: Float32Array[] } {
  const base = randomF32(m * n, seed);
  return { base, models: Array.from({ length: T }, (_, t) => add(base, randomF32(m * n, seed + 100 + t, 0.1))) };
}

describe('tsv', () => {
  it('reduces to the sum of task vectors when the tasks have orthogonal supports of rank <= k', async () => {
    const m = 8;
    const base = randomF32(m * m, 1);
    const t1 = new Float32Array(m * m);
    const t2 = new Float32Array(m * m);
    const r = new SeededRandom(2);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) {
      t1[i * m + j] = r.normal();
      t2[(i + 4) * m + j + 4] = r.normal();
    }
    const out = await mergeTensorsAsync(TSV, { base, models: [add(base, t1), add(base, t2)] }, { shape: [m, m], params: { svd: 'exact' } });
    expect(maxAbsDiff(out, add(add(base, t1), t2))).toBeLessThan(1e-5);
  });

  it('matches the exact reference on random matrices (exact path; tall, wide, T not dividing r)', async () => {
    for (const [m, n, T] of [[12, 12, 3], [16, 10, 3], [9, 14, 2], [20, 20, 4]] as const) {
      const { base, models } = family(m, n, T, m * 7 + n);
      const out = await mergeTensorsAsync(TSV, { base, models }, { shape: [m, n], params: { svd: 'exact', alpha: 0.7 } });
      const ref = refTsv(base, models, m, n, 0.7);
      expect(maxAbsDiff(out, ref), `${m}x${n} T=${T}`).toBeLessThan(1e-5);
    }
  });

  it('matches the exact reference on the randomized path (full sketch: rSVD + Newton–Schulz polar)', async () => {
    const [m, n, T] = [24, 20, 2];
    const { base, models } = family(m, n, T, 5);
    const out = await mergeTensorsAsync(TSV, { base, models }, { shape: [m, n], params: { svd: 'randomized', oversampling: 20 }, linalg: jsMatMul, seed: 3 });
    const ref = refTsv(base, models, m, n, 1);
    expect(maxAbsDiff(out, ref)).toBeLessThan(2e-4);
  });

  it('randomized defaults (block Krylov; subspace p = max(10, k/4), q = 3) stay near the exact merge when the spectrum is flat at the cut', async () => {
    // 4 tasks of a 256² layer, σ_i = 0.953^i: at k = 64 the spectrum falls only 4.7% per index, like a 4096² layer
    // with 0.997^i (bench/svd). Halko's p = 10, q = 2 lands several % away; the defaults must not.
    const n = 256;
    const base = randomF32(n * n, 1, 0.02);
    const models = [0, 1, 2, 3].map((t) => {
      const tau = withSpectrum(n, n, Array.from({ length: 160 }, (_, i) => 0.01 * 0.953 ** i * (1 + 0.05 * ((i * 7 + t) % 3))), 40 + 2 * t);
      return Float32Array.from(base, (b, i) => b + tau.data[i]!);
    });
    const ctx = { shape: [n, n], linalg: jsMatMul, name: 'layer' };
    const exact = await mergeTensorsAsync(TSV, { base, models }, { ...ctx, params: { svd: 'exact' } });
    const rel = (x: Float32Array): number => {
      let num = 0;
      let den = 0;
      for (let i = 0; i < x.length; i++) {
        num += (x[i]! - exact[i]!) ** 2;
        den += (exact[i]! - base[i]!) ** 2;
      }
      return Math.sqrt(num / den);
    };
    const byDefault = rel(await mergeTensorsAsync(TSV, { base, models }, { ...ctx, params: { svd: 'randomized' } }));
    const subspace = rel(await mergeTensorsAsync(TSV, { base, models }, { ...ctx, params: { svd: 'randomized', range_finder: 'subspace' } }));
    const halko = rel(await mergeTensorsAsync(TSV, { base, models }, { ...ctx, params: { svd: 'randomized', oversampling: 10, power_iterations: 2 } }));
    const narrow = rel(await mergeTensorsAsync(TSV, { base, models }, { ...ctx, params: { svd: 'randomized', krylov_blocks: 4 } }));
    expect(subspace).toBeLessThan(0.005);
    expect(byDefault).toBeLessThan(subspace / 5);
    expect(halko).toBeGreaterThan(0.02);
    expect(narrow).toBeGreaterThan(byDefault * 5); // the knob reaches the range finder
  }, 60_000);

  it('block Krylov stays near the exact merge when a task rank is below its basis width (the Krylov space runs out)', async () => {
    // 2 tasks of rank 160 on a 256² layer: k = 128 and a basis of 1.75k = 224 columns, more than the rank, so the
    // later blocks are almost all rounding; there the re-orthogonalisation against every earlier block must repeat
    // (without the repeat this family lands 6e-3 away)
    const n = 256;
    const base = randomF32(n * n, 4, 0.02);
    const models = [0, 1].map((t) => {
      const tau = withSpectrum(n, n, Array.from({ length: 160 }, (_, i) => 0.01 * 0.953 ** i * (1 + 0.05 * ((i * 7 + t) % 3))), 70 + 2 * t);
      return Float32Array.from(base, (b, i) => b + tau.data[i]!);
    });
    const ctx = { shape: [n, n], linalg: jsMatMul, name: 'layer' };
    const exact = await mergeTensorsAsync(TSV, { base, models }, { ...ctx, params: { svd: 'exact' } });
    const krylov = await mergeTensorsAsync(TSV, { base, models }, { ...ctx, params: { svd: 'randomized', range_finder: 'krylov' } });
    let num = 0;
    let den = 0;
    for (let i = 0; i < krylov.length; i++) {
      num += (krylov[i]! - exact[i]!) ** 2;
      den += (exact[i]! - base[i]!) ** 2;
    }
    expect(Math.sqrt(num / den)).toBeLessThan(1e-3);
  }, 60_000);

  it("range_finder auto (the default) is krylov, and subspace for a task whose spectrum falls below 1e-3·σ_1 by σ_k", async () => {
    const n = 96;
    const base = randomF32(n * n, 2, 0.02);
    const fam = (rate: number): Float32Array[] =>
      [0, 1].map((t) => {
        const tau = withSpectrum(n, n, Array.from({ length: 80 }, (_, i) => 0.01 * rate ** i), 60 + t);
        return Float32Array.from(base, (b, i) => b + tau.data[i]!);
      });
    const run = async (models: Float32Array[], extra: Record<string, string>): Promise<Float32Array> =>
      mergeTensorsAsync(TSV, { base, models }, { shape: [n, n], linalg: jsMatMul, name: 'layer', params: { svd: 'randomized', ...extra } });
    const steep = fam(0.8); // σ_48/σ_1 = 0.8^47 ≈ 3e-5
    expect(await run(steep, {})).toEqual(await run(steep, { range_finder: 'subspace' }));
    expect(await run(steep, {})).not.toEqual(await run(steep, { range_finder: 'krylov' }));
    const flat = fam(0.99);
    expect(await run(flat, {})).toEqual(await run(flat, { range_finder: 'krylov' }));
    expect(await run(flat, {})).not.toEqual(await run(flat, { range_finder: 'subspace' }));
  });

  it('one task gives base + alpha·τ; alpha 0 gives the base bit for bit', async () => {
    const { base, models } = family(10, 6, 1, 9);
    const one = await mergeTensorsAsync(TSV, { base, models }, { shape: [10, 6], params: { alpha: 1, svd: 'exact' } });
    expect(maxAbsDiff(one, models[0]!)).toBeLessThan(1e-6);
    const fam = family(10, 6, 3, 10);
    for (const svd of ['exact', 'randomized']) {
      const zero = await mergeTensorsAsync(TSV, fam, { shape: [10, 6], params: { alpha: 0, svd } });
      expect(Buffer.from(zero.buffer).equals(Buffer.from(fam.base.buffer)), svd).toBe(true);
    }
  });

  it('averages non-2-D tensors (and 2-D ones with decompose: false): base + alpha·mean(weight·τ)', async () => {
    const { base, models } = family(6, 1, 3, 11);
    const w = [1, 0.5, 2];
    for (const [shape, params] of [[[6], {}], [[2, 3], { decompose: false }], [[1, 2, 3], {}]] as const) {
      const out = await mergeTensorsAsync(TSV, { base, models }, { shape, params: { alpha: 0.5, ...params }, modelParams: w.map((x) => ({ weight: x })) });
      const ref = Float64Array.from(base, (b, i) => b + 0.5 * ((w[0]! * (models[0]![i]! - b) + w[1]! * (models[1]![i]! - b) + w[2]! * (models[2]![i]! - b)) / 3));
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-6);
    }
  });

  it('is deterministic for a seed and refuses the synchronous API', async () => {
    const { base, models } = family(30, 30, 3, 12);
    const opts = { shape: [30, 30], params: { svd: 'randomized' }, seed: 7 } as const;
    const a = await mergeTensorsAsync(TSV, { base, models }, opts);
    const b = await mergeTensorsAsync(TSV, { base, models }, opts);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(() => mergeTensors(TSV, { base, models }, { shape: [30, 30] })).toThrow(WeightkitError);
  });

  it('needs a base', async () => {
    const { models } = family(4, 4, 2, 13);
    await expect(mergeTensorsAsync(TSV, { models }, { shape: [4, 4] })).rejects.toMatchObject({ code: 'RECIPE_BASE_REQUIRED' });
  });
});

describe('rtsvm', () => {
  const neutral = { reweight: 'none', adaptive_rank: false, task_weighting: false } as const;

  it('with neutral knobs reproduces tsv bit for bit (exact and randomized paths)', async () => {
    for (const svd of ['exact', 'randomized'] as const) {
      const { base, models } = family(40, 36, 3, 20);
      const opts = { shape: [40, 36], seed: 4, modelParams: [{ weight: 1 }, { weight: 0.5 }, { weight: 1.5 }] };
      const a = await mergeTensorsAsync(TSV, { base, models }, { ...opts, params: { svd, alpha: 0.9 } });
      const b = await mergeTensorsAsync(RTSVM, { base, models }, { ...opts, params: { svd, alpha: 0.9, ...neutral } });
      expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), svd).toBe(true);
    }
  });

  it('equal sparsities keep floor(r/T); the ranks follow 1 − sparsity and never exceed r', () => {
    expect(adaptiveRanks([0.2, 0.2, 0.2], 16)).toEqual([5, 5, 5]);
    expect(adaptiveRanks([0, 0.5], 12)).toEqual([8, 4]);
    expect(adaptiveRanks([1, 1], 12)).toEqual([0, 0]);
    const k = adaptiveRanks([0.1, 0.3, 0.7, 0.05], 101);
    expect(k.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(101);
  });

  it('Huber reweighting shrinks an outlier; adaptive ranks give a sparse task a smaller rank', async () => {
    const [m, n] = [12, 12];
    const base = new Float32Array(m * n);
    const dense = randomF32(m * n, 30, 0.1);
    const sparse = new Float32Array(m * n);
    for (let i = 0; i < m * n; i += 4) sparse[i] = dense[(i * 7) % (m * n)]!;
    dense[5] = 50; // an outlier
    const models = [dense, sparse];
    const rt = RTSVM.create({ ...ctxFor(m, n, 2), params: { alpha: 1, svd: 'exact', exact_max_dim: 128, oversampling: 10, power_iterations: 2, decompose: true, reweight: 'huber', kappa: 3, clip_quantile: 0.999, task_weighting: false, adaptive_rank: true, sparsity_eps: 1e-6 } });
    const chunk = { offset: 0, length: m * n, base, models };
    await rt.compute!(chunk);
    const out = new Float32Array(m * n);
    rt.emit(chunk, out);
    const rep = rt.report!();
    expect(rep['rank_0']!).toBeGreaterThan(rep['rank_1']!);
    expect(rep['outlier_ratio_0']!).toBeGreaterThan(0);
    expect(Math.abs(out[5]!)).toBeLessThan(10);
    const plain = await mergeTensorsAsync(TSV, { base, models }, { shape: [m, n], params: { svd: 'exact' } });
    expect(Math.abs(plain[5]!)).toBeGreaterThan(25);
  });
});

function ctxFor(m: number, n: number, T: number) {
  return {
    name: 't',
    shape: [m, n],
    numel: m * n,
    rowLength: n,
    modelParams: Array.from({ length: T }, () => ({ weight: 1 })),
    hasBase: true,
    modelCount: T,
    rng: () => ({ k0: 1, k1: 2 }),
  };
}

describe('iso_c', () => {
  it('flattens the spectrum of the summed task vector to its mean (exact and Newton–Schulz paths)', async () => {
    const [m, n] = [14, 10];
    const { base, models } = family(m, n, 3, 40);
    const sum = new Float64Array(m * n);
    for (const x of models) for (let i = 0; i < sum.length; i++) sum[i] = sum[i]! + (x[i]! - base[i]!);
    const sSum = jacobiSvd(fromArray(sum, m, n)).s;
    const mean = sSum.reduce((a, b) => a + b, 0) / sSum.length;
    for (const polar of ['exact', 'newton_schulz'] as const) {
      const out = await mergeTensorsAsync(ISO_C, { base, models }, { shape: [m, n], params: { alpha: 2, polar } });
      const tau = Float64Array.from(out, (x, i) => (x - base[i]!) / 2);
      const s = jacobiSvd(fromArray(tau, m, n)).s;
      for (const x of s) expect(Math.abs(x - mean) / mean, polar).toBeLessThan(polar === 'exact' ? 1e-5 : 1e-3);
    }
  });

  it('takes a single model and averages non-2-D tensors', async () => {
    const { base, models } = family(5, 1, 1, 41);
    const out = await mergeTensorsAsync(ISO_C, { base, models }, { shape: [5], params: { alpha: 1 } });
    expect(maxAbsDiff(out, models[0]!)).toBeLessThan(1e-6);
  });
});

describe('polarNewtonSchulz', () => {
  it('matches the exact polar factor on full-rank tall and wide matrices', async () => {
    for (const [m, c] of [[30, 12], [12, 30], [16, 16]] as const) {
      const a = randomF32(m * c, m + c);
      const ns = await polarNewtonSchulz(a, m, c, jsMatMul);
      const ex = polarExact(a, m, c).p;
      expect(maxAbsDiff(ns.p, ex), `${m}x${c}`).toBeLessThan(1e-4);
      expect(ns.iterations).toBeLessThan(40);
    }
  });

  it('keeps exactly-zero columns zero and gives the partial isometry of the rest', async () => {
    const [m, c] = [20, 8];
    const a = randomF32(m * c, 3);
    for (let i = 0; i < m; i++) for (const j of [6, 7]) a[i * c + j] = 0;
    const ns = await polarNewtonSchulz(a, m, c, jsMatMul);
    for (let i = 0; i < m; i++) for (const j of [6, 7]) expect(ns.p[i * c + j]).toBe(0);
    expect(maxAbsDiff(ns.p, polarExact(a, m, c).p)).toBeLessThan(1e-4);
  });

  it('returns zeros for a zero matrix', async () => {
    const ns = await polarNewtonSchulz(new Float32Array(12), 4, 3, jsMatMul);
    expect(maxAbs(ns.p)).toBe(0);
  });
});

describe('through merge', () => {
  it('thread count and the worker pool do not change the bytes; recipe errors carry line:col', async () => {
    const root = await tempDir();
    const fam = await tinyFamily(root);
    const recipe = join(root, 'tsv.yaml');
    const text = `merge_method: tsv\nbase_model: ${fam.base}\nmodels:\n  - model: ${fam.a}\n  - model: ${fam.b}\n  - model: ${fam.c}\nparameters:\n  svd: randomized\n  alpha: 0.8\ndtype: float32\n`;
    await writeFile(recipe, text);
    await merge(recipe, { out: join(root, 'o1'), threads: 1 });
    await merge(recipe, { out: join(root, 'o2'), threads: 2, pool: 'always' });
    const b1 = await readFile(join(root, 'o1/model.safetensors'));
    const b2 = await readFile(join(root, 'o2/model.safetensors'));
    expect(b1.equals(b2)).toBe(true);

    const noBase = join(root, 'nobase.yaml');
    await writeFile(noBase, text.replace(`base_model: ${fam.base}\n`, ''));
    const bad = join(root, 'bad.yaml');
    await writeFile(bad, text.replace('svd: randomized', 'svd: lanczos'));
    for (const [f, code, line] of [[noBase, 'RECIPE_BASE_REQUIRED', 1], [bad, undefined, 8]] as const) {
      const e = await buildPlan(f).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(RecipeProblems);
      const p = (e as RecipeProblems).problems[0]!;
      if (code) expect(p.code).toBe(code);
      expect(p.where.line).toBe(line);
      expect(p.where.col).toBeGreaterThan(0);
    }
  });

  it('the plan counts the tensors merged whole, their flops and working set, and warns above the budget', async () => {
    const root = await tempDir();
    const fam = await tinyFamily(root);
    const recipe = join(root, 'tsv.yaml');
    const text = `merge_method: tsv\nbase_model: ${fam.base}\nmodels:\n  - model: ${fam.a}\n  - model: ${fam.b}\n  - model: ${fam.c}\nparameters:\n  svd: randomized\ndtype: float32\n`;
    await writeFile(recipe, text);
    const [plan] = await buildPlan(recipe);
    const twoD = plan!.tensors.filter((t) => t.shape.length === 2);
    const whole = plan!.memory.wholeTensors!;
    expect(whole.count).toBe(twoD.length);
    expect(whole.flops).toBeGreaterThan(0);
    const biggest = Math.max(...twoD.map((t) => t.shape[0]! * t.shape[1]!));
    expect(whole.largest.bytes).toBeGreaterThanOrEqual((2 * 3 + 3) * biggest * 4); // inputs and task vectors held whole
    expect(plan!.memory.peakBytes).toBeGreaterThan(whole.largest.bytes);
    expect(plan!.warnings.some((w) => w.includes('merges 2-D tensors whole'))).toBe(false);
    const [tight] = await buildPlan(recipe, { memoryBudget: Math.floor(whole.largest.bytes / 2) });
    expect(tight!.warnings.some((w) => w.includes(`'${whole.largest.name}'`) && w.includes('above the'))).toBe(true);
    // more power iterations cost more; decompose: false everywhere leaves nothing merged whole
    await writeFile(recipe, text.replace('svd: randomized', 'svd: randomized\n  power_iterations: 6'));
    expect((await buildPlan(recipe))[0]!.memory.wholeTensors!.flops).toBeGreaterThan(whole.flops);
    await writeFile(recipe, text.replace('svd: randomized', 'decompose: false'));
    expect((await buildPlan(recipe))[0]!.memory.wholeTensors).toBeUndefined();
    for (const method of ['rtsvm', 'iso_c']) {
      await writeFile(recipe, text.replace('merge_method: tsv', `merge_method: ${method}`).replace('svd: randomized', method === 'iso_c' ? 'polar: newton_schulz' : 'svd: randomized'));
      expect((await buildPlan(recipe))[0]!.memory.wholeTensors!.count, method).toBe(twoD.length);
    }
  });
});
