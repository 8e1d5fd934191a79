// KnOTS: an in-test f64 reference (Jacobi SVD of the concatenation, sorted top-k, TIES / DARE) on hand-made LoRA-like
// task vectors, per tensor and over the whole model; identities; the σ threshold; DARE determinism; errors; the merge()
// API and the CLI on a recipe with `base+adapter` models; the dry-run cost.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RecipeProblems, WeightkitError } from '../../src/errors.js';
import { KNOTS, KnotsTrimCollector, knotsFactors, mergeRepresentations } from '../../src/merge/methods/knots.js';
import { makeContext, mergeTensorsAsync, resolveParams } from '../../src/merge/run.js';
import { buildPlan, merge } from '../../src/plan/merge.js';
import { jsMatMul } from '../../src/tensor/linalg/backend.js';
import { fromArray } from '../../src/tensor/linalg/matrix.js';
import { jacobiSvd } from '../../src/tensor/linalg/svd.js';
import { fillUniform, SeededRandom, streamKey } from '../../src/tensor/rng.js';
import { loraToVector } from '../../src/vectors/lora.js';
import { openVector } from '../../src/vectors/reader.js';
import { runCli } from '../helpers/cli.js';
import { readAllF32, tempDir, tinyValues, TINY_SHAPES, writeModel } from '../plan/helpers.js';
import { randomFactor, writeAdapter } from '../vectors/lora-helpers.js';
import { add, maxAbs, maxAbsDiff, randomF32 } from './svd-ref.js';


/** B·A (O x I) of random B (O x r), A (r x I): a LoRA-like update of rank r, f64 sums rounded once. */
function lora(O: number, I: number, r: number, seed: number, scale = 0.3): Float32Array {
  const b = randomF32(O * r, seed, scale);
  const a = randomF32(r * I, seed + 1, scale);
  const out = new Float32Array(O * I);
  for (let i = 0; i < O; i++) for (let c = 0; c < I; c++) {
    let s = 0;
    for (let k = 0; k < r; k++) s += b[i * r + k]! * a[k * I + c]!;
    out[i * I + c] = s;
  }
  return out;
}




// ---- the reference, straight from the paper's description (f64, sorts, no shared code with the method) ----

interface RefFactors {
  u: Float64Array; // O x r
  reps: Float64Array[]; // r x I
  r: number;
}

/** SVD of A = [τ_1 … τ_T] (Jacobi, f64), σ <= eps dropped, R_t = diag(s)·V_tᵀ. */
function refFactors(taus: Float32Array[], O: number, I: number, eps = 1e-5): RefFactors {
  const T = taus.length;
  const n = T * I;
  const a = new Float64Array(O * n);
  taus.forEach((tau, t) => {
    for (let i = 0; i < O; i++) for (let c = 0; c < I; c++) a[i * n + t * I + c] = tau[i * I + c]!;
  });
  const svd = jacobiSvd(fromArray(a, O, n));
  const k = Math.min(O, n);
  let r = 0;
  while (r < k && svd.s[r]! > eps) r++;
  const u = new Float64Array(O * r);
  for (let i = 0; i < O; i++) for (let j = 0; j < r; j++) u[i * r + j] = svd.u.data[i * k + j]!;
  const reps = taus.map((_, t) => {
    const rep = new Float64Array(r * I);
    for (let j = 0; j < r; j++) for (let c = 0; c < I; c++) rep[j * I + c] = svd.s[j]! * svd.v.data[(t * I + c) * k + j]!;
    return rep;
  });
  return { u, reps, r };
}

/** The k-th largest |x| over all arrays (k >= 1), by sorting. */
function kthLargest(arrays: Float64Array[], k: number): number {
  const all: number[] = [];
  for (const a of arrays) for (const x of a) all.push(Math.abs(x));
  all.sort((x, y) => y - x);
  return all[k - 1]!;
}

interface RefOptions {
  density: number[];
  lambda: number;
  scope: 'model' | 'tensor';
  disjoint?: 'mean' | 'sum';
  /** DARE masks per tensor and task (1 keeps); replaces the trim */
  dare?: (tensor: number, task: number, n: number) => Uint8Array;
  eps?: number;
}

