import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cmaes, cmaesMinimize, mirrorInto, symmetricEigen } from '../../src/eval/cmaes.js';
import type { DatasetScores, SweepScorer } from '../../src/eval/eval-config.js';
import { search } from '../../src/eval/search.js';
import { evalTempDir, makeData, mlpWeights, removeEvalTempDirs, writeDataset, writeGraph, writeWeights } from './helpers.js';

let dir: string;
afterAll(removeEvalTempDirs);

beforeAll(async () => {
  dir = await evalTempDir();
  await writeGraph(dir, 'mlp.onnx', mlpWeights(1));
  await writeWeights(join(dir, 'base.safetensors'), mlpWeights(1));
  await writeWeights(join(dir, 'ftA.safetensors'), mlpWeights(9));
  await writeWeights(join(dir, 'ftB.safetensors'), mlpWeights(5));
  const { x, y } = makeData(100, 109, mlpWeights(9));
  await writeDataset(join(dir, 'a.safetensors'), x, y);
  await writeFile(
    join(dir, 'ta.yaml'),
    'merge_method: task_arithmetic\nbase_model: base.safetensors\nmodels:\n  - model: ftA.safetensors\n    parameters:\n      weight: 0.3\n  - model: ftB.safetensors\n    parameters:\n      weight: 0.3\nparameters:\n  lambda: 1\n',
  );
  await writeFile(join(dir, 'eval.yaml'), 'model: mlp.onnx\ndatasets:\n  - name: a\n    data: a.safetensors\n    role: task\n');
});

describe('CMA-ES', () => {
  it('finds the minimum of a quadratic within the budget, deterministically', async () => {
    const c = [0.3, -1.2, 2, 0.7];
    const f = (x: readonly number[]): number => x.reduce((s, v, i) => s + (i + 1) * (v - c[i]!) ** 2, 0);
    const r = await cmaesMinimize(f, { x0: [0, 0, 0, 0], sigma0: 1, seed: 7, budget: 600 });
    expect(r.evaluations).toBe(600);
    for (let i = 0; i < 4; i++) expect(Math.abs(r.x[i]! - c[i]!)).toBeLessThan(1e-3);
    const again = await cmaesMinimize(f, { x0: [0, 0, 0, 0], sigma0: 1, seed: 7, budget: 600 });
    expect(again).toEqual(r);
    const other = await cmaesMinimize(f, { x0: [0, 0, 0, 0], sigma0: 1, seed: 8, budget: 600 });
    expect(other.x).not.toEqual(r.x);
  });

  it('keeps samples inside bounds and reaches an optimum on the boundary', async () => {
    let outside = 0;
    const r = await cmaesMinimize(
      (x) => {
        if (x.some((v) => v < 0 || v > 1)) outside++;
        return (x[0]! - 1.5) ** 2 + (x[1]! - 0.25) ** 2;
      },
      { x0: [0.5, 0.5], sigma0: 0.3, lower: [0, 0], upper: [1, 1], seed: 1, budget: 300 },
    );
    expect(outside).toBe(0);
    expect(r.x[0]).toBeGreaterThan(0.99);
    expect(Math.abs(r.x[1]! - 0.25)).toBeLessThan(1e-2);
    expect(mirrorInto(1.2, 0, 1)).toBeCloseTo(0.8, 12);
    expect(mirrorInto(-0.3, 0, 1)).toBeCloseTo(0.3, 12);
    expect(mirrorInto(2.5, 0, 1)).toBeCloseTo(0.5, 12);
  });

  it('eigen-decomposes a symmetric matrix', () => {
    const { values, vectors } = symmetricEigen(Float64Array.from([2, 1, 1, 2]), 2);
    expect([...values].sort()).toEqual([expect.closeTo(1, 12), expect.closeTo(3, 12)]);
    // B diag(d) B^T reconstructs C
    const rec = [0, 0, 0, 0];
    for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) for (let k = 0; k < 2; k++) rec[i * 2 + j]! += vectors[i * 2 + k]! * values[k]! * vectors[j * 2 + k]!;
    expect(rec.map((v) => Number(v.toFixed(10)))).toEqual([2, 1, 1, 2]);
    expect(new Cmaes({ x0: [0, 0, 0], sigma0: 1 }).popSize).toBe(7);
  });
});

