// Experiment 5, backward-compatible weight interpolation (BCWI): (1 − α)·θ_old + α·θ_new along a grid of α, each
// point's test accuracy and negative flip rate against the old model (the fraction of examples the old model got
// right that the update gets wrong). No selection: the whole trade-off curve is reported. Prints nothing; must not
// import src/cli.

import { join } from 'node:path';
import { interpolateModels } from '../../vectors/interpolate.js';
import { grid, type DemoContext } from './context.js';

export const BCWI_GRID = grid(0, 1, 0.1);

export interface BcwiRow {
  /** α: 0 = old, 1 = new */
  alpha: number;
  accuracy: number;
  negativeFlipRate: number;
  negativeFlips: number;
  positiveFlips: number;
}

export interface BcwiResult {
  old: string;
  new: string;
  task: string;
  count: number;
  rows: BcwiRow[];
}

export async function runBcwi(ctx: DemoContext, options: { grid?: readonly number[] } = {}): Promise<BcwiResult> {
  const spec = ctx.zoo.experiments.bcwi;
  const alphas = [...(options.grid ?? BCWI_GRID)];
  const old = ctx.model(spec.old);
  const res = await interpolateModels({ from: old, to: ctx.model(spec.new), alphas, out: join(ctx.out, 'bcwi'), overwrite: true });
  const rows: BcwiRow[] = [];
  let count = 0;
  for (const o of res.outputs) {
    const r = await ctx.evaluate(o.path, spec.task, 'test', old);
    const c = r.reference!.comparison;
    count = c.count;
    rows.push({ alpha: o.alpha, accuracy: r.accuracy, negativeFlipRate: c.negativeFlipRate, negativeFlips: c.negativeFlips, positiveFlips: c.positiveFlips });
  }
  return { old: spec.old, new: spec.new, task: spec.task, count, rows };
}
