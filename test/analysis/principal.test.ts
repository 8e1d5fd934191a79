import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  budgetCount,
  isLiftExcluded,
  lowRankApproximation,
  maskOverlap,
  principalMask,
  readPrincipalWeights,
  topKMask,
} from '../../src/analysis/principal.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { jacobiSvd, fromArray } from '../../src/tensor/linalg/index.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { tempDir, tinyValues, writeModel } from '../plan/helpers.js';

function randomMatrix(m: number, n: number, seed: number): Float32Array {
  const r = new SeededRandom(seed);
  return Float32Array.from({ length: m * n }, () => r.normal());
}

/** Brute force: indices of the k largest |x|, ties by index (sorting is fine in a test oracle). */
function bruteTopK(x: Float32Array, k: number): Set<number> {
  const idx = Array.from(x.keys()).sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
  return new Set(idx.slice(0, k));
}

function maskSet(mask: Uint8Array): Set<number> {
  const s = new Set<number>();
  mask.forEach((v, i) => v && s.add(i));
  return s;
}

describe('LIFT principal mask', () => {
  it('hand-checkable 3x3: the rank-1 mask differs from the magnitude mask', async () => {
    // W = 5·u1u1ᵀ + 4·u2u2ᵀ, u1 = (3,2,1)/√14, u2 = (1,-1,-1)/√3 (orthogonal): σ = 5, 4, 0
    const u1 = [3, 2, 1].map((x) => x / Math.sqrt(14));
    const u2 = [1, -1, -1].map((x) => x / Math.sqrt(3));
    const w = new Float32Array(9);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) w[i * 3 + j] = 5 * u1[i]! * u1[j]! + 4 * u2[i]! * u2[j]!;
    const p = await principalMask(w, 3, 3, 1, 3);
    // W_1 = 5/14·[[9,6,3],[6,4,2],[3,2,1]]: top-3 are (0,0), (0,1), (1,0)
    expect([...maskSet(p.mask)]).toEqual([0, 1, 3]);
    // |W|: 4.55 at (0,0), 2.76 at (1,1), then 2.05 at (1,2) and (2,1): the tie goes to the first in order
    expect([...maskSet(p.magnitudeMask)]).toEqual([0, 4, 5]);
    expect(p).toMatchObject({ kept: 3, overlap: 1, union: 5, rankUsed: 1, method: 'exact' });
    expect(p.jaccard).toBeCloseTo(1 / 5, 12);
    expect(p.overlapFraction).toBeCloseTo(1 / 3, 12);
    expect(p.energy).toBeCloseTo(25 / 41, 5);
  });

  it('keeps exactly round(f·m·n) entries, also with many ties; budgets follow LIFT', () => {
    const r = new SeededRandom(5);
    const ties = Float32Array.from({ length: 37 * 23 }, () => Math.round(r.normal() * 2)); // values in a few integers
    for (const f of [0.01, 0.05, 0.1, 0.3333, 0.5, 1]) {
      const k = budgetCount(37, 23, { fraction: f });
      expect(k).toBe(Math.round(f * 37 * 23));
      const mask = topKMask(ties, k);
      expect(mask.reduce((a, b) => a + b, 0)).toBe(k);
      expect(maskSet(mask)).toEqual(bruteTopK(ties, k));
    }
    expect(budgetCount(4096, 4096, { loraRank: 128 }) / 4096 ** 2).toBe(0.0625);
    expect(budgetCount(10, 10, { loraRank: 128 })).toBe(100);
  });

  it('overlap and mask agree with a brute-force computation on random matrices', async () => {
    for (const [m, n, r, f] of [[30, 20, 3, 0.1], [17, 41, 5, 0.25], [12, 12, 1, 0.5]] as const) {
      const w = randomMatrix(m, n, m * n + r);
      const k = budgetCount(m, n, { fraction: f });
      const lr = await lowRankApproximation(w, m, n, r);
      // the rank-r approximation against one made in the test from a full SVD
      const svd = jacobiSvd(fromArray(w, m, n));
      const q = Math.min(m, n);
      let maxErr = 0;
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let x = 0;
          for (let t = 0; t < r; t++) x += svd.u.data[i * q + t]! * svd.s[t]! * svd.v.data[j * q + t]!;
          maxErr = Math.max(maxErr, Math.abs(x - lr.wr[i * n + j]!));
        }
      expect(maxErr).toBeLessThan(1e-4);
      const p = await principalMask(w, m, n, r, k);
      const P = bruteTopK(lr.wr, k);
      const M = bruteTopK(w, k);
      expect(maskSet(p.mask)).toEqual(P);
      expect(maskSet(p.magnitudeMask)).toEqual(M);
      const inter = [...P].filter((i) => M.has(i)).length;
      expect(p.overlap).toBe(inter);
      expect(p.jaccard).toBeCloseTo(inter / (2 * k - inter), 12);
      expect(p.overlapFraction).toBeCloseTo(inter / k, 12);
      let e = 0;
      for (let t = 0; t < r; t++) e += svd.s[t]! ** 2;
      expect(p.energy).toBeCloseTo(e / svd.s.reduce((a, s) => a + s * s, 0), 5);
    }
  });

  it('rank >= min(m, n) is the magnitude mask; the randomized path matches the exact one on a low-rank matrix', async () => {
    const w = randomMatrix(8, 6, 1);
    const full = await principalMask(w, 8, 6, 6, 10);
    expect(full.method).toBe('full');
    expect(full.jaccard).toBe(1);
    // exactly rank 3 plus nothing: W_3 = W, so both paths keep the magnitude mask (up to near-ties)
    const a = randomMatrix(60, 3, 2);
    const b = randomMatrix(3, 50, 3);
    const low = new Float32Array(60 * 50);
    for (let i = 0; i < 60; i++) for (let j = 0; j < 50; j++) for (let t = 0; t < 3; t++) low[i * 50 + j] += a[i * 3 + t]! * b[t * 50 + j]!;
    const ex = await principalMask(low, 60, 50, 3, 300, { svd: 'exact' });
    const rnd = await principalMask(low, 60, 50, 3, 300, { svd: 'randomized' });
    expect(rnd.method).toBe('randomized');
    expect(maskOverlap(ex.mask, rnd.mask).jaccard).toBeGreaterThan(0.98);
    expect(rnd.energy).toBeCloseTo(1, 4);
  });

  it('names LIFT leaves out are matched by component, not substring', () => {
    expect(isLiftExcluded('lm_head.weight')).toBe(true);
    expect(isLiftExcluded('model.embed_tokens.weight')).toBe(true);
    expect(isLiftExcluded('transformer.wte.weight')).toBe(true);
    expect(isLiftExcluded('model.layers.0.self_attn.q_proj.weight')).toBe(false);
    expect(isLiftExcluded('model.my_lm_head_adapter.weight')).toBe(false);
  });

  it('bad options are USAGE errors', async () => {
    const w = randomMatrix(4, 4, 1);
    await expect(principalMask(w, 4, 4, 0, 2)).rejects.toMatchObject({ code: 'USAGE' });
    await expect(principalMask(w, 4, 4, 1.5, 2)).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('readPrincipalWeights', () => {
  it('writes BOOL masks under the model names, with metadata; skips 1-D, embeddings and lm_head', async () => {
    const dir = await tempDir('weightkit-principal-');
    const values = tinyValues(0);
    await writeModel(join(dir, 'm'), values);
    const out = join(dir, 'masks.safetensors');
    const r = await openCheckpointPath(join(dir, 'm'));
    let rep;
    try {
      rep = await readPrincipalWeights(r, { rank: 1, budget: { fraction: 0.25 }, out });
    } finally {
      await r.close();
    }
    const names = rep.matrices.map((m) => m.name);
    expect(names).toHaveLength(6);
    expect(rep.skipped.filter((s) => s.reason === 'excluded').map((s) => s.name).sort()).toEqual(['lm_head.weight', 'model.embed_tokens.weight']);
    expect(rep.skipped.filter((s) => s.reason === 'not 2-D')).toHaveLength(4);
    const masks = await openCheckpointPath(out);
    try {
      expect(masks.tensors().map((t) => t.name).sort()).toEqual([...names].sort());
      expect(masks.metadata()).toMatchObject({ method: 'lift_principal', rank: '1', fraction: '0.25', svd: 'auto' });
      for (const m of rep.matrices) {
        const t = masks.info(m.name);
        expect(t.dtype).toBe('BOOL');
        expect(t.shape).toEqual(m.shape);
        const bytes = await masks.readBytes(m.name);
        const expected = await principalMask(values.get(m.name)!, m.shape[0], m.shape[1], 1, Math.round(0.25 * m.numel));
        expect(Array.from(bytes)).toEqual(Array.from(expected.mask));
        expect(m.kept).toBe(Math.round(0.25 * m.numel));
      }
    } finally {
      await masks.close();
    }
    expect(rep.totals.kept).toBe(rep.matrices.reduce((a, m) => a + m.kept, 0));
    JSON.parse(JSON.stringify(rep));
    const r2 = await openCheckpointPath(join(dir, 'm'));
    try {
      const all = await readPrincipalWeights(r2, { rank: 2, budget: { fraction: 0.5 }, includeEmbeddings: true, out: join(dir, 'u8'), maskDType: 'U8' });
      expect(all.matrices).toHaveLength(8);
      await expect(readPrincipalWeights(r2, { out })).rejects.toMatchObject({ code: 'OUT_EXISTS' });
      await expect(readPrincipalWeights(r2, { budget: { fraction: 0 } })).rejects.toMatchObject({ code: 'USAGE' });
      await expect(readPrincipalWeights(r2, { budget: { loraRank: -1 } })).rejects.toMatchObject({ code: 'USAGE' });
      await expect(readPrincipalWeights(r2, { out: join(dir, 'x.onnx') })).rejects.toMatchObject({ code: 'USAGE' });
    } finally {
      await r2.close();
    }
    const u8 = await openCheckpointPath(join(dir, 'u8'));
    expect(u8.tensors().every((t) => t.dtype === 'U8')).toBe(true);
    await u8.close();
  });

  it('a matrix with a NaN is VECTOR_NOT_FINITE naming it, and nothing is written', async () => {
    const dir = await tempDir('weightkit-principal-nan-');
    const values = tinyValues(0);
    values.get('model.layers.1.mlp.up_proj.weight')![2] = NaN;
    await writeModel(join(dir, 'm'), values);
    const out = join(dir, 'masks.safetensors');
    const r = await openCheckpointPath(join(dir, 'm'));
    try {
      await expect(readPrincipalWeights(r, { rank: 1, budget: { fraction: 0.25 }, out })).rejects.toMatchObject({
        code: 'VECTOR_NOT_FINITE',
        where: { tensor: 'model.layers.1.mlp.up_proj.weight' },
      });
    } finally {
      await r.close();
    }
    expect(existsSync(out)).toBe(false);
  });
});
