import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatasetScores, EvalReferences, SweepScorer } from '../../src/eval/eval-config.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { gridPoints, parseVary, selectPoint, summarizeScores, sweep, sweepCsv } from '../../src/eval/sweep.js';
import { openCheckpointPath } from '../../src/io/open.js';
import type { CheckpointReader } from '../../src/io/types.js';
import { evalTempDir, makeData, mlpWeights, removeEvalTempDirs, writeDataset, writeGraph, writeWeights } from './helpers.js';

let dir: string;
afterAll(removeEvalTempDirs);

/** base = MLP seed 1 (also the graph), fine-tunes a (seed 9) and b (seed 5); task a/b labelled by them, control by base. */
async function fixture(d: string): Promise<void> {
  await writeGraph(d, 'mlp.onnx', mlpWeights(1));
  await writeWeights(join(d, 'base.safetensors'), mlpWeights(1));
  await writeWeights(join(d, 'ftA.safetensors'), mlpWeights(9));
  await writeWeights(join(d, 'ftB.safetensors'), mlpWeights(5));
  for (const [name, seed] of [['a', 9], ['b', 5], ['ctl', 1]] as const) {
    const { x, y } = makeData(120, 100 + seed, mlpWeights(seed));
    await writeDataset(join(d, `${name}.safetensors`), x, y);
  }
  await writeFile(
    join(d, 'ta.yaml'),
    'merge_method: task_arithmetic\nbase_model: base.safetensors\nmodels:\n  - model: ftA.safetensors\n    parameters:\n      weight: 1.0\n  - model: ftB.safetensors\n    parameters:\n      weight: 1.0\nparameters:\n  lambda: 0.5\n',
  );
  await writeFile(
    join(d, 'eval.yaml'),
    'model: mlp.onnx\ndatasets:\n  - name: a\n    data: a.safetensors\n    role: task\n    finetuned: ftA.safetensors\n  - name: b\n    data: b.safetensors\n    role: task\n    finetuned: 1.0\n',
  );
}

beforeAll(async () => {
  dir = await evalTempDir();
  await fixture(dir);
});

/** A scorer computing scores from the point's values; also checks the merged W1[0] = base + lambda * sum(tau). */
function fakeScorer(f: (v: Record<string, number>) => DatasetScores, roles: Array<{ name: string; role: 'task' | 'control' }>, refs: EvalReferences, seen: string[] = []): SweepScorer {
  return {
    datasets: roles,
    controlRatio: 0.95,
    references: async () => refs,
    async score(weights: string | CheckpointReader, point) {
      const r = await openCheckpointPath(weights as string);
      try {
        const w1 = await r.readF32('W1');
        const lam = point.values.lambda ?? 0.5;
        const expect0 = mlpWeights(1).W1[0]! + lam * (mlpWeights(9).W1[0]! - mlpWeights(1).W1[0]! + mlpWeights(5).W1[0]! - mlpWeights(1).W1[0]!);
        if (Math.abs(w1[0]! - expect0) > 1e-5) throw new Error(`merged W1[0] ${w1[0]} != ${expect0}`);
      } finally {
        await r.close();
      }
      seen.push(JSON.stringify(point.values));
      return f(point.values);
    },
    close: async () => undefined,
  };
}

