// Recipe and plan behaviours checked against mergekit's semantics (../shared/reference/mergekit-semantics.md §1.0,
// §2) and the strictness rules: YAML merge keys, slice-level normalize, layer ranges past a model's layers,
// every problem in one report, plan-time parameter checks with their recipe positions, tokenizer_source, an untied
// lm_head beside a tied base, vocabulary cuts by method family, and the CLI's output-folder argument.

import { existsSync } from 'node:fs';
import { mkdir, readFile, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RecipeProblems, allocationError } from '../../src/errors.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { buildPlan, merge } from '../../src/plan/merge.js';
import { closest, editDistance } from '../../src/recipe/suggest.js';
import { runCli } from '../helpers/cli.js';
import { tempDir, tinyValues, writeModel } from './helpers.js';

let root: string;

async function recipe(name: string, text: string): Promise<string> {
  const p = join(root, name);
  await writeFile(p, text);
  return p;
}

/** The problems a plan of the recipe reports: [code, line, col] each. */
async function problems(path: string): Promise<[string, number | undefined, number | undefined][]> {
  try {
    await buildPlan(path);
  } catch (e) {
    if (!(e instanceof RecipeProblems)) throw e;
    return e.problems.map((p) => [p.code, p.where.line, p.where.col]);
  }
  return [];
}

async function read(dir: string, name: string): Promise<Float32Array> {
  const r = await openCheckpointPath(dir);
  try {
    return (await r.readF32(name)) as Float32Array;
  } finally {
    await r.close();
  }
}

beforeAll(async () => {
  root = await tempDir('weightkit-conf-');
  await writeModel(join(root, 'base'), tinyValues(0));
  await writeModel(join(root, 'a'), tinyValues(1));
  await writeModel(join(root, 'b'), tinyValues(2));
  await writeModel(join(root, 'notok'), tinyValues(3), { tokenizer: false });
  // a tied-embedding base: no lm_head of its own
  const tied = tinyValues(0);
  tied.delete('lm_head.weight');
  await writeModel(join(root, 'tied'), tied, { config: { architectures: ['LlamaForCausalLM'], num_hidden_layers: 3, vocab_size: 8, tie_word_embeddings: true } });
  const tiedFt = tinyValues(1);
  tiedFt.delete('lm_head.weight');
  await writeModel(join(root, 'tied-ft'), tiedFt, { config: { architectures: ['LlamaForCausalLM'], num_hidden_layers: 3, vocab_size: 8, tie_word_embeddings: true } });
  // a model with a smaller vocabulary (6 rows)
  const small = tinyValues(2);
  small.set('model.embed_tokens.weight', small.get('model.embed_tokens.weight')!.slice(0, 24));
  small.set('lm_head.weight', small.get('lm_head.weight')!.slice(0, 24));
  await writeModel(join(root, 'small'), small, { shapes: { 'model.embed_tokens.weight': [6, 4], 'lm_head.weight': [6, 4] } });
  await mkdir(join(root, 'empty'));
});

