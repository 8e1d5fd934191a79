import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WeightkitError } from '../../src/errors.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import type { CheckpointReader } from '../../src/io/types.js';
import { fromF32 } from '../../src/tensor/convert.js';
import { makeTensor } from '../../src/tensor/tensor.js';
import { averageReader, greedySoup, uniformSoup, type SoupEvaluator } from '../../src/vectors/soup.js';
import { readAllF32, tempDir, tinyValues, TINY_SHAPES, writeModel } from '../plan/helpers.js';

async function rejectCode(p: Promise<unknown>): Promise<WeightkitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(WeightkitError);
    return e as WeightkitError;
  }
  throw new Error('expected a rejection');
}

async function family(n: number, dtype: 'F32' | 'BF16' = 'F32') {
  const dir = await tempDir('weightkit-soup-');
  const models: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `ft-${i}`);
    await writeModel(p, tinyValues(i + 1, 0.2), { dtype });
    models.push(p);
  }
  return { dir, models };
}

function mean(vals: Map<string, Float32Array>[], name: string): Float32Array {
  const n = vals[0]!.get(name)!.length;
  return Float32Array.from({ length: n }, (_, j) => {
    let s = 0;
    for (const v of vals) s += v.get(name)![j]!;
    return s / vals.length;
  });
}

describe('uniformSoup', () => {
  it('writes the mean of the models; a tiny budget gives the same bytes', async () => {
    const { dir, models } = await family(3);
    const big = join(dir, 'soup.safetensors');
    const small = join(dir, 'soup-small.safetensors');
    const r = await uniformSoup({ models, out: big });
    await uniformSoup({ models, out: small, budgetBytes: 8 });
    expect(r.tensors).toBe(Object.keys(TINY_SHAPES).length);
    expect(await readFile(small)).toEqual(await readFile(big));
    const vals = await Promise.all(models.map((m) => readAllF32(m)));
    const got = await readAllF32(big);
    for (const name of Object.keys(TINY_SHAPES)) expect(got.get(name)).toEqual(mean(vals, name));
    // hand-computed
    const a = join(dir, 'a.safetensors');
    const b = join(dir, 'b.safetensors');
    await writeSafetensors(a, { w: makeTensor('F32', [3], Float32Array.from([1, 2, 3])), n: makeTensor('I32', [1], Int32Array.from([7])) });
    await writeSafetensors(b, { w: makeTensor('F32', [3], Float32Array.from([3, 2, -3])), n: makeTensor('I32', [1], Int32Array.from([8])) });
    const o = join(dir, 'ab.safetensors');
    const rab = await uniformSoup({ models: [a, b], out: o });
    expect(rab.skipped).toEqual(['n']);
    const v = await readAllF32(o);
    expect(Array.from(v.get('w')!)).toEqual([2, 2, 0]);
    expect(Array.from(v.get('n')!)).toEqual([7]);
  });

  it('fails on a missing tensor or a shape mismatch and writes nothing', async () => {
    const dir = await tempDir('weightkit-soup-');
    const a = join(dir, 'a.safetensors');
    const b = join(dir, 'b.safetensors');
    const c = join(dir, 'c.safetensors');
    await writeSafetensors(a, { w: makeTensor('F32', [2], Float32Array.from([1, 2])), v: makeTensor('F32', [1], Float32Array.from([1])) });
    await writeSafetensors(b, { w: makeTensor('F32', [2], Float32Array.from([1, 2])) });
    await writeSafetensors(c, { w: makeTensor('F32', [1, 2], Float32Array.from([1, 2])), v: makeTensor('F32', [1], Float32Array.from([1])) });
    const e = await rejectCode(uniformSoup({ models: [a, b], out: join(dir, 'o.safetensors') }));
    expect(e.code).toBe('TENSOR_NOT_FOUND');
    expect(e.where.tensor).toBe('v');
    expect((await rejectCode(uniformSoup({ models: [a, c], out: join(dir, 'o.safetensors') }))).code).toBe('TENSOR_SHAPE_MISMATCH');
    expect(existsSync(join(dir, 'o.safetensors'))).toBe(false);
  });
});

