import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evaluate, onnxEvaluator } from '../../src/eval/evaluate.js';
import { EVAL_TEMP_PREFIX, openEvalSession } from '../../src/eval/session.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { greedySoup } from '../../src/vectors/soup.js';
import { roundWeights } from '../io/onnx/ort-check.js';
import { evalTempDir, jsMetrics, makeData, mlpForward, mlpWeights, seeded, writeDataset, writeGraph, writeWeights, removeEvalTempDirs } from './helpers.js';

let dir: string;
let graph: string;
let data: string;
const N = 300;
const { x, y } = makeData(N);

beforeAll(async () => {
  dir = await evalTempDir();
  graph = await writeGraph(dir);
  data = await writeDataset(join(dir, 'data.safetensors'), x, y);
});

afterAll(async () => {
  await removeEvalTempDirs();
  // nothing of this process's eval sessions is left in the OS temp dir
  const left = (await readdir(tmpdir())).filter((n) => n.startsWith(`${EVAL_TEMP_PREFIX}${process.pid}-`));
  expect(left).toEqual([]);
});

describe('evaluate through ONNX Runtime', () => {
  it('matches the JS reference forward pass (accuracy, CE) on the graph weights, in several batches', async () => {
    const r = await evaluate({ model: graph, data, batch: 64 });
    const js = jsMetrics(x, y, mlpWeights(1));
    expect(r.count).toBe(N);
    expect(r.classes).toBe(4);
    expect(r.batch).toBe(64);
    expect(r.accuracy).toBe(js.accuracy);
    expect(r.accuracy).toBeGreaterThan(0.1);
    expect(r.accuracy).toBeLessThan(0.95);
    expect(r.meanCrossEntropy).toBeCloseTo(js.ce, 5);
    expect(Array.from(r.predictions)).toEqual(js.preds);
    expect(r.topK).toBe(4); // 5 capped at 4 classes
    expect(r.topKAccuracy).toBe(1);
    expect(r.perClass.reduce((a, c) => a + c.count, 0)).toBe(N);
    expect(r.patched).toBe(0);
    // one batch of everything gives the same numbers
    const one = await evaluate({ model: graph, data, batch: 1000, topK: 2 });
    expect(one.batch).toBe(N); // capped at the example count
    expect(one.meanCrossEntropy).toBeCloseTo(r.meanCrossEntropy, 6);
    expect(one.topKAccuracy).toBeLessThan(1);
    // a memory budget of 10 rows of input (8 f32) + output (4 f32) caps the batch
    const capped = await evaluate({ model: graph, data, budgetBytes: 10 * (32 + 16) });
    expect(capped.batch).toBe(10);
    expect(Array.from(capped.predictions)).toEqual(js.preds);
  });

  it('a graph with a fixed batch dim runs in batches of that size, the last one zero-padded', async () => {
    const { fromBinary, toBinary } = await import('@bufbuild/protobuf');
    const { ModelProtoSchema } = await import('onnx-buf');
    const { buildMlp } = await import('../io/onnx/build-model.js');
    const { writeFile } = await import('node:fs/promises');
    const m = fromBinary(ModelProtoSchema, buildMlp({ weights: mlpWeights(1) }).bytes);
    for (const v of [m.graph!.input[0]!, m.graph!.output[0]!]) {
      const t = v.type!.value;
      if (t.case !== 'tensorType') throw new Error('not a tensor');
      t.value.shape!.dim[0]!.value = { case: 'dimValue', value: 7n };
    }
    const fixed = join(dir, 'fixed7.onnx');
    await writeFile(fixed, toBinary(ModelProtoSchema, m));
    const r = await evaluate({ model: fixed, data, batch: 64 });
    expect(r.batch).toBe(7);
    expect(N % 7).not.toBe(0);
    expect(r.count).toBe(N);
    expect(Array.from(r.predictions)).toEqual(jsMetrics(x, y, mlpWeights(1)).preds);
  });

  it('uses patched weights from a safetensors checkpoint (predictions change and match the new weights)', async () => {
    const w2 = mlpWeights(5);
    const weights = await writeWeights(join(dir, 'w2.safetensors'), w2);
    const r = await evaluate({ model: graph, weights, data });
    const js2 = jsMetrics(x, y, w2);
    const js1 = jsMetrics(x, y, mlpWeights(1));
    expect(r.patched).toBe(4);
    expect(Array.from(r.predictions)).toEqual(js2.preds);
    expect(js2.preds).not.toEqual(js1.preds);
    expect(r.accuracy).toBe(js2.accuracy);
    expect(r.meanCrossEntropy).toBeCloseTo(js2.ce, 5);
  });

  it('casts BF16 weights to the graph dtype (f32) at the boundary', async () => {
    const w3 = mlpWeights(11);
    const weights = await writeWeights(join(dir, 'w3-bf16.safetensors'), w3, 'BF16');
    const r = await evaluate({ model: graph, weights, data });
    const js = jsMetrics(x, y, roundWeights('BF16', w3));
    expect(Array.from(r.predictions)).toEqual(js.preds);
    expect(r.meanCrossEntropy).toBeCloseTo(js.ce, 5);
  });

  it('a session runs batches like mlpForward, and close() deletes its temp folder', async () => {
    const parent = await evalTempDir();
    const w = mlpWeights(21);
    const reader = await openCheckpointPath(await writeWeights(join(dir, 'w21.safetensors'), w));
    const s = await openEvalSession(graph, { weights: reader, tmpDir: parent, threads: 1 });
    try {
      expect(s.tempDir).toBeDefined();
      expect(existsSync(s.file)).toBe(true);
      expect((await readdir(s.tempDir!)).sort()).toEqual(['model.onnx']); // tiny tensors stay inline
      expect(s.patched).toEqual(['W1', 'b1', 'W2', 'b2']);
      const xs = seeded(3 * 8, 5);
      const out = await s.run(xs, [3, 8]);
      expect(out.shape).toEqual([3, 4]);
      const ref = mlpForward(xs, 3, w);
      for (let i = 0; i < ref.length; i++) expect(out.data[i]).toBeCloseTo(ref[i]!, 5);
    } finally {
      await s.close();
      await s.close(); // idempotent
      await reader.close();
    }
    expect(existsSync(s.tempDir!)).toBe(false);
    expect(await readdir(parent)).toEqual([]);
    await expect(s.run(new Float32Array(8), [1, 8])).rejects.toMatchObject({ code: 'EVAL_MODEL' });
  });

  it('writes tensors of 1 KiB and more as external data next to the patched graph, and ORT reads them', async () => {
    const { buildMlp } = await import('../io/onnx/build-model.js');
    const { writeFile } = await import('node:fs/promises');
    const { writeSafetensors } = await import('../../src/io/safetensors/writer.js');
    const { makeTensor } = await import('../../src/tensor/tensor.js');
    const extra = [{ name: 'E', dataType: 1, dims: [512n], rawData: new Uint8Array(2048) }];
    const g = join(dir, 'with-extra.onnx');
    await writeFile(g, buildMlp({ weights: mlpWeights(1), extra }).bytes);
    const w = mlpWeights(31);
    const ckpt = join(dir, 'w31-extra.safetensors');
    await writeSafetensors(ckpt, {
      W1: makeTensor('F32', [8, 16], w.W1),
      b1: makeTensor('F32', [16], w.b1),
      W2: makeTensor('F32', [16, 4], w.W2),
      b2: makeTensor('F32', [4], w.b2),
      E: makeTensor('BF16', [512], new Uint16Array(512).fill(0x3f80)),
    });
    const s = await openEvalSession(g, { weights: ckpt });
    try {
      expect((await readdir(s.tempDir!)).sort()).toEqual(['model.onnx', 'model.onnx.data']);
      expect(s.patched).toContain('E');
      const xs = seeded(2 * 8, 8);
      const out = await s.run(xs, [2, 8]);
      const ref = mlpForward(xs, 2, w);
      for (let i = 0; i < ref.length; i++) expect(out.data[i]).toBeCloseTo(ref[i]!, 5);
    } finally {
      await s.close();
    }
    expect(existsSync(s.tempDir!)).toBe(false);
  });

  it('reports negative flips and agreement against a reference model', async () => {
    const graph2 = await writeGraph(dir, 'mlp2.onnx', mlpWeights(5));
    const r = await evaluate({ model: graph, data, reference: { model: graph2 } });
    const a = jsMetrics(x, y, mlpWeights(1));
    const b = jsMetrics(x, y, mlpWeights(5));
    let neg = 0;
    let agree = 0;
    for (let i = 0; i < N; i++) {
      if (b.preds[i] === y[i] && a.preds[i] !== y[i]) neg++;
      if (a.preds[i] === b.preds[i]) agree++;
    }
    expect(neg).toBeGreaterThan(0);
    expect(r.reference!.comparison.negativeFlips).toBe(neg);
    expect(r.reference!.comparison.negativeFlipRate).toBe(neg / N);
    expect(r.reference!.comparison.agreement).toBe(agree / N);
    expect(r.reference!.metrics.accuracy).toBe(b.accuracy);
    // the same model as its own reference: no flips, full agreement
    const self = await evaluate({ model: graph, data, reference: { model: graph } });
    expect(self.reference!.comparison.negativeFlips).toBe(0);
    expect(self.reference!.comparison.agreement).toBe(1);
  });

  it('a load failure is EVAL_MODEL with the file; a weights tensor unknown to the graph is refused; temp removed', async () => {
    const parent = await evalTempDir();
    const { writeFile } = await import('node:fs/promises');
    const { buildMlp } = await import('../io/onnx/build-model.js');
    // a graph whose MatMul gets mismatched inner dims: valid protobuf, ORT refuses it
    const bytes = buildMlp({ weights: mlpWeights(1) }).bytes;
    const broken = join(dir, 'broken.onnx');
    await writeFile(broken, Buffer.from(bytes).toString('latin1').replace('MatMul', 'MatMuX'), 'latin1');
    await expect(evaluate({ model: broken, data })).rejects.toMatchObject({ code: 'EVAL_MODEL', where: { file: broken } });
    const { writeSafetensors } = await import('../../src/io/safetensors/writer.js');
    const { makeTensor } = await import('../../src/tensor/tensor.js');
    const extra = join(dir, 'extra.safetensors');
    await writeSafetensors(extra, { W1: makeTensor('F32', [8, 16]), nope: makeTensor('F32', [2]) });
    await expect(openEvalSession(graph, { weights: extra, tmpDir: parent })).rejects.toMatchObject({
      code: 'TENSOR_NOT_FOUND',
      where: { tensor: 'nope' },
    });
    const wrongShape = join(dir, 'wrong-shape.safetensors');
    await writeSafetensors(wrongShape, { W1: makeTensor('F32', [16, 8]) });
    await expect(openEvalSession(graph, { weights: wrongShape, tmpDir: parent })).rejects.toMatchObject({
      code: 'TENSOR_SHAPE_MISMATCH',
    });
    expect(await readdir(parent)).toEqual([]);
  });
});

