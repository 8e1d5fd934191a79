// Experiment 6, DaWin vs the best static interpolation: for each task of the zoo's DaWin setting, the static
// interpolation (1 − α)·θ_zero-shot + α·θ_fine-tuned with α picked on validation (the baseline DaWin is compared
// with), and DaWin's dynamic per-sample interpolation (src/eval/dawin.ts, K = 3 Beta components) on the test split.
// The runner is a parameter so tests can stub it. Prints nothing; must not import src/cli.

import { join } from 'node:path';
import { dawin } from '../../eval/dawin.js';
import { interpolateModels } from '../../vectors/interpolate.js';
import { grid, selectBest, type DemoContext, type GridPoint } from './context.js';

export const STATIC_GRID = grid(0, 1, 0.1);

/** Runs DaWin for one (zero-shot, fine-tuned, task) triple and returns its test accuracy. */
export type DawinRunner = (
  ctx: DemoContext,
  setting: { zeroShot: string; fineTuned: string; task: string },
) => Promise<{ accuracy: number; detail?: string }>;

export interface DawinRow {
  task: string;
  fineTuned: string;
  zeroShot: number;
  fineTunedAccuracy: number;
  /** best static interpolation: α picked on validation, test accuracy */
  staticAlpha: number;
  staticAccuracy: number;
  /** DaWin's test accuracy, when a runner was given */
  dawin?: number;
  dawinDetail?: string;
  points: GridPoint[];
}

export interface DawinResult {
  zeroShot: string;
  /** whether DaWin itself ran (false: the static baseline only) */
  dawinAvailable: boolean;
  rows: DawinRow[];
}

/** Beta-mixture components DaWin builds (one interpolated model each). */
export const DAWIN_COMPONENTS = 3;

/** DaWin (src/eval/dawin.ts) on the test split: per-sample coefficients from the endpoints' entropies, K models. */
export const dawinRunner: DawinRunner = async (ctx, s) => {
  const r = await dawin({
    model: ctx.graph,
    from: ctx.model(s.zeroShot),
    to: ctx.model(s.fineTuned),
    data: ctx.data(s.task, 'test'),
    validation: ctx.data(s.task, 'val'),
    k: DAWIN_COMPONENTS,
  });
  return { accuracy: r.accuracy, detail: r.perComponent.map((c) => c.alpha.toFixed(2)).join('/') };
};

export async function runDawin(ctx: DemoContext, options: { runner?: DawinRunner; grid?: readonly number[] } = {}): Promise<DawinResult> {
  const spec = ctx.zoo.experiments.dawin;
  const alphas = [...(options.grid ?? STATIC_GRID)];
  const zeroShot = ctx.model(spec.zeroShot);
  const rows: DawinRow[] = [];
  for (let i = 0; i < spec.tasks.length; i++) {
    const task = spec.tasks[i]!;
    const ft = spec.fineTuned[i]!;
    const res = await interpolateModels({ from: zeroShot, to: ctx.model(ft), alphas, out: join(ctx.out, 'dawin', `static-${ft}`), overwrite: true });
    const points: GridPoint[] = [];
    for (const o of res.outputs) points.push({ value: o.alpha, score: await ctx.accuracy(o.path, task, 'val'), feasible: true });
    const picked = selectBest(points);
    const row: DawinRow = {
      task,
      fineTuned: ft,
      zeroShot: await ctx.accuracy(zeroShot, task, 'test'),
      fineTunedAccuracy: await ctx.accuracy(ctx.model(ft), task, 'test'),
      staticAlpha: alphas[picked]!,
      staticAccuracy: await ctx.accuracy(res.outputs[picked]!.path, task, 'test'),
      points,
    };
    if (options.runner !== undefined) {
      const d = await options.runner(ctx, { zeroShot: spec.zeroShot, fineTuned: ft, task });
      row.dawin = d.accuracy;
      if (d.detail !== undefined) row.dawinDetail = d.detail;
    }
    rows.push(row);
  }
  return { zeroShot: spec.zeroShot, dawinAvailable: options.runner !== undefined, rows };
}
