import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RecipeProblems, WeightkitError } from '../../src/errors.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { buildPlan, loadRecipe, merge } from '../../src/plan/merge.js';
import { openModels } from '../../src/plan/plan.js';
import type { CheckpointReader } from '../../src/io/types.js';
import { jsMatMul } from '../../src/tensor/linalg/backend.js';
import { RECIPE_FILE } from '../../src/plan/outputs.js';
import { readAllF32, tempDir, tinyFamily, tinyValues, writeModel, TINY_SHAPES } from './helpers.js';
import { errorOf as rejectionOf } from '../io/safetensors/helpers.js';

let root: string;
let fam: { base: string; a: string; b: string; c: string };

beforeAll(async () => {
  root = await tempDir();
  fam = await tinyFamily(root);
});

async function recipe(name: string, text: string): Promise<string> {
  const p = join(root, name);
  await writeFile(p, text);
  return p;
}

const errorOf = (p: Promise<unknown>): Promise<WeightkitError> => rejectionOf(() => p);

function codesOf(e: WeightkitError): string[] {
  return e instanceof RecipeProblems ? e.problems.map((p) => p.code) : [e.code];
}

describe('merge: end to end on a tiny Llama-shaped family', () => {
  it('linear: weighted average, companions, provenance', async () => {
    const r = await recipe(
      'linear.yaml',
      `merge_method: linear
models:
  - model: ft-a
    parameters: {weight: 1}
  - model: ft-b
    parameters: {weight: 3}
dtype: float32
`,
    );
    const out = join(root, 'out-linear');
    const res = await merge(r, { out });
    const got = await readAllF32(out);
    const a = tinyValues(1);
    const b = tinyValues(2);
    for (const name of Object.keys(TINY_SHAPES)) {
      const g = got.get(name)!;
      for (let i = 0; i < g.length; i++) expect(g[i]).toBeCloseTo((a.get(name)![i]! + 3 * b.get(name)![i]!) / 4, 6);
    }
    const files = await readdir(out);
    expect(files).toEqual(expect.arrayContaining(['model.safetensors', 'config.json', 'tokenizer.json', 'README.md', RECIPE_FILE]));
    expect(await readFile(join(out, RECIPE_FILE), 'utf8')).toBe(await readFile(r, 'utf8'));
    expect(await readFile(join(out, 'README.md'), 'utf8')).toContain('`linear`');
    const rd = await openCheckpointPath(out);
    expect(rd.metadata()['weightkit_recipe_sha256']).toBe(res.plans[0]!.recipe.sha256);
    expect(rd.metadata()['weightkit_method']).toBe('linear');
    await rd.close();
    // nothing left behind next to the output
    expect((await readdir(root)).filter((f) => f.includes('weightkit-'))).toEqual([]);
  });

  it('task_arithmetic: base + lambda * sum(w * delta), bf16 output rounds once', async () => {
    const r = await recipe(
      'ta.yaml',
      `merge_method: task_arithmetic
base_model: base
models:
  - model: ft-a
    parameters: {weight: 0.5}
  - model: ft-c
    parameters: {weight: -1}
parameters: {lambda: 0.8}
out_dtype: bfloat16
`,
    );
    const out = join(root, 'out-ta');
    await merge(r, { out });
    const rd = await openCheckpointPath(out);
    expect(rd.tensors().every((t) => t.dtype === 'BF16')).toBe(true);
    await rd.close();
    const got = await readAllF32(out);
    const base = tinyValues(0);
    const a = tinyValues(1);
    const c = tinyValues(3);
    for (const name of Object.keys(TINY_SHAPES)) {
      const g = got.get(name)!;
      for (let i = 0; i < g.length; i++) {
        const x = base.get(name)![i]!;
        const want = x + 0.8 * (0.5 * (a.get(name)![i]! - x) - (c.get(name)![i]! - x));
        expect(Math.abs(g[i]! - want)).toBeLessThanOrEqual(Math.abs(want) * 2 ** -8 + 1e-7);
      }
    }
    const cfg = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(cfg.torch_dtype).toBe('bfloat16');
  });

  it('gradients over layers and filters resolve per tensor', async () => {
    const r = await recipe(
      'grad.yaml',
      `merge_method: linear
models:
  - model: ft-a
    parameters:
      weight:
        - filter: self_attn
          value: [1, 0]
        - value: 1
  - model: ft-b
    parameters:
      weight:
        - filter: self_attn
          value: [0, 1]
        - value: 0
`,
    );
    const plans = await buildPlan(r);
    const byName = new Map(plans[0]!.tensors.map((t) => [t.name, t]));
    expect(byName.get('model.layers.0.self_attn.q_proj.weight')!.modelParams.map((p) => p['weight'])).toEqual([1, 0]);
    expect(byName.get('model.layers.1.self_attn.q_proj.weight')!.modelParams.map((p) => p['weight'])).toEqual([0.5, 0.5]);
    expect(byName.get('model.layers.2.self_attn.q_proj.weight')!.modelParams.map((p) => p['weight'])).toEqual([0, 1]);
    expect(byName.get('model.layers.2.mlp.up_proj.weight')!.modelParams.map((p) => p['weight'])).toEqual([1, 0]);
    // pre/post-layer tensors use t = 0 (first gradient value)
    expect(byName.get('lm_head.weight')!.t).toBe(0);
    const out = join(root, 'out-grad');
    await merge(r, { out });
    const got = await readAllF32(out);
    expect(got.get('model.layers.2.self_attn.q_proj.weight')).toEqual(tinyValues(2).get('model.layers.2.self_attn.q_proj.weight'));
    expect(got.get('model.layers.0.self_attn.q_proj.weight')).toEqual(tinyValues(1).get('model.layers.0.self_attn.q_proj.weight'));
  });

  it('passthrough slices restack layers and update num_hidden_layers', async () => {
    const r = await recipe(
      'frank.yaml',
      `merge_method: passthrough
slices:
  - sources:
      - {model: ft-a, layer_range: [0, 2]}
  - sources:
      - model: ft-b
        layer_range: [1, 3]
        parameters:
          scale: [{filter: up_proj, value: 0.5}, {value: 1}]
`,
    );
    const out = join(root, 'out-frank');
    const res = await merge(r, { out });
    expect(res.plans[0]!.numLayers).toBe(4);
    const got = await readAllF32(out);
    const a = tinyValues(1);
    const b = tinyValues(2);
    expect(got.get('model.layers.1.mlp.up_proj.weight')).toEqual(a.get('model.layers.1.mlp.up_proj.weight'));
    expect(got.get('model.layers.2.self_attn.q_proj.weight')).toEqual(b.get('model.layers.1.self_attn.q_proj.weight'));
    expect(got.get('model.layers.3.mlp.up_proj.weight')).toEqual(b.get('model.layers.2.mlp.up_proj.weight')!.map((v) => v * 0.5));
    expect(got.get('model.embed_tokens.weight')).toEqual(a.get('model.embed_tokens.weight'));
    expect(got.get('lm_head.weight')).toEqual(b.get('lm_head.weight'));
    expect(got.has('model.layers.4.mlp.up_proj.weight')).toBe(false);
    const cfg = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
    expect(cfg.num_hidden_layers).toBe(4);
  });

  it('bytes do not depend on threads or on the memory budget (chunking)', async () => {
    const r = await recipe(
      'dare.yaml',
      `merge_method: dare_ties
base_model: base
models:
  - {model: ft-a, parameters: {weight: 1, density: 0.5}}
  - {model: ft-b, parameters: {weight: 0.7, density: 0.6}}
  - {model: ft-c, parameters: {weight: 0.4, density: 0.4}}
seed: 11
dtype: bfloat16
`,
    );
    await merge(r, { out: join(root, 'dare-1'), threads: 1 });
    await merge(r, { out: join(root, 'dare-2'), threads: 2, pool: 'always' });
    await merge(r, { out: join(root, 'dare-chunked'), threads: 1, memoryBudget: 600 });
    const one = await readFile(join(root, 'dare-1', 'model.safetensors'));
    expect(await readFile(join(root, 'dare-2', 'model.safetensors'))).toEqual(one);
    expect(await readFile(join(root, 'dare-chunked', 'model.safetensors'))).toEqual(one);
    await merge(r, { out: join(root, 'dare-seed'), seed: 12 });
    expect(await readFile(join(root, 'dare-seed', 'model.safetensors'))).not.toEqual(one);
  });

  it('shards the output with an index when asked', async () => {
    const r = await recipe('shard.yaml', `merge_method: linear\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n  - {model: ft-b, parameters: {weight: 1}}\n`);
    const out = join(root, 'out-shard');
    await merge(r, { out, shardSize: 200 });
    const files = await readdir(out);
    expect(files).toContain('model.safetensors.index.json');
    expect(files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length).toBeGreaterThan(1);
    const got = await readAllF32(out);
    expect(got.size).toBe(Object.keys(TINY_SHAPES).length);
  });

  it('refuses a non-empty output, the input as output, and keeps the old output on failure', async () => {
    const r = await recipe('ow.yaml', `merge_method: linear\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n`);
    const out = join(root, 'out-ow');
    await mkdir(out);
    await writeFile(join(out, 'keep.txt'), 'x');
    expect((await errorOf(merge(r, { out }))).code).toBe('OUT_EXISTS');
    expect(existsSync(join(out, 'keep.txt'))).toBe(true);
    await merge(r, { out, overwrite: true });
    expect(existsSync(join(out, 'keep.txt'))).toBe(false);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
    expect((await errorOf(merge(r, { out: fam.a, overwrite: true }))).code).toBe('OUT_INVALID');
    expect(existsSync(join(fam.a, 'model.safetensors'))).toBe(true);
  });

  it('dry run plans without writing anything', async () => {
    const r = await recipe('dry.yaml', `merge_method: ties\nbase_model: base\nmodels:\n  - {model: ft-a, parameters: {weight: 1, density: [1, 0.2]}}\n  - {model: ft-b, parameters: {weight: 1, density: 0.5}}\n`);
    const plans = await buildPlan(r, { out: join(root, 'never') });
    const p = plans[0]!;
    expect(p.method).toBe('ties');
    expect(p.tensors).toHaveLength(Object.keys(TINY_SHAPES).length);
    expect(p.base).toBe(0);
    expect(p.tensors.find((t) => t.name === 'model.layers.1.mlp.up_proj.weight')!.modelParams[0]!['density']).toBeCloseTo(0.6);
    expect(p.memory.peakBytes).toBeGreaterThan(0);
    expect(JSON.parse(JSON.stringify(p))).toEqual(p);
    expect(existsSync(join(root, 'never'))).toBe(false);
  });

  it('reports model problems with recipe positions and shape mismatches naming the tensor', async () => {
    const r = await recipe('missing.yaml', `merge_method: linear\nmodels:\n  - {model: nowhere, parameters: {weight: 1}}\n  - {model: meta-llama/Llama-3-8B, parameters: {weight: 1}}\n`);
    const e = await errorOf(buildPlan(r));
    expect(e).toBeInstanceOf(RecipeProblems);
    const ps = (e as RecipeProblems).problems;
    expect(ps.map((p) => [p.code, p.where.line, p.where.col])).toEqual([
      ['RECIPE_MODEL_NOT_FOUND', 3, 13],
      ['RECIPE_REMOTE_MODEL', 4, 13],
    ]);
    const odd = join(root, 'odd');
    const v = tinyValues(5);
    v.set('model.layers.1.mlp.up_proj.weight', new Float32Array(20));
    await writeModel(odd, v, { shapes: { 'model.layers.1.mlp.up_proj.weight': [5, 4] } });
    const r2 = await recipe('shape.yaml', `merge_method: linear\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n  - {model: odd, parameters: {weight: 1}}\n`);
    const e2 = await errorOf(buildPlan(r2));
    expect(codesOf(e2)).toEqual(['TENSOR_SHAPE_MISMATCH']);
    expect((e2 as RecipeProblems).problems[0]!.where.tensor).toBe('model.layers.1.mlp.up_proj.weight');
  });

  it('embedding vocabulary mismatch: task-vector methods cut to the base with a warning', async () => {
    const big = join(root, 'bigvocab');
    const v = tinyValues(4);
    const emb = new Float32Array(40);
    emb.set(v.get('model.embed_tokens.weight')!);
    v.set('model.embed_tokens.weight', emb);
    await writeModel(big, v, { shapes: { 'model.embed_tokens.weight': [10, 4] } });
    const r = await recipe('vocab.yaml', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {model: bigvocab, parameters: {weight: 1}}\n`);
    const out = join(root, 'out-vocab');
    const res = await merge(r, { out });
    expect(res.warnings.some((w) => w.includes('model.embed_tokens.weight'))).toBe(true);
    const got = await readAllF32(out);
    expect(got.get('model.embed_tokens.weight')!.length).toBe(32);
    const want = v.get('model.embed_tokens.weight')!.subarray(0, 32);
    const emb32 = got.get('model.embed_tokens.weight')!;
    // base + (x - base) in f32 is x up to one rounding
    for (let i = 0; i < 32; i++) expect(Math.abs(emb32[i]! - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * 2 ** -22 + 1e-7);
  });

  it('multi-document recipes use an earlier stage by name', async () => {
    const r = await recipe(
      'multi.yaml',
      `name: soup
merge_method: linear
models:
  - {model: ft-a, parameters: {weight: 1}}
  - {model: ft-b, parameters: {weight: 1}}
---
merge_method: task_arithmetic
base_model: base
models:
  - {model: soup, parameters: {weight: 2}}
`,
    );
    const plans = await buildPlan(r);
    expect(plans.map((p) => p.method)).toEqual(['linear', 'task_arithmetic']);
    const out = join(root, 'out-multi');
    await merge(r, { out });
    const got = await readAllF32(out);
    const base = tinyValues(0).get('model.norm.weight')!;
    const a = tinyValues(1).get('model.norm.weight')!;
    const b = tinyValues(2).get('model.norm.weight')!;
    const g = got.get('model.norm.weight')!;
    for (let i = 0; i < g.length; i++) expect(g[i]).toBeCloseTo(base[i]! + 2 * ((a[i]! + b[i]!) / 2 - base[i]!), 5);
    expect((await readdir(root)).filter((f) => f.startsWith('.weightkit-stages'))).toEqual([]);
    // the output records the whole recipe (every stage it was made from), its hash that of the file
    const text = await readFile(r, 'utf8');
    expect(await readFile(join(out, 'weightkit_recipe.yaml'), 'utf8')).toBe(text);
    expect(plans[1]!.recipe.sha256).toBe(createHash('sha256').update(text).digest('hex'));
    expect(plans[0]!.recipe.sha256).not.toBe(plans[1]!.recipe.sha256);
  });

  it('a multi-document recipe whose last stage cannot be planned fails before its first stage runs', async () => {
    const odd = tinyValues(4);
    odd.set('model.layers.0.mlp.up_proj.weight', new Float32Array(4 * 4));
    await writeModel(join(root, 'odd'), odd, { shapes: { 'model.layers.0.mlp.up_proj.weight': [4, 4] } });
    const r = await recipe('multi-bad.yaml', 'name: soup\nmerge_method: linear\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n  - {model: ft-b, parameters: {weight: 1}}\n---\nmerge_method: linear\nmodels:\n  - {model: soup, parameters: {weight: 1}}\n  - {model: odd, parameters: {weight: 1}}\n');
    let progressed = 0;
    const e = await rejectionOf(() => merge(r, { out: join(root, 'out-multi-bad'), onProgress: () => progressed++ }));
    expect((e as RecipeProblems).problems.map((p) => p.code)).toEqual(['TENSOR_SHAPE_MISMATCH']);
    expect(progressed).toBe(0);
    expect((await readdir(root)).filter((f) => f.startsWith('.weightkit-stages') || f.startsWith('out-multi-bad'))).toEqual([]);
  });

  it('ties with trim_scope: model trims each task vector over the whole model (pre-pass), at any budget', async () => {
    const r = await recipe(
      'ties-model.yaml',
      `merge_method: ties
base_model: base
models:
  - {model: ft-a, parameters: {weight: 1, density: 0.3}}
  - {model: ft-b, parameters: {weight: 0.5, density: 0.3}}
parameters: {trim_scope: model}
`,
    );
    await merge(r, { out: join(root, 'ties-model') });
    await merge(r, { out: join(root, 'ties-model-chunked'), memoryBudget: 500 });
    const got = await readAllF32(join(root, 'ties-model'));
    expect(await readFile(join(root, 'ties-model-chunked', 'model.safetensors'))).toEqual(await readFile(join(root, 'ties-model', 'model.safetensors')));
    // direct reference: global top-30% |delta| per model over all tensors (ties kept), weighted vote, disjoint mean
    const names = Object.keys(TINY_SHAPES);
    const base = tinyValues(0);
    const deltas = [tinyValues(1), tinyValues(2)].map((m) => names.map((n) => m.get(n)!.map((v, i) => v - base.get(n)![i]!)));
    const weights = [1, 0.5];
    const thresholds = deltas.map((d) => {
      const mags = d.flatMap((a) => Array.from(a, Math.abs)).sort((x, y) => y - x);
      return mags[Math.floor(0.3 * mags.length) - 1]!;
    });
    names.forEach((n, ti) => {
      const g = got.get(n)!;
      for (let i = 0; i < g.length; i++) {
        const kept = deltas.map((d, m) => (Math.abs(d[ti]![i]!) >= thresholds[m]! ? weights[m]! * d[ti]![i]! : 0));
        const sum = kept.reduce((a, b) => a + b, 0);
        const sign = sum >= 0 ? 1 : -1;
        let num = 0;
        let den = 0;
        kept.forEach((k, m) => {
          if (k !== 0 && Math.sign(k) === sign) {
            num += k;
            den += weights[m]!;
          }
        });
        const want = base.get(n)![i]! + (den === 0 ? 0 : num / den);
        expect(Math.abs(g[i]! - want)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want)));
      }
    });
  });

  it('an interrupted merge removes its staged output and publishes nothing', async () => {
    const r = await recipe('stop.yaml', `merge_method: linear\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n  - {model: ft-b, parameters: {weight: 1}}\n`);
    for (const threads of [1, 2]) {
      const out = join(root, `stopped-${threads}`);
      const stop = new AbortController();
      const e = await errorOf(merge(r, { out, threads, pool: 'always', signal: stop.signal, onProgress: () => stop.abort() }));
      expect(e.code).toBe('INTERRUPTED');
      expect(existsSync(out)).toBe(false);
      expect((await readdir(root)).filter((f) => f.includes(`stopped-${threads}`))).toEqual([]);
    }
  });

  it('a model that holds none of the tensors asked of it is TENSOR_NOT_FOUND at its recipe line (a few missing ones only warn)', async () => {
    await writeModel(join(root, 'alien'), new Map([['fc1.weight', new Float32Array(4)], ['fc1.bias', new Float32Array(2)]]), { shapes: { 'fc1.weight': [2, 2], 'fc1.bias': [2] } });
    const r = await recipe('alien.yaml', 'merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: ft-a\n    parameters: {weight: 1}\n  - model: alien\n    parameters: {weight: 1}\n');
    const e = await errorOf(buildPlan(r));
    expect(e.code).toBe('RECIPE_INVALID');
    const p = (e as RecipeProblems).problems[0]!;
    expect(p.code).toBe('TENSOR_NOT_FOUND');
    expect(p.message).toMatch(/model 'alien' has none of the \d+ tensor\(s\) it is asked for/);
    expect([p.where.line, p.where.col]).toEqual([6, 5]);
  });

  it('an SVD merge stops between matrix products, not only between tensors', async () => {
    const r = await recipe('stop-tsv.yaml', `merge_method: tsv\nbase_model: base\nmodels:\n  - model: ft-a\n  - model: ft-b\nparameters:\n  svd: randomized\n`);
    const out = join(root, 'stopped-tsv');
    const stop = new AbortController();
    let calls = 0;
    let tensors = 0;
    // a backend that asks to stop during its third product: the fourth call must not reach it
    const linalg = {
      name: 'counting',
      matmul: (...args: Parameters<typeof jsMatMul.matmul>) => {
        if (++calls === 3) stop.abort();
        return jsMatMul.matmul(...args);
      },
    };
    const e = await errorOf(merge(r, { out, linalg, signal: stop.signal, onProgress: () => tensors++ }));
    expect(e.code).toBe('INTERRUPTED');
    expect(calls).toBe(3);
    expect(tensors).toBe(0);
    expect(existsSync(out)).toBe(false);
  });

  it('tokenizer_source copies that model\'s tokenizer files; base by default', async () => {
    const tok = join(root, 'tok-donor');
    await writeModel(tok, tinyValues(6));
    await writeFile(join(tok, 'tokenizer.json'), '{"donor": "tok"}');
    await writeFile(join(tok, 'special_tokens_map.json'), '{"eos_token": "</s>"}');
    const r = await recipe('tok.yaml', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n  - {model: tok-donor, parameters: {weight: 0}}\ntokenizer_source: tok-donor\n`);
    const out = join(root, 'out-tok');
    await merge(r, { out });
    expect(await readFile(join(out, 'tokenizer.json'), 'utf8')).toBe('{"donor": "tok"}');
    expect(existsSync(join(out, 'special_tokens_map.json'))).toBe(true);
    const r2 = await recipe('tok2.yaml', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {model: tok-donor, parameters: {weight: 1}}\n`);
    await merge(r2, { out: join(root, 'out-tok2') });
    expect(await readFile(join(root, 'out-tok2', 'tokenizer.json'), 'utf8')).toBe(await readFile(join(fam.base, 'tokenizer.json'), 'utf8'));
    expect(existsSync(join(root, 'out-tok2', 'special_tokens_map.json'))).toBe(false);
  });

  it('reports schema problems and missing model paths together', async () => {
    const r = await recipe('both.yaml', `merge_method: linear\nmodels:\n  - {model: ft-a, parameters: {wieght: 1}}\n  - {model: nowhere, parameters: {weight: 1}}\n`);
    const e = await errorOf(buildPlan(r));
    expect(codesOf(e).sort()).toEqual(['RECIPE_MODEL_NOT_FOUND', 'RECIPE_PARAM_REQUIRED', 'RECIPE_UNKNOWN_PARAM']);
  });

  it('warns about tensors an input has but the reference lacks', async () => {
    const extra = join(root, 'extra');
    const v = tinyValues(7);
    v.set('model.extra_head.weight', new Float32Array([1, 2]));
    await writeModel(extra, v, { shapes: { 'model.extra_head.weight': [2] } });
    const r = await recipe('extra.yaml', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {model: extra, parameters: {weight: 1}}\n`);
    const [plan] = await buildPlan(r);
    expect(plan!.warnings.some((w) => w.includes("'model.extra_head.weight'") && w.includes('not in the output'))).toBe(true);
    expect(plan!.tensors.some((t) => t.name === 'model.extra_head.weight')).toBe(false);
  });
});