/** KnOTS over several 2-D tensors (each: base, models, O, I): base + λ·U·R_merged per tensor. */
function refKnots(tensors: { base: Float32Array; models: Float32Array[]; O: number; I: number }[], o: RefOptions): Float64Array[] {
  const T = tensors[0]!.models.length;
  const factors = tensors.map(({ base, models, O, I }) => refFactors(models.map((x) => Float32Array.from(x, (v, i) => v - base[i]!)), O, I, o.eps));
  const thresholds = (reps: Float64Array[][]): number[] =>
    Array.from({ length: T }, (_, t) => {
      const arrays = reps.map((r) => r[t]!);
      const N = arrays.reduce((s, a) => s + a.length, 0);
      const k = Math.floor(o.density[t]! * N);
      return o.density[t]! >= 1 ? 0 : k <= 0 ? Infinity : kthLargest(arrays, k);
    });
  const global = o.scope === 'model' ? thresholds(factors.map((f) => f.reps)) : undefined;
  return tensors.map(({ base, O, I }, ti) => {
    const f = factors[ti]!;
    const thr = global ?? thresholds([f.reps]);
    const N = f.r * I;
    const masked = f.reps.map((rep, t) => {
      if (o.dare) {
        const m = o.dare(ti, t, N);
        const d = o.density[t]!;
        return rep.map((x, p) => (d >= 1 ? x : m[p] ? x / d : 0));
      }
      return rep.map((x) => (Math.abs(x) >= thr[t]! ? x : 0));
    });
    const sums = new Float64Array(N);
    for (const m of masked) m.forEach((x, p) => (sums[p] = sums[p]! + x));
    const majority = sums.reduce((s, x) => s + Math.sign(x), 0) < 0 ? -1 : 1;
    const merged = new Float64Array(N);
    for (let p = 0; p < N; p++) {
      const g = Math.sign(sums[p]!) || majority;
      let acc = 0;
      let cnt = 0;
      for (const m of masked) if (m[p]! * g > 0) {
        acc += m[p]!;
        cnt++;
      }
      merged[p] = (o.disjoint ?? 'mean') === 'mean' && cnt > 0 ? acc / cnt : acc;
    }
    const out = new Float64Array(O * I);
    for (let i = 0; i < O; i++) for (let c = 0; c < I; c++) {
      let acc = 0;
      for (let j = 0; j < f.r; j++) acc += f.u[i * f.r + j]! * merged[j * I + c]!;
      out[i * I + c] = base[i * I + c]! + o.lambda * acc;
    }
    return out;
  });
}

function loraFamily(O: number, I: number, ranks: number[], seed: number): { base: Float32Array; models: Float32Array[]; deltas: Float32Array[] } {
  const base = randomF32(O * I, seed, 0.5);
  const deltas = ranks.map((r, t) => lora(O, I, r, seed + 10 * (t + 1)));
  return { base, models: deltas.map((d) => add(base, d)), deltas };
}

