import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { analyzeMerge } from '../../src/analysis/merge-analysis.js';
import { getMethod } from '../../src/merge/registry.js';
import { drive, makeContext } from '../../src/merge/run.js';
import { readAllF32, tempDir, tinyFamily } from '../plan/helpers.js';

let dir: string;
let fam: { base: string; a: string; b: string; c: string };

beforeAll(async () => {
  dir = await tempDir('weightkit-analyze-merge-');
  fam = await tinyFamily(join(dir, 'fam'));
  await writeFile(
    join(dir, 'ties.yaml'),
    `merge_method: ties\nbase_model: ${fam.base}\nmodels:\n  - model: ${fam.a}\n    parameters: {weight: 1.0, density: 0.3}\n  - model: ${fam.b}\n    parameters: {weight: 0.5, density: 0.6}\nparameters:\n  normalize: true\n`,
  );
  await writeFile(join(dir, 'linear.yaml'), `merge_method: linear\nmodels:\n  - model: ${fam.a}\n    parameters: {weight: 0.5}\n  - model: ${fam.b}\n    parameters: {weight: 0.5}\n`);
  await writeFile(
    join(dir, 'dare.yaml'),
    `merge_method: dare_ties\nbase_model: ${fam.base}\nmodels:\n  - model: ${fam.a}\n    parameters: {weight: 1.0, density: 0.5}\n  - model: ${fam.c}\n    parameters: {weight: 1.0, density: 0.5}\n`,
  );
});

describe('analyzeMerge', () => {
  it('TIES: kept fractions equal a direct in-memory run of the method; nothing is written', async () => {
    const before = await readdir(dir, { recursive: true });
    const r = await analyzeMerge(join(dir, 'ties.yaml'));
    expect(await readdir(dir, { recursive: true })).toEqual(before);
    expect(r.kind).toBe('weightkit.analyze.merge');
    expect(r.method).toBe('ties');
    expect(r.models).toEqual(['ft-a', 'ft-b']);
    expect(r.reports).toBe(true);
    const base = await readAllF32(fam.base);
    const a = await readAllF32(fam.a);
    const b = await readAllF32(fam.b);
    const ties = getMethod('ties');
    for (const t of r.tensors) {
      expect(t.op).toBe('merge');
      const ctx = makeContext(ties, { name: t.name, shape: t.shape, hasBase: true, params: t.params, modelParams: t.modelParams, seed: 0 });
      const m = ties.create(ctx);
      const models = [a.get(t.name)!, b.get(t.name)!];
      const bs = base.get(t.name)!;
      const out = new Float32Array(bs.length);
      drive(m, bs.length, bs.length, (o, len) => ({ offset: o, length: len, base: bs.subarray(o, o + len), models: models.map((x) => x.subarray(o, o + len)) }), out);
      expect(t.report).toEqual(m.report!());
      expect(Math.abs(t.report!.kept_fraction_0! - 0.3)).toBeLessThan(1 / bs.length + 1e-12);
      expect(Math.abs(t.report!.kept_fraction_1! - 0.6)).toBeLessThan(1 / bs.length + 1e-12);
      let changed = 0;
      for (let i = 0; i < bs.length; i++) if (out[i] !== bs[i]) changed++;
      expect(t.effect!.changedFraction).toBeCloseTo(changed / bs.length, 12);
      expect(t.modelParams[1]).toMatchObject({ density: 0.6, weight: 0.5 });
    }
    expect(r.layers.map((l) => l.layer)).toEqual(['pre', 0, 1, 2, 'post']);
    expect(r.totals.report.kept_fraction_0).toBeGreaterThan(0.25);
    expect(r.totals.report.kept_fraction_0).toBeLessThan(0.35);
  });

  it('DARE kept fractions near the density; a method without report() shows its parameters', async () => {
    const d = await analyzeMerge(join(dir, 'dare.yaml'));
    expect(d.totals.report.kept_fraction_0).toBeGreaterThan(0.3);
    expect(d.totals.report.kept_fraction_0).toBeLessThan(0.7);
    const l = await analyzeMerge(join(dir, 'linear.yaml'));
    expect(l.reports).toBe(false);
    expect(l.base).toBeNull();
    expect(l.tensors[0]!.report).toBeNull();
    expect(l.tensors[0]!.effect).toBeNull();
    expect(l.tensors[0]!.modelParams.map((p) => p.weight)).toEqual([0.5, 0.5]);
  });

  it('a missing recipe is a typed error', async () => {
    await expect(analyzeMerge(join(dir, 'nope.yaml'))).rejects.toHaveProperty('code');
  });
});