describe('openModels', () => {
  it('opens the plain models at once, one open per path and spelling, no reader shared between two models', async () => {
    const r = await recipe('spellings.yaml', 'merge_method: linear\nmodels:\n  - model: ft-a\n    parameters: {weight: 1}\n  - model: ./ft-a\n    parameters: {weight: 1}\n  - model: ft-b\n    parameters: {weight: 1}\ndtype: float32\n');
    const { stages } = await loadRecipe(r);
    let finished = 0;
    const calls: { path: string; finishedBefore: number }[] = [];
    const open = async (p: string): Promise<CheckpointReader> => {
      calls.push({ path: p, finishedBefore: finished });
      const rd = await openCheckpointPath(p);
      finished++;
      return rd;
    };
    const m = await openModels(stages[0]!.doc, open);
    try {
      expect(m.models.map((x) => x.path)).toEqual([fam.a, fam.a, fam.b]);
      // ft-a and ft-b started before either finished; the second spelling of ft-a opened a reader of its own
      expect(calls.map((c) => c.path)).toEqual([fam.a, fam.b, fam.a]);
      expect(calls[0]!.finishedBefore + calls[1]!.finishedBefore).toBe(0);
      expect(new Set(m.readers.values()).size).toBe(3);
    } finally {
      for (const rd of m.readers.values()) await rd.close();
    }
  });
});