describe('averageReader', () => {
  it('averages row ranges, encodes in the first member dtype and matches the written soup', async () => {
    const { dir, models } = await family(3, 'BF16');
    const readers = await Promise.all(models.map((m) => openCheckpointPath(m)));
    try {
      const avg = averageReader(readers);
      const name = 'model.layers.0.mlp.up_proj.weight'; // [6, 4]
      const full = Float32Array.from(await avg.readF32(name));
      const parts = await Promise.all(readers.map((r) => r.readF32(name)));
      expect(full).toEqual(Float32Array.from(parts[0]!, (_, j) => (parts[0]![j]! + parts[1]![j]! + parts[2]![j]!) / 3));
      const rows = await avg.readF32(name, { rowStart: 1, rowEnd: 3 });
      expect(rows).toEqual(full.subarray(4, 12));
      const into = new Float32Array(20).fill(9);
      const got = await avg.readF32(name, { rowStart: 5, rowEnd: 6, into });
      expect(got.buffer).toBe(into.buffer);
      expect(got).toEqual(full.subarray(20, 24));
      const t = await avg.read(name, { rowStart: 1, rowEnd: 3 });
      expect(t.dtype).toBe('BF16');
      expect(t.shape).toEqual([2, 4]);
      expect(t.data).toEqual(fromF32('BF16', full.subarray(4, 12)));
      const bytes = await avg.readBytes(name, { rowStart: 2, rowEnd: 4 });
      const enc = fromF32('BF16', full.subarray(8, 16));
      expect(Buffer.from(bytes)).toEqual(Buffer.from(enc.buffer, enc.byteOffset, enc.byteLength));
      expect(avg.tensors()).toEqual(readers[0]!.tensors());
      expect(avg.path).toBe(readers[0]!.path);
      const e = await rejectCode(avg.readF32(name, { rowStart: 3, rowEnd: 9 }));
      expect(e.code).toBe('TENSOR_ROW_RANGE');
      // the virtual soup is the written soup
      const out = join(dir, 'soup.safetensors');
      await uniformSoup({ models, out });
      const written = await openCheckpointPath(out);
      for (const ti of avg.tensors()) expect(Buffer.from(await avg.readBytes(ti.name))).toEqual(Buffer.from(await written.readBytes(ti.name)));
      await written.close();
    } finally {
      for (const r of readers) await r.close();
    }
  });

  it('requires the same float tensors and shapes', async () => {
    const dir = await tempDir('weightkit-soup-');
    const a = join(dir, 'a.safetensors');
    const b = join(dir, 'b.safetensors');
    const c = join(dir, 'c.safetensors');
    await writeSafetensors(a, { w: makeTensor('F32', [2], Float32Array.from([1, 2])) });
    await writeSafetensors(b, { w: makeTensor('F32', [2], Float32Array.from([1, 2])), x: makeTensor('F32', [1], Float32Array.from([1])) });
    await writeSafetensors(c, { w: makeTensor('F32', [2, 1], Float32Array.from([1, 2])) });
    const rs = await Promise.all([a, b, c].map((p) => openCheckpointPath(p)));
    try {
      const e1 = (() => {
        try {
          averageReader([rs[0]!, rs[1]!]);
        } catch (e) {
          return e as WeightkitError;
        }
        return undefined;
      })();
      expect(e1?.code).toBe('TENSOR_NOT_FOUND');
      expect(e1?.where.tensor).toBe('x');
      expect(() => averageReader([rs[0]!, rs[2]!])).toThrow(expect.objectContaining({ code: 'TENSOR_SHAPE_MISMATCH' }));
      expect(() => averageReader([])).toThrow(expect.objectContaining({ code: 'USAGE' }));
    } finally {
      for (const r of rs) await r.close();
    }
  });
});

/** Each model carries a one-hot `marker`; the evaluator recovers the member set from the averaged marker. */
async function markedFamily(n: number) {
  const dir = await tempDir('weightkit-greedy-');
  const models: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = join(dir, `m${i}.safetensors`);
    const marker = new Float32Array(n);
    marker[i] = 1;
    await writeSafetensors(p, { marker: makeTensor('F32', [n], marker), w: makeTensor('F32', [2, 2], Float32Array.from([i, i + 1, i + 2, i + 3])) });
    models.push(p);
  }
  return { dir, models };
}

class TableEvaluator implements SoupEvaluator {
  calls: string[] = [];
  constructor(private readonly scores: Record<string, number>) {}
  async evaluate(model: CheckpointReader): Promise<number> {
    const m = await model.readF32('marker');
    const key = Array.from(m)
      .map((x, i) => (x > 0 ? i : -1))
      .filter((i) => i >= 0)
      .join(',');
    this.calls.push(key);
    const s = this.scores[key];
    if (s === undefined) throw new Error(`no score for ${key}`);
    return s;
  }
}

describe('greedySoup', () => {
  it('sorts by score (ties in input order) and keeps an ingredient only if the score strictly increases', async () => {
    const { dir, models } = await markedFamily(5);
    const ev = new TableEvaluator({
      '0': 0.5,
      '1': 0.9,
      '2': 0.7,
      '3': 0.7,
      '4': 0.2,
      '1,2': 0.92, // accepted
      '1,2,3': 0.92, // equal: rejected
      '0,1,2': 0.95, // accepted
      '0,1,2,4': 0.94, // rejected
    });
    const out = join(dir, 'greedy.safetensors');
    const r = await greedySoup(models, ev, { out });
    const m = models;
    expect(r.steps).toEqual([
      { candidate: m[1], score: 0.9, accepted: true, members: [m[1]] },
      { candidate: m[2], score: 0.92, accepted: true, members: [m[1], m[2]] },
      { candidate: m[3], score: 0.92, accepted: false, members: [m[1], m[2]] },
      { candidate: m[0], score: 0.95, accepted: true, members: [m[1], m[2], m[0]] },
      { candidate: m[4], score: 0.94, accepted: false, members: [m[1], m[2], m[0]] },
    ]);
    expect(r.members).toEqual([m[1], m[2], m[0]]);
    expect(r.score).toBe(0.95);
    expect(r.individual.map((x) => x.score)).toEqual([0.5, 0.9, 0.7, 0.7, 0.2]);
    expect(ev.calls).toEqual(['0', '1', '2', '3', '4', '1,2', '1,2,3', '0,1,2', '0,1,2,4']);
    // the final soup is written: mean of members 1, 2, 0
    const v = await readAllF32(out);
    expect(Array.from(v.get('w')!)).toEqual([1, 2, 3, 4]);
    expect(Array.from(v.get('marker')!)).toEqual([1 / 3, 1 / 3, 1 / 3, 0, 0].map(Math.fround));
    expect(r.written?.out).toBe(out);
  });

  it('writes nothing without out and rejects non-finite scores', async () => {
    const { dir, models } = await markedFamily(2);
    const r = await greedySoup(models, new TableEvaluator({ '0': 1, '1': 1, '0,1': 2 }));
    expect(r.members).toEqual(models);
    expect(r.written).toBeUndefined();
    const e = await rejectCode(greedySoup(models, { evaluate: async () => Number.NaN }, { out: join(dir, 'x.safetensors') }));
    expect(e.code).toBe('VECTOR_NOT_FINITE');
    expect(existsSync(join(dir, 'x.safetensors'))).toBe(false);
  });
});
