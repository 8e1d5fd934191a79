import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evalTempDir, jsMetrics, makeData, mlpWeights, writeDataset, writeGraph, writeWeights, removeEvalTempDirs } from './helpers.js';
import { runCli } from '../helpers/cli.js';

const run = runCli;

let dir: string;
let graph: string;
let graph2: string;
let data: string;
let weights: string;
const N = 120;
const { x, y } = makeData(N, 8);

beforeAll(async () => {
  dir = await evalTempDir();
  graph = await writeGraph(dir);
  graph2 = await writeGraph(dir, 'ref.onnx', mlpWeights(5));
  data = await writeDataset(join(dir, 'data.safetensors'), x, y);
  weights = await writeWeights(join(dir, 'w.safetensors'), mlpWeights(9));
});

afterAll(removeEvalTempDirs);

describe('weightkit eval', () => {
  it('prints accuracy, top-k, CE, entropy and the per-class table', async () => {
    const r = await run('eval', '--model', graph, '--data', data, '--top-k', '2');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const js = jsMetrics(x, y, mlpWeights(1));
    expect(r.stdout).toContain(`${(js.accuracy * 100).toFixed(2)}%`);
    expect(r.stdout).toMatch(/top-2 accuracy/);
    expect(r.stdout).toMatch(/mean cross-entropy\s+[0-9.]+ nats/);
    expect(r.stdout).toMatch(/mean entropy/);
    expect(r.stdout).toMatch(/per class\n\s+class\s+examples\s+correct\s+accuracy\n\s+0 /);
    expect(r.stdout).not.toContain('negative flip rate');
  });

  it('--weights, --reference and --json: patched predictions and NFR as data', async () => {
    const r = await run('eval', '--model', graph, '--weights', weights, '--data', data, '--reference', graph2, '--json', '--batch', '50');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.accuracy).toBe(1); // weights of the labelling model
    expect(j.patched).toBe(4);
    expect(j.batch).toBe(50);
    expect(j.predictions).toBeUndefined();
    const ref = jsMetrics(x, y, mlpWeights(5));
    expect(j.reference.metrics.accuracy).toBe(ref.accuracy);
    expect(j.reference.comparison.negativeFlips).toBe(0); // a model right everywhere flips nothing
    expect(j.reference.comparison.agreement).toBe(ref.accuracy);
    const t = await run('eval', '--model', graph2, '--data', data, '--reference', graph, '--reference-weights', weights);
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/negative flip rate\s+[0-9.]+% \(\d+ of 120\)/);
    expect(t.stdout).toMatch(/agreement/);
  });

  it('errors exit 2 with their code: bad data, bad shape, bad labels, usage', async () => {
    const missing = await run('eval', '--model', graph, '--data', data, '--label', 'nope');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^error\[EVAL_DATA\]/);
    expect(missing.stderr).toContain("tensor 'nope'");
    const wide = await writeDataset(join(dir, 'wide.safetensors'), new Float32Array(N * 3), y);
    const shape = await run('eval', '--model', graph, '--data', wide, '--json');
    expect(shape.code).toBe(2);
    expect(JSON.parse(shape.stderr).error.code).toBe('EVAL_SHAPE');
    const bad = Int32Array.from(y);
    bad[3] = 7;
    const range = await run('eval', '--model', graph, '--data', await writeDataset(join(dir, 'range.safetensors'), x, bad, { labelDType: 'I32' }));
    expect(range.code).toBe(2);
    expect(range.stderr).toMatch(/^error\[EVAL_LABEL_RANGE\]/);
    const usage = await run('eval', '--model', graph, '--data', data, '--reference-weights', weights);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^error\[USAGE\]/);
    const noData = await run('eval', '--model', graph);
    expect(noData.code).toBe(2);
    const help = await run('--help');
    expect(help.stdout).toContain('weightkit eval');
  });
});
