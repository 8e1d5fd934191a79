// The synthetic Llama-shaped family generator (determinism, HF-Llama names/shapes/config, cache stamp, delta
// structure). `npm start` now runs on the MNIST zoo; this family remains the fixture of the recipe tests and benches.

import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  STAMP_FILE,
  classifyTensor,
  deltaTensorF32,
  demoFamilySpec,
  demoTensorDecls,
  ensureDemoFamily,
  generateDemoFamily,
  type DemoShape,
} from '../../src/demo/family.js';
import { openCheckpointPath } from '../../src/io/open.js';

const TINY: DemoShape = { vocab: 40, hidden: 16, intermediate: 24, layers: 2, heads: 2, kvHeads: 1 };

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'weightkit-demo-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** ‖X − B‖ / ‖B‖ over the non-norm tensors of one layer's module (`attn` or `mlp`). */
async function moved(model: string, base: string, layer: number, module: 'attn' | 'mlp'): Promise<number> {
  const x = await openCheckpointPath(model);
  const b = await openCheckpointPath(base);
  try {
    let diff = 0;
    let ref = 0;
    for (const t of b.tensors()) {
      const c = classifyTensor(t.name);
      if (c.norm || c.layer !== layer || c.module !== module) continue;
      const bv = await b.readF32(t.name);
      const xv = await x.readF32(t.name);
      for (let i = 0; i < bv.length; i++) {
        diff += (xv[i]! - bv[i]!) ** 2;
        ref += bv[i]! ** 2;
      }
    }
    return Math.sqrt(diff / ref);
  } finally {
    await x.close();
    await b.close();
  }
}

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

