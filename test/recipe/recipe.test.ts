import { describe, expect, it } from 'vitest';
import { RecipeProblems, type RecipeError } from '../../src/errors.js';
import { parseRecipe } from '../../src/recipe/load.js';
import { evalGradient, evalParam, layerT, lookupParam } from '../../src/recipe/params.js';
import type { MethodSpec } from '../../src/recipe/spec.js';
import { loadRecipeText, validateRecipe, type MethodCatalog } from '../../src/recipe/validate.js';
import { methodCatalog } from '../../src/merge/registry.js';

const TIES: MethodSpec = {
  name: 'ties',
  base: 'required',
  minModels: 1,
  params: [
    { name: 'lambda', type: 'number', default: 1, description: 'scale' },
    { name: 'normalize', type: 'boolean', default: true, description: 'divide' },
  ],
  modelParams: [
    { name: 'weight', type: 'number', required: true, description: 'weight' },
    { name: 'density', type: 'number', default: 1, min: 0, max: 1, description: 'fraction kept' },
  ],
  summary: '',
  formula: '',
  reference: '',
};
const SLERP: MethodSpec = {
  name: 'slerp',
  base: 'required',
  minModels: 1,
  maxModels: 1,
  params: [{ name: 't', type: 'number', required: true, min: 0, max: 1, description: 'position' }],
  modelParams: [],
  summary: '',
  formula: '',
  reference: '',
};
const LINEAR: MethodSpec = {
  name: 'linear',
  base: 'input',
  minModels: 1,
  params: [{ name: 'normalize', type: 'boolean', default: true, description: 'divide' }],
  modelParams: [{ name: 'weight', type: 'number', required: true, description: 'weight' }],
  summary: '',
  formula: '',
  reference: '',
};
const CATALOG: MethodCatalog = new Map([TIES, SLERP, LINEAR].map((m) => [m.name, m]));

function problems(fn: () => unknown): RecipeError[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RecipeProblems);
    return [...(e as RecipeProblems).problems];
  }
  throw new Error('expected RecipeProblems');
}

function codes(ps: RecipeError[]): [string, number, number][] {
  return ps.map((p) => [p.code, p.where.line!, p.where.col!]);
}

const check = (text: string, lenient = false) => loadRecipeText(text, 'r.yaml', CATALOG, { lenient }).methods;

