// Task arithmetic and TIES on three digit tasks (rotated, inverted, mirrored): merge the fine-tunes' task vectors
// into the base with a mergekit recipe, pick the scale λ on the validation splits, report test accuracy.
// Run: npx tsx examples/01-task-arithmetic.ts

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { evaluate, merge } from '../src/index.js';
import { openExampleZoo, pct } from './zoo.js';

const { zoo, graph, model, data, out } = await openExampleZoo('01-task-arithmetic');
const { base, models, tasks } = zoo.experiments.multiTask;

// mean accuracy of a checkpoint over the three tasks, on one split
async function meanAccuracy(weights: string, split: 'val' | 'test'): Promise<number> {
  let sum = 0;
  for (const task of tasks) sum += (await evaluate({ model: graph, weights, data: data(task, split) })).accuracy;
  return sum / tasks.length;
}

// a recipe is plain mergekit YAML; paths may be absolute
function recipe(method: string, lambda: number, extra = ''): string {
  const entries = models.map((m) => `  - model: ${model(m)}\n    parameters: {weight: 1.0${extra}}`).join('\n');
  return `merge_method: ${method}\nbase_model: ${model(base)}\nmodels:\n${entries}\nparameters: {lambda: ${lambda}}\ndtype: float32\n`;
}

console.log(`base: mean test accuracy ${pct(await meanAccuracy(model(base), 'test'))}`);
// TIES averages the agreeing entries, so its useful λ is larger than task arithmetic's
const grids = { task_arithmetic: [0.3, 0.5, 0.7, 1.0], ties: [1.0, 1.5, 2.0, 3.0] };
for (const [method, lambdas] of Object.entries(grids)) {
  let best = { lambda: 0, val: -1, path: '' };
  for (const lambda of lambdas) {
    const file = join(out, `${method}-${lambda}.yaml`);
    await writeFile(file, recipe(method, lambda, method === 'ties' ? ', density: 0.5' : ''));
    const merged = join(out, `${method}-${lambda}`);
    await merge(file, { out: merged });
    const val = await meanAccuracy(merged, 'val');
    console.log(`  ${method} λ=${lambda}: mean validation accuracy ${pct(val)}`);
    if (val > best.val) best = { lambda, val, path: merged };
  }
  console.log(`${method}: λ=${best.lambda} picked on validation, mean test accuracy ${pct(await meanAccuracy(best.path, 'test'))}`);
}
