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
