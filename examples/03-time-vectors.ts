// Time vectors: the zoo's drift series rotates digits a little more each period. Interpolating the first and last
// periods' time vectors, base + α·τ_first + (1 − α)·τ_last, gives a model for the periods in between.
// Run: npx tsx examples/03-time-vectors.ts

import { join } from 'node:path';
import { applyVectorPath, evaluate, extractVector } from '../src/index.js';
import { openExampleZoo, pct } from './zoo.js';

const { zoo, graph, model, data, out } = await openExampleZoo('03-time-vectors');
const { base, periods } = zoo.experiments.time;
const first = periods[0]!;
const last = periods.at(-1)!;

// a time vector is the fine-tune minus the base, stored as a safetensors file
for (const p of [first, last]) {
  await extractVector({ base: model(base), finetuned: model(p.model), out: join(out, `tau-${p.label}.safetensors`), kind: 'time', label: p.label });
}
// every α is written in one pass over the inputs
const alphas = [0, 0.25, 0.5, 0.75, 1];
const points = alphas.map((a) => ({ out: join(out, `alpha-${a}.safetensors`), scales: [a, 1 - a] }));
await applyVectorPath({ base: model(base), vectors: [join(out, `tau-${first.label}.safetensors`), join(out, `tau-${last.label}.safetensors`)], points });

for (const p of periods.slice(1, -1)) {
  const acc = async (weights: string, split: 'val' | 'test') => (await evaluate({ model: graph, weights, data: data(p.task, split) })).accuracy;
  let best = 0;
  let bestVal = -1;
  for (let i = 0; i < alphas.length; i++) {
    const val = await acc(points[i]!.out, 'val');
    if (val > bestVal) [best, bestVal] = [i, val];
  }
  console.log(
    `${p.label} (${p.degrees}°): ${first.label} model ${pct(await acc(model(first.model), 'test'))}, ${last.label} model ` +
      `${pct(await acc(model(last.model), 'test'))}, interpolated α=${alphas[best]} ${pct(await acc(points[best]!.out, 'test'))}`,
  );
}
