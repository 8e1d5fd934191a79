// The public entry point: the names the README and the issues promise are exported and work together.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as wk from '../src/index.js';
import { tempDir, tinyFamily } from './plan/helpers.js';

describe('public API', () => {
  it('version matches package.json', async () => {
    expect(wk.WEIGHTKIT_VERSION).toBe(JSON.parse(await readFile('package.json', 'utf8')).version);
  });

  it('exposes merge, buildPlan, loadRecipe, methods and mergeTensors', async () => {
    const names = wk.methods.map((m) => m.name);
    for (const n of ['linear', 'task_arithmetic', 'ties', 'dare_linear', 'dare_ties', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear', 'sce', 'model_stock', 'slerp', 'nuslerp', 'multislerp', 'karcher', 'nearswap', 'arcee_fusion', 'passthrough', 'ram', 'negmerge']) {
      expect(names).toContain(n);
    }
    const ta = wk.mergeTensors(wk.getMethod('task_arithmetic'), { base: new Float32Array([1, 1]), models: [new Float32Array([2, 0])] }, { params: { lambda: 0.5 }, modelParams: [{ weight: 1 }] });
    expect(Array.from(ta)).toEqual([1.5, 0.5]);

    const root = await tempDir('weightkit-api-');
    await tinyFamily(root);
    const recipe = join(root, 'r.yaml');
    await writeFile(recipe, 'merge_method: ties\nbase_model: base\nmodels:\n  - {model: ft-a, parameters: {weight: 1, density: 0.5}}\n  - {model: ft-b, parameters: {weight: 1, density: 0.5}}\n');
    const loaded = await wk.loadRecipe(recipe);
    expect(loaded.stages[0]!.method.name).toBe('ties');
    const [plan] = await wk.buildPlan(recipe);
    expect(plan!.tensors.length).toBeGreaterThan(0);
    const res = await wk.merge(recipe, { out: join(root, 'out') });
    const r = await wk.openCheckpoint(res.out);
    expect(r.tensors().length).toBe(plan!.tensors.length);
    await r.close();
    const report = await wk.inspectCheckpoint(res.out);
    expect(report.parameters).toBe(plan!.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0));
  });

  it('exposes the vector workflow: extract, combine, apply, remove, interpolate, soups', async () => {
    const root = await tempDir('weightkit-api-vec-');
    await tinyFamily(root);
    const base = join(root, 'base');
    const va = join(root, 'a.safetensors');
    const vb = join(root, 'b.safetensors');
    await wk.extractVector({ base, finetuned: join(root, 'ft-a'), out: va });
    await wk.extractVector({ base, finetuned: join(root, 'ft-b'), out: vb, kind: 'time', label: '2016' });
    const opened = await wk.openVector(vb);
    expect(opened.meta.label).toBe('2016');
    await opened.close();
    await wk.combineVectors({ expression: `0.5 * ${va} + 0.5 * ${vb}`, out: join(root, 'm.safetensors') });
    const applied = await wk.applyVectors({ base, vectors: [{ path: join(root, 'm.safetensors'), scale: 1.2 }], out: join(root, 'patched') });
    expect(applied.undo).toBeDefined();
    const removed = await wk.removeVectors({ model: join(root, 'patched'), vectors: [{ path: join(root, 'm.safetensors'), scale: 1.2 }], out: join(root, 'restored'), exact: true });
    expect(removed.exact).toBe(true);
    const path = await wk.interpolateModels({ from: join(root, 'ft-a'), to: join(root, 'ft-b'), alphas: wk.parseGrid('0:1:0.5', 'alphas'), out: join(root, 'wise') });
    expect(path.outputs.map((o) => o.alpha)).toEqual([0, 0.5, 1]);
    const soup = await wk.uniformSoup({ models: [join(root, 'ft-a'), join(root, 'ft-b')], out: join(root, 'soup') });
    expect(soup.tensors).toBeGreaterThan(0);
  });
});

describe('per-tensor API and merge options: typed errors for bad input', () => {
  const code = async (f: () => unknown): Promise<string | undefined> => {
    try {
      await f();
    } catch (e) {
      return (e as { code?: string }).code;
    }
    return undefined;
  };

  it('mergeTensors takes a method or its name, checks parameters (finite, in range, known), inputs and options', async () => {
    const api = await import('../src/index.js');
    const base = new Float32Array([0, 0, 0, 0]);
    const a = new Float32Array([1, -2, 3, -4]);
    const b = new Float32Array([2, 2, -1, -1]);
    const byName = api.mergeTensors('task_arithmetic', { base, models: [a, b] }, { modelParams: [{ weight: 1 }, { weight: 1 }] });
    const byMethod = api.mergeTensors(api.getMethod('task_arithmetic'), { base, models: [a, b] }, { modelParams: [{ weight: 1 }, { weight: 1 }] });
    expect(Array.from(byName)).toEqual(Array.from(byMethod));
    expect(await code(() => api.mergeTensors('tie', { base, models: [a] }))).toBe('RECIPE_UNKNOWN_METHOD');
    expect(await code(() => api.mergeTensors('slerp', { base, models: [a] }, { params: { t: NaN } }))).toBe('RECIPE_TYPE');
    expect(await code(() => api.mergeTensors('task_arithmetic', { base, models: [a] }, { params: { lambda: Infinity }, modelParams: [{ weight: 1 }] }))).toBe('RECIPE_TYPE');
    expect(await code(() => api.mergeTensors('ties', { base, models: [a] }, { modelParams: [{ weight: 1, density: 1.5 }] }))).toBe('RECIPE_PARAM_RANGE');
    expect(await code(() => api.mergeTensors('ties', { base, models: [a] }, { modelParams: [{ weight: 1, densty: 0.5 }] }))).toBe('RECIPE_UNKNOWN_PARAM');
    expect(await code(() => api.mergeTensors('ties', { base, models: [a] }, { modelParams: [{ weight: 1 }, { weight: 1 }] }))).toBe('USAGE');
    expect(await code(() => api.mergeTensors('linear', { models: [a] }, { modelParams: [{ weight: 1 }], chunkElements: NaN }))).toBe('USAGE');
    expect(await code(() => api.mergeTensors('ties', { models: [a] }))).toBe('RECIPE_BASE_REQUIRED');
    expect(await code(() => api.mergeTensors('ties', { base, models: [new Float32Array(3)] }))).toBe('TENSOR_SHAPE_MISMATCH');
    // Tensors carry their shapes: they must agree, and they reach the method (no explicit shape needed)
    const t23 = api.makeTensor('F32', [2, 3], new Float32Array(6));
    const t32 = api.makeTensor('F32', [3, 2], new Float32Array(6));
    expect(await code(() => api.mergeTensors('linear', { models: [t23, t32] }, { modelParams: [{ weight: 1 }, { weight: 1 }] }))).toBe('TENSOR_SHAPE_MISMATCH');
  });

  it('merge and buildPlan refuse options the CLI would refuse', async () => {
    const api = await import('../src/index.js');
    for (const o of [{ threads: 0 }, { threads: 1.5 }, { threads: NaN }, { seed: -1 }, { seed: 1.5 }, { seed: 2 ** 60 }, { memoryBudget: 0 }, { memoryBudget: NaN }, { dtype: 'I8' as never }, { shardSize: -5 }]) {
      expect(await code(() => api.buildPlan('/nonexistent/recipe.yaml', o)), JSON.stringify(o)).toBe('USAGE');
      expect(await code(() => api.merge('/nonexistent/recipe.yaml', { out: '/nonexistent/out', ...o }))).toBe('USAGE');
    }
  });
});
