import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  effectiveRank,
  energyCaptured,
  matrixSpectrum,
  readCheckpointSpectra,
  readTensorSpectrum,
  stableRank,
} from '../../src/analysis/spectra.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { TINY_SHAPES, tempDir, tinyValues, writeModel } from '../plan/helpers.js';

/** Householder reflector I - 2 w wᵀ / wᵀw (orthogonal, n x n) from a seeded random w, f64 row-major. */
function reflector(n: number, seed: number): Float64Array {
  const r = new SeededRandom(seed);
  const w = Array.from({ length: n }, () => r.normal());
  const ww = w.reduce((a, x) => a + x * x, 0);
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) q[i * n + j] = (i === j ? 1 : 0) - (2 * w[i]! * w[j]!) / ww;
  return q;
}

/** Q1 · diag(s) · Q2ᵀ (m x n) with orthogonal reflectors: a matrix with exactly the singular values s. */
function withSpectrum(m: number, n: number, s: number[], seed = 1): Float32Array {
  const q1 = reflector(m, seed);
  const q2 = reflector(n, seed + 1);
  const a = new Float32Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let x = 0;
      for (let t = 0; t < s.length; t++) x += q1[i * m + t]! * s[t]! * q2[j * n + t]!;
      a[i * n + j] = x;
    }
  return a;
}

function entropyRank(s: number[]): number {
  const sum = s.reduce((a, x) => a + x, 0);
  return Math.exp(-s.reduce((h, x) => (x > 0 ? h + (x / sum) * Math.log(x / sum) : h), 0));
}

describe('spectrum statistics', () => {
  it('identity: effective rank n, stable rank n, nuclear n', async () => {
    const n = 6;
    const a = new Float32Array(n * n);
    for (let i = 0; i < n; i++) a[i * n + i] = 1;
    const s = await matrixSpectrum(a, n, n);
    expect(s.method).toBe('exact');
    expect(s.complete).toBe(true);
    expect(s.effectiveRank).toBeCloseTo(n, 6);
    expect(s.stableRank).toBeCloseTo(n, 6);
    expect(s.nuclearNorm).toBeCloseTo(n, 6);
    expect(s.frobeniusNorm).toBeCloseTo(Math.sqrt(n), 6);
    expect(s.energyTopK).toBeCloseTo(1, 6);
  });

  it('rank 1: effective and stable rank 1', async () => {
    const m = 7;
    const n = 5;
    const a = new Float32Array(m * n);
    for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) a[i * n + j] = (i + 1) * (j - 2.5);
    const s = await matrixSpectrum(a, m, n);
    expect(s.rank).toBe(5);
    expect(s.effectiveRank).toBeCloseTo(1, 4);
    expect(s.stableRank).toBeCloseTo(1, 5);
    expect(s.singularValues[1]! / s.singularValues[0]!).toBeLessThan(1e-5);
  });

  it('known spectrum (rotated, wide and tall): values, ranks, norms, energy', async () => {
    const sv = [5, 3, 2, 1, 0.5];
    for (const [m, n] of [[9, 5], [5, 8]] as const) {
      const a = withSpectrum(m, n, sv, m);
      const s = await matrixSpectrum(a, m, n);
      s.singularValues.forEach((x, i) => expect(x).toBeCloseTo(sv[i] ?? 0, 4));
      const f2 = sv.reduce((t, x) => t + x * x, 0);
      expect(s.effectiveRank).toBeCloseTo(entropyRank(sv), 4);
      expect(s.stableRank).toBeCloseTo(f2 / 25, 4);
      expect(s.nuclearNorm).toBeCloseTo(11.5, 4);
      expect(s.spectralNorm).toBeCloseTo(5, 4);
      expect(energyCaptured(s.singularValues, s.frobeniusNorm ** 2, 2)).toBeCloseTo(34 / f2, 4);
    }
  });

  it('randomized top-k of a big matrix: values, bounds around the true nuclear norm, exact stable rank', async () => {
    const m = 300;
    const n = 270;
    const sv = Array.from({ length: 270 }, (_, i) => 10 * Math.pow(0.8, i));
    const a = withSpectrum(m, n, sv, 3);
    const s = await matrixSpectrum(a, m, n, { top: 12 });
    expect(s.method).toBe('randomized');
    expect(s.complete).toBe(false);
    expect(s.computed).toBe(12);
    expect(s.nuclearNorm).toBeNull();
    s.singularValues.forEach((x, i) => expect(Math.abs(x - sv[i]!) / sv[i]!).toBeLessThan(1e-3));
    const nuc = sv.reduce((t, x) => t + x, 0);
    expect(s.nuclearNormBounds[0]).toBeLessThanOrEqual(nuc * (1 + 1e-4));
    expect(s.nuclearNormBounds[1]).toBeGreaterThanOrEqual(nuc * (1 - 1e-4));
    const f2 = sv.reduce((t, x) => t + x * x, 0);
    expect(s.stableRank).toBeCloseTo(f2 / 100, 3);
    expect(s.energyTopK).toBeCloseTo(1 - Math.pow(0.64, 12), 3);
  });

  it('degenerate inputs', async () => {
    expect(effectiveRank([])).toBe(0);
    expect(effectiveRank([0, 0])).toBe(0);
    expect(effectiveRank([2, 2, 2, 2])).toBeCloseTo(4, 12);
    expect(stableRank(0, 0)).toBe(0);
    const z = await matrixSpectrum(new Float32Array(12), 3, 4);
    expect(z).toMatchObject({ effectiveRank: 0, stableRank: 0, nuclearNorm: 0, energyTopK: 0 });
    await expect(matrixSpectrum(new Float32Array(12), 3, 4, { top: 0 })).rejects.toMatchObject({ code: 'USAGE' });
  });
});

