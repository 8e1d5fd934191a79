// BF16/F16 inputs stay in their stored 2-byte form in the executor's I/O chunks and are widened piece by piece, or
// read as stored bits by the GTA kernels (src/plan/execute.ts inputChunks): the merged bytes equal those of the
// same values stored as F32 (read as f32 chunks), whole tensors or chunked, on one thread or two, with and without
// an embedding block cut.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { merge } from '../../src/plan/merge.js';
import { fromF32, toF32 } from '../../src/tensor/convert.js';
import type { DType } from '../../src/tensor/dtype.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { tempDir, writeModel } from './helpers.js';

// the large tensor spans several 16K-element pieces (wasm widening) with a short tail (JS widening)
const SHAPES: Record<string, number[]> = {
  'model.embed_tokens.weight': [48, 1100],
  'model.layers.0.mlp.up_proj.weight': [37, 901],
  'model.layers.0.input_layernorm.weight': [4],
  'model.norm.weight': [6, 4],
};

/** Seeded values exactly representable in `dtype` (zeros, -0 and, for F16, subnormals included). */
function values(seed: number, dtype: DType, shapes: Record<string, number[]>): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const base = new SeededRandom(7 + name.length * 13 + n);
    const delta = new SeededRandom(seed * 104729 + name.length);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = base.normal() * 0.5 + (seed === 0 ? 0 : delta.normal() * 0.05);
    v[0] = 0;
    v[1] = -0;
    if (n > 3) v[3] = seed === 0 ? 3e-6 : -2e-7; // f16 subnormal range
    out.set(name, toF32(dtype, fromF32(dtype, v)));
  }
  return out;
}

let root: string;

async function family(dtype: DType, stored: DType, bigVocab = false): Promise<string> {
  const dir = join(root, `${dtype}-${stored}${bigVocab ? '-vocab' : ''}`);
  for (const [i, m] of ['base', 'a', 'b', 'c'].entries()) {
    const shapes = bigVocab && m === 'b' ? { ...SHAPES, 'model.embed_tokens.weight': [50, 1100] } : SHAPES;
    await writeModel(join(dir, m), values(i, dtype, shapes), { dtype: stored, shapes, config: false, tokenizer: false });
  }
  return dir;
}

async function run(dir: string, method: string, name: string, options: { threads?: number; memoryBudget?: number; pool?: 'always' } = {}): Promise<Buffer> {
  const recipe = join(dir, `${method}.yaml`);
  const params = method === 'task_arithmetic' ? '' : method === 'della' ? ', density: 0.5, epsilon: 0.1' : ', density: 0.5';
  await writeFile(
    recipe,
    `merge_method: ${method}\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1${params}}}\n  - {model: b, parameters: {weight: 0.7${params}}}\n  - {model: c, parameters: {weight: 0.4${params}}}\ndtype: float32\n`,
  );
  const out = join(dir, `out-${method}-${name}`);
  await merge(recipe, { out, threads: options.threads ?? 1, ...options });
  return readFile(join(out, 'model.safetensors'));
}

/** Byte equality without diffing large buffers on failure. */
function same(got: Buffer, want: Buffer): void {
  expect(got.length).toBe(want.length);
  expect(got.equals(want)).toBe(true);
}

beforeAll(async () => {
  root = await tempDir();
});

describe('executor: BF16/F16 inputs widened per piece', () => {
  for (const dtype of ['BF16', 'F16'] as const) {
    it(`${dtype}: ties and task_arithmetic bytes equal the F32-stored inputs' at any budget and thread count`, async () => {
      const raw = await family(dtype, dtype);
      const f32 = await family(dtype, 'F32');
      for (const method of ['ties', 'task_arithmetic']) {
        const want = await run(f32, method, 'ref');
        same(await run(raw, method, 'whole'), want);
        same(await run(raw, method, 'two', { threads: 2, pool: 'always' }), want);
        // chunks smaller than a piece, chunks of a piece and a part, whole tensors of several pieces
        for (const budget of [400_000, 1_000_000, 2_000_000]) same(await run(raw, method, `b${budget}`, { memoryBudget: budget }), want);
      }
    }, 60_000);
  }

  it('BF16: the kernels that read stored bits (dare_ties, trim_scope model) and the JS masks that widen (breadcrumbs_ties, della) equal the F32-stored inputs', async () => {
    const raw = await family('BF16', 'BF16');
    const f32 = await family('BF16', 'F32');
    for (const method of ['dare_ties', 'breadcrumbs_ties', 'della']) {
      const want = await run(f32, method, 'ref');
      same(await run(raw, method, 'whole'), want);
      same(await run(raw, method, 'chunked', { memoryBudget: 400_000 }), want);
    }
    const model = join(raw, 'ties-model.yaml');
    const modelF32 = join(f32, 'ties-model.yaml');
    const text = 'merge_method: ties\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1, density: 0.4}}\n  - {model: b, parameters: {weight: 0.7, density: 0.6}}\nparameters: {trim_scope: model}\ndtype: float32\n';
    await writeFile(model, text);
    await writeFile(modelF32, text);
    await merge(modelF32, { out: join(f32, 'out-model'), threads: 1 });
    await merge(model, { out: join(raw, 'out-model'), threads: 1 });
    same(await readFile(join(raw, 'out-model', 'model.safetensors')), await readFile(join(f32, 'out-model', 'model.safetensors')));
  }, 60_000);

  it('BF16 with an embedding vocabulary cut (that input read as f32) equals the F32-stored inputs', async () => {
    const raw = await family('BF16', 'BF16', true);
    const f32 = await family('BF16', 'F32', true);
    for (const method of ['ties', 'task_arithmetic']) {
      const want = await run(f32, method, 'ref');
      same(await run(raw, method, 'whole'), want);
      same(await run(raw, method, 'chunked', { memoryBudget: 400_000 }), want);
    }
  }, 60_000);
});
