import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RecipeProblems, WeightkitError } from '../../src/errors.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { buildPlan, merge } from '../../src/plan/merge.js';
import { vectorModel } from '../../src/plan/vector-model.js';
import { makeTensor } from '../../src/tensor/tensor.js';
import { extractVector } from '../../src/vectors/extract.js';
import { openVector } from '../../src/vectors/reader.js';
import { readAllF32, tempDir, tinyValues, writeModel, TINY_SHAPES } from './helpers.js';
import { errorOf as rejectionOf } from '../io/safetensors/helpers.js';

let root: string;

async function recipe(name: string, text: string): Promise<string> {
  const p = join(root, name);
  await writeFile(p, text);
  return p;
}

const errorOf = (p: Promise<unknown>): Promise<WeightkitError> => rejectionOf(() => p);

function problemsOf(e: WeightkitError): [string, number | undefined, number | undefined][] {
  expect(e).toBeInstanceOf(RecipeProblems);
  return (e as RecipeProblems).problems.map((p) => [p.code, p.where.line, p.where.col]);
}

const bitsOf = (x: number): number => {
  const f = new Float32Array([x]);
  const i = new Int32Array(f.buffer)[0]!;
  return i < 0 ? -2147483648 - i : i; // monotone integer order of f32 values (for ulp distances)
};

/** Largest distance in f32 ulps between two outputs, over every tensor. */
function maxUlps(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
  let worst = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    expect(y.length).toBe(x.length);
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(bitsOf(x[i]!) - bitsOf(y[i]!)));
  }
  return worst;
}

async function mergeValues(name: string, text: string, threads = 1): Promise<Map<string, Float32Array>> {
  const out = join(root, `out-${name}-${threads}`);
  await merge(await recipe(`${name}.yaml`, text), { out, threads, ...(threads > 1 ? { pool: 'always' as const } : {}) });
  return readAllF32(out);
}

/** A model folder with the tiny float tensors plus an integer buffer (left out of vectors as 'skipped'). */
async function writeWithInts(dir: string, values: Map<string, Float32Array>, ints: BigInt64Array): Promise<void> {
  await writeModel(dir, values);
  const tensors = Object.fromEntries([...values].map(([n, v]) => [n, makeTensor('F32', TINY_SHAPES[n]!, v)]));
  await writeSafetensors(join(dir, 'model.safetensors'), { ...tensors, 'model.position_ids': makeTensor('I64', [4], ints) }, { metadata: { format: 'pt' } });
}

beforeAll(async () => {
  root = await tempDir('weightkit-vector-entries-');
  await writeWithInts(join(root, 'base'), tinyValues(0), BigInt64Array.from([0n, 1n, 2n, 3n]));
  await writeWithInts(join(root, 'ft-a'), tinyValues(1), BigInt64Array.from([9n, 9n, 9n, 9n]));
  await writeWithInts(join(root, 'ft-b'), tinyValues(2), BigInt64Array.from([9n, 9n, 9n, 9n]));
  const a = await extractVector({ base: join(root, 'base'), finetuned: join(root, 'ft-a'), out: join(root, 'a.safetensors') });
  expect(a.skipped).toEqual(['model.position_ids']);
  await extractVector({ base: join(root, 'base'), finetuned: join(root, 'ft-b'), out: join(root, 'b.safetensors') });
  await extractVector({ base: join(root, 'base'), finetuned: join(root, 'ft-a'), out: join(root, 'a-sparse.safetensors'), density: 0.3 });
  // the model the sparse vector stands for, written as an ordinary checkpoint: f32(base + densified delta)
  const sparse = await openVector(join(root, 'a-sparse.safetensors'));
  const base = tinyValues(0);
  const sum = new Map<string, Float32Array>();
  let zeros = 0;
  for (const [name, b] of base) {
    const d = await sparse.readF32(name);
    zeros += d.filter((x) => x === 0).length;
    sum.set(name, b.map((x, i) => x + d[i]!));
  }
  await sparse.close();
  expect(zeros).toBeGreaterThan(0);
  await writeWithInts(join(root, 'ft-a-sparse'), sum, BigInt64Array.from([0n, 1n, 2n, 3n]));
});

const TIES = (a: string, b: string): string => `merge_method: ties
base_model: base
models:
  - ${a}
    parameters: {weight: 1.0, density: 0.5}
  - ${b}
    parameters: {weight: 0.7, density: 0.5}
dtype: float32
`;

const TA = (a: string, b: string): string => `merge_method: task_arithmetic
base_model: base
models:
  - ${a}
    parameters: {weight: 0.6}
  - ${b}
    parameters: {weight: 0.9}
dtype: float32
`;

