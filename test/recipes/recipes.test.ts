// Every example recipe in recipes/ is validated, planned and executed, against a tiny demo family laid out like
// the repository (so the recipes' relative paths resolve unchanged). Every registered method has an example.

import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoFamilySpec, generateDemoFamily } from '../../src/demo/family.js';
import { METHODS } from '../../src/merge/registry.js';
import { buildPlan, merge } from '../../src/plan/merge.js';
import { readAllF32 } from '../plan/helpers.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const METHOD_RECIPES = (await readdir(join(REPO, 'recipes/methods'))).filter((f) => f.endsWith('.yaml')).sort();
const DEMO_RECIPES = (await readdir(join(REPO, 'recipes'))).filter((f) => f.endsWith('.yaml')).sort();

let tmp: string;
let base: Map<string, Float32Array>;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'weightkit-recipes-'));
  await generateDemoFamily(join(tmp, '.cache/demo'), demoFamilySpec({ vocab: 40, hidden: 16, intermediate: 24, layers: 4, heads: 2, kvHeads: 1 }));
  await mkdir(join(tmp, 'recipes/methods'), { recursive: true });
  for (const f of METHOD_RECIPES) await copyFile(join(REPO, 'recipes/methods', f), join(tmp, 'recipes/methods', f));
  for (const f of DEMO_RECIPES) await copyFile(join(REPO, 'recipes', f), join(tmp, 'recipes', f));
  base = await readAllF32(join(tmp, '.cache/demo/base'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('example recipes', () => {
  it('cover every registered method', () => {
    const covered = new Set(METHOD_RECIPES.map((f) => f.replace(/\.yaml$/, '')));
    for (const m of METHODS) expect(covered.has(m.name), `recipes/methods/${m.name}.yaml`).toBe(true);
  });

  it.each([...METHOD_RECIPES.map((f) => `methods/${f}`), ...DEMO_RECIPES])('%s plans and merges', async (f) => {
    const path = join(tmp, 'recipes', f);
    const plans = await buildPlan(path);
    expect(plans[0]!.tensors.length).toBeGreaterThan(0);
    const out = join(tmp, 'out', f.replace(/[/.]/g, '_'));
    const res = await merge(path, { out, threads: 1 });
    expect(res.bytesWritten).toBe(plans.at(-1)!.outputBytes);
    const got = await readAllF32(out);
    // the merge changed something relative to the base (every example recipe is meant to)
    let changed = 0;
    for (const [name, v] of got) {
      const b = base.get(name);
      if (!b || b.length !== v.length) {
        changed++;
        continue;
      }
      for (let i = 0; i < v.length; i++) if (v[i] !== b[i]) changed++;
    }
    expect(changed).toBeGreaterThan(0);
    for (const v of got.values()) for (const x of v) expect(Number.isFinite(x)).toBe(true);
  });
});