describe('knots: against the f64 reference', () => {
  it('per tensor, exact path: TIES trim, sign vote, disjoint mean (mean and sum); one tensor with model scope is the same', async () => {
    const [O, I] = [12, 10];
    const { base, models } = loraFamily(O, I, [2, 2, 3], 1);
    for (const disjoint of ['mean', 'sum'] as const) {
      const params = { density: [0.3, 0.5, 0.2], lambda: 0.6 };
      const want = refKnots([{ base, models, O, I }], { ...params, scope: 'tensor', disjoint })[0]!;
      const modelParams = params.density.map((density) => ({ density }));
      const got = await mergeTensorsAsync(KNOTS, { base, models }, { shape: [O, I], params: { lambda: 0.6, trim_scope: 'tensor', disjoint }, modelParams });
      expect(maxAbsDiff(got, want)).toBeLessThan(2e-6);
      // the paper's whole-model trim over a single tensor is the per-tensor trim (through the async pre-pass)
      const model = await mergeTensorsAsync(KNOTS, { base, models }, { shape: [O, I], params: { lambda: 0.6, disjoint }, modelParams });
      expect(model).toEqual(got);
      // and it is not the plain task-arithmetic mean
      const ta = Float32Array.from(base, (b, i) => b + 0.6 * models.reduce((s, x) => s + x[i]! - b, 0) / 3);
      expect(maxAbsDiff(got, ta)).toBeGreaterThan(1e-3);
    }
  });

  it('tall concatenations (O > T·I) take the other Gram and agree too', async () => {
    const [O, I] = [30, 6];
    const { base, models } = loraFamily(O, I, [2, 3], 2);
    const want = refKnots([{ base, models, O, I }], { density: [0.4, 0.4], lambda: 1, scope: 'tensor' })[0]!;
    const got = await mergeTensorsAsync(KNOTS, { base, models }, { shape: [O, I], params: { lambda: 1 }, modelParams: [{ density: 0.4 }, { density: 0.4 }] });
    expect(maxAbsDiff(got, want)).toBeLessThan(2e-6);
  });

  it('the low-rank route (sketch on the backend) and the full f32 Gram route agree with the reference', async () => {
    // 160 x 64 with 3 tasks: min(O, T·I) = 160 leaves the sketch (80 columns) room; rank 2 + 3 + 4 = 9
    const [O, I] = [160, 64];
    const { base, models } = loraFamily(O, I, [2, 3, 4], 3);
    const want = refKnots([{ base, models, O, I }], { density: [0.2, 0.2, 0.2], lambda: 0.6, scope: 'tensor' })[0]!;
    const opts = { shape: [O, I], params: { svd: 'randomized', trim_scope: 'tensor' }, linalg: jsMatMul };
    const got = await mergeTensorsAsync(KNOTS, { base, models }, opts);
    const scale = maxAbs(want.map((x, i) => x - base[i]!));
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-4 * scale);
    // dense task vectors (full rank): the full Gram route, both orientations
    for (const [m, n, T] of [[24, 20, 2], [40, 8, 2]] as const) {
      const b = randomF32(m * n, 7, 0.5);
      const xs = Array.from({ length: T }, (_, t) => add(b, randomF32(m * n, 20 + t, 0.1)));
      const w = refKnots([{ base: b, models: xs, O: m, I: n }], { density: [0.3, 0.3], lambda: 1, scope: 'tensor' })[0]!;
      const g = await mergeTensorsAsync(KNOTS, { base: b, models: xs }, { shape: [m, n], params: { svd: 'randomized', lambda: 1 }, modelParams: [{ density: 0.3 }, { density: 0.3 }] });
      expect(maxAbsDiff(g, w), `${m}x${n}`).toBeLessThan(1e-5);
    }
  });

  it('the routes report their rank: exactly Σ r_t for LoRA updates on every path', async () => {
    const [O, I] = [160, 64];
    const { deltas } = loraFamily(O, I, [2, 3, 4], 3);
    for (const exact of [true, false]) {
      const f = await knotsFactors(deltas, O, I, { epsilon: 1e-5, relative: false, exact, powerIterations: 2, backend: jsMatMul, seed: 1 });
      expect(f.rank).toBe(9);
      expect(f.route).toBe(exact ? 0 : 1);
    }
  });

  it('DARE: the seeded random drop with 1/density rescale, then the vote; same seed same bytes, another seed other bytes', async () => {
    const [O, I] = [12, 10];
    const { base, models } = loraFamily(O, I, [2, 2], 4);
    const name = 'layers.0.q_proj.weight';
    const density = [0.6, 0.7];
    const dare = (seed: number) => (_tensor: number, t: number, n: number): Uint8Array => {
      const u = new Float64Array(n);
      fillUniform(streamKey(seed, name, t, 'knots-dare'), 0, u);
      return Uint8Array.from(u, (x) => (x < density[t]! ? 1 : 0));
    };
    const run = (seed: number): Promise<Float32Array> =>
      mergeTensorsAsync(KNOTS, { base, models }, { name, seed, shape: [O, I], params: { mask: 'dare' }, modelParams: density.map((d) => ({ density: d })) });
    const got = await run(5);
    const want = refKnots([{ base, models, O, I }], { density, lambda: 0.6, scope: 'tensor', dare: dare(5) })[0]!;
    expect(maxAbsDiff(got, want)).toBeLessThan(2e-6);
    expect(await run(5)).toEqual(got);
    expect(maxAbsDiff(await run(6), got)).toBeGreaterThan(1e-4);
  });
});

