// TSV-M / Iso-C / Iso-CTS through mergeWithOrt (ONNX Runtime products) agree with the pure-JS backend to f32 rounding.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mergeWithOrt, recipeNeedsLinalg } from '../../src/eval/merge-with-ort.js';
import { merge } from '../../src/plan/merge.js';
import { readAllF32, tempDir, tinyFamily } from '../plan/helpers.js';

describe('mergeWithOrt', () => {
  it('runs linalg methods on ORT, matching jsMatMul closely', async () => {
    const root = await tempDir();
    const fam = await tinyFamily(root);
    for (const [method, param] of [['tsv', 'svd: randomized'], ['iso_c', 'polar: newton_schulz'], ['iso_cts', 'svd: randomized']] as const) {
      const recipe = join(root, `${method}.yaml`);
      await writeFile(recipe, `merge_method: ${method}\nbase_model: ${fam.base}\nmodels:\n  - model: ${fam.a}\n  - model: ${fam.b}\nparameters:\n  ${param}\ndtype: float32\n`);
      expect(await recipeNeedsLinalg(recipe)).toBe(true);
      await mergeWithOrt(recipe, { out: join(root, `${method}-ort`), threads: 1 });
      await merge(recipe, { out: join(root, `${method}-js`), threads: 1 });
      const a = await readAllF32(join(root, `${method}-ort`));
      const b = await readAllF32(join(root, `${method}-js`));
      for (const [name, v] of a) {
        const w = b.get(name)!;
        for (let i = 0; i < v.length; i++) expect(Math.abs(v[i]! - w[i]!), `${method} ${name}`).toBeLessThan(1e-4);
      }
    }
  });
});
