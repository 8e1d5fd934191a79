import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evalTempDir, makeData, mlpWeights, removeEvalTempDirs, writeDataset, writeGraph, writeWeights } from '../eval/helpers.js';
import { runCli } from '../helpers/cli.js';

const run = runCli;

let dir: string;
afterAll(removeEvalTempDirs);
beforeAll(async () => {
  dir = await evalTempDir();
  await writeGraph(dir, 'mlp.onnx', mlpWeights(1));
  await writeWeights(join(dir, 'base.safetensors'), mlpWeights(1));
  await writeWeights(join(dir, 'ftA.safetensors'), mlpWeights(9));
  await writeWeights(join(dir, 'ftB.safetensors'), mlpWeights(5));
  for (const [name, seed] of [['a', 9], ['ctl', 1]] as const) {
    const { x, y } = makeData(100, 200 + seed, mlpWeights(seed));
    await writeDataset(join(dir, `${name}.safetensors`), x, y);
  }
  await writeFile(join(dir, 'ta.yaml'), 'merge_method: task_arithmetic\nbase_model: base.safetensors\nmodels:\n  - model: ftA.safetensors\n    parameters:\n      weight: 1.0\nparameters:\n  lambda: 0.5\n');
  await writeFile(join(dir, 'eval.yaml'), 'model: mlp.onnx\ndatasets:\n  - name: a\n    data: a.safetensors\n    role: task\n    finetuned: ftA.safetensors\n  - name: ctl\n    data: ctl.safetensors\n    role: control\n');
});

describe('weightkit sweep / search / dawin / soup --greedy (CLI)', () => {
  it('sweep prints a table with the best point and writes the CSV', async () => {
    const csv = join(dir, 'out.csv');
    const r = await run('sweep', join(dir, 'ta.yaml'), '--vary', 'lambda=0:1:0.5', '--eval', join(dir, 'eval.yaml'), '--csv', csv, '--select', 'mean-normalized');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/best: lambda=/);
    expect(r.stderr).toMatch(/sweep 3\/3/);
    const lines = (await readFile(csv, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('index,lambda,acc_a,acc_ctl,norm_a,mean_normalized,mean_target,control_ok,selected');
    expect(lines).toHaveLength(4);
    const j = await run('sweep', join(dir, 'ta.yaml'), '--vary', 'lambda=0,1', '--eval', join(dir, 'eval.yaml'), '--json');
    expect(j.code, j.stderr).toBe(0);
    const parsed = JSON.parse(j.stdout);
    expect(parsed.select).toBe('negation');
    expect(parsed.points).toHaveLength(2);
    // lambda 0 is the base: control accuracy 1 (labels are the base's predictions)
    expect(parsed.points[0].scores.ctl).toBe(1);
  });

  it('sweep errors: unknown parameter (USAGE), eval.yaml with line:col', async () => {
    const bad = await run('sweep', join(dir, 'ta.yaml'), '--vary', 'lamda=0:1:0.5', '--eval', join(dir, 'eval.yaml'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error\[USAGE\].*no parameter 'lamda'/);
    await writeFile(join(dir, 'bad-eval.yaml'), 'model: mlp.onnx\ndatasets:\n  - name: a\n    data: a.safetensors\n    role: tsk\n');
    const e = await run('sweep', join(dir, 'ta.yaml'), '--vary', 'lambda=0', '--eval', join(dir, 'bad-eval.yaml'), '--json');
    expect(e.code).toBe(2);
    const err = JSON.parse(e.stderr);
    expect(err.error.problems[0]).toMatchObject({ code: 'RECIPE_TYPE', where: { line: 5, col: 11 } });
  });

  it('search writes the best recipe and a JSONL log', async () => {
    const out = join(dir, 'best.yaml');
    const log = join(dir, 'log.jsonl');
    const r = await run('search', join(dir, 'ta.yaml'), '--params', 'weight[*]', 'lambda', '--eval', join(dir, 'eval.yaml'), '--budget', '5', '--seed', '2', '--out', out, '--log', log, '--objective', 'mean-normalized');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/best of 5 evaluations/);
    expect((await readFile(log, 'utf8')).trim().split('\n')).toHaveLength(5);
    expect(await readFile(out, 'utf8')).toMatch(/merge_method: task_arithmetic/);
  });

  it('dawin --json and soup --greedy with the accept/reject log', async () => {
    const d = await run('dawin', '--model', join(dir, 'mlp.onnx'), '--from', join(dir, 'base.safetensors'), '--to', join(dir, 'ftA.safetensors'), '--data', join(dir, 'a.safetensors'), '--k', '2', '--alphas', '0,0.5,1', '--json');
    expect(d.code, d.stderr).toBe(0);
    const j = JSON.parse(d.stdout);
    expect(j.k).toBe(2);
    expect(j.perComponent).toHaveLength(2);
    expect(j.staticBest.selectedOn).toBe('test');
    const s = await run('soup', join(dir, 'base.safetensors'), join(dir, 'ftA.safetensors'), join(dir, 'ftB.safetensors'), '--greedy', '--eval', join(dir, 'eval.yaml'), '--out', join(dir, 'soup.safetensors'));
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/start .*ftA\.safetensors: 100\.00%/);
    expect(s.stdout).toMatch(/(accept|reject) /);
    expect(s.stdout).toMatch(/soup of \d\/3 models/);
    const noEval = await run('soup', join(dir, 'base.safetensors'), join(dir, 'ftA.safetensors'), '--greedy', '--out', join(dir, 'x.safetensors'));
    expect(noEval.code).toBe(2);
  });
});