describe('recipes as mergekit reads them', () => {
  it('YAML merge keys (<<: *anchor) bring in the anchored parameters; own keys win', async () => {
    const p = await recipe(
      'anchor.yaml',
      'merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: &d\n      weight: 1\n      density: 0.5\n  - model: b\n    parameters:\n      <<: *d\n      weight: 2\n',
    );
    const [plan] = await buildPlan(p);
    expect(plan!.tensors[0]!.modelParams).toEqual([expect.objectContaining({ weight: 1, density: 0.5 }), expect.objectContaining({ weight: 2, density: 0.5 })]);
    // a merge key that names no mapping is an error at the value
    const bad = await recipe('anchor-bad.yaml', 'merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters:\n      <<: 3\n      weight: 1\n      density: 0.5\n');
    expect(await problems(bad)).toEqual([['RECIPE_TYPE', 6, 11]]);
  });

  it("PyYAML's plain yes/no/on/off are booleans; quoted they stay strings", async () => {
    const p = await recipe('yes.yaml', 'merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: 1, density: 0.5}\nparameters:\n  normalize: no\n  rescale: On\n');
    const [plan] = await buildPlan(p);
    expect(plan!.tensors[0]!.params).toMatchObject({ normalize: false, rescale: true });
    const q = await recipe('yes-quoted.yaml', "merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: 1, density: 0.5}\nparameters:\n  normalize: 'no'\n");
    expect((await problems(q)).map((x) => x[0])).toEqual(['RECIPE_TYPE']);
  });

  it('normalize: false at the slice level allows weights that sum to 0', async () => {
    const slice = (norm: string): string =>
      `merge_method: linear\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 3]\n        parameters: {weight: 1}\n      - model: b\n        layer_range: [0, 3]\n        parameters: {weight: -1}\n    parameters:\n      normalize: ${norm}\n`;
    expect(await problems(await recipe('wz-ok.yaml', slice('false')))).toEqual([]);
    expect(await problems(await recipe('wz-bad.yaml', slice('true')))).toContainEqual(['RECIPE_WEIGHT_SUM_ZERO', 4, 9]);
  });

  it('a layer_range past a model\'s last layer is an error at the range', async () => {
    const p = await recipe(
      'range.yaml',
      'merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 3]\n  - sources:\n      - model: b\n        layer_range: [1, 4]\n',
    );
    expect(await problems(p)).toEqual([['RECIPE_LAYER_RANGE', 8, 22]]);
  });

  it('schema problems, a slice without its base and models that cannot be opened come in one report', async () => {
    await writeFile(join(root, 'garbage.safetensors'), Buffer.from('not a checkpoint at all'));
    const p = await recipe(
      'all.yaml',
      'merge_method: ties\nbase_model: base\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 3]\n        parameters: {weight: 1, density: 0.5}\n      - model: garbage.safetensors\n        layer_range: [0, 3]\n      - model: empty\n        layer_range: [0, 3]\nparameters:\n  lamda: 1\n',
    );
    const got = await problems(p);
    // (the two sources without parameters also lack their required weight and density)
    expect(got.map((x) => x[0]).sort()).toEqual(['CKPT_UNKNOWN_FORMAT', 'RECIPE_BASE_REQUIRED', 'RECIPE_PARAM_REQUIRED', 'RECIPE_PARAM_REQUIRED', 'RECIPE_UNKNOWN_PARAM', 'ST_HEADER_TOO_LARGE'].sort());
    expect(got).toContainEqual(['ST_HEADER_TOO_LARGE', 8, 16]);
    expect(got).toContainEqual(['RECIPE_BASE_REQUIRED', 4, 5]);
    expect(got).toContainEqual(['RECIPE_UNKNOWN_PARAM', 13, 3]);
    expect(got).toContainEqual(['CKPT_UNKNOWN_FORMAT', 10, 16]);
  });

  it("DELLA's density ± epsilon and trim_scope: model's one density per model are checked when planning, at the parameter", async () => {
    const della = await recipe(
      'della.yaml',
      'merge_method: della\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: 1, density: 0.5, epsilon: 0.1}\n  - model: b\n    parameters: {weight: 1, density: 0.9, epsilon: 0.15}\n',
    );
    expect(await problems(della)).toEqual([['RECIPE_PARAM_RANGE', 7, 52]]);
    const scope = await recipe(
      'scope.yaml',
      'merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: 1, density: 0.3}\n  - model: b\n    parameters: {weight: 1, density: [0.6, 0.2]}\nparameters:\n  trim_scope: model\n',
    );
    expect(await problems(scope)).toEqual([['RECIPE_PARAM_SCOPE', 7, 38]]);
    // knots trims over the whole model by default: the same check
    const knots = await recipe('scope-knots.yaml', (await readFile(scope, 'utf8')).replace('merge_method: ties', 'merge_method: knots').replace('  trim_scope: model\n', ''));
    expect(await problems(knots)).toEqual([['RECIPE_PARAM_SCOPE', 7, 38]]);
    // the same gradient with the per-tensor trim is fine
    expect(await problems(await recipe('scope-ok.yaml', (await readFile(scope, 'utf8')).replace('trim_scope: model', 'trim_scope: tensor')))).toEqual([]);
  });

  it('tokenizer_source must name a model with tokenizer files; one that only gives them is not listed as merged', async () => {
    const bad = await recipe('tok-bad.yaml', 'merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\n    parameters: {weight: 1}\ntokenizer_source: notok\n');
    expect(await problems(bad)).toEqual([['RECIPE_TOKENIZER', 7, 19]]);
    const ok = await recipe('tok.yaml', 'merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n  - model: notok\n    parameters: {weight: 1}\ntokenizer_source: b\n');
    const out = join(root, 'out-tok');
    await merge(ok, { out });
    expect(existsSync(join(out, 'tokenizer.json'))).toBe(true);
    const card = await readFile(join(out, 'README.md'), 'utf8');
    expect(card).toContain('- `a`');
    expect(card).toContain('- `notok`');
    expect(card).toContain('- tokenizer: `b`');
    expect(card).not.toContain('- `b`');
    const dry = await runCli('merge', ok, '--dry-run');
    expect(dry.stdout).toMatch(/models +a, notok\n/);
    expect(dry.stdout).toMatch(/tokenizer +b\n/);
  });
});