/** Scores a = 1 - (w0 - 0.8)^2 - (w1 - 0.2)^2 from the candidate's coefficients. */
function quadScorer(): SweepScorer {
  return {
    datasets: [{ name: 'a', role: 'task' }],
    controlRatio: 0.95,
    references: async () => ({ finetuned: { a: 1 }, base: { a: 0.5 } }),
    score: async (_w, p): Promise<DatasetScores> => ({ a: 1 - (p.values['weight[0]']! - 0.8) ** 2 - (p.values['weight[1]']! - 0.2) ** 2 }),
    close: async () => undefined,
  };
}

describe('search', () => {
  it('optimises per-model coefficients, logs every evaluation, writes the best recipe; same seed = same log', async () => {
    const tmp = await evalTempDir();
    const log1 = join(dir, 's1.jsonl');
    const out = join(dir, 'best.yaml');
    const r = await search({ recipe: join(dir, 'ta.yaml'), params: ['weight[*]'], scorer: quadScorer(), budget: 40, seed: 5, log: log1, out, tmpDir: tmp });
    expect(r.coordinates).toEqual(['weight[0]', 'weight[1]']);
    expect(r.evaluations).toHaveLength(40);
    expect(r.evaluations[0]!.coefficients).toEqual({ 'weight[0]': 0.3, 'weight[1]': 0.3 }); // the recipe's values first
    expect(r.best.coefficients['weight[0]']).toBeCloseTo(0.8, 1);
    expect(r.best.coefficients['weight[1]']).toBeCloseTo(0.2, 1);
    const lines = (await readFile(log1, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(40);
    expect(lines[3]).toMatchObject({ evaluation: 3, generation: 0, objective: expect.any(Number), scores: { a: expect.any(Number) } });
    const best = parse(await readFile(out, 'utf8'));
    expect(best.models[0].parameters.weight).toBe(r.best.coefficients['weight[0]']);
    expect(best.base_model).toBe(join(dir, 'base.safetensors'));
    const log2 = join(dir, 's2.jsonl');
    await search({ recipe: join(dir, 'ta.yaml'), params: ['weight[*]'], scorer: quadScorer(), budget: 40, seed: 5, log: log2, tmpDir: tmp });
    const strip = (s: string): unknown[] => s.trim().split('\n').map((l) => ({ ...JSON.parse(l), seconds: 0 }));
    expect(strip(await readFile(log2, 'utf8'))).toEqual(strip(await readFile(log1, 'utf8')));
    expect(await readdir(tmp)).toEqual([]);
  });

  it('per-tensor-group coefficients become conditional parameters; runs through ONNX Runtime', async () => {
    const tmp = await evalTempDir();
    const out = join(dir, 'groups.yaml');
    const r = await search({ recipe: join(dir, 'ta.yaml'), params: ['weight[0]'], groups: ['W1', 'W2'], eval: join(dir, 'eval.yaml'), budget: 4, seed: 1, out, tmpDir: tmp, popSize: 3 });
    expect(r.coordinates).toEqual(['weight[0]@W1', 'weight[0]@W2']);
    expect(r.objectiveRule).toBe('mean-normalized');
    for (const e of r.evaluations) expect(e.objective).toBeCloseTo(-e.scores.a!, 12);
    const best = parse(await readFile(out, 'utf8'));
    expect(best.models[0].parameters.weight).toEqual([
      { filter: 'W1', value: r.best.coefficients['weight[0]@W1'] },
      { filter: 'W2', value: r.best.coefficients['weight[0]@W2'] },
      { value: 0.3 },
    ]);
    expect(await readdir(tmp)).toEqual([]);
  });

  it('rejects unknown parameters and a bad budget', async () => {
    await expect(search({ recipe: join(dir, 'ta.yaml'), params: ['wieght[*]'], scorer: quadScorer(), budget: 4 })).rejects.toMatchObject({ code: 'USAGE' });
    await expect(search({ recipe: join(dir, 'ta.yaml'), params: ['weight[*]'], scorer: quadScorer(), budget: 0 })).rejects.toMatchObject({ code: 'USAGE' });
  });
});
