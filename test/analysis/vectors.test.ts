import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeVectors, type VectorsReport } from '../../src/analysis/vectors.js';
import { topKMagnitude } from '../../src/tensor/select.js';
import { readAllF32, tempDir, tinyFamily, writeModel } from '../plan/helpers.js';

let dir: string;
let fam: { base: string; a: string; b: string; c: string };

beforeAll(async () => {
  dir = await tempDir('weightkit-analyze-vectors-');
  fam = await tinyFamily(join(dir, 'fam'));
  const shapes = { 'model.layers.0.w': [4], 'model.layers.1.w': [100] };
  const big = (v: number[]): Float32Array => Float32Array.from(v);
  const hundred = new Array<number>(100).fill(0);
  hundred[99] = 10;
  await writeModel(join(dir, 'hb'), new Map([['model.layers.0.w', big([1, 1, 1, 1])], ['model.layers.1.w', big(new Array(100).fill(1))]]), { shapes });
  await writeModel(join(dir, 'h1'), new Map([['model.layers.0.w', big([2, 0, 1, 3])], ['model.layers.1.w', big(hundred.map((x) => x + 1))]]), { shapes });
  await writeModel(join(dir, 'h2'), new Map([['model.layers.0.w', big([2, 4, 1, -1])], ['model.layers.1.w', big(new Array(100).fill(1))]]), { shapes });
  await writeModel(join(dir, 'v1'), new Map([['model.layers.0.w', big([1, -1, 0, 2])], ['model.layers.1.w', big(hundred)]]), { shapes });
  await writeModel(join(dir, 'bad'), new Map([['model.layers.0.w', big([1, 2, 3, 4, 5])], ['model.layers.1.w', big(hundred)]]), { shapes: { ...shapes, 'model.layers.0.w': [5] } });
  await writeModel(join(dir, 'short'), new Map([['model.layers.0.w', big([1, 2, 3, 4])]]), { shapes });
});