describe('demo family generator', () => {
  it('writes the same bytes twice, and different bytes for another seed', async () => {
    const a = await generateDemoFamily(join(tmp, 'det-a'), demoFamilySpec(TINY));
    const b = await generateDemoFamily(join(tmp, 'det-b'), demoFamilySpec(TINY));
    const c = await generateDemoFamily(join(tmp, 'det-c'), demoFamilySpec(TINY, 2));
    const fa = await filesOf(a.dir);
    const fb = await filesOf(b.dir);
    const fc = await filesOf(c.dir);
    expect([...fa.keys()].sort()).toEqual([...fb.keys()].sort());
    expect(fa.size).toBe(1 + 4 * 5); // stamp + 4 models x (weights, config, generation config, 2 tokenizer files)
    for (const [k, v] of fa) expect(v.equals(fb.get(k)!), k).toBe(true);
    for (const m of ['base', 'ft-attn', 'ft-mlp', 'ft-broad']) {
      const k = `/${m}/model.safetensors`;
      expect(fa.get(k)!.equals(fc.get(k)!), k).toBe(false);
    }
    // the fine-tunes differ from the base and from each other
    const weights = ['base', 'ft-attn', 'ft-mlp', 'ft-broad'].map((m) => fa.get(`/${m}/model.safetensors`)!);
    for (let i = 0; i < weights.length; i++) for (let j = i + 1; j < weights.length; j++) expect(weights[i]!.equals(weights[j]!)).toBe(false);
  });

  it('has Hugging Face Llama tensor names, shapes and config', async () => {
    const fam = await generateDemoFamily(join(tmp, 'names'), demoFamilySpec(TINY));
    const r = await openCheckpointPath(fam.base.path);
    try {
      const got = new Map(r.tensors().map((t) => [t.name, { dtype: t.dtype, shape: [...t.shape] }]));
      const kv = (TINY.hidden / TINY.heads) * TINY.kvHeads;
      const want: Record<string, number[]> = {
        'model.embed_tokens.weight': [40, 16],
        'model.norm.weight': [16],
        'lm_head.weight': [40, 16],
      };
      for (let l = 0; l < TINY.layers; l++) {
        const p = `model.layers.${l}.`;
        Object.assign(want, {
          [`${p}input_layernorm.weight`]: [16],
          [`${p}post_attention_layernorm.weight`]: [16],
          [`${p}self_attn.q_proj.weight`]: [16, 16],
          [`${p}self_attn.k_proj.weight`]: [kv, 16],
          [`${p}self_attn.v_proj.weight`]: [kv, 16],
          [`${p}self_attn.o_proj.weight`]: [16, 16],
          [`${p}mlp.gate_proj.weight`]: [24, 16],
          [`${p}mlp.up_proj.weight`]: [24, 16],
          [`${p}mlp.down_proj.weight`]: [16, 24],
        });
      }
      expect([...got.keys()].sort()).toEqual(Object.keys(want).sort());
      for (const [name, shape] of Object.entries(want)) expect(got.get(name), name).toEqual({ dtype: 'BF16', shape });
      const norm = await r.readF32('model.norm.weight');
      expect(Math.abs(norm.reduce((a, b) => a + b, 0) / norm.length - 1)).toBeLessThan(0.1);
    } finally {
      await r.close();
    }
    const cfg = JSON.parse(await readFile(join(fam.base.path, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg).toMatchObject({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 16,
      intermediate_size: 24,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      vocab_size: 40,
      torch_dtype: 'bfloat16',
      tie_word_embeddings: false,
    });
    const tok = JSON.parse(await readFile(join(fam.base.path, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
    expect(Object.keys(tok.model.vocab)).toHaveLength(40);
    expect(new Set(Object.values(tok.model.vocab)).size).toBe(40);
    const tc = JSON.parse(await readFile(join(fam.base.path, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
    expect(tc['eos_token']).toBe('</s>');
  });

  it('rejects shapes that are not Llama-like', () => {
    expect(() => demoTensorDecls({ ...TINY, heads: 3 })).toThrow(/multiple of heads/);
    expect(() => demoTensorDecls({ ...TINY, layers: 0 })).toThrow(/positive integer/);
  });

  it('concentrates each delta where its spec says, with partly agreeing signs', async () => {
    const spec = demoFamilySpec(TINY);
    const fam = await generateDemoFamily(join(tmp, 'structure'), spec);
    const byName = (n: string) => fam.fineTunes.find((f) => f.name === n)!;
    // ft-attn moved attention of layer 0 far more than the MLP of layer 1; ft-mlp the other way round
    const attn = byName('ft-attn').path;
    const mlp = byName('ft-mlp').path;
    expect(await moved(attn, fam.base.path, 0, 'attn')).toBeGreaterThan(3 * (await moved(attn, fam.base.path, 1, 'mlp')));
    expect(await moved(mlp, fam.base.path, 1, 'mlp')).toBeGreaterThan(3 * (await moved(mlp, fam.base.path, 0, 'attn')));
    // where ft-attn and ft-broad both carry a large delta, their signs mostly (not always) agree
    const decl = { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'BF16' as const, shape: [64, 64] };
    const d0 = deltaTensorF32(spec, 0, decl);
    const d2 = deltaTensorF32(spec, 2, decl);
    let both = 0;
    let same = 0;
    for (let i = 0; i < d0.length; i++) {
      if (Math.abs(d0[i]!) > 0.005 && Math.abs(d2[i]!) > 0.005) {
        both++;
        if (Math.sign(d0[i]!) === Math.sign(d2[i]!)) same++;
      }
    }
    expect(both).toBeGreaterThan(20);
    expect(same / both).toBeGreaterThan(0.6);
    expect(same / both).toBeLessThan(0.97);
  });

  it('is generated once and rebuilt when the spec changes or a model is missing', async () => {
    const dir = join(tmp, 'cache');
    expect((await ensureDemoFamily(dir, demoFamilySpec(TINY))).generated).toBe(true);
    expect((await ensureDemoFamily(dir, demoFamilySpec(TINY))).generated).toBe(false);
    expect((await ensureDemoFamily(dir, demoFamilySpec(TINY, 3))).generated).toBe(true);
    const stamp = JSON.parse(await readFile(join(dir, STAMP_FILE), 'utf8')) as { spec: { seed: number } };
    expect(stamp.spec.seed).toBe(3);
    await rm(join(dir, 'ft-mlp', 'model.safetensors'));
    expect((await ensureDemoFamily(dir, demoFamilySpec(TINY, 3))).generated).toBe(true);
  });
});
