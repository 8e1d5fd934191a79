// Iso-CTS: subspace sizes as the reference computes them, an in-test f64 reference of the formula, the identity
// with Iso-C at common_space_fraction 1, the randomized path against the exact one, and recipe errors.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RecipeProblems } from '../../src/errors.js';
import { ctsSplit, ISO_CTS } from '../../src/merge/methods/iso-cts.js';
import { ISO_C, RTSVM, TSV } from '../../src/merge/methods/tsv.js';
import { mergeTensorsAsync } from '../../src/merge/run.js';
import { buildPlan } from '../../src/plan/merge.js';
import { jsMatMul } from '../../src/tensor/linalg/backend.js';
import { fromArray } from '../../src/tensor/linalg/matrix.js';
import { jacobiSvd } from '../../src/tensor/linalg/svd.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { tempDir, tinyFamily } from '../plan/helpers.js';
import { refPolar } from './svd-ref.js';

function randomF32(n: number, seed: number, scale = 1): Float32Array {
  const r = new SeededRandom(seed);
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

function family(m: number, n: number, T: number, seed: number): { base: Float32Array; models: Float32Array[] } {
  const base = randomF32(m * n, seed);
  return { base, models: Array.from({ length: T }, (_, t) => Float32Array.from(base, (b, i) => b + randomF32(m * n, seed + 100 + t, 0.1)[i]!)) };
}

/** Columns [0, k) of a row-major rows x cols array. */
function cols(a: ArrayLike<number>, rows: number, width: number, k: number): Float64Array {
  const out = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) for (let j = 0; j < k; j++) out[i * k + j] = a[i * width + j]!;
  return out;
}