describe('knots: the vote and the whole-model pre-pass', () => {
  it('an exact zero sum takes the majority of the tensor\'s elected signs; zeros never vote or count', () => {
    const a = Float32Array.from([1, -2, 3, -0.5, 0, -4]);
    const b = Float32Array.from([-1, -1, 1, 0.5, 0, -2]);
    const kept: number[] = [];
    const cfg = { mask: 'ties' as const, density: [1, 1], disjoint: 'mean' as const };
    // sums 0, -3, 4, 0, 0, -6: majority of signs (−1, +1, −1) is −1, so the tied entries elect −1
    expect(Array.from(mergeRepresentations([a, b], cfg, kept))).toEqual([-1, -1.5, 2, -0.5, 0, -3]);
    expect(Array.from(mergeRepresentations([a, b], { ...cfg, disjoint: 'sum' }, kept))).toEqual([-1, -3, 4, -0.5, 0, -6]);
    expect(Array.from(mergeRepresentations([Float32Array.from([1, -1]), Float32Array.from([-1, 1])], cfg, kept))).toEqual([1, 1]); // no majority: +1
  });

  it('the pre-pass gives the same thresholds whether it keeps the representations or decomposes again', async () => {
    const shapes = [[12, 300], [9, 400], [16, 200]] as const; // ~4500 entries per task: the boundary bucket holds several
    const fams = shapes.map(([O, I], i) => loraFamily(O, I, [2, 3], 40 + i));
    const params = resolveParams(KNOTS.params, {}, 'knots');
    const modelParams = [resolveParams(KNOTS.modelParams, { density: 0.25 }, 'm0'), resolveParams(KNOTS.modelParams, { density: 0.1 }, 'm1')];
    const run = async (cacheBytes: number): Promise<{ stats: unknown; passes: number }> => {
      const c = new KnotsTrimCollector([0.25, 0.1], cacheBytes);
      let passes = 0;
      for (let p = 0; c.beginPass(p); p++) {
        passes++;
        for (const [i, f] of fams.entries()) {
          const ctx = makeContext(KNOTS, { name: `t${i}`, shape: shapes[i]!, hasBase: true, params, modelParams, seed: 0 });
          await c.observeTensor(p, ctx, { offset: 0, length: f.base.length, base: f.base, models: f.models });
        }
      }
      return { stats: c.result(), passes };
    };
    const cached = await run(2 ** 20);
    const again = await run(0);
    expect(cached.passes).toBe(1);
    expect(again.passes).toBe(2);
    expect(again.stats).toEqual(cached.stats);
    expect((cached.stats as { numel: number }).numel).toBe(5 * (300 + 400 + 200));
  });
});

