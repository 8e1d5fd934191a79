import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { type CliIo } from '../../src/cli/main.js';
import { createProgress } from '../../src/cli/progress.js';
import { buildMlp, mlpWeights, MLP_NAMES, type MlpWeights } from '../io/onnx/build-model.js';
import { expectOrtMatches } from '../io/onnx/ort-check.js';
import { tempDir, tinyFamily } from '../plan/helpers.js';
import { runCli } from '../helpers/cli.js';

const run = runCli;

let root: string;
beforeAll(async () => {
  root = await tempDir('weightkit-merge-cli-');
  await tinyFamily(root);
});

async function recipe(name: string, text: string): Promise<string> {
  const p = join(root, name);
  await writeFile(p, text);
  return p;
}

describe('weightkit merge / validate / methods', () => {
  it('merges with --out and with the mergekit positional form; --dry-run prints the plan', async () => {
    const r = await recipe('ties.yaml', 'merge_method: ties\nbase_model: base\nmodels:\n  - {model: ft-a, parameters: {weight: 1, density: 0.5}}\n  - {model: ft-b, parameters: {weight: 1, density: 0.5}}\ndtype: bfloat16\n');
    const a = await run('merge', r, '--out', join(root, 'o1'), '--quiet');
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toBe('');
    const b = await run('merge', r, join(root, 'o2'));
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/^merged 12 tensors with ties -> /);
    expect(await readFile(join(root, 'o2', 'model.safetensors'))).toEqual(await readFile(join(root, 'o1', 'model.safetensors')));
    const d = await run('merge', r, join(root, 'o3'), '--dry-run');
    expect(d.code).toBe(0);
    expect(d.stdout).toMatch(/method\s+ties/);
    expect(d.stdout).toContain('model.layers.0.mlp.up_proj.weight');
    expect(existsSync(join(root, 'o3'))).toBe(false);
    const j = JSON.parse((await run('merge', r, '--dry-run', '--json')).stdout);
    expect(j.method).toBe('ties');
    expect(j.tensors[0].modelParams[0].density).toBe(0.5);
    const again = await run('merge', r, join(root, 'o2'));
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/^error\[OUT_EXISTS\]/);
    expect((await run('merge', r, join(root, 'o2'), '--overwrite', '--threads', '2', '--seed', '3', '--quiet')).code).toBe(0);
    expect((await run('merge', r, join(root, 'o4'), '--threads', '0')).code).toBe(2);
    expect((await run('merge', r)).stderr).toMatch(/^error\[USAGE\]/);
  });

  it('--dry-run of an SVD method shows the tensors merged whole with their flops and working set', async () => {
    const r = await recipe('tsv.yaml', 'merge_method: tsv\nbase_model: base\nmodels:\n  - model: ft-a\n  - model: ft-b\nparameters:\n  svd: randomized\n');
    const d = await run('merge', r, '--dry-run');
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/linear algebra\s+\d+ tensor\(s\) merged whole: ~[\d.]+ [GT]FLOP in matrix products \+ ~[\d.]+ [GT]FLOP in JS \(~[\d.]+ (s|min|h) at 300 and 2 GFLOP\/s\)/);
    expect(d.stdout).toMatch(/largest working set ~[\d.]+ [kMG]B \(/);
    const j = JSON.parse((await run('merge', r, '--dry-run', '--json')).stdout);
    expect(j.memory.wholeTensors.flops).toBeGreaterThan(0);
    expect(j.memory.wholeTensors.jsFlops).toBe(0); // block Krylov: every step on the backend or the native kernels
    const sub = await recipe('tsv-sub.yaml', 'merge_method: tsv\nbase_model: base\nmodels:\n  - model: ft-a\n  - model: ft-b\nparameters:\n  svd: randomized\n  power_iterations: 2\n');
    const js = JSON.parse((await run('merge', sub, '--dry-run', '--json')).stdout);
    expect(js.memory.wholeTensors.jsFlops).toBeGreaterThan(0); // subspace iteration's l x l eigenproblem in JS
    const ties = await run('merge', await recipe('ta.yaml', 'merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: ft-a\n'), '--dry-run');
    expect(ties.stdout).not.toContain('linear algebra');
  });

  it('renders every recipe problem with file:line:col and a caret, exit 2', async () => {
    const r = await recipe('bad.yaml', 'merge_method: ties\nbase_model: base\nmodels:\n  - model: ft-a\n    parameters:\n      densty: 0.5\n      weight: 1\n');
    const v = await run('validate', r);
    expect(v.code).toBe(2);
    expect(v.stderr).toContain('error[RECIPE_UNKNOWN_PARAM]');
    expect(v.stderr).toContain(`${r}:6:7`);
    expect(v.stderr).toContain('6 |       densty: 0.5');
    expect(v.stderr).toMatch(/\|\s{7}\^{6}/);
    expect(v.stderr).toContain("did you mean 'density'");
    expect(v.stderr).toMatch(/1 problem in /);
    const m = await run('merge', r, join(root, 'never'));
    expect(m.code).toBe(2);
    expect(existsSync(join(root, 'never'))).toBe(false);
    const j = await run('validate', r, '--json');
    const e = JSON.parse(j.stderr).error;
    expect(e.code).toBe('RECIPE_INVALID');
    expect(e.problems[0]).toMatchObject({ code: 'RECIPE_UNKNOWN_PARAM', where: { line: 6, col: 7 } });
    const lenient = await run('validate', r, '--lenient');
    expect(lenient.code).toBe(0);
    expect(lenient.stderr).toContain('warning[RECIPE_UNKNOWN_PARAM]');
    const ok = await run('validate', await recipe('good.yaml', 'merge_method: linear\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n'));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(': ok (1 stage(s), 12 tensors with linear)');
  });

  it('methods lists every method with parameters; JSON has defaults; details per method', async () => {
    const t = await run('methods');
    expect(t.code).toBe(0);
    for (const n of ['ties', 'dare_ties', 'slerp', 'model_stock', 'negmerge', 'passthrough']) expect(t.stdout).toContain(n);
    const j = JSON.parse((await run('methods', '--json')).stdout);
    const ties = j.find((m: { name: string }) => m.name === 'ties');
    expect(ties.params.find((p: { name: string }) => p.name === 'normalize').default).toBe(true);
    expect(ties.modelParams.find((p: { name: string }) => p.name === 'density').default).toBe(1);
    expect(ties.reference).toMatch(/2306\.01708|TIES/);
    const d = await run('methods', 'della');
    expect(d.stdout).toContain('epsilon');
    expect(d.stdout).toContain('formula:');
    expect((await run('methods', 'nope')).code).toBe(2);
  });

  it('progress: plain periodic lines when not a terminal, nothing when quiet', () => {
    let err = '';
    const io: CliIo = { stdout: () => undefined, stderr: (s) => void (err += s), isTTY: false };
    const p = createProgress(io, { quiet: false, title: 'merge', intervalMs: 1000 });
    p.update({ done: 1, total: 4, bytesDone: 100, bytesTotal: 400, elapsedMs: 10 });
    p.update({ done: 2, total: 4, bytesDone: 200, bytesTotal: 400, elapsedMs: 500 });
    p.update({ done: 3, total: 4, bytesDone: 300, bytesTotal: 400, elapsedMs: 1200 });
    p.update({ done: 4, total: 4, bytesDone: 400, bytesTotal: 400, elapsedMs: 1300 });
    const lines = err.trim().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(/^merge: 1\/4 tensors, 100 B of 400 B, .*ETA/);
    expect(lines[2]).toMatch(/^merge: 4\/4 tensors/);
    expect(err).not.toContain('\u001b');
    let quiet = '';
    const q = createProgress({ ...io, stderr: (s) => void (quiet += s) }, { quiet: true, title: 'merge' });
    q.update({ done: 4, total: 4, bytesDone: 1, bytesTotal: 1, elapsedMs: 1 });
    expect(quiet).toBe('');
  });

  it('ONNX inputs produce a patched copy of the base graph that ORT runs', async () => {
    const w1 = mlpWeights(1);
    const w2 = mlpWeights(2);
    await writeFile(join(root, 'm1.onnx'), buildMlp({ weights: w1 }).bytes);
    await writeFile(join(root, 'm2.onnx'), buildMlp({ weights: w2 }).bytes);
    const r = await recipe('onnx.yaml', 'merge_method: linear\nmodels:\n  - {model: m1.onnx, parameters: {weight: 1}}\n  - {model: m2.onnx, parameters: {weight: 1}}\n');
    const res = await run('merge', r, join(root, 'onnx-out'), '--quiet');
    expect(res.code, res.stderr).toBe(0);
    expect(existsSync(join(root, 'onnx-out', 'model.onnx'))).toBe(true);
    const avg = Object.fromEntries(MLP_NAMES.map((n) => [n, w1[n].map((v, i) => (v + w2[n][i]!) / 2)])) as unknown as MlpWeights;
    await expectOrtMatches(join(root, 'onnx-out', 'model.onnx'), avg);
  });

  it('a missing recipe, a base for a method without one, and stages that depend on each other are errors', async () => {
    const missing = await run('validate', join(root, 'no-such-recipe.yaml'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error\[RECIPE_NOT_FOUND\]/);
    expect(missing.stderr).toContain('no-such-recipe.yaml');

    const base = await run('validate', await recipe('pt-base.yaml', 'merge_method: passthrough\nbase_model: base\nmodels:\n  - model: ft-a\n'));
    expect(base.code).toBe(2);
    expect(base.stderr).toContain('error[RECIPE_BASE_NOT_ALLOWED]');
    expect(base.stderr).toContain('pt-base.yaml:2:13');

    const cycle = await run(
      'validate',
      await recipe(
        'cycle.yaml',
        'name: one\nmerge_method: linear\nmodels:\n  - {model: two, parameters: {weight: 1}}\n---\nname: two\nmerge_method: linear\nmodels:\n  - {model: one, parameters: {weight: 1}}\n---\nmerge_method: linear\nmodels:\n  - {model: two, parameters: {weight: 1}}\n',
      ),
    );
    expect(cycle.code).toBe(2);
    expect(cycle.stderr).toContain('error[RECIPE_CYCLE]');
    expect(cycle.stderr).toMatch(/cycle\.yaml:\d+:\d+/);
  });
});