describe('where problems are reported', () => {
  it('a value that is not a finite number (.nan, .inf, 1e400) is one type error, not also a missing parameter', async () => {
    const p = await recipe('nan.yaml', 'merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: .nan}\n  - model: b\n    parameters: {weight: .inf}\nparameters: {lambda: 1e400}\n');
    expect(await problems(p)).toEqual([['RECIPE_TYPE', 5, 26], ['RECIPE_TYPE', 7, 26], ['RECIPE_TYPE', 8, 22]]);
  });

  it('a gradient value out of range at the value; a zero weight sum once, at the weight that sets it; no empty path in the location', async () => {
    const grad = await recipe('grad.yaml', 'merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters:\n      weight: 1\n      density: [0.5, 1.2, 0.3]\n');
    expect(await problems(grad)).toEqual([['RECIPE_PARAM_RANGE', 7, 22]]);
    const wz = await recipe('wz-filter.yaml', 'merge_method: linear\nmodels:\n  - model: a\n    parameters:\n      weight:\n        - filter: mlp\n          value: -1\n        - value: 1\n  - model: b\n    parameters: {weight: 1}\n');
    expect(await problems(wz)).toEqual([['RECIPE_WEIGHT_SUM_ZERO', 7, 18]]);
    // the same for a task-vector method, whether the weights are plain numbers or gradients
    const ties = (w: string): string => `merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: ${w}, density: 0.5}\n  - model: b\n    parameters: {weight: 1, density: 0.5}\n`;
    expect((await problems(await recipe('wz-ties.yaml', ties('-1')))).map((x) => x[0])).toEqual(['RECIPE_WEIGHT_SUM_ZERO']);
    expect((await problems(await recipe('wz-ties-grad.yaml', ties('[-1, -1]')))).map((x) => x[0])).toEqual(['RECIPE_WEIGHT_SUM_ZERO']);
    const r = await runCli('validate', wz);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('(-1 + 1)');
    expect(r.stderr).not.toContain(', )');
  });

  it('a slice without sources is one problem; lenient warnings come in recipe order', async () => {
    const empty = await recipe('empty-slice.yaml', 'merge_method: passthrough\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 3]\n  - sources: []\n');
    expect(await problems(empty)).toEqual([['RECIPE_MISSING_KEY', 6, 5]]);
    const len = await recipe('lenient.yaml', 'merge_method: linear\nfoo: 1\nmodels:\n  - model: a\n    parameters:\n      weight: 1\n      wieght: 3\n    extra: yes\n  - model: b\n    parameters:\n      weight: 1\n');
    const r = await runCli('validate', len, '--lenient');
    expect(r.code).toBe(0);
    expect([...r.stderr.matchAll(/lenient\.yaml:(\d+):(\d+)/g)].map((m) => `${m[1]}:${m[2]}`)).toEqual(['2:1', '7:7', '8:5']);
  });
});