describe('knots: identities and the σ threshold', () => {
  it('one model, density 1, lambda 1: base + ΔW up to f32 rounding (exact and low-rank routes); lambda 0: the base, bit for bit', async () => {
    for (const [O, I, svd] of [[12, 10, 'exact'], [200, 96, 'randomized']] as const) {
      const { base, models, deltas } = loraFamily(O, I, [5], 5);
      const got = await mergeTensorsAsync(KNOTS, { base, models }, { shape: [O, I], params: { lambda: 1, svd }, modelParams: [{ density: 1 }] });
      // the method sees τ = f32(x − base), the exact difference up to one rounding of x
      const tol = 4 * 2 ** -24 * (maxAbs(base) + maxAbs(deltas[0]!));
      expect(maxAbsDiff(got, models[0]!), `${O}x${I}`).toBeLessThan(tol);
      const zero = await mergeTensorsAsync(KNOTS, { base, models }, { shape: [O, I], params: { lambda: 0, svd }, modelParams: [{ density: 0.3 }] });
      expect(zero).toEqual(base);
    }
  });

  it('drops components with σ <= sv_epsilon (absolute by default, relative to σ_max with sv_relative)', async () => {
    const [O, I] = [6, 5];
    const base = new Float32Array(O * I);
    // τ = Σ σ_j e_{p_j} f_{q_j}ᵀ: singular values exactly σ
    const sig = [1, 0.5, 1e-6];
    const cells = [[0, 1], [2, 3], [4, 0]] as const;
    const tau = new Float32Array(O * I);
    sig.forEach((s, j) => (tau[cells[j]![0] * I + cells[j]![1]] = s));
    const at = (v: Float32Array, j: number): number => v[cells[j]![0] * I + cells[j]![1]]!;
    const run = (params: Record<string, number | boolean>): Promise<Float32Array> =>
      mergeTensorsAsync(KNOTS, { base, models: [tau] }, { shape: [O, I], params: { lambda: 1, ...params }, modelParams: [{ density: 1 }] });
    const def = await run({});
    expect(at(def, 0)).toBeCloseTo(1, 6);
    expect(at(def, 1)).toBeCloseTo(0.5, 6);
    expect(Math.abs(at(def, 2))).toBeLessThan(1e-12); // 1e-6 <= 1e-5: dropped
    expect(at(await run({ sv_epsilon: 1e-7 }), 2)).toBeCloseTo(1e-6, 10);
    const rel = await run({ sv_epsilon: 0.6, sv_relative: true }); // 0.5 <= 0.6·1
    expect(at(rel, 0)).toBeCloseTo(1, 6);
    expect(Math.abs(at(rel, 1))).toBeLessThan(1e-12);
    expect(at(await run({ sv_epsilon: 0.6 }), 1)).toBe(0); // absolute 0.6: also dropped
    expect(at(await run({ sv_epsilon: 0.4 }), 1)).toBeCloseTo(0.5, 6);
  });

  it('1-D tensors take base + lambda·mean τ; an unchanged 2-D tensor stays the base exactly', async () => {
    const base = randomF32(7, 8);
    const models = [add(base, randomF32(7, 9, 0.1)), add(base, randomF32(7, 10, 0.1))];
    const got = await mergeTensorsAsync(KNOTS, { base, models }, { shape: [7], params: { lambda: 0.5 } });
    const want = Float32Array.from(base, (b, i) => b + 0.5 * (((models[0]![i]! - b) + (models[1]![i]! - b)) / 2));
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-7);
    const b2 = randomF32(20, 11);
    expect(await mergeTensorsAsync(KNOTS, { base: b2, models: [b2, b2] }, { shape: [4, 5], params: { svd: 'randomized' } })).toEqual(b2);
  });

  it('NaN or infinity in a decomposed tensor is VECTOR_NOT_FINITE naming the tensor (also from the model-scope pre-pass)', async () => {
    const base = randomF32(20, 12);
    const bad = add(base, randomF32(20, 13, 0.1));
    bad[7] = NaN;
    for (const trim_scope of ['tensor', 'model']) {
      const e = await mergeTensorsAsync(KNOTS, { base, models: [bad] }, { name: 'l.w', shape: [4, 5], params: { trim_scope } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(WeightkitError);
      expect((e as WeightkitError).code).toBe('VECTOR_NOT_FINITE');
      expect((e as WeightkitError).where.tensor).toBe('l.w');
    }
  });
});

// ---- recipes with LoRA adapters: the whole-model trim through merge(), the CLI, the dry run and recipe errors ----

const P = 'base_model.model.';
const Q = (l: number): string => `model.layers.${l}.self_attn.q_proj`;
const UP = (l: number): string => `model.layers.${l}.mlp.up_proj`;

let root: string;

beforeAll(async () => {
  root = await tempDir('weightkit-knots-');
  process.env['WEIGHTKIT_LORA_CACHE'] = join(root, 'cache');
  await writeModel(join(root, 'base'), tinyValues(0));
  // three adapters of rank 2 on q_proj (4 x 4) and up_proj (6 x 4) of layers 0 and 1
  for (let a = 0; a < 3; a++) {
    const t: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [l, mod, out] of [[0, Q(0), 4], [1, Q(1), 4], [0, UP(0), 6], [1, UP(1), 6]] as const) {
      t[`${P}${mod}.lora_A.weight`] = randomFactor([2, 4], 100 * a + 10 * l + out);
      t[`${P}${mod}.lora_B.weight`] = randomFactor([out, 2], 100 * a + 10 * l + out + 1);
    }
    await writeAdapter(join(root, `ad${a}`), t, { r: 2, lora_alpha: 4, target_modules: ['q_proj', 'up_proj'] });
    await loraToVector({ adapter: join(root, `ad${a}`), base: join(root, 'base'), out: join(root, `ad${a}.safetensors`) });
  }
});