describe('the linear-algebra backend of a merge', () => {
  it('an abort signal wraps the products but keeps the native dense kernels (the CLI always passes one)', async () => {
    const { abortable } = await import('../../src/plan/merge.js');
    const dense = { threads: 2 } as unknown as NonNullable<import('../../src/tensor/linalg/backend.js').MatMulBackend['dense']>;
    const stop = new AbortController();
    const b = abortable({ ...jsMatMul, dense }, stop.signal);
    expect(b.dense).toBe(dense);
    expect(b.name).toBe(jsMatMul.name);
    stop.abort();
    let code: string | undefined;
    try {
      await b.matmul(new Float32Array(1), new Float32Array(1), 1, 1, 1);
    } catch (e) {
      code = (e as WeightkitError).code;
    }
    expect(code).toBe('INTERRUPTED');
  });

  it("the package's merge is the CLI's (ONNX Runtime for the SVD methods), so both write the same bytes", async () => {
    const api = await import('../../src/index.js');
    const { mergeWithOrt } = await import('../../src/eval/merge-with-ort.js');
    expect(api.merge).toBe(mergeWithOrt);
  });
});

describe('provenance of overrides', () => {
  it('--seed and --dtype given on top of the recipe are recorded in the metadata and the model card', async () => {
    const r = await recipe('dare-seed.yaml', 'merge_method: dare_ties\nbase_model: base\nmodels:\n  - {model: ft-a, parameters: {weight: 1, density: 0.5}}\nseed: 42\n');
    const plain = join(root, 'out-seed-plain');
    await merge(r, { out: plain });
    const over = join(root, 'out-seed-7');
    await merge(r, { out: over, seed: 7, dtype: 'BF16' });
    const meta = async (dir: string): Promise<Record<string, string>> => {
      const rd = await openCheckpointPath(dir);
      try {
        return rd.metadata();
      } finally {
        await rd.close();
      }
    };
    expect(await meta(plain)).toMatchObject({ weightkit_seed: '42' });
    expect((await meta(plain))['weightkit_overrides']).toBeUndefined();
    expect(await meta(over)).toMatchObject({ weightkit_seed: '7', weightkit_overrides: JSON.stringify({ seed: 7, dtype: 'BF16' }) });
    const card = await readFile(join(over, 'README.md'), 'utf8');
    expect(card).toContain('seed 7.');
    expect(card).toContain('Options that override the recipe below: --seed 7, --dtype bf16.');
    expect(await readFile(join(plain, 'README.md'), 'utf8')).not.toContain('Options that override');
  });
});

describe('the memory estimate follows how the merge runs', () => {
  it('an output under POOL_MIN_BYTES merges on the calling thread: the plan estimates one lane, whatever --threads says', async () => {
    const r = await recipe('small-threads.yaml', 'merge_method: linear\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n  - {model: ft-b, parameters: {weight: 1}}\n');
    const [two] = await buildPlan(r, { threads: 2 });
    const [one] = await buildPlan(r, { threads: 1 });
    expect(two!.outputBytes).toBeLessThan(32_000_000);
    expect(two!.memory.threads).toBe(1);
    expect(two!.memory.peakBytes).toBe(one!.memory.peakBytes);
  });
});