/** The paper's Iso-CTS in f64, written from the formula: base + alpha·σ̄·polar(U_cat)·polar(V_cat)ᵀ. */
function refIsoCts(base: Float32Array, models: Float32Array[], m: number, n: number, fraction: number, alpha: number): Float64Array {
  const T = models.length;
  const r = Math.min(m, n);
  const taus = models.map((x) => Float64Array.from(x, (v, i) => v - base[i]!));
  const sum = new Float64Array(m * n);
  for (const t of taus) t.forEach((v, i) => (sum[i] += v));
  const { common: k, perTask: s } = ctsSplit(r, T, fraction);
  const svd = jacobiSvd(fromArray(sum, m, n));
  const uk = cols(svd.u.data, m, r, k);
  const blocksU: Float64Array[] = [uk];
  const blocksV: Float64Array[] = [cols(svd.v.data, n, r, k)];
  const sig: number[] = Array.from(svd.s.subarray(0, k));
  for (const tau of taus) {
    const w = Float64Array.from(tau);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let l = 0; l < k; l++) {
        let p = 0;
        for (let q = 0; q < m; q++) p += uk[q * k + l]! * tau[q * n + j]!;
        acc += uk[i * k + l]! * p;
      }
      w[i * n + j] = tau[i * n + j]! - acc;
    }
    const ts = jacobiSvd(fromArray(w, m, n));
    blocksU.push(cols(ts.u.data, m, r, s));
    blocksV.push(cols(ts.v.data, n, r, s));
    sig.push(...ts.s.subarray(0, s));
  }
  const cat = (blocks: Float64Array[], rows: number): Float64Array => {
    const widths = [k, ...Array(T).fill(s)] as number[];
    const out = new Float64Array(rows * r);
    let at = 0;
    blocks.forEach((b, x) => {
      const wdt = widths[x]!;
      for (let i = 0; i < rows; i++) for (let j = 0; j < wdt; j++) out[i * r + at + j] = b[i * wdt + j]!;
      at += wdt;
    });
    return out;
  };
  const pu = refPolar(cat(blocksU, m), m, r);
  const pv = refPolar(cat(blocksV, n), n, r);
  const mean = sig.reduce((a, b) => a + b, 0) / r;
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
    let acc = 0;
    for (let l = 0; l < r; l++) acc += pu[i * r + l]! * pv[j * r + l]!;
    out[i * n + j] = base[i * n + j]! + alpha * mean * acc;
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('iso_cts', () => {
  it('sizes the subspaces like the reference (Python round, even task split), never negative', () => {
    expect(ctsSplit(4096, 4, 0.8)).toEqual({ common: 3276, perTask: 205 });
    expect(ctsSplit(10, 3, 0.8)).toEqual({ common: 7, perTask: 1 }); // ⌊8⌋, round(2/3) = 1
    expect(ctsSplit(10, 4, 0)).toEqual({ common: 2, perTask: 2 }); // round(2.5) = 2 (half to even)
    expect(ctsSplit(14, 4, 0)).toEqual({ common: 2, perTask: 3 }); // round(3.5) = 4 would need 16 > 14: clamped
    expect(ctsSplit(12, 4, 1)).toEqual({ common: 12, perTask: 0 });
  });

  it('matches the formula on random matrices (exact path; tall, wide, square)', async () => {
    for (const [m, n, T, f] of [[12, 10, 3, 0.8], [9, 14, 2, 0.5], [16, 16, 4, 0.8], [10, 10, 4, 0]] as const) {
      const { base, models } = family(m, n, T, m * 3 + n);
      const out = await mergeTensorsAsync(ISO_CTS, { base, models }, { shape: [m, n], params: { svd: 'exact', alpha: 1.5, common_space_fraction: f } });
      expect(maxAbsDiff(out, refIsoCts(base, models, m, n, f, 1.5)), `${m}x${n} T=${T} f=${f}`).toBeLessThan(2e-5);
    }
  });

  it('common_space_fraction 1 is Iso-C', async () => {
    const { base, models } = family(14, 11, 3, 21);
    const cts = await mergeTensorsAsync(ISO_CTS, { base, models }, { shape: [14, 11], params: { svd: 'exact', common_space_fraction: 1 } });
    const iso = await mergeTensorsAsync(ISO_C, { base, models }, { shape: [14, 11], params: { polar: 'exact' } });
    expect(maxAbsDiff(cts, iso)).toBeLessThan(1e-5);
  });

  it('the randomized path agrees with the exact one (full sketches), and is deterministic', async () => {
    const [m, n] = [40, 32];
    const { base, models } = family(m, n, 3, 5);
    const exact = await mergeTensorsAsync(ISO_CTS, { base, models }, { shape: [m, n], params: { svd: 'exact' } });
    const params = { svd: 'randomized', oversampling: 40, power_iterations: 4 };
    const a = await mergeTensorsAsync(ISO_CTS, { base, models }, { shape: [m, n], params, linalg: jsMatMul, seed: 2 });
    const b = await mergeTensorsAsync(ISO_CTS, { base, models }, { shape: [m, n], params, linalg: jsMatMul, seed: 2 });
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(maxAbsDiff(a, exact)).toBeLessThan(5e-4);
  });

  it('alpha 0 is the base bit for bit; 1-D tensors and decompose false are averaged', async () => {
    const fam = family(8, 6, 2, 9);
    for (const svd of ['exact', 'randomized']) {
      const zero = await mergeTensorsAsync(ISO_CTS, fam, { shape: [8, 6], params: { alpha: 0, svd }, linalg: jsMatMul });
      expect(Buffer.from(zero.buffer).equals(Buffer.from(fam.base.buffer)), svd).toBe(true);
    }
    const mean = Float32Array.from(fam.base, (b, i) => b + ((fam.models[0]![i]! - b) + (fam.models[1]![i]! - b)) / 2);
    const flat = await mergeTensorsAsync(ISO_CTS, fam, { shape: [48], params: {} });
    expect(maxAbsDiff(flat, mean)).toBeLessThan(1e-6);
    const off = await mergeTensorsAsync(ISO_CTS, fam, { shape: [8, 6], params: { decompose: false } });
    expect(maxAbsDiff(off, mean)).toBeLessThan(1e-6);
  });

  it('through a recipe: every 2-D tensor merged whole in the plan; a fraction outside [0, 1] is an error at its line', async () => {
    const root = await tempDir();
    const fam = await tinyFamily(root);
    const recipe = join(root, 'cts.yaml');
    const text = `merge_method: iso_cts\nbase_model: ${fam.base}\nmodels:\n  - model: ${fam.a}\n  - model: ${fam.b}\nparameters:\n  common_space_fraction: 0.8\n`;
    await writeFile(recipe, text);
    const [plan] = await buildPlan(recipe);
    expect(plan!.memory.wholeTensors!.count).toBe(plan!.tensors.filter((t) => t.shape.length === 2).length);
    await writeFile(recipe, text.replace('0.8', '1.5'));
    const e = await buildPlan(recipe).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(RecipeProblems);
    expect((e as RecipeProblems).problems[0]!.where.line).toBe(7);
  });

  it('every SVD method refuses a NaN or infinity in a 2-D input with VECTOR_NOT_FINITE naming the tensor and model', async () => {
    const { base, models } = family(6, 5, 2, 31);
    const bad = Float32Array.from(models[1]!);
    bad[7] = NaN;
    const infBase = Float32Array.from(base);
    infBase[0] = Infinity;
    for (const method of [TSV, RTSVM, ISO_C, ISO_CTS]) {
      for (const svd of ['exact', 'randomized']) {
        const params: Record<string, string> = method === ISO_C ? { polar: svd === 'exact' ? 'exact' : 'newton_schulz' } : { svd };
        const e = await mergeTensorsAsync(method, { base, models: [models[0]!, bad] }, { shape: [6, 5], params, linalg: jsMatMul, name: 'w' }).catch((x: unknown) => x);
        expect(e, `${method.name} ${svd}`).toMatchObject({ code: 'VECTOR_NOT_FINITE', where: { tensor: 'w' } });
        expect((e as Error).message).toContain('model 2 (in recipe order) has a non-finite value (NaN) at element 7');
        const f = await mergeTensorsAsync(method, { base: infBase, models }, { shape: [6, 5], params, linalg: jsMatMul, name: 'w' }).catch((x: unknown) => x);
        expect((f as Error).message).toContain('the base model has a non-finite value (Infinity) at element 0');
      }
      // 1-D tensors are averaged elementwise: the NaN stays in its element
      const flat = await mergeTensorsAsync(method, { base, models: [models[0]!, bad] }, { shape: [30], params: {} });
      expect(Number.isNaN(flat[7])).toBe(true);
      expect(flat.filter((x) => Number.isNaN(x))).toHaveLength(1);
    }
  });
});