describe('analyzeVectors: hand-computed values', () => {
  it('norms, relative change, zeros, kurtosis, cosine, sign conflicts and Jaccard of a 4-element tensor', async () => {
    // δ1 = [1, -1, 0, 2], δ2 = [1, 3, 0, -2]
    const r = await analyzeVectors({ base: join(dir, 'hb'), models: [join(dir, 'h1'), join(dir, 'h2')], density: 0.5 });
    expect(r.kind).toBe('weightkit.analyze.vectors');
    const t = r.tensors.find((x) => x.name === 'model.layers.0.w')!;
    expect(t.layer).toBe(0);
    const [v1, v2] = t.vectors;
    expect(v1!.norm).toBeCloseTo(Math.sqrt(6), 12);
    expect(v2!.norm).toBeCloseTo(Math.sqrt(14), 12);
    expect(v1!.baseNorm).toBeCloseTo(2, 12);
    expect(v1!.relativeChange).toBeCloseTo(Math.sqrt(6) / 2, 12);
    expect(v1!.zeroFraction).toBe(0.25);
    expect(v1!.nearZeroFraction).toBe(0.25);
    expect(v1!.mean).toBeCloseTo(0.5, 12);
    // central: [0.5, -1.5, -0.5, 1.5]: m2 = 1.25, m4 = 2.5625
    expect(v1!.kurtosis).toBeCloseTo(2.5625 / 1.5625 - 3, 12);
    expect(t.cosine[0]![1]).toBeCloseTo(-6 / Math.sqrt(84), 12);
    expect(t.cosine[1]![0]).toBe(t.cosine[0]![1]);
    expect(t.cosine[0]![0]).toBe(1);
    expect(t.signConflict[0]![1]).toBeCloseTo(2 / 3, 12);
    expect(t.signConflictAll).toBeCloseTo(2 / 3, 12);
    // top-2 masks: {3, 0} (tie at 1 goes to the first) and {1, 3}: 1 / 3
    expect(t.jaccard[0]![1]).toBeCloseTo(1 / 3, 12);
    // the 100-element tensor: one outlier (|10 − 0.1| > 3 · 0.995) in vector 1; vector 2 is zero
    const u = r.tensors.find((x) => x.name === 'model.layers.1.w')!;
    expect(u.vectors[0]!.outlierRatio).toBeCloseTo(0.01, 12);
    expect(u.vectors[0]!.zeroFraction).toBeCloseTo(0.99, 12);
    expect(u.vectors[1]!.norm).toBe(0);
    expect(u.cosine[0]![1]).toBe(0);
    expect(r.layers.map((l) => l.layer)).toEqual([0, 1]);
    expect(r.global.numel).toBe(104);
    expect(r.global.vectors[0]!.norm).toBeCloseTo(Math.sqrt(106), 10);
  });

  it('three vectors (the fused one-pass kernel) give bit for bit what each pair and each vector give alone', async () => {
    // signed zeros, exact zeros, sign conflicts among all three
    const shapes = { 'model.layers.0.w': [8] };
    const vals = {
      b3: [0, 0, 0, 0, 0, 0, 0, 0],
      x: [1, -0, 0, 2, -3, 0.5, 0, -1],
      y: [-1, 2, 0, 2, 3, -0.5, -0, 0],
      z: [1, 0, 0, -2, 3, 0.25, 7, -1],
    };
    for (const [name, v] of Object.entries(vals)) await writeModel(join(dir, name), new Map([['model.layers.0.w', Float32Array.from(v)]]), { shapes });
    const m = (n: string): string => join(dir, n);
    const three = await analyzeVectors({ base: m('b3'), models: [m('x'), m('y'), m('z')], density: 0.5 });
    const t3 = three.tensors[0]!;
    for (const [i, j] of [[0, 1], [0, 2], [1, 2]] as const) {
      const pair = (await analyzeVectors({ base: m('b3'), models: [m(['x', 'y', 'z'][i]!), m(['x', 'y', 'z'][j]!)], density: 0.5 })).tensors[0]!;
      expect(t3.cosine[i]![j]).toBe(pair.cosine[0]![1]);
      expect(t3.signConflict[i]![j]).toBe(pair.signConflict[0]![1]);
      expect(t3.jaccard[i]![j]).toBe(pair.jaccard[0]![1]);
      expect(t3.vectors[i]).toEqual(pair.vectors[0]);
      expect(t3.vectors[j]).toEqual(pair.vectors[1]);
    }
    // all three, by brute force over the elements where at least two vectors are nonzero
    const nz = (a: number[]): boolean[] => a.map((v) => v !== 0);
    let multi = 0;
    let conflict = 0;
    for (let e = 0; e < 8; e++) {
      const on = [vals.x, vals.y, vals.z].filter((a) => nz(a)[e]);
      if (on.length < 2) continue;
      multi++;
      if (on.some((a) => a[e]! > 0) && on.some((a) => a[e]! < 0)) conflict++;
    }
    expect(t3.signConflictAll).toBeCloseTo(conflict / multi, 15);
  });

  it('vectors mode: no base, no relative change, said in the notes', async () => {
    const r = await analyzeVectors({ vectors: [join(dir, 'v1'), join(dir, 'v1')], density: 0.5 });
    expect(r.mode).toBe('vectors');
    expect(r.base).toBeNull();
    expect(r.notes.join(' ')).toMatch(/relative change/);
    expect(r.tensors[0]!.vectors[0]!.relativeChange).toBeNull();
    expect(r.tensors[0]!.vectors[0]!.norm).toBeCloseTo(Math.sqrt(6), 12);
    expect(r.tensors[0]!.cosine[0]![1]).toBeCloseTo(1, 12);
    expect(r.tensors[0]!.jaccard[0]![1]).toBe(1);
    expect(r.labels).toEqual(['v1', 'v1#2']);
  });
});