describe('onnxEvaluator with greedySoup', () => {
  it('scores each ingredient and the virtual soup through ORT', async () => {
    const wa = mlpWeights(1);
    const wb = mlpWeights(9); // the labelling model: accuracy 1 alone
    const a = await writeWeights(join(dir, 'soup-a.safetensors'), wa);
    const b = await writeWeights(join(dir, 'soup-b.safetensors'), wb);
    const log: Array<[string, number]> = [];
    const ev = onnxEvaluator({ model: graph, data, metric: 'accuracy', onEvaluate: (l, s) => log.push([l, s]) });
    const res = await greedySoup([a, b], ev);
    const ja = jsMetrics(x, y, wa).accuracy;
    expect(res.individual).toEqual([
      { model: a, score: ja },
      { model: b, score: 1 },
    ]);
    expect(res.steps[0]!.candidate).toBe(b);
    // the soup of both is evaluated: its score is that of the averaged weights
    const avg = {
      W1: wa.W1.map((v, i) => (v + wb.W1[i]!) / 2),
      b1: wa.b1.map((v, i) => (v + wb.b1[i]!) / 2),
      W2: wa.W2.map((v, i) => (v + wb.W2[i]!) / 2),
      b2: wa.b2.map((v, i) => (v + wb.b2[i]!) / 2),
    };
    expect(res.steps[1]!.score).toBe(jsMetrics(x, y, avg).accuracy);
    expect(res.members).toEqual([b]); // the soup cannot beat accuracy 1
    expect(log.length).toBe(3);
    const ce = onnxEvaluator({ model: graph, data, metric: 'neg_cross_entropy' });
    const r = await openCheckpointPath(a);
    try {
      expect(await ce.evaluate(r, 'a')).toBeCloseTo(-jsMetrics(x, y, wa).ce, 5);
    } finally {
      await r.close();
    }
  });
});