describe('model references that are not local', () => {
  it('a bare name that is no local folder may be a hub id: the error says both; hf:// and URLs are remote', async () => {
    const p = await recipe('remote.yaml', 'merge_method: linear\nmodels:\n  - model: gpt2\n    parameters: {weight: 1}\n  - model: hf://org/model\n    parameters: {weight: 1}\n');
    const r = await runCli('validate', p);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/RECIPE_MODEL_NOT_FOUND\]: model 'gpt2' not found \(looked for [^)]+\); if it is a Hugging Face id: weightkit does not download/);
    expect(r.stderr).toMatch(/RECIPE_REMOTE_MODEL\]: 'hf:\/\/org\/model' is not a local path/);
  });
});

describe('results that are all NaN', () => {
  it('slerp, model_stock, karcher and sce tell when an input NaN makes the whole tensor NaN (on one thread and on workers)', async () => {
    const nan = tinyValues(5);
    nan.get('model.layers.0.self_attn.q_proj.weight')![3] = NaN;
    await writeModel(join(root, 'nan'), nan);
    const cases: [string, string, string][] = [
      ['slerp', 'merge_method: slerp\nbase_model: base\nmodels:\n  - model: nan\nparameters:\n  t: 0.5\n', "slerp's angle"],
      ['model_stock', 'merge_method: model_stock\nbase_model: base\nmodels:\n  - model: a\n  - model: nan\n', "model_stock's interpolation ratio t"],
      ['karcher', 'merge_method: karcher\nmodels:\n  - model: a\n  - model: nan\n', "karcher's mean"],
      ['sce', 'merge_method: sce\nbase_model: base\nmodels:\n  - model: a\n  - model: nan\n', "sce's model weights"],
    ];
    for (const [name, text, what] of cases) {
      const p = await recipe(`nan-${name}.yaml`, text);
      for (const threads of [1, 2]) {
        const told: string[] = [];
        const r = await merge(p, { out: join(root, `out-nan-${name}-${threads}`), threads, ...(threads > 1 ? { pool: 'always' as const } : {}), onWarning: (w) => told.push(w) });
        const want = `tensor 'model.layers.0.self_attn.q_proj.weight': ${what} is not finite (an input holds NaN or infinite values), so every value of the merged tensor is NaN`;
        expect(r.warnings, `${name}, ${threads} thread(s)`).toContain(want);
        expect(told).toContain(want);
        expect(r.warnings.filter((w) => w.includes('is not finite'))).toHaveLength(1); // only that tensor
      }
    }
  });
});

