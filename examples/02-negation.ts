// Forgetting a task: NegMerge subtracts the sign-consensus of several fine-tunes on the task to forget ('inverted'
// digits); plain negation subtracts one fine-tune's task vector. λ is picked with the NegMerge paper's rule: the
// lowest forget accuracy whose control accuracy ('plain' digits) stays >= 95% of the base's (validation).
// Run: npx tsx examples/02-negation.ts

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { evaluate, merge } from '../src/index.js';
import { openExampleZoo, pct } from './zoo.js';

const { zoo, graph, model, data, out } = await openExampleZoo('02-negation');
const { base, forgetTask, controlTask, variants, single } = zoo.experiments.negation;
const accuracy = async (weights: string, task: string, split: 'val' | 'test') =>
  (await evaluate({ model: graph, weights, data: data(task, split) })).accuracy;

const floor = 0.95 * (await accuracy(model(base), controlTask, 'val'));
const recipes = {
  negmerge: (l: number) => `merge_method: negmerge\nparameters: {lambda: ${l}}\nmodels:\n${variants.map((v) => `  - model: ${model(v)}`).join('\n')}`,
  negate: (l: number) => `merge_method: task_arithmetic\nparameters: {lambda: ${l}}\nmodels:\n  - model: ${model(single)}\n    parameters: {weight: -1}`,
};
console.log(`base: forget ${pct(await accuracy(model(base), forgetTask, 'test'))}, control ${pct(await accuracy(model(base), controlTask, 'test'))}`);
for (const [name, body] of Object.entries(recipes)) {
  let best: { lambda: number; forget: number; path: string } | undefined;
  for (const lambda of [0.5, 1, 1.5, 2, 2.5, 3]) {
    const file = join(out, `${name}-${lambda}.yaml`);
    await writeFile(file, `base_model: ${model(base)}\n${body(lambda)}\ndtype: float32\n`);
    const merged = join(out, `${name}-${lambda}`);
    await merge(file, { out: merged });
    const forget = await accuracy(merged, forgetTask, 'val');
    const control = await accuracy(merged, controlTask, 'val');
    if (control >= floor && (best === undefined || forget < best.forget)) best = { lambda, forget, path: merged };
  }
  if (best === undefined) {
    console.log(`${name}: no λ keeps the control accuracy above ${pct(floor)}`);
    continue;
  }
  const f = await accuracy(best.path, forgetTask, 'test');
  const c = await accuracy(best.path, controlTask, 'test');
  console.log(`${name}: λ=${best.lambda} picked on validation; test forget ${pct(f)}, control ${pct(c)}`);
}