describe('recipe loading', () => {
  it('parses the mergekit schema with positions', () => {
    const r = parseRecipe(
      `merge_method: ties
base_model: ./base
models:
  - model: ./a
    parameters:
      density: [1, 0.5]
      weight:
        - filter: mlp
          value: 0.5
        - value: 1
  - model: ./b
    parameters: {weight: 1, density: 0.3}
parameters:
  normalize: true
dtype: bfloat16
seed: 7
`,
      'r.yaml',
    );
    const d = r.docs[0]!;
    expect(d.mergeMethod.value).toBe('ties');
    expect(d.baseModel?.ref).toBe('./base');
    expect(d.models!.map((m) => m.model.ref)).toEqual(['./a', './b']);
    expect(d.models![1]!.pos).toMatchObject({ line: 11, col: 5 });
    expect(d.dtype?.value).toBe('BF16');
    expect(d.seed?.value).toBe(7);
    const w = d.models![0]!.parameters.get('weight')!.node;
    expect(evalParam(w, 'model.layers.0.mlp.up_proj.weight', 0)?.value).toBe(0.5);
    expect(evalParam(w, 'model.layers.0.self_attn.q_proj.weight', 0)?.value).toBe(1);
    expect(evalParam(d.models![0]!.parameters.get('density')!.node, 'x', 0.5)?.value).toBe(0.75);
    expect(check(`merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters: {weight: 1}\n`).size).toBe(1);
  });

  it('reports every problem at once with line:col and did-you-mean', () => {
    const ps = problems(() =>
      check(`merge_method: ties
base_modle: ./base
models:
  - model: ./a
    parameters:
      densty: 0.5
      weight: 1
  - model: ./b
    parameters:
      density: 1.5
      weight: 1
parameters:
  lamda: 2
`),
    );
    expect(codes(ps)).toEqual([
      ['RECIPE_BASE_REQUIRED', 1, 15],
      ['RECIPE_UNKNOWN_KEY', 2, 1],
      ['RECIPE_UNKNOWN_PARAM', 6, 7],
      ['RECIPE_PARAM_RANGE', 10, 16],
      ['RECIPE_UNKNOWN_PARAM', 13, 3],
    ]);
    expect(ps[1]!.message).toContain("did you mean 'base_model'");
    expect(ps[2]!.message).toContain("did you mean 'density'");
    expect(ps[4]!.message).toContain("did you mean 'lambda'");
  });

  it('--lenient turns unknown keys and parameters into warnings', () => {
    const r = parseRecipe(`merge_method: ties\nbase_model: b\nextra: 1\nmodels:\n  - model: a\n    parameters: {weight: 1, densty: 0.2}\n`, 'r.yaml', { lenient: true });
    validateRecipe(r, CATALOG, { lenient: true });
    expect(r.warnings.map((w) => [w.code, w.pos.line])).toEqual([
      ['RECIPE_UNKNOWN_KEY', 3],
      ['RECIPE_UNKNOWN_PARAM', 6],
    ]);
  });

  it.each([
    ['merge_method: ties\nmodels: [\n', 'RECIPE_YAML', 3, 1],
    ['merge_method: ties\nmerge_method: linear\nmodels: []\n', 'RECIPE_UNKNOWN_KEY', 2, 1],
    ['- a\n- b\n', 'RECIPE_NOT_MAPPING', 1, 1],
    ['base_model: x\nmodels: []\n', 'RECIPE_MISSING_KEY', 1, 1],
    ['merge_method: tie\nbase_model: b\nmodels:\n  - model: a\n', 'RECIPE_UNKNOWN_METHOD', 1, 15],
    ['merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters: {weight: yes}\n', 'RECIPE_TYPE', 5, 26],
    ['merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters: {weight: 1, lambda: 2}\n', 'RECIPE_PARAM_SCOPE', 5, 29],
    ['merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n', 'RECIPE_PARAM_REQUIRED', 4, 5],
    ['merge_method: slerp\nbase_model: b\nmodels:\n  - model: a\n', 'RECIPE_PARAM_REQUIRED', 1, 15],
    ['merge_method: slerp\nbase_model: b\nmodels:\n  - model: a\n  - model: c\nparameters: {t: 0.5}\n', 'RECIPE_MODEL_COUNT', 4, 5],
    ['merge_method: ties\nmodels:\n  - model: a\n    parameters: {weight: 1}\n', 'RECIPE_BASE_REQUIRED', 1, 15],
    ['merge_method: linear\nmodels:\n  - model: a\n    parameters: {weight: 1}\n  - model: b\n    parameters: {weight: -1}\n', 'RECIPE_WEIGHT_SUM_ZERO', 3, 5],
    ['merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters:\n      weight: [{filter: "re:(", value: 1}]\n', 'RECIPE_BAD_FILTER', 6, 25],
    ['merge_method: ties\nbase_model: b\nmodels: []\nslices: []\n', 'RECIPE_CONFLICT', 4, 1],
    ['merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters: {weight: 1}\ntokenizer_source: union\n', 'RECIPE_UNSUPPORTED', 6, 19],
    ['merge_method: linear\nslices:\n  - sources:\n      - {model: a, layer_range: [0, 4]}\n      - {model: b, layer_range: [0, 3]}\nparameters: {weight: 1}\n', 'RECIPE_LAYER_RANGE', 3, 5],
    ['merge_method: linear\nslices:\n  - sources:\n      - {model: a, layer_range: [4, 2]}\nparameters: {weight: 1}\n', 'RECIPE_LAYER_RANGE', 4, 33],
    ['name: x\nmerge_method: linear\nmodels:\n  - {model: a, parameters: {weight: 1}}\n---\nname: x\nmerge_method: linear\nmodels:\n  - {model: x, parameters: {weight: 1}}\n', 'RECIPE_DUPLICATE_NAME', 6, 7],
  ])('error %#: %s -> %s at %d:%d', (text, code, line, col) => {
    const ps = problems(() => check(text));
    const hit = ps.find((p) => p.code === code);
    expect(hit, JSON.stringify(codes(ps))).toBeDefined();
    expect([hit!.where.line, hit!.where.col]).toEqual([line, col]);
    expect(hit!.where.file).toBe('r.yaml');
  });
});

