// The MNIST model zoo generator on its tiny configuration: files and shapes, byte-identical rebuilds, the ONNX graph
// in onnxruntime-node with zoo weights patched in by name agreeing with tfjs, the cache (reuse, rebuild on a config
// change, atomic staging), and the digit transformations.

import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDigits, renderDigits, splitDigits } from '../../src/demo/digits.js';
import {
  TINY_ZOO_CONFIG,
  ensureZoo,
  predictZooCheckpoint,
  resolveZooConfig,
  zooPath,
  type ZooManifest,
} from '../../src/demo/zoo.js';
import { patchOnnxFromWeights } from '../../src/io/convert.js';
import { openCheckpointPath } from '../../src/io/open.js';

let tmp: string;
let zoo: ZooManifest;
const logs: string[] = [];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'weightkit-zoo-test-'));
  zoo = await ensureZoo({ dir: join(tmp, 'a'), config: TINY_ZOO_CONFIG, log: (l) => logs.push(l) });
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function filesOf(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) {
      const p = join(e.parentPath, e.name);
      out.set(p.slice(dir.length), await readFile(p));
    }
  }
  return out;
}

describe('zoo (tiny config)', () => {
  it('lists every model, task and experiment, with files that open and have the right shapes', async () => {
    const c = resolveZooConfig(TINY_ZOO_CONFIG);
    expect(zoo.build?.cached).toBe(false);
    expect(logs.some((l) => l.startsWith('zoo: building'))).toBe(true);
    const names = zoo.models.map((m) => m.name);
    expect(names).toEqual([
      'base',
      'ft-rotated',
      'ft-inverted',
      'ft-mirrored',
      'time-p0',
      'time-p1',
      'time-p2',
      'time-p3',
      'time-p4',
      'robust-clean',
      'robust-corrupted',
      'bcwi-old',
      'bcwi-new',
      'negmerge-v0',
      'negmerge-v1',
      'negmerge-v2',
    ]);
    const sizes = [196, 16, 16, 10];
    expect(zoo.architecture.sizes).toEqual(sizes);
    const expectedTensors = new Map([
      ['layers.0.weight', [16, 196]],
      ['layers.0.bias', [16]],
      ['layers.1.weight', [16, 16]],
      ['layers.1.bias', [16]],
      ['layers.2.weight', [10, 16]],
      ['layers.2.bias', [10]],
    ]);
    const baseHead = await (async () => {
      const r = await openCheckpointPath(zooPath(zoo, zoo.models[0]!.path));
      try {
        return Array.from(await r.readF32('layers.2.weight'));
      } finally {
        await r.close();
      }
    })();
    for (const m of zoo.models) {
      for (const t of zoo.tasks) expect(m.accuracy[t.name]!.count).toBe(t.counts.test);
      const r = await openCheckpointPath(zooPath(zoo, m.path));
      try {
        expect(r.format).toBe('safetensors');
        expect(new Map(r.tensors().map((t) => [t.name, [...t.shape]]))).toEqual(expectedTensors);
        expect(r.tensors().every((t) => t.dtype === 'F32')).toBe(true);
        // fine-tunes from the base keep its head (frozen)
        if (m.parent === 'base') expect(Array.from(await r.readF32('layers.2.weight'))).toEqual(baseHead);
      } finally {
        await r.close();
      }
      const onnx = await openCheckpointPath(zooPath(zoo, m.onnx));
      try {
        expect(new Map(onnx.tensors().map((t) => [t.name, [...t.shape]]))).toEqual(expectedTensors);
      } finally {
        await onnx.close();
      }
      const config = JSON.parse(await readFile(zooPath(zoo, m.config), 'utf8'));
      expect(config).toMatchObject({ model_type: 'weightkit-mlp', input_size: 196, hidden_sizes: [16, 16], num_labels: 10 });
    }
    // tasks: fixed names, drift periods in order, every split as inputs [N, 196] F32 and labels [N] I64 in 0..9
    expect(zoo.tasks.map((t) => t.name)).toEqual([
      'plain',
      'rotated',
      'inverted',
      'mirrored',
      'corrupted',
      'drift-p0',
      'drift-p1',
      'drift-p2',
      'drift-p3',
      'drift-p4',
    ]);
    expect(zoo.experiments.time.periods.map((p) => p.label)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    expect(zoo.experiments.time.periods.map((p) => p.degrees)).toEqual(c.driftDegrees);
    for (const t of zoo.tasks) {
      expect(t.counts).toEqual({ train: 140, val: 20, test: 40 });
      for (const split of ['train', 'val', 'test'] as const) {
        const r = await openCheckpointPath(zooPath(zoo, t.datasets[split]));
        try {
          expect(r.info('inputs')).toMatchObject({ dtype: 'F32', shape: [t.counts[split], 196] });
          expect(r.info('labels')).toMatchObject({ dtype: 'I64', shape: [t.counts[split]] });
          const labels = (await r.read('labels')).data as BigInt64Array;
          expect(labels.every((v) => v >= 0n && v <= 9n)).toBe(true);
          expect(new Set(labels).size).toBe(10);
          const x = await r.readF32('inputs');
          expect(x.every((v) => v >= 0 && v <= 1)).toBe(true);
        } finally {
          await r.close();
        }
      }
    }
    const graph = await openCheckpointPath(zooPath(zoo, zoo.graph));
    await graph.close();
    expect(zoo.experiments.multiTask.taskVectorCosine).toHaveLength(3);
  });

  it('is byte-identical when built twice (another folder, same config)', async () => {
    const again = await ensureZoo({ dir: join(tmp, 'b'), config: TINY_ZOO_CONFIG });
    expect(again.build?.cached).toBe(false);
    const a = await filesOf(zoo.root!);
    const b = await filesOf(again.root!);
    a.delete('/build-info.json');
    b.delete('/build-info.json');
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    expect(a.size).toBeGreaterThan(16 * 3 + 30);
    for (const [k, v] of a) expect(b.get(k)!.equals(v), k).toBe(true);
  });

  it('runs in onnxruntime-node with zoo weights patched in by name, agreeing with tfjs', async () => {
    const test = zoo.tasks.find((t) => t.name === 'rotated')!.datasets.test;
    const data = await openCheckpointPath(zooPath(zoo, test));
    const inputs = Float32Array.from(await data.readF32('inputs'));
    await data.close();
    const n = inputs.length / 196;
    for (const name of ['ft-rotated', 'bcwi-new']) {
      const m = zoo.models.find((x) => x.name === name)!;
      const out = join(tmp, `${name}.onnx`);
      await patchOnnxFromWeights({ model: zooPath(zoo, zoo.graph), weights: zooPath(zoo, m.weights), out });
      const ref = await predictZooCheckpoint(zooPath(zoo, m.weights), inputs, n);
      for (const file of [out, zooPath(zoo, m.onnx)]) {
        const session = await ort.InferenceSession.create(file, { extra: { session: { disable_prepacking: '1' } } });
        try {
          const res = await session.run({ input: new ort.Tensor('float32', inputs, [n, 196]) });
          const logits = res['logits']!;
          expect(logits.dims).toEqual([n, 10]);
          const v = logits.data as Float32Array;
          const pred = Array.from({ length: n }, (_, i) => {
            let best = 0;
            for (let j = 1; j < 10; j++) if (v[i * 10 + j]! > v[i * 10 + best]!) best = j;
            return best;
          });
          expect(pred).toEqual(Array.from(ref));
        } finally {
          await session.release();
        }
      }
    }
  });

  it('reuses the cache, and rebuilds (pruning the old version) when the config changes', async () => {
    const seen: string[] = [];
    const before = (await stat(join(zoo.root!, 'manifest.json'))).mtimeMs;
    const cached = await ensureZoo({ dir: join(tmp, 'a'), config: TINY_ZOO_CONFIG, log: (l) => seen.push(l) });
    expect(cached.build?.cached).toBe(true);
    expect(cached.root).toBe(zoo.root);
    expect(seen.some((l) => l.startsWith('zoo: cached'))).toBe(true);
    expect(seen.some((l) => l.startsWith('zoo: building'))).toBe(false);
    expect((await stat(join(zoo.root!, 'manifest.json'))).mtimeMs).toBe(before);

    const changed = await ensureZoo({ dir: join(tmp, 'a'), config: { ...TINY_ZOO_CONFIG, seed: 7 } });
    expect(changed.build?.cached).toBe(false);
    expect(changed.stamp).not.toBe(zoo.stamp);
    const left = await readdir(join(tmp, 'a'));
    expect(left).toEqual([changed.root!.slice(join(tmp, 'a').length + 1)]);
  });

  it('rejects a bad config with the key at fault', () => {
    expect(() => resolveZooConfig({ hidden: [] })).toThrow(/'hidden'/);
    expect(() => resolveZooConfig({ side: 20 as 14 })).toThrow(/'side'/);
    expect(() => resolveZooConfig({ trainFraction: 0.95, valFraction: 0.1 })).toThrow(/trainFraction/);
  });
});

describe('digits', () => {
  const source = loadDigits();
  const splits = splitDigits(source, { seed: 1, trainFraction: 0.7, valFraction: 0.1, maxPerDigit: 10 });

  it('splits each digit disjointly and deterministically', () => {
    const all = [...splits.train, ...splits.val, ...splits.test].map((r) => `${r.digit}/${r.index}`);
    expect(new Set(all).size).toBe(100);
    expect(splits.train).toHaveLength(70);
    expect(splitDigits(source, { seed: 1, trainFraction: 0.7, valFraction: 0.1, maxPerDigit: 10 })).toEqual(splits);
    expect(splitDigits(source, { seed: 2, trainFraction: 0.7, valFraction: 0.1, maxPerDigit: 10 })).not.toEqual(splits);
  });

  it('rotates by 90 degrees exactly, mirrors and inverts', () => {
    const refs = splits.test.slice(0, 3);
    const opts = { side: 28 as const, seed: 1, task: 't' };
    const plain = renderDigits(source, refs, { kind: 'identity' }, opts).inputs;
    const rot = renderDigits(source, refs, { kind: 'rotate', degrees: 90 }, opts).inputs;
    const mir = renderDigits(source, refs, { kind: 'mirror' }, opts).inputs;
    const inv = renderDigits(source, refs, { kind: 'invert' }, opts).inputs;
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        // counter-clockwise on screen: the output pixel (x, y) comes from the source pixel (27 - y, x)
        expect(rot[y * 28 + x]).toBe(plain[x * 28 + (27 - y)]);
        expect(mir[y * 28 + x]).toBe(plain[y * 28 + (27 - x)]);
        expect(inv[y * 28 + x]).toBeCloseTo(1 - plain[y * 28 + x]!, 6);
      }
    }
    // 14x14: 2x2 means; corruption noise is keyed by the image, not its position in the list
    const small = renderDigits(source, refs, { kind: 'identity' }, { ...opts, side: 14 }).inputs;
    expect(small[0]).toBeCloseTo((plain[0]! + plain[1]! + plain[28]! + plain[29]!) / 4, 6);
    const noisy = renderDigits(source, refs, { kind: 'corrupt', sigma: 0.3, blur: true }, { ...opts, side: 14 });
    const reversed = renderDigits(source, [...refs].reverse(), { kind: 'corrupt', sigma: 0.3, blur: true }, { ...opts, side: 14 });
    expect(Array.from(noisy.inputs.subarray(0, 196))).toEqual(Array.from(reversed.inputs.subarray(2 * 196, 3 * 196)));
  });
});