async function recipe(name: string, text: string): Promise<string> {
  const p = join(root, name);
  await writeFile(p, text);
  return p;
}

const LORA_RECIPE = (params: string): string =>
  `merge_method: knots\nbase_model: base\nmodels:\n  - model: base+ad0\n  - model: base+ad1\n    parameters: {density: 0.2}\n  - model: base+ad2\nparameters: {${params}}\n`;

/** What the method sees for each LoRA model: f32(base + ΔW) per tensor. */
async function loraModels(): Promise<Map<string, Float32Array>[]> {
  const base = tinyValues(0);
  const out: Map<string, Float32Array>[] = [];
  for (let a = 0; a < 3; a++) {
    const v = await openVector(join(root, `ad${a}.safetensors`));
    const m = new Map<string, Float32Array>();
    for (const [name, b] of base) {
      const d = v.has(name) ? await v.readF32(name) : new Float32Array(b.length);
      m.set(name, Float32Array.from(b, (x, i) => x + d[i]!));
    }
    await v.close();
    out.push(m);
  }
  return out;
}

describe('knots: recipes with base+adapter models', () => {
  it('merge(): the whole-model trim over every adapted layer matches the reference and differs from the per-tensor trim', async () => {
    const base = tinyValues(0);
    const models = await loraModels();
    const twoD = Object.keys(TINY_SHAPES).filter((n) => TINY_SHAPES[n]!.length === 2);
    const tensors = twoD.map((name) => ({ base: base.get(name)!, models: models.map((m) => m.get(name)!), O: TINY_SHAPES[name]![0]!, I: TINY_SHAPES[name]![1]! }));
    const results: Record<string, Map<string, Float32Array>> = {};
    for (const scope of ['model', 'tensor'] as const) {
      const out = join(root, `out-${scope}`);
      await merge(await recipe(`${scope}.yaml`, LORA_RECIPE(`trim_scope: ${scope}, density: 0.3`)), { out, threads: 1 });
      const got = await readAllF32(out);
      results[scope] = got;
      // recipe: density 0.3 for models 0 and 2 (top level), 0.2 for model 1
      const want = refKnots(tensors, { density: [0.3, 0.2, 0.3], lambda: 0.6, scope });
      twoD.forEach((name, i) => expect(maxAbsDiff(got.get(name)!, want[i]!), `${scope} ${name}`).toBeLessThan(2e-6));
      // tensors no adapter touches (embeddings, norms, layer 2, lm_head) stay the base exactly
      for (const name of ['model.embed_tokens.weight', 'model.layers.0.input_layernorm.weight', `${Q(2)}.weight`, 'lm_head.weight']) expect(got.get(name), name).toEqual(base.get(name));
    }
    const differ = twoD.some((n) => maxAbsDiff(results['model']!.get(n)!, results['tensor']!.get(n)!) > 1e-6);
    expect(differ).toBe(true);
    // the thread count does not change the bytes (linalg methods merge on the calling thread)
    const out2 = join(root, 'out-model-t2');
    await merge(join(root, 'model.yaml'), { out: out2, threads: 2, pool: 'always' });
    expect(await readAllF32(out2)).toEqual(results['model']);
  });

  it('the CLI merges the recipe (ORT backend) to the same values; --dry-run shows the whole-tensor cost', async () => {
    const r = await recipe('cli.yaml', LORA_RECIPE('density: 0.3'));
    const out = join(root, 'out-cli');
    const res = await runCli('merge', r, out, '--quiet');
    expect(res.code, res.stderr).toBe(0);
    const got = await readAllF32(out);
    const api = await readAllF32(join(root, 'out-model'));
    for (const [name, v] of api) expect(maxAbsDiff(got.get(name)!, v), name).toBeLessThan(1e-6);
    const d = await runCli('merge', r, '--dry-run');
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/linear algebra\s+\d+ tensor\(s\) merged whole: ~[\d.]+ [kMGT]?FLOP in matrix products \+ ~[\d.]+ [kMGT]?FLOP in JS/);
    const j = JSON.parse((await runCli('merge', r, '--dry-run', '--json')).stdout);
    expect(j.memory.wholeTensors.count).toBe(8); // every 2-D tensor: the 6 adapted, embeddings and lm_head
    expect(j.memory.wholeTensors.jsFlops).toBeGreaterThan(0);
    // the plan knows each LoRA model's update ranks (the adapter's), and tensors no adapter touches cost nothing
    const lora = (j.models as { ref: string; updateRanks?: Record<string, number> }[]).filter((m) => m.ref.includes('+'));
    expect(lora.length).toBeGreaterThan(0);
    for (const m of lora) expect(m.updateRanks).toEqual({ [`${Q(0)}.weight`]: 2, [`${Q(1)}.weight`]: 2, [`${UP(0)}.weight`]: 2, [`${UP(1)}.weight`]: 2 });
  });

  it('bad parameters are recipe problems with line:col: unknown (did you mean), density outside [0, 1], a bad mask', async () => {
    const r = await recipe('bad.yaml', 'merge_method: knots\nbase_model: base\nmodels:\n  - model: base+ad0\n    parameters: {density: 1.5}\n  - model: base+ad1\nparameters:\n  lamda: 0.5\n  mask: magnitude\n');
    const e = await buildPlan(r).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RecipeProblems);
    const probs = (e as RecipeProblems).problems;
    expect(probs.map((p) => [p.code, p.where.line])).toEqual([
      ['RECIPE_PARAM_RANGE', 5],
      ['RECIPE_UNKNOWN_PARAM', 8],
      ['RECIPE_PARAM_RANGE', 9],
    ]);
    for (const p of probs) expect(p.where.col).toBeGreaterThan(0);
    expect(probs[1]!.message).toContain("did you mean 'lambda'");
    const v = await runCli('validate', r);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain(`${r}:8:3`);
  });

  it('trim_scope model needs one density per model: a tensor filter that changes it is an error naming the tensor', async () => {
    const r = await recipe('filtered.yaml', LORA_RECIPE('density: [{filter: up_proj, value: 0.5}, {value: 0.3}]'));
    const e = await merge(r, { out: join(root, 'never'), threads: 1 }).catch((x: unknown) => x);
    // found when planning, at the density's recipe line, before any tensor is read
    expect(e).toBeInstanceOf(RecipeProblems);
    const [p] = (e as RecipeProblems).problems;
    expect(p!.code).toBe('RECIPE_PARAM_SCOPE');
    expect(p!.message).toMatch(/\(0\.[35] here, 0\.[35] for tensor '[^']+'\)/);
    expect(p!.where.line).toBeGreaterThan(0);
    // per tensor it is fine
    await merge(await recipe('filtered-tensor.yaml', LORA_RECIPE('trim_scope: tensor, density: [{filter: up_proj, value: 0.5}, {value: 0.3}]')), { out: join(root, 'out-filtered'), threads: 1 });
  });
});