describe('non-finite inputs of whole-matrix methods', () => {
  it('tsv refuses them naming the model by its recipe reference (on one thread and on workers)', async () => {
    const nan = tinyValues(5);
    nan.get('model.layers.0.self_attn.q_proj.weight')![3] = NaN;
    await writeModel(join(root, 'nan-tsv'), nan);
    const p = await recipe('tsv-nan.yaml', 'merge_method: tsv\nbase_model: base\nmodels:\n  - model: a\n  - model: nan-tsv\n');
    for (const threads of [1, 2]) {
      let message = '';
      try {
        await merge(p, { out: join(root, `out-tsv-nan-${threads}`), threads, ...(threads > 1 ? { pool: 'always' as const } : {}) });
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toContain("tensor 'model.layers.0.self_attn.q_proj.weight': model 'nan-tsv' has a non-finite value (NaN) at element 3");
    }
  });
});

describe('F16 outputs', () => {
  it('a merge into F16 says which tensors hold ±inf (values beyond ±65504), on one thread and on workers', async () => {
    const big = tinyValues(6);
    big.get('model.norm.weight')![0] = 3e5; // the mean of the two: ~1.5e5
    await writeModel(join(root, 'big-f16'), big);
    const p = await recipe('f16.yaml', 'merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n  - model: big-f16\n    parameters: {weight: 1}\ndtype: float16\n');
    for (const threads of [1, 2]) {
      const r = await merge(p, { out: join(root, `out-f16-${threads}`), threads, ...(threads > 1 ? { pool: 'always' as const } : {}) });
      expect(r.warnings.filter((w) => w.includes('of the F16 output are ±inf'))).toEqual(["tensor 'model.norm.weight': 1 value(s) of the F16 output are ±inf (beyond ±65504, or infinite inputs)"]);
    }
  });
});

describe('companion files', () => {
  it('a config.json that is a folder, or JSON but not an object, is reported, not silently dropped or passed', async () => {
    await writeModel(join(root, 'cfg-dir'), tinyValues(0), { config: false });
    await mkdir(join(root, 'cfg-dir', 'config.json'));
    const p = await recipe('cfg-dir.yaml', 'merge_method: task_arithmetic\nbase_model: cfg-dir\nmodels:\n  - model: a\n    parameters: {weight: 1}\n');
    const r = await merge(p, { out: join(root, 'out-cfg-dir') });
    expect(r.warnings.some((w) => w.includes('config.json cannot be read'))).toBe(true);
    await writeModel(join(root, 'cfg-list'), tinyValues(0), { config: [1, 2] });
    const q = await recipe('cfg-list.yaml', 'merge_method: task_arithmetic\nbase_model: cfg-list\nmodels:\n  - model: a\n    parameters: {weight: 1}\n');
    const r2 = await merge(q, { out: join(root, 'out-cfg-list') });
    expect(r2.warnings.some((w) => w.includes('is not a valid JSON object: copied unchanged'))).toBe(true);
  });
});

describe('tensors as mergekit plans them', () => {
  it('an lm_head of its own beside a tied base is merged against the base embedding, and the output config unties it', async () => {
    const p = await recipe('tied.yaml', 'merge_method: task_arithmetic\nbase_model: tied\nmodels:\n  - model: a\n    parameters: {weight: 0.5}\n');
    const out = join(root, 'out-tied');
    const r = await merge(p, { out });
    expect(r.warnings.some((w) => w.includes("'lm_head.weight'") && w.includes('unties'))).toBe(true);
    const embed = tinyValues(0).get('model.embed_tokens.weight')!;
    const head = tinyValues(1).get('lm_head.weight')!;
    const got = await read(out, 'lm_head.weight');
    expect(Array.from(got)).toEqual(Array.from(embed, (e, i) => Math.fround(e + Math.fround(head[i]! - e) * 0.5)));
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).tie_word_embeddings).toBe(false);
    // all tied: nothing added, the config stays tied
    const q = await recipe('tied2.yaml', 'merge_method: task_arithmetic\nbase_model: tied\nmodels:\n  - model: tied-ft\n    parameters: {weight: 0.5}\n');
    const [plan] = await buildPlan(q);
    expect(plan!.tensors.some((t) => t.name === 'lm_head.weight')).toBe(false);
    expect(plan!.untied).toBeUndefined();
  });

  it('a vocabulary mismatch: slerp cuts every input to the common block, task-vector methods to the base (a smaller model is an error)', async () => {
    const slerp = await recipe('vocab-slerp.yaml', 'merge_method: slerp\nbase_model: base\nmodels:\n  - model: small\nparameters:\n  t: 0.4\n');
    const out = join(root, 'out-vocab');
    // the plan's warnings are told before any tensor is merged
    const events: string[] = [];
    await merge(slerp, { out, onWarning: (w) => events.push(`warning ${w.slice(0, 9)}`), onProgress: () => events.push('progress') });
    expect(events.slice(0, 2)).toEqual(['warning embedding', 'warning embedding']); // embed_tokens and lm_head
    expect(events.filter((e) => e.startsWith('warning'))).toHaveLength(2);
    const r = await openCheckpointPath(out);
    expect(r.info('model.embed_tokens.weight').shape).toEqual([6, 4]);
    await r.close();
    expect(JSON.parse(await readFile(join(out, 'config.json'), 'utf8')).vocab_size).toBe(6);
    const v = await runCli('validate', slerp);
    expect(v.code).toBe(0);
    expect(v.stderr).toContain("warning: embedding 'model.embed_tokens.weight': vocabulary sizes differ ([8, 4] vs [6, 4]); cut to [6, 4]");
    const ta = await recipe('vocab-ta.yaml', 'merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - model: small\n    parameters: {weight: 1}\n');
    expect((await problems(ta)).map((x) => x[0])).toContain('TENSOR_SHAPE_MISMATCH');
  });
});

