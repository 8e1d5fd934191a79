import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataset } from '../../src/eval/dataset.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { encodeNpy } from '../../src/eval/npy.js';
import { roundTo } from '../io/onnx/ort-check.js';
import { evalTempDir, jsMetrics, makeData, mlpWeights, writeDataset, writeGraph, writeNpyPair, writeWeights, removeEvalTempDirs } from './helpers.js';

let dir: string;
let graph: string;
const N = 40;
const { x, y } = makeData(N, 3);

beforeAll(async () => {
  dir = await evalTempDir();
  graph = await writeGraph(dir);
});

afterAll(removeEvalTempDirs);

describe('datasets', () => {
  it('safetensors: default and custom names, ranged f32 reads of F16/BF16 inputs, integer labels', async () => {
    const f = await writeDataset(join(dir, 'named.safetensors'), x, y, { inputName: 'pixels', labelName: 'target', inputDType: 'BF16', labelDType: 'U8' });
    await expect(openDataset(f)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: f, tensor: 'inputs' } });
    const ds = await openDataset(f, { input: 'pixels', label: 'target' });
    try {
      expect(ds.count).toBe(N);
      expect(ds.inputs).toMatchObject({ name: 'pixels', dtype: 'BF16', shape: [N, 8] });
      const rows = await ds.readInputs(3, 5);
      expect(Array.from(rows)).toEqual(Array.from(roundTo('BF16', x.subarray(24, 40))));
      expect(Array.from(await ds.readLabels(0, N))).toEqual(Array.from(y));
      await expect(ds.readLabels(0, N + 1)).rejects.toMatchObject({ code: 'EVAL_DATA' });
    } finally {
      await ds.close();
    }
    const r = await evaluate({ model: graph, data: f, input: 'pixels', label: 'target' });
    expect(Array.from(r.predictions)).toEqual(jsMetrics(roundTo('BF16', x), y, mlpWeights(1)).preds);
  });

  it('.npy: a folder, a comma pair and an explicit pair give the same report as safetensors', async () => {
    const st = await writeDataset(join(dir, 'same.safetensors'), x, y, { labelDType: 'I32' });
    const folder = join(dir, 'npy');
    await mkdir(folder);
    await writeNpyPair(folder, x, y);
    const a = await evaluate({ model: graph, data: st });
    const b = await evaluate({ model: graph, data: folder });
    const c = await evaluate({ model: graph, data: `${join(folder, 'inputs.npy')},${join(folder, 'labels.npy')}` });
    const d = await evaluate({ model: graph, data: { inputs: join(folder, 'inputs.npy'), labels: join(folder, 'labels.npy') } });
    for (const r of [b, c, d]) {
      expect(Array.from(r.predictions)).toEqual(Array.from(a.predictions));
      expect(r.meanCrossEntropy).toBe(a.meanCrossEntropy);
    }
    await writeFile(join(folder, 'x2.npy'), encodeNpy('F16', [N, 8], new Uint16Array(N * 8)));
    const renamed = await openDataset(folder, { input: 'x2' });
    expect(renamed.inputs.dtype).toBe('F16');
    await renamed.close();
  });

  it('missing tensors, wrong dtypes, N mismatch, bad paths: EVAL_DATA naming the file (and tensor)', async () => {
    const noLabels = await writeDataset(join(dir, 'nolabels.safetensors'), x, y, { labelName: 'y' });
    await expect(openDataset(noLabels)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: noLabels, tensor: 'labels' } });
    const floatLabels = join(dir, 'float-labels.safetensors');
    const { writeSafetensors } = await import('../../src/io/safetensors/writer.js');
    const { makeTensor } = await import('../../src/tensor/tensor.js');
    await writeSafetensors(floatLabels, { inputs: makeTensor('F32', [2, 8]), labels: makeTensor('F32', [2]) });
    await expect(openDataset(floatLabels)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { tensor: 'labels' } });
    const intInputs = join(dir, 'int-inputs.safetensors');
    await writeSafetensors(intInputs, { inputs: makeTensor('I32', [2, 8]), labels: makeTensor('I64', [2]) });
    await expect(openDataset(intInputs)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { tensor: 'inputs' } });
    const mismatch = join(dir, 'n-mismatch.safetensors');
    await writeSafetensors(mismatch, { inputs: makeTensor('F32', [3, 8]), labels: makeTensor('I64', [2]) });
    await expect(openDataset(mismatch)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: mismatch, tensor: 'labels' } });
    const labels2d = join(dir, 'labels-2d.safetensors');
    await writeSafetensors(labels2d, { inputs: makeTensor('F32', [2, 8]), labels: makeTensor('I64', [2, 1]) });
    await expect(openDataset(labels2d)).rejects.toMatchObject({ code: 'EVAL_DATA' });
    const empty = join(dir, 'empty.safetensors');
    await writeSafetensors(empty, { inputs: makeTensor('F32', [0, 8]), labels: makeTensor('I64', [0]) });
    await expect(openDataset(empty)).rejects.toMatchObject({ code: 'EVAL_DATA' });
    const corrupt = join(dir, 'corrupt.safetensors');
    await writeFile(corrupt, new Uint8Array([1, 2, 3]));
    await expect(openDataset(corrupt)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: corrupt } });
    const absent = join(dir, 'absent.safetensors');
    await expect(openDataset(absent)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: absent } });
    const lone = join(dir, 'npy', 'inputs.npy');
    await expect(openDataset(lone)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: lone } });
    const csv = join(dir, 'data.csv');
    await writeFile(csv, 'a,b\n');
    await expect(openDataset(csv)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: csv } });
    const noFolderFiles = join(dir, 'empty-folder');
    await mkdir(noFolderFiles);
    await expect(openDataset(noFolderFiles)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: join(noFolderFiles, 'inputs.npy') } });
    const badNpy = join(dir, 'bad-npy');
    await mkdir(badNpy);
    await writeFile(join(badNpy, 'inputs.npy'), encodeNpy('F32', [2, 8], new Float32Array(16)));
    await writeFile(join(badNpy, 'labels.npy'), new Uint8Array(20));
    await expect(openDataset(badNpy)).rejects.toMatchObject({ code: 'EVAL_DATA', where: { file: join(badNpy, 'labels.npy') } });
  });

  it('inputs not matching the model input: EVAL_SHAPE (inner dim and rank), before any session is made', async () => {
    const parent = await evalTempDir();
    const weights = await writeWeights(join(dir, 'w.safetensors'), mlpWeights(2));
    const wide = await writeDataset(join(dir, 'wide.safetensors'), new Float32Array(N * 7), y);
    await expect(evaluate({ model: graph, weights, data: wide, tmpDir: parent })).rejects.toMatchObject({
      code: 'EVAL_SHAPE',
      where: { file: wide, tensor: 'inputs' },
    });
    const rank3 = await writeDataset(join(dir, 'rank3.safetensors'), x, y, { inputShape: [N, 2, 4] });
    await expect(evaluate({ model: graph, data: rank3 })).rejects.toMatchObject({ code: 'EVAL_SHAPE' });
    expect(await readdir(parent)).toEqual([]);
  });

  it('labels outside [0, classes): EVAL_LABEL_RANGE with the first offending index, before any session', async () => {
    const parent = await evalTempDir();
    const weights = await writeWeights(join(dir, 'w.safetensors'), mlpWeights(2));
    const bad = Int32Array.from(y);
    bad[17] = 4;
    bad[30] = 9;
    const f = await writeDataset(join(dir, 'range.safetensors'), x, bad, { labelDType: 'I32' });
    await expect(evaluate({ model: graph, weights, data: f, tmpDir: parent })).rejects.toMatchObject({
      code: 'EVAL_LABEL_RANGE',
      where: { file: f, tensor: 'labels', path: 'labels[17]' },
    });
    const neg = Int32Array.from(y);
    neg[5] = -1;
    const g = await writeDataset(join(dir, 'negative.safetensors'), x, neg, { labelDType: 'I32' });
    await expect(evaluate({ model: graph, data: g })).rejects.toMatchObject({ code: 'EVAL_LABEL_RANGE', where: { path: 'labels[5]' } });
    expect(await readdir(parent)).toEqual([]);
  });

  it('a model input or output name that does not exist is EVAL_MODEL', async () => {
    const f = await writeDataset(join(dir, 'ok.safetensors'), x, y);
    await expect(evaluate({ model: graph, data: f, modelInput: 'nope' })).rejects.toMatchObject({
      code: 'EVAL_MODEL',
      where: { file: graph, tensor: 'nope' },
    });
    await expect(evaluate({ model: graph, data: f, modelOutput: 'h2' })).rejects.toMatchObject({ code: 'EVAL_MODEL' });
  });
});