describe('knots cost estimate with known update ranks (LoRA models)', () => {
  const params = resolveParams(KNOTS.params, { trim_scope: 'tensor' }, 'knots');
  it('is the low-rank route for rank-16 adapters on 4096², zero where no adapter applies, dense when a rank is unknown', () => {
    const dense = KNOTS.wholeTensorCost!([4096, 4096], 4, params)!;
    const lora = KNOTS.wholeTensorCost!([4096, 4096], 4, params, [16, 16, 16, 16])!;
    // 2(q + 1) products of 4096 x 16384 by a width-80 sketch: ~64 GFLOP, against the full route's Gram of 16384 columns
    expect(lora.flops).toBeGreaterThan(5e10);
    expect(lora.flops).toBeLessThan(1e11);
    expect(dense.flops).toBeGreaterThan(20 * lora.flops);
    expect(lora.bytes).toBeLessThan(dense.bytes);
    expect(KNOTS.wholeTensorCost!([4096, 4096], 4, params, [0, 0, 0, 0])!.flops).toBe(0);
    expect(KNOTS.wholeTensorCost!([4096, 4096], 4, params, [16, undefined, 16, 16])).toEqual(dense);
    // ranks too high for the sketch (width past half of min(O, T·I)): the full route's cost
    expect(KNOTS.wholeTensorCost!([256, 256], 4, params, [64, 64, 64, 64])).toEqual(KNOTS.wholeTensorCost!([256, 256], 4, params));
  });
});