describe('the merge command line', () => {
  it('refuses an output folder given both positionally and with --out', async () => {
    const p = await recipe('cli.yaml', 'merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\n    parameters: {weight: 1}\n');
    const r = await runCli('merge', p, join(root, 'o1'), '--out', join(root, 'o2'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('give the output folder once');
    expect(existsSync(join(root, 'o1')) || existsSync(join(root, 'o2'))).toBe(false);
    const ok = await runCli('merge', p, join(root, 'o3'), '--quiet');
    expect(ok.code).toBe(0);
    expect(existsSync(join(root, 'o3', 'model.safetensors'))).toBe(true);
  });

  it('suggests keys across transposed letters', () => {
    expect(editDistance('modles', 'models')).toBe(1);
    expect(editDistance('abc', 'abc')).toBe(0);
    expect(editDistance('ca', 'abc')).toBe(3);
    expect(closest('modles', ['models', 'modules', 'slices'])).toBe('models');
  });
});

describe('tensors too large for one buffer', () => {
  /** A sparse safetensors file with an honest header: one F32 tensor of `shape` (its data is a hole). */
  async function sparseModel(dir: string, shape: number[]): Promise<void> {
    await mkdir(dir, { recursive: true });
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    const header = Buffer.from(JSON.stringify({ 'model.layers.0.mlp.up_proj.weight': { dtype: 'F32', shape, data_offsets: [0, bytes] } }));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(header.length));
    const file = join(dir, 'model.safetensors');
    await writeFile(file, Buffer.concat([prefix, header]));
    await truncate(file, 8 + header.length + bytes);
  }

  it('a row longer than a typed array is TENSOR_TOO_LARGE when planning (not an internal error at run time)', async () => {
    await sparseModel(join(root, 'huge-a'), [1, 2 ** 31]);
    await sparseModel(join(root, 'huge-b'), [1, 2 ** 31]);
    const p = await recipe('huge.yaml', 'merge_method: linear\nmodels:\n  - model: huge-a\n    parameters: {weight: 0.5}\n  - model: huge-b\n    parameters: {weight: 0.5}\n');
    const r = await runCli('merge', p, '--out', join(root, 'out-huge'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error[TENSOR_TOO_LARGE]: tensor 'model.layers.0.mlp.up_proj.weight' [1, 2147483648]: one row along its first dimension has 2147483648 elements");
    expect(existsSync(join(root, 'out-huge'))).toBe(false);
  });

  it('a failed allocation becomes TENSOR_TOO_LARGE naming the tensor', () => {
    let caught: unknown;
    try {
      new Float32Array(2 ** 33);
    } catch (e) {
      caught = e;
    }
    const e = allocationError(caught, { tensor: 'w' });
    expect(e?.code).toBe('TENSOR_TOO_LARGE');
    expect(e?.message).toContain("tensor 'w' needs a buffer larger");
    expect(allocationError(new RangeError('Maximum call stack size exceeded'), {})).toBeUndefined();
    expect(allocationError(new Error('Invalid typed array length'), {})).toBeUndefined();
  });
});