describe('sweep', () => {
  it('parses --vary and orders the grid with the first axis outermost', () => {
    expect(parseVary('lambda=0:1:0.5')).toEqual({ target: { kind: 'global', name: 'lambda' }, values: [0, 0.5, 1] });
    expect(parseVary('models[1].weight=0.2,0.4').target).toEqual({ kind: 'model', index: 1, name: 'weight' });
    expect(parseVary('weight[*]=1').target).toEqual({ kind: 'model', index: '*', name: 'weight' });
    expect(() => parseVary('lambda')).toThrow(/name=grid/);
    expect(gridPoints([{ target: { kind: 'global', name: 'x' }, values: [1, 2] }, { target: { kind: 'global', name: 'y' }, values: [3, 4, 5] }])).toEqual([
      [1, 3], [1, 4], [1, 5], [2, 3], [2, 4], [2, 5],
    ]);
  });

  it('selection rules: best mean normalised accuracy; negation = lowest target with control >= 95% of base', () => {
    const roles = [{ name: 't', role: 'task' as const }, { name: 'c', role: 'control' as const }];
    const refs = { finetuned: { t: 0.8 }, base: { t: 0.1, c: 0.9 } };
    const pts = [
      { t: 0.5, c: 0.9 },
      { t: 0.3, c: 0.86 }, // control 0.86 >= 0.855: admissible
      { t: 0.1, c: 0.85 }, // below 95%: excluded although lowest target
      { t: 0.7, c: 0.9 },
    ].map((s) => summarizeScores(s, roles, refs, 0.95));
    expect(pts[0]!.normalized.t).toBeCloseTo(0.625, 12);
    expect(selectPoint(pts, 'mean-normalized')).toBe(3);
    expect(selectPoint(pts, 'negation')).toBe(1);
    expect(selectPoint([pts[2]!], 'negation')).toBeUndefined();
    // ties go to the earliest point
    expect(selectPoint([pts[0]!, pts[0]!], 'mean-normalized')).toBe(0);
  });

  it('merges every point in grid order, selects exactly, writes the CSV and leaves no temp files', async () => {
    const tmp = await evalTempDir();
    const seen: string[] = [];
    const roles = [{ name: 'a', role: 'task' as const }, { name: 'b', role: 'task' as const }];
    const refs = { finetuned: { a: 0.8, b: 1 }, base: { a: 0.5, b: 0.5 } };
    const r = await sweep({
      recipe: join(dir, 'ta.yaml'),
      vary: ['lambda=0:1:0.25', 'weight[*]=1'],
      scorer: fakeScorer((v) => ({ a: 0.8 - (v.lambda! - 0.5) ** 2, b: 0.9 - (v.lambda! - 0.75) ** 2 }), roles, refs, seen),
      tmpDir: tmp,
    });
    expect(seen.map((s) => JSON.parse(s).lambda)).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(r.select).toBe('mean-normalized');
    // mean normalised: (a/0.8 + b)/2 = 0.91875 at lambda 0.5, 0.9109375 at 0.75
    expect(r.points[r.best!]!.values.lambda).toBe(0.5);
    const csv = sweepCsv(r).trim().split('\n');
    expect(csv[0]).toBe('index,lambda,weight[*],acc_a,acc_b,norm_a,norm_b,mean_normalized,mean_target,control_ok,selected');
    expect(csv).toHaveLength(6);
    expect(csv[3]!.split(',').slice(0, 3)).toEqual(['2', '0.5', '1']);
    expect(csv[3]!.endsWith(',1')).toBe(true);
    expect(Number(csv[3]!.split(',')[7])).toBeCloseTo(0.91875, 12);
    expect(await readdir(tmp)).toEqual([]);
  });

  it('negation selection on a sweep; no temp files after a failure', async () => {
    const tmp = await evalTempDir();
    const roles = [{ name: 'a', role: 'task' as const }, { name: 'ctl', role: 'control' as const }];
    const refs = { finetuned: {}, base: { a: 0.9, ctl: 1 } };
    const r = await sweep({
      recipe: join(dir, 'ta.yaml'),
      vary: ['lambda=0:1:0.1'],
      scorer: fakeScorer((v) => ({ a: 1 - v.lambda!, ctl: 1 - v.lambda! ** 2 }), roles, refs),
      tmpDir: tmp,
    });
    expect(r.select).toBe('negation');
    expect(r.points[r.best!]!.values.lambda).toBe(0.2); // 1 - 0.3^2 = 0.91 < 0.95
    let n = 0;
    await expect(
      sweep({
        recipe: join(dir, 'ta.yaml'),
        vary: ['lambda=0:1:0.5'],
        scorer: fakeScorer(() => {
          if (++n === 2) throw new Error('scorer failed');
          return { a: 1, ctl: 1 };
        }, roles, refs),
        tmpDir: tmp,
      }),
    ).rejects.toThrow('scorer failed');
    expect(await readdir(tmp)).toEqual([]);
  });

  it('validates names against the method declaration and values before merging', async () => {
    const tmp = await evalTempDir();
    const base = { recipe: join(dir, 'ta.yaml'), eval: join(dir, 'eval.yaml'), tmpDir: tmp };
    await expect(sweep({ ...base, vary: ['lamda=0:1:0.5'] })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/no parameter 'lamda'/) });
    await expect(sweep({ ...base, vary: ['weight[5]=0.5'] })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/out of range/) });
    await expect(sweep({ ...base, vary: ['lambda[0]=0.5'] })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/global parameter/) });
    await expect(sweep({ ...base, vary: ['weight=0.5'] })).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/weight\[\*\]/) });
    expect(await readdir(tmp)).toEqual([]);
  });

  it('scores through ONNX Runtime with an eval.yaml (lambda 0 = the base, normalised by the fine-tuned model)', async () => {
    const tmp = await evalTempDir();
    const r = await sweep({ recipe: join(dir, 'ta.yaml'), vary: ['lambda=0,1'], eval: join(dir, 'eval.yaml'), tmpDir: tmp, seed: 3 });
    const baseA = await evaluate({ model: join(dir, 'mlp.onnx'), data: join(dir, 'a.safetensors') });
    const ftA = await evaluate({ model: join(dir, 'mlp.onnx'), weights: join(dir, 'ftA.safetensors'), data: join(dir, 'a.safetensors') });
    expect(r.references.base.a).toBe(baseA.accuracy);
    expect(r.references.finetuned).toEqual({ a: ftA.accuracy, b: 1 });
    expect(r.points[0]!.scores.a).toBe(baseA.accuracy);
    expect(r.points[0]!.normalized.a).toBeCloseTo(baseA.accuracy / ftA.accuracy, 12);
    const again = await sweep({ recipe: join(dir, 'ta.yaml'), vary: ['lambda=0,1'], eval: join(dir, 'eval.yaml'), tmpDir: tmp, seed: 3 });
    expect(sweepCsv(again)).toBe(sweepCsv(r));
    expect(await readdir(tmp)).toEqual([]);
    expect(await readFile(join(dir, 'ta.yaml'), 'utf8')).toMatch(/lambda: 0.5/); // the recipe is never modified
  });
});
