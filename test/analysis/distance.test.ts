import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeDistance, averageLinkage, classicalMds } from '../../src/analysis/distance.js';
import { readAllF32, tempDir, tinyFamily, writeModel } from '../plan/helpers.js';

const dist = (p: number[][]): number[][] => p.map((a) => p.map((b) => Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!)));

describe('classicalMds', () => {
  it('recovers a known 2-D configuration up to rotation (stress ~0)', () => {
    const pts = [[0, 0], [3, 0], [0, 4], [3, 4], [1, 2]];
    const d = dist(pts);
    const m = classicalMds(d);
    expect(m.stress).toBeLessThan(1e-9);
    const e = dist(m.coords);
    for (let i = 0; i < pts.length; i++) for (let j = 0; j < pts.length; j++) expect(e[i]![j]).toBeCloseTo(d[i]![j]!, 9);
    expect(m.eigenvalues[0]).toBeGreaterThanOrEqual(m.eigenvalues[1]!);
  });

  it('a 3-D configuration in 2-D has a positive stress', () => {
    const p3 = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]];
    const d = p3.map((a) => p3.map((b) => Math.hypot(a[0]! - b[0]!, a[1]! - b[1]!, a[2]! - b[2]!)));
    expect(classicalMds(d).stress).toBeGreaterThan(0.01);
  });
});

describe('averageLinkage', () => {
  it('merges in the order of a constructed distance matrix, with average distances', () => {
    // points 0,1 close (1); 2,3 close (2); the two pairs far apart (10, 12)
    const d = [
      [0, 1, 10, 12],
      [1, 0, 10, 12],
      [10, 10, 0, 2],
      [12, 12, 2, 0],
    ];
    const c = averageLinkage(d);
    expect(c.merges).toEqual([
      { left: 0, right: 1, distance: 1, size: 2 },
      { left: 2, right: 3, distance: 2, size: 2 },
      { left: 4, right: 5, distance: 11, size: 4 },
    ]);
    expect(c.order).toEqual([0, 1, 2, 3]);
  });
});

describe('analyzeDistance', () => {
  let dir: string;
  let fam: { base: string; a: string; b: string; c: string };
  beforeAll(async () => {
    dir = await tempDir('weightkit-analyze-distance-');
    fam = await tinyFamily(join(dir, 'fam'));
  });

  it('cosine and l2 matrices equal an in-memory computation; tiny budget gives the same report', async () => {
    const paths = [fam.a, fam.b, fam.c];
    const base = await readAllF32(fam.base);
    const ms = await Promise.all(paths.map(readAllF32));
    const flat = (m: Map<string, Float32Array>, sub: boolean): number[] => [...m.entries()].flatMap(([n, v]) => Array.from(v, (x, i) => (sub ? x - base.get(n)![i]! : x)));
    for (const withBase of [false, true]) {
      const xs = ms.map((m) => flat(m, withBase));
      const r = await analyzeDistance({ paths, metric: 'l2', ...(withBase ? { base: fam.base } : {}) });
      const c = await analyzeDistance({ paths, metric: 'cosine', ...(withBase ? { base: fam.base } : {}), budgetBytes: 64 });
      expect(r.kind).toBe('weightkit.analyze.distance');
      expect(r.labels).toEqual(['ft-a', 'ft-b', 'ft-c']);
      for (let i = 0; i < 3; i++) {
        for (let j = 0; j < 3; j++) {
          const l2 = Math.sqrt(xs[i]!.reduce((a, x, e) => a + (x - xs[j]![e]!) ** 2, 0));
          const dot = xs[i]!.reduce((a, x, e) => a + x * xs[j]![e]!, 0);
          const cos = dot / Math.sqrt(xs[i]!.reduce((a, x) => a + x * x, 0) * xs[j]!.reduce((a, x) => a + x * x, 0));
          expect(r.matrix[i]![j]).toBeCloseTo(l2, 5);
          expect(c.matrix[i]![j]).toBeCloseTo(i === j ? 0 : 1 - cos, 6);
        }
      }
      const whole = await analyzeDistance({ paths, metric: 'cosine', ...(withBase ? { base: fam.base } : {}) });
      expect({ ...c, bytesRead: 0 }).toEqual({ ...whole, bytesRead: 0 });
      expect(r.mds.coords).toHaveLength(3);
      expect(r.mds.stress).toBeLessThan(1e-6); // three points always embed in 2-D
      expect(r.clustering.merges).toHaveLength(2);
    }
  });

  it('errors: fewer than two inputs, mismatched shapes', async () => {
    await expect(analyzeDistance({ paths: [fam.a] })).rejects.toMatchObject({ code: 'USAGE' });
    const bad = join(dir, 'bad');
    await writeModel(bad, new Map([['model.norm.weight', new Float32Array(5)]]), { shapes: { 'model.norm.weight': [5] } });
    await expect(analyzeDistance({ paths: [fam.a, bad] })).rejects.toMatchObject({ code: 'TENSOR_NOT_FOUND' });
    await expect(analyzeDistance({ paths: [fam.a, fam.b], metric: 'l1' as never })).rejects.toMatchObject({ code: 'USAGE' });
  });
});
