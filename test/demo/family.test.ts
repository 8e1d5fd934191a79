// The demo family generator (determinism, HF-Llama names/shapes/config, cache stamp, delta structure) and the
// three demo recipes: planned and executed against a tiny generated family laid out like the repository.

import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  STAMP_FILE,
  deltaTensorF32,
  demoFamilySpec,
  demoTensorDecls,
  ensureDemoFamily,
  generateDemoFamily,
  type DemoShape,
} from '../../src/demo/family.js';
import { compareWithFamily, planParamByBlock } from '../../src/demo/report.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { buildPlan, merge } from '../../src/plan/merge.js';

const TINY: DemoShape = { vocab: 40, hidden: 16, intermediate: 24, layers: 2, heads: 2, kvHeads: 1 };
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RECIPES = ['demo-ties', 'demo-dare-ties', 'demo-slerp'] as const;

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'weightkit-demo-test-'));
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
    const attn = await compareWithFamily(byName('ft-attn').path, fam.base.path, []);
    const mlp = await compareWithFamily(byName('ft-mlp').path, fam.base.path, []);
    const moved = (c: typeof attn, b: string): number => c.blocks.find((x) => x.block === b)!.moved;
    expect(moved(attn, 'L0 attn')).toBeGreaterThan(3 * moved(attn, 'L1 mlp'));
    expect(moved(mlp, 'L1 mlp')).toBeGreaterThan(3 * moved(mlp, 'L0 attn'));
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

describe('demo report', () => {
  it('measures identities exactly: base vs base, a fine-tune vs itself', async () => {
    const fam = await ensureDemoFamily(join(tmp, 'report'), demoFamilySpec(TINY));
    const fts = fam.fineTunes.map((f) => ({ name: f.name, path: f.path }));
    const same = await compareWithFamily(fam.base.path, fam.base.path, fts);
    expect(same.total.moved).toBe(0);
    expect(same.total.equalToBase).toBe(1);
    for (const m of same.total.models) expect(m.kept).toBe(0);
    expect(same.blocks.map((b) => b.block)).toEqual(['embed', 'L0 attn', 'L0 mlp', 'L1 attn', 'L1 mlp', 'lm_head', 'norms']);
    const ft = await compareWithFamily(fts[1]!.path, fam.base.path, fts);
    const self = ft.total.models[1]!;
    expect(self.kept).toBeCloseTo(1, 12);
    expect(self.distance).toBe(0);
    expect(ft.total.moved).toBeGreaterThan(0);
  });
});

describe('demo recipes', () => {
  // a copy of the repository layout: recipes/ next to .cache/demo, so the recipes' relative paths resolve as is
  let root: string;
  beforeAll(async () => {
    root = join(tmp, 'repo');
    await mkdir(join(root, 'recipes'), { recursive: true });
    for (const r of RECIPES) await copyFile(join(REPO, 'recipes', `${r}.yaml`), join(root, 'recipes', `${r}.yaml`));
    await ensureDemoFamily(join(root, '.cache', 'demo'), demoFamilySpec(TINY));
  });

  it('plan against the demo family, with their gradients and filters resolved', async () => {
    const [ties] = await buildPlan(join(root, 'recipes', 'demo-ties.yaml'));
    expect(ties!.method).toBe('ties');
    expect(ties!.tensors).toHaveLength(demoTensorDecls(TINY).length);
    const density = planParamByBlock(ties!, 'density', 0);
    expect(density.get('L0 attn')).toBeCloseTo(0.7);
    expect(density.get('L1 attn')).toBeCloseTo(0.3);
    const weight = planParamByBlock(ties!, 'weight', 2);
    expect(weight.get('L0 mlp')).toBe(0.5);
    expect(weight.get('L0 attn')).toBe(1);

    const [dare] = await buildPlan(join(root, 'recipes', 'demo-dare-ties.yaml'));
    expect(dare!.method).toBe('dare_ties');
    expect(dare!.seed).toBe(42);

    const [slerp] = await buildPlan(join(root, 'recipes', 'demo-slerp.yaml'));
    expect(slerp!.method).toBe('slerp');
    const t = planParamByBlock(slerp!, 't');
    expect(t.get('L0 attn')).toBe(0);
    expect(t.get('L1 attn')).toBe(0.5);
    expect(t.get('L0 mlp')).toBe(0.5);
    expect(t.get('L1 mlp')).toBe(1);
    expect(t.get('embed')).toBe(0.5);
  });

  it('execute, and produce models that differ from the base in the expected places', async () => {
    const fam = await ensureDemoFamily(join(root, '.cache', 'demo'), demoFamilySpec(TINY));
    const fts = fam.fineTunes.map((f) => ({ name: f.name, path: f.path }));
    const stats = new Map<string, Awaited<ReturnType<typeof compareWithFamily>>>();
    for (const r of RECIPES) {
      const out = join(root, 'out', r);
      const res = await merge(join(root, 'recipes', `${r}.yaml`), { out, overwrite: true });
      expect(res.bytesWritten).toBeGreaterThan(0);
      const files = await readdir(out);
      expect(files).toEqual(expect.arrayContaining(['config.json', 'tokenizer.json', 'tokenizer_config.json']));
      stats.set(r, await compareWithFamily(out, fam.base.path, fts));
    }
    for (const [r, c] of stats) expect(c.total.moved, r).toBeGreaterThan(0.01);
    // TIES/DARE trimming leaves some entries exactly at the base
    expect(stats.get('demo-ties')!.total.equalToBase).toBeGreaterThan(0.02);
    expect(stats.get('demo-dare-ties')!.total.equalToBase).toBeGreaterThan(0.02);
    // slerp at t = 0 on layer-0 attention is ft-attn there; at t = 1 on layer-1 MLPs it is ft-mlp
    const slerp = stats.get('demo-slerp')!;
    const block = (b: string) => slerp.blocks.find((x) => x.block === b)!;
    const model = (b: string, m: string) => block(b).models.find((x) => x.name === m)!;
    expect(model('L0 attn', 'ft-attn').distance).toBeLessThan(0.01);
    expect(model('L1 mlp', 'ft-mlp').distance).toBeLessThan(0.01);
    expect(model('L0 attn', 'ft-attn').kept).toBeGreaterThan(0.95);
  });
});
