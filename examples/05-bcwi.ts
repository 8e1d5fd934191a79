// Backward-compatible weight interpolation: moving from an old model to a new one along (1 − α)·old + α·new trades
// accuracy against negative flips (examples the old model got right that the update gets wrong).
// Run: npx tsx examples/05-bcwi.ts

import { evaluate, interpolateModels } from '../src/index.js';
import { openExampleZoo, pct } from './zoo.js';

const { zoo, graph, model, data, out } = await openExampleZoo('05-bcwi');
const { old, new: next, task } = zoo.experiments.bcwi;

// several alphas: one model folder per alpha under `out`
const { outputs } = await interpolateModels({ from: model(old), to: model(next), alphas: [0, 0.25, 0.5, 0.75, 1], out, overwrite: true });
for (const { alpha, path } of outputs) {
  const r = await evaluate({ model: graph, weights: path, data: data(task, 'test'), reference: { model: graph, weights: model(old) } });
  const c = r.reference!.comparison;
  console.log(`α=${alpha.toFixed(2)}  accuracy ${pct(r.accuracy)}  negative flip rate ${pct(c.negativeFlipRate)} (${c.negativeFlips} flips)`);
}