function inMemory(base: Map<string, Float32Array>, models: Map<string, Float32Array>[], name: string, density: number) {
  const b = base.get(name)!;
  const ds = models.map((m) => Float32Array.from(m.get(name)!, (x, i) => x - b[i]!));
  const norms = ds.map((d) => Math.sqrt(d.reduce((a, x) => a + x * x, 0)));
  const kurt = ds.map((d) => {
    const mu = d.reduce((a, x) => a + x, 0) / d.length;
    const m2 = d.reduce((a, x) => a + (x - mu) ** 2, 0) / d.length;
    const m4 = d.reduce((a, x) => a + (x - mu) ** 4, 0) / d.length;
    return m4 / (m2 * m2) - 3;
  });
  const cos = (i: number, j: number): number => ds[i]!.reduce((a, x, e) => a + x * ds[j]![e]!, 0) / (norms[i]! * norms[j]!);
  const k = Math.round(density * b.length);
  const masks = ds.map((d) => {
    const t = topKMagnitude(d, k);
    const u = new Uint32Array(d.buffer);
    let ties = t.ties;
    return Array.from(u, (bits) => {
      const a = bits & 0x7fffffff;
      if (a > t.bits) return 1;
      if (a === t.bits && ties > 0) {
        ties--;
        return 1;
      }
      return 0;
    });
  });
  const jac = (i: number, j: number): number => {
    let inter = 0;
    let union = 0;
    for (let e = 0; e < b.length; e++) {
      inter += masks[i]![e]! & masks[j]![e]!;
      union += masks[i]![e]! | masks[j]![e]!;
    }
    return union > 0 ? inter / union : 1;
  };
  return { norms, kurt, cos, jac };
}

describe('analyzeVectors: streaming equals in-memory', () => {
  let whole: VectorsReport;
  beforeAll(async () => {
    whole = await analyzeVectors({ base: fam.base, models: [fam.a, fam.b, fam.c], density: 0.3, spectra: true });
  });

  it('matches an in-memory computation per tensor', async () => {
    const base = await readAllF32(fam.base);
    const models = await Promise.all([fam.a, fam.b, fam.c].map(readAllF32));
    for (const t of whole.tensors) {
      const m = inMemory(base, models, t.name, 0.3);
      t.vectors.forEach((v, k) => {
        expect(v.norm).toBeCloseTo(m.norms[k]!, 5);
        expect(v.kurtosis).toBeCloseTo(m.kurt[k]!, 5);
      });
      expect(t.cosine[0]![2]).toBeCloseTo(m.cos(0, 2), 6);
      expect(t.jaccard[1]![2]).toBeCloseTo(m.jac(1, 2), 12);
      if (t.shape.length === 2) {
        expect(t.spectra).toHaveLength(3);
        expect(t.spectra![0]!.frobeniusNorm).toBeCloseTo(t.vectors[0]!.norm, 5);
      } else expect(t.spectra).toBeUndefined();
    }
    expect(whole.layers.map((l) => l.layer)).toEqual(['pre', 0, 1, 2, 'post']);
    const sumSq = whole.tensors.reduce((a, t) => a + t.vectors[1]!.norm ** 2, 0);
    expect(whole.global.vectors[1]!.norm).toBeCloseTo(Math.sqrt(sumSq), 10);
  });

  it('a tiny budget (one row per chunk, tensors re-read per pass) gives the same report', async () => {
    const tiny = await analyzeVectors({ base: fam.base, models: [fam.a, fam.b, fam.c], density: 0.3, spectra: true, budgetBytes: 64 });
    expect(tiny.bytesRead).toBeGreaterThan(whole.bytesRead);
    expect({ ...tiny, bytesRead: 0 }).toEqual({ ...whole, bytesRead: 0 });
  });
});

describe('analyzeVectors: errors', () => {
  it('mismatched shapes, missing tensors and a bad density are typed', async () => {
    await expect(analyzeVectors({ base: join(dir, 'hb'), models: [join(dir, 'bad')] })).rejects.toMatchObject({ code: 'TENSOR_SHAPE_MISMATCH', where: { tensor: 'model.layers.0.w' } });
    await expect(analyzeVectors({ base: join(dir, 'hb'), models: [join(dir, 'short')] })).rejects.toMatchObject({ code: 'TENSOR_NOT_FOUND', where: { tensor: 'model.layers.1.w' } });
    await expect(analyzeVectors({ vectors: [join(dir, 'v1'), join(dir, 'short')] })).rejects.toMatchObject({ code: 'TENSOR_NOT_FOUND' });
    for (const density of [0, -0.1, 1.5, Number.NaN]) {
      await expect(analyzeVectors({ base: join(dir, 'hb'), models: [join(dir, 'h1')], density })).rejects.toMatchObject({ code: 'USAGE' });
    }
    await expect(analyzeVectors({ models: [join(dir, 'h1')] })).rejects.toMatchObject({ code: 'USAGE' });
    await expect(analyzeVectors({ base: join(dir, 'hb'), vectors: [join(dir, 'v1')] })).rejects.toMatchObject({ code: 'USAGE' });
  });
});
