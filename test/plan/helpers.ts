// Test helpers: a tiny Llama-shaped model family written as Hugging Face folders in a temp dir.

import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpointPath } from '../../src/io/open.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { fromF32 } from '../../src/tensor/convert.js';
import type { DType } from '../../src/tensor/dtype.js';
import { makeTensor, type Tensor } from '../../src/tensor/tensor.js';

export const TINY_SHAPES: Record<string, number[]> = {
  'model.embed_tokens.weight': [8, 4],
  'model.layers.0.input_layernorm.weight': [4],
  'model.layers.0.mlp.up_proj.weight': [6, 4],
  'model.layers.0.self_attn.q_proj.weight': [4, 4],
  'model.layers.1.input_layernorm.weight': [4],
  'model.layers.1.mlp.up_proj.weight': [6, 4],
  'model.layers.1.self_attn.q_proj.weight': [4, 4],
  'model.layers.2.input_layernorm.weight': [4],
  'model.layers.2.mlp.up_proj.weight': [6, 4],
  'model.layers.2.self_attn.q_proj.weight': [4, 4],
  'model.norm.weight': [4],
  'lm_head.weight': [8, 4],
};

export async function tempDir(prefix = 'weightkit-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Seeded values for every tiny tensor; `seed` 0 is the base, others are base + a delta of scale `delta`. */
export function tinyValues(seed: number, delta = 0.1, baseSeed = 0): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of Object.entries(TINY_SHAPES)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const rb = new SeededRandom(1000 + baseSeed * 7919 + name.length * 31 + n);
    const rd = new SeededRandom(seed * 104729 + name.length * 17 + n);
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = Math.fround(rb.normal() * 0.5 + (seed === 0 ? 0 : rd.normal() * delta));
    out.set(name, v);
  }
  return out;
}

export async function writeModel(
  dir: string,
  values: Map<string, Float32Array>,
  options: { dtype?: DType; config?: object | false; tokenizer?: boolean; shapes?: Record<string, number[]> } = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const dtype = options.dtype ?? 'F32';
  const tensors: Record<string, Tensor> = {};
  for (const [name, v] of values) {
    const shape = options.shapes?.[name] ?? TINY_SHAPES[name]!;
    tensors[name] = makeTensor(dtype, shape, fromF32(dtype, v));
  }
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt' } });
  if (options.config !== false) {
    const cfg = options.config ?? {
      architectures: ['LlamaForCausalLM'],
      hidden_size: 4,
      intermediate_size: 6,
      num_hidden_layers: 3,
      vocab_size: 8,
      torch_dtype: 'float32',
    };
    await writeFile(join(dir, 'config.json'), JSON.stringify(cfg, null, 2));
  }
  if (options.tokenizer !== false) await writeFile(join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: { a: 0 } } }));
}

/** base + three fine-tunes (f32) under `root`; returns their folders. */
export async function tinyFamily(root: string, dtype: DType = 'F32'): Promise<{ base: string; a: string; b: string; c: string }> {
  const dirs = { base: join(root, 'base'), a: join(root, 'ft-a'), b: join(root, 'ft-b'), c: join(root, 'ft-c') };
  await writeModel(dirs.base, tinyValues(0), { dtype });
  await writeModel(dirs.a, tinyValues(1), { dtype });
  await writeModel(dirs.b, tinyValues(2), { dtype });
  await writeModel(dirs.c, tinyValues(3), { dtype });
  return dirs;
}

export async function readAllF32(path: string): Promise<Map<string, Float32Array>> {
  const r = await openCheckpointPath(path);
  try {
    const out = new Map<string, Float32Array>();
    for (const t of r.tensors()) out.set(t.name, Float32Array.from(await r.readF32(t.name)));
    return out;
  } finally {
    await r.close();
  }
}

export async function fileBytes(path: string): Promise<Buffer> {
  return readFile(path);
}
