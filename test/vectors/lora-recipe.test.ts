import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { RecipeProblems } from '../../src/errors.js';
import { buildPlan, merge } from '../../src/plan/merge.js';
import { loraToVector } from '../../src/vectors/lora.js';
import { openVector } from '../../src/vectors/reader.js';
import { readAllF32, tempDir, tinyValues, writeModel } from '../plan/helpers.js';
import { randomFactor, writeAdapter } from './lora-helpers.js';

const P = 'base_model.model.';
const Q0 = 'model.layers.0.self_attn.q_proj';
const U2 = 'model.layers.2.mlp.up_proj';

let root: string;

beforeAll(async () => {
  root = await tempDir('weightkit-lora-recipe-');
  process.env['WEIGHTKIT_LORA_CACHE'] = join(root, 'cache');
  await writeModel(join(root, 'base'), tinyValues(0));
  await writeModel(join(root, 'other'), tinyValues(2));
  await writeAdapter(
    join(root, 'ad'),
    {
      [`${P}${Q0}.lora_A.weight`]: randomFactor([2, 4], 1),
      [`${P}${Q0}.lora_B.weight`]: randomFactor([4, 2], 2),
      [`${P}${U2}.lora_A.weight`]: randomFactor([2, 4], 3),
      [`${P}${U2}.lora_B.weight`]: randomFactor([6, 2], 4),
    },
    { r: 2, lora_alpha: 3, target_modules: ['q_proj', 'up_proj'] },
  );
  await loraToVector({ adapter: join(root, 'ad'), base: join(root, 'base'), out: join(root, 'ad.safetensors') });
});

async function mergeOf(name: string, text: string, threads = 1): Promise<Map<string, Float32Array>> {
  const p = join(root, `${name}.yaml`);
  await writeFile(p, text);
  const out = join(root, `out-${name}`);
  await merge(p, { out, threads, ...(threads > 1 ? { pool: 'always' as const } : {}) });
  return readAllF32(out);
}

describe('recipes: model: base+adapter', () => {
  it('equals a vector: entry of the converted adapter, in-process and in the worker pool', async () => {
    const tail = '  - model: other\n    parameters: {weight: 0.5}\nparameters: {normalize: false}\n';
    const viaLora = await mergeOf('lora', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: base+ad\n    parameters: {weight: 0.5}\n${tail}`);
    const viaVector = await mergeOf('vector', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - vector: ad.safetensors\n    parameters: {weight: 0.5}\n${tail}`);
    expect(viaLora).toEqual(viaVector);
    expect(viaLora.get(`${Q0}.weight`)).not.toEqual(tinyValues(0).get(`${Q0}.weight`));
    const pooled = await mergeOf('lora-pool', `merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: base+ad\n    parameters: {weight: 0.5}\n${tail}`, 2);
    expect(pooled).toEqual(viaVector);
  });

  it('a base+adapter whose base is not otherwise named is opened as its own model', async () => {
    const out = await mergeOf('linear', 'merge_method: linear\nmodels:\n  - model: base+ad\n    parameters: {weight: 1}\n');
    const v = await openVector(join(root, 'ad.safetensors'));
    for (const [name, b] of tinyValues(0)) {
      const d = v.has(name) ? await v.readF32(name) : new Float32Array(b.length);
      expect(out.get(name), name).toEqual(b.map((x, i) => x + d[i]!));
    }
    await v.close();
  });

  it('missing adapters and malformed references are recipe problems at the entry', async () => {
    const p = join(root, 'bad.yaml');
    await writeFile(p, 'merge_method: linear\nmodels:\n  - model: base+nope\n    parameters: {weight: 1}\n  - model: base+ad+ad\n    parameters: {weight: 1}\n');
    const e = await buildPlan(p).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RecipeProblems);
    expect((e as RecipeProblems).problems.map((x) => [x.code, x.where.line])).toEqual([
      ['RECIPE_TYPE', 5],
      ['RECIPE_MODEL_NOT_FOUND', 3],
    ].sort((a, b) => (a[1] as number) - (b[1] as number)));
  });

  it("mergekit's dict form {model: {path}, lora: {path}} equals base+adapter; revision and override_architecture are refused at their key", async () => {
    const tail = '    parameters: {weight: 1}\n';
    const plus = await mergeOf('plus', `merge_method: linear\nmodels:\n  - model: base+ad\n${tail}`);
    const dict = await mergeOf('dict', `merge_method: linear\nmodels:\n  - model:\n      model: {path: base}\n      lora: {path: ad}\n${tail}`);
    expect(dict).toEqual(plus);
    const bare = await mergeOf('dict-bare', `merge_method: linear\nmodels:\n  - model: {model: {path: base}}\n${tail}`);
    expect(bare.get(`${Q0}.weight`)).toEqual(tinyValues(0).get(`${Q0}.weight`));
    const p = join(root, 'bad-dict.yaml');
    await writeFile(
      p,
      'merge_method: linear\nmodels:\n  - model:\n      model: {path: base, revision: main}\n    parameters: {weight: 1}\n' +
        '  - model:\n      model: {path: base}\n      override_architecture: LlamaForCausalLM\n    parameters: {weight: 1}\n' +
        '  - model:\n      lora: {path: ad}\n    parameters: {weight: 1}\n  - model: {model: {paht: base}}\n    parameters: {weight: 1}\n',
    );
    const e = await buildPlan(p).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RecipeProblems);
    const got = (e as RecipeProblems).problems.map((x) => [x.code, x.where.line, x.where.col]);
    expect(got).toEqual(
      expect.arrayContaining([
        ['RECIPE_UNSUPPORTED', 4, 27],
        ['RECIPE_UNSUPPORTED', 8, 7],
        ['RECIPE_MISSING_KEY', 11, 7],
        ['RECIPE_UNKNOWN_KEY', 13, 21],
      ]),
    );
    expect((e as RecipeProblems).problems.find((x) => x.code === 'RECIPE_UNKNOWN_KEY')!.message).toContain("did you mean 'path'");
  });
});