describe('spectra of a checkpoint', () => {
  it('every 2-D float tensor, streaming records equal to in-memory ones, 1-D skipped', async () => {
    const dir = await tempDir('weightkit-spectra-');
    const values = tinyValues(0);
    await writeModel(join(dir, 'm'), values);
    const r = await openCheckpointPath(join(dir, 'm'));
    try {
      const seen: string[] = [];
      const res = await readCheckpointSpectra(r, { onTensor: (t) => seen.push(t.name) });
      const twoD = Object.entries(TINY_SHAPES).filter(([, s]) => s.length === 2).map(([k]) => k);
      expect(res.tensors.map((t) => t.name).sort()).toEqual(twoD.sort());
      expect(seen).toEqual(res.tensors.map((t) => t.name));
      expect(res.skipped.every((s) => s.reason === 'not 2-D')).toBe(true);
      expect(res.skipped.length).toBe(Object.keys(TINY_SHAPES).length - twoD.length);
      const name = 'model.layers.0.mlp.up_proj.weight';
      const mem = await matrixSpectrum(values.get(name)!, 6, 4);
      expect(res.tensors.find((t) => t.name === name)).toEqual({ name, dtype: 'F32', shape: [6, 4], ...mem });
      JSON.parse(JSON.stringify(res));
      await expect(readTensorSpectrum(r, 'model.norm.weight')).rejects.toMatchObject({ code: 'USAGE', where: { tensor: 'model.norm.weight' } });
    } finally {
      await r.close();
    }
  });

  it('a tensor with NaN or infinity is skipped as non-finite in a checkpoint, and VECTOR_NOT_FINITE alone', async () => {
    const dir = await tempDir('weightkit-spectra-nan-');
    const values = tinyValues(0);
    values.get('model.layers.0.mlp.up_proj.weight')![5] = NaN;
    values.get('lm_head.weight')![0] = -Infinity;
    await writeModel(join(dir, 'm'), values);
    const r = await openCheckpointPath(join(dir, 'm'));
    try {
      const res = await readCheckpointSpectra(r);
      expect(res.skipped.filter((x) => x.reason === 'non-finite values').map((x) => x.name).sort()).toEqual(['lm_head.weight', 'model.layers.0.mlp.up_proj.weight']);
      expect(res.tensors.some((t) => t.name === 'lm_head.weight')).toBe(false);
      await expect(readTensorSpectrum(r, 'lm_head.weight')).rejects.toMatchObject({ code: 'VECTOR_NOT_FINITE', where: { tensor: 'lm_head.weight' } });
    } finally {
      await r.close();
    }
  });
});