describe('parameter resolution', () => {
  it('interpolates gradients as mergekit', () => {
    expect(evalGradient([0, 1], 0.25)).toBeCloseTo(0.25);
    expect(evalGradient([1, 0.7, 0.1], 0)).toBe(1);
    expect(evalGradient([1, 0.7, 0.1], 0.5)).toBe(0.7);
    expect(evalGradient([1, 0.7, 0.1], 0.75)).toBeCloseTo(0.4);
    expect(evalGradient([1, 0.7, 0.1], 1)).toBe(0.1);
    expect(evalGradient([0, 0.3, 0.7, 1], 1 / 3)).toBeCloseTo(0.3);
    expect(evalGradient([true, false], 0.4)).toBe(true);
    expect(evalGradient([true, false], 1)).toBe(false);
    expect(layerT(0, 1)).toBe(1);
    expect(layerT(3, 7)).toBe(0.5);
  });

  it('takes the first level that yields a value; conditional lists fall through', () => {
    const r = parseRecipe(
      `merge_method: ties
base_model: b
slices:
  - sources:
      - model: a
        layer_range: [0, 2]
        parameters:
          weight: [{filter: self_attn, value: 3}]
      - model: b
        layer_range: [0, 2]
    parameters:
      weight: [{filter: "re:layers\\\\.1\\\\.", value: 2}]
parameters:
  weight: 1
`,
      'r.yaml',
    );
    const s = r.docs[0]!.slices![0]!;
    const levels = [s.sources[0]!.parameters, s.parameters, r.docs[0]!.parameters];
    expect(lookupParam(levels, 'weight', 'model.layers.0.self_attn.q_proj.weight', 0)?.value).toBe(3);
    expect(lookupParam(levels, 'weight', 'model.layers.1.mlp.up_proj.weight', 1)?.value).toBe(2);
    expect(lookupParam(levels, 'weight', 'model.layers.0.mlp.up_proj.weight', 0)?.value).toBe(1);
    expect(lookupParam(levels, 'weight', 'model.layers.0.mlp.up_proj.weight', 0)?.pos.line).toBe(14);
    expect(lookupParam(levels, 'density', 'x', 0)).toBeUndefined();
  });
});

describe('the real method catalog', () => {
  it.each([
    ['ties', 'density: 1.5', 'RECIPE_PARAM_RANGE'],
    ['ties', 'density: -0.1', 'RECIPE_PARAM_RANGE'],
    ['breadcrumbs', 'gamma: 2', 'RECIPE_PARAM_RANGE'],
    ['ties', 'trim_scope: global', 'RECIPE_PARAM_RANGE'],
    ['ties', 'normalize: 1', 'RECIPE_TYPE'],
    ['ties', 'densty: 0.5', 'RECIPE_UNKNOWN_PARAM'],
  ])('%s with %s -> %s', (method, param, code) => {
    const text = `merge_method: ${method}\nbase_model: b\nmodels:\n  - model: a\n    parameters: {weight: 1}\nparameters:\n  ${param}\n`;
    const ps = problems(() => loadRecipeText(text, 'r.yaml', methodCatalog()));
    expect(ps.map((p) => [p.code, p.where.line])).toEqual([[code, 7]]);
  });
});