describe('recipes: stage+adapter (a LoRA adapter on an earlier stage of a multi-document recipe)', () => {
  const stage = 'name: soup\nmerge_method: linear\nmodels:\n  - {model: base, parameters: {weight: 0.5}}\n  - {model: other, parameters: {weight: 0.5}}\n';
  const final = 'name: final\nmerge_method: task_arithmetic\nbase_model: soup\nmodels:\n  - {model: soup+ad, parameters: {weight: 0.7}}\n  - {model: other, parameters: {weight: 0.2}}\n';

  it('equals merging the stage first and then its folder + adapter, whatever the document order', async () => {
    const soup = await mergeOf('soup-alone', stage);
    expect(soup.size).toBeGreaterThan(0);
    const twoStep = await mergeOf('two-step', final.replace(/soup/g, 'out-soup-alone').replace('name: final\n', ''));
    expect(await mergeOf('stage-adapter', `${stage}---\n${final}`)).toEqual(twoStep);
    expect(await mergeOf('stage-adapter-reversed', `${final}---\n${stage}`)).toEqual(twoStep);
    // a stage named only as an adapter's base still runs first
    const only = 'name: final\nmerge_method: linear\nmodels:\n  - {model: soup+ad, parameters: {weight: 1}}\n';
    const onlyTwoStep = await mergeOf('only-two-step', only.replace('soup', 'out-soup-alone').replace('name: final\n', ''));
    expect(await mergeOf('only-reversed', `${only}---\n${stage}`)).toEqual(onlyTwoStep);
  });

  it('plans without data (dry run): the adapter is checked, the stage is virtual', async () => {
    const p = join(root, 'stage-adapter-plan.yaml');
    await writeFile(p, `${stage}---\n${final}`);
    const plans = await buildPlan(p);
    expect(plans.map((x) => x.recipe.name)).toEqual(['soup', 'final']);
    expect(plans[1]!.models.map((m) => m.ref)).toEqual(['soup', 'soup+ad', 'other']);
    await writeFile(p, `${stage}---\n${final.replace('soup+ad', 'soup+nope')}`);
    const e = await buildPlan(p).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RecipeProblems);
    expect((e as RecipeProblems).problems.map((x) => [x.code, x.where.line])).toEqual([['RECIPE_MODEL_NOT_FOUND', 11]]);
  });
});

describe('recipes: the converted adapter cache', () => {
  it('is written through the page cache (the merge reads it at once), the merge output directly where allowed', async () => {
    const { DirectWriter } = await import('../../src/io/direct.js');
    await writeAdapter(
      join(root, 'ad-fresh'),
      { [`${P}${Q0}.lora_A.weight`]: randomFactor([2, 4], 41), [`${P}${Q0}.lora_B.weight`]: randomFactor([4, 2], 42) },
      { r: 2, lora_alpha: 2, target_modules: ['q_proj'] },
    );
    const spy = vi.spyOn(DirectWriter, 'open');
    await mergeOf('fresh', 'merge_method: linear\nmodels:\n  - {model: base+ad-fresh, parameters: {weight: 1}}\n');
    const paths = spy.mock.calls.map((c) => c[0]);
    spy.mockRestore();
    expect(paths.some((p) => p.startsWith(join(root, 'cache')))).toBe(false);
    expect(paths.some((p) => p.includes('out-fresh'))).toBe(true);
  });
});