describe('recipes with vector: entries (the model base_model + vector)', () => {
  it('the virtual model base + vector is the fine-tune up to two f32 roundings', async () => {
    const base = await openCheckpointPath(join(root, 'base'));
    const m = vectorModel(base, await openVector(join(root, 'a.safetensors')));
    const got = new Map<string, Float32Array>();
    for (const t of m.tensors()) got.set(t.name, Float32Array.from(await m.readF32(t.name)));
    await m.close();
    await base.close();
    const ft = await readAllF32(join(root, 'ft-a'));
    expect([...got.get('model.position_ids')!]).toEqual([0, 1, 2, 3]); // integer buffers are the base's
    for (const m of [ft, got]) m.delete('model.position_ids');
    // f32(b + f32(f - b)) misses f by at most the two roundings: 2^-24 (|f - b| + |result|), which can be many ulps of
    // a small f next to a large b; it does miss at some elements of this data
    const b = tinyValues(0);
    let off = 0;
    for (const [n, f] of ft) {
      const g = got.get(n)!;
      for (let i = 0; i < f.length; i++) {
        const err = Math.abs(g[i]! - f[i]!);
        expect(err).toBeLessThanOrEqual(2 ** -24 * (Math.abs(f[i]! - b.get(n)![i]!) + Math.abs(g[i]!)));
        if (err > 0) off++;
        // but the f32 task vector a method forms, f32(model - base), is recovered bit for bit
        expect(Math.fround(g[i]! - b.get(n)![i]!)).toBe(Math.fround(f[i]! - b.get(n)![i]!));
      }
    }
    expect(off).toBeGreaterThan(0);
  });

  it('task_arithmetic: vectors give exactly the fine-tuned models\' result', async () => {
    const models = await mergeValues('ta-models', TA('model: ft-a', 'model: ft-b'));
    const vectors = await mergeValues('ta-vectors', TA('vector: a.safetensors', 'vector: b.safetensors'));
    // bit-identical: base + vector misses the fine-tune at some elements (test above), but the methods work on f32
    // deltas and f32(f32(b + v) - b) = v for v = f32(f - b), so they see the very same task vectors
    expect(maxUlps(models, vectors)).toBe(0);
    const mixed = await mergeValues('ta-mixed', TA('vector: a.safetensors', 'model: ft-b'));
    expect(maxUlps(models, mixed)).toBe(0);
    // a vector of 0 weight is the base; integer buffers come from the base
    const base = await readAllF32(join(root, 'base'));
    const zero = await mergeValues('ta-zero', TA('vector: a.safetensors', 'vector: b.safetensors').replace('weight: 0.6', 'weight: 0').replace('weight: 0.9', 'weight: 0'));
    expect(maxUlps(base, zero)).toBe(0);
    expect([...zero.get('model.position_ids')!]).toEqual([0, 1, 2, 3]);
  });

  it('ties: vectors give exactly the fine-tuned models\' result, with threads 1 and 2 byte-identical', async () => {
    const models = await mergeValues('ties-models', TIES('model: ft-a', 'model: ft-b'));
    const vectors = await mergeValues('ties-vectors', TIES('vector: a.safetensors', 'vector: b.safetensors'));
    expect(maxUlps(models, vectors)).toBe(0);
    await mergeValues('ties-vectors', TIES('vector: a.safetensors', 'vector: b.safetensors'), 2);
    const one = await readFile(join(root, 'out-ties-vectors-1', 'model.safetensors'));
    const two = await readFile(join(root, 'out-ties-vectors-2', 'model.safetensors'));
    expect(two.equals(one)).toBe(true);
  });

  it('a sparse vector merges exactly like the checkpoint base + its densified delta', async () => {
    for (const [name, text] of [
      ['ta', TA],
      ['ties', TIES],
    ] as const) {
      const model = await mergeValues(`${name}-sparse-model`, text('model: ft-a-sparse', 'model: ft-b'));
      const vector = await mergeValues(`${name}-sparse-vector`, text('vector: a-sparse.safetensors', 'model: ft-b'));
      expect(maxUlps(model, vector)).toBe(0);
      await mergeValues(`${name}-sparse-vector`, text('vector: a-sparse.safetensors', 'model: ft-b'), 2);
      const one = await readFile(join(root, `out-${name}-sparse-vector-1`, 'model.safetensors'));
      const two = await readFile(join(root, `out-${name}-sparse-vector-2`, 'model.safetensors'));
      expect(two.equals(one)).toBe(true);
    }
  });

  it('slice sources may be vectors', async () => {
    const text = (src: string): string => `merge_method: task_arithmetic
base_model: base
slices:
  - sources:
      - {model: base, layer_range: [0, 3]}
      - {${src}, layer_range: [0, 3], parameters: {weight: 0.8}}
dtype: float32
`;
    const model = await mergeValues('slices-model', text('model: ft-a-sparse'));
    const vector = await mergeValues('slices-vector', text('vector: a-sparse.safetensors'));
    expect(maxUlps(model, vector)).toBe(0);
  });

  it('plans record the vector and its base; the virtual model reads base + vector in the base dtype', async () => {
    const [plan] = await buildPlan(await recipe('plan.yaml', TA('vector: a.safetensors', 'model: ft-b')));
    expect(plan!.models.map((m) => [m.ref, m.vector?.base])).toEqual([
      ['base', undefined],
      ['a.safetensors', 0],
      ['ft-b', undefined],
    ]);
    expect(plan!.models[1]!.path).toBe(join(root, 'a.safetensors'));
    const base = await openCheckpointPath(join(root, 'base'));
    const vec = await openVector(join(root, 'a-sparse.safetensors'));
    const m = vectorModel(base, vec);
    const want = await readAllF32(join(root, 'ft-a-sparse'));
    const name = 'model.layers.1.mlp.up_proj.weight';
    expect([...(await m.readF32(name, { rowStart: 2, rowEnd: 5 }))]).toEqual([...want.get(name)!.subarray(8, 20)]);
    const t = await m.read(name, { rowStart: 1, rowEnd: 3 });
    expect(t.dtype).toBe('F32');
    expect(t.shape).toEqual([2, 4]);
    expect([...(t.data as Float32Array)]).toEqual([...want.get(name)!.subarray(4, 12)]);
    const bytes = await m.readBytes(name, { rowStart: 0, rowEnd: 1, into: new Uint8Array(16) });
    expect([...new Float32Array(bytes.slice().buffer)]).toEqual([...want.get(name)!.subarray(0, 4)]);
    expect((await m.read('model.position_ids')).data).toEqual(BigInt64Array.from([0n, 1n, 2n, 3n]));
    expect(m.tensors()).toEqual(base.tensors());
    await m.close();
    await base.close();
  });

  it('base tensors the vector lacks are zero delta; vector tensors the base lacks are TENSOR_NOT_FOUND', async () => {
    const partial = join(root, 'ft-partial');
    const v = tinyValues(3);
    v.delete('model.norm.weight');
    await writeModel(partial, v);
    await extractVector({ base: join(root, 'base'), finetuned: partial, out: join(root, 'partial.safetensors'), allowMissing: true });
    const got = await mergeValues('partial', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {vector: partial.safetensors, parameters: {weight: 1}}\n`);
    const base = tinyValues(0);
    expect([...got.get('model.norm.weight')!]).toEqual([...base.get('model.norm.weight')!]);
    const asModel = await mergeValues('partial-model', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {model: ft-partial, parameters: {weight: 1}}\n`);
    asModel.set('model.position_ids', got.get('model.position_ids')!); // ft-partial has no integer buffer
    expect(maxUlps(asModel, got)).toBe(0);

    // a vector made on a larger base: its extra tensor has nowhere to go
    const bigBase = join(root, 'base-extra');
    const bigFt = join(root, 'ft-extra');
    const extra = (m: Map<string, Float32Array>, x: number): Map<string, Float32Array> => new Map([...m, ['extra.weight', new Float32Array(4).fill(x)]]);
    await writeModel(bigBase, extra(tinyValues(0), 1), { shapes: { 'extra.weight': [4] } });
    await writeModel(bigFt, extra(tinyValues(1), 2), { shapes: { 'extra.weight': [4] } });
    await extractVector({ base: bigBase, finetuned: bigFt, out: join(root, 'extra.safetensors') });
    const r = await recipe('extra.yaml', `merge_method: task_arithmetic\nbase_model: base\nforce_vector_base: true\nmodels:\n  - {vector: extra.safetensors, parameters: {weight: 1}}\n`);
    const e = await errorOf(buildPlan(r));
    expect(problemsOf(e)).toEqual([['TENSOR_NOT_FOUND', 5, 14]]);
    expect((e as RecipeProblems).problems[0]!.where.tensor).toBe('extra.weight');
  });

  it('a vector made on another base is VECTOR_BASE_MISMATCH unless force_vector_base', async () => {
    const other = join(root, 'other-base');
    const otherFt = join(root, 'other-ft');
    await writeModel(other, tinyValues(0, 0.1, 1));
    await writeModel(otherFt, tinyValues(1, 0.1, 1));
    await extractVector({ base: other, finetuned: otherFt, out: join(root, 'other.safetensors') });
    const text = `merge_method: task_arithmetic
base_model: base
models:
  - vector: other.safetensors
    parameters: {weight: 1}
`;
    const e = await errorOf(buildPlan(await recipe('mismatch.yaml', text)));
    expect(problemsOf(e)).toEqual([['VECTOR_BASE_MISMATCH', 4, 13]]);
    expect((e as RecipeProblems).problems[0]!.message).toContain('other.safetensors');
    expect((e as RecipeProblems).problems[0]!.message).toContain(join(root, 'base'));
    const e2 = await errorOf(merge(await recipe('mismatch2.yaml', text), { out: join(root, 'never') }));
    expect(problemsOf(e2)).toEqual([['VECTOR_BASE_MISMATCH', 4, 13]]);

    const got = await mergeValues('forced', `force_vector_base: true\n${text}dtype: float32\n`);
    // base + (other-ft - other-base)
    const base = tinyValues(0);
    const o = tinyValues(0, 0.1, 1);
    const f = tinyValues(1, 0.1, 1);
    const want = new Map([...base].map(([n, b]) => [n, b.map((x, i) => x + Math.fround(f.get(n)![i]! - o.get(n)![i]!))]));
    got.delete('model.position_ids');
    expect(maxUlps(want, got)).toBe(0);
  });

  it('recipe problems carry line:col: no base_model, model + vector, missing file, not a vector, bad force_vector_base', async () => {
    const noBase = await recipe('nobase.yaml', 'merge_method: linear\nmodels:\n  - vector: a.safetensors\n    parameters: {weight: 1}\n');
    expect(problemsOf(await errorOf(buildPlan(noBase)))).toEqual([['RECIPE_BASE_REQUIRED', 3, 13]]);
    const noBaseTa = await recipe('nobase-ta.yaml', 'merge_method: task_arithmetic\nmodels:\n  - vector: a.safetensors\n    parameters: {weight: 1}\n');
    expect(problemsOf(await errorOf(buildPlan(noBaseTa)))).toEqual([
      ['RECIPE_BASE_REQUIRED', 1, 15],
      ['RECIPE_BASE_REQUIRED', 3, 13],
    ]);
    const passthrough = await recipe('passthrough.yaml', 'merge_method: passthrough\nmodels:\n  - vector: a.safetensors\n');
    expect(problemsOf(await errorOf(buildPlan(passthrough)))).toEqual([['RECIPE_BASE_NOT_ALLOWED', 3, 13]]);
    const both = await recipe('both.yaml', 'merge_method: ties\nbase_model: base\nmodels:\n  - model: ft-a\n    vector: a.safetensors\n    parameters: {weight: 1, density: 0.5}\n  - {model: ft-b, parameters: {weight: 1, density: 0.5}}\n');
    expect(problemsOf(await errorOf(buildPlan(both)))).toEqual([['RECIPE_CONFLICT', 5, 5]]);
    const missing = await recipe('missing.yaml', 'merge_method: ties\nbase_model: base\nmodels:\n  - {vector: gone.safetensors, parameters: {weight: 1, density: 0.5}}\n  - {vector: org/vec, parameters: {weight: 1, density: 0.5}}\n');
    expect(problemsOf(await errorOf(buildPlan(missing)))).toEqual([
      ['RECIPE_MODEL_NOT_FOUND', 4, 14],
      ['RECIPE_MODEL_NOT_FOUND', 5, 14],
    ]);
    const notVector = await recipe('notvector.yaml', 'merge_method: ties\nbase_model: base\nmodels:\n  - {vector: ft-a/model.safetensors, parameters: {weight: 1, density: 0.5}}\n  - {vector: ft-b, parameters: {weight: 1, density: 0.5}}\n');
    expect(problemsOf(await errorOf(buildPlan(notVector)))).toEqual([
      ['VECTOR_INVALID', 4, 14],
      ['VECTOR_INVALID', 5, 14],
    ]);
    await mkdir(join(root, 'sub'), { recursive: true });
    const badForce = await recipe('sub/force.yaml', 'merge_method: ties\nbase_model: ../base\nforce_vector_base: yes please\nmodels:\n  - {vector: ../a.safetensors, parameters: {weight: 1, density: 0.5}}\n');
    expect(problemsOf(await errorOf(buildPlan(badForce)))).toEqual([['RECIPE_TYPE', 3, 20]]);
    // paths resolve against the recipe's folder
    const sub = await recipe('sub/ok.yaml', 'merge_method: ties\nbase_model: ../base\nmodels:\n  - {vector: ../a.safetensors, parameters: {weight: 1, density: 0.5}}\n');
    const [plan] = await buildPlan(sub);
    expect(plan!.models[1]!.path).toBe(join(root, 'a.safetensors'));
  });
});
