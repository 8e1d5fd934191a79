// Experiment 3, time vectors (Nylund et al.): for the middle periods of the zoo's drift series, the model
// base + α·τ_first + (1 − α)·τ_last interpolating the first and last periods' time vectors, with α picked per period
// on that period's validation split, against the two endpoint models (and, as a ceiling, the period's own fine-tune).
// All α points are written in one pass (applyVectorPath). Prints nothing; must not import src/cli.

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { applyVectorPath } from '../../vectors/apply.js';
import { extractVector } from '../../vectors/extract.js';
import { grid, selectBest, tag, type DemoContext, type GridPoint } from './context.js';

export const TIME_GRID = grid(0, 1, 0.1);

export interface TimeRow {
  period: string;
  degrees: number;
  /** test accuracy on this period */
  base: number;
  first: number;
  last: number;
  /** the interpolation at the α picked on this period's validation split */
  alpha: number;
  interpolated: number;
  /** the model fine-tuned on this period (not available in the setting the method is for: a ceiling) */
  own: number;
  points: GridPoint[];
}

export interface TimeResult {
  first: string;
  last: string;
  rows: TimeRow[];
}

export async function runTime(ctx: DemoContext, options: { grid?: readonly number[] } = {}): Promise<TimeResult> {
  const spec = ctx.zoo.experiments.time;
  const alphas = options.grid ?? TIME_GRID;
  const periods = spec.periods;
  if (periods.length < 3) return { first: periods[0]?.label ?? '', last: periods.at(-1)?.label ?? '', rows: [] };
  const first = periods[0]!;
  const last = periods.at(-1)!;
  const dir = join(ctx.out, 'time');
  await mkdir(dir, { recursive: true });
  const base = ctx.model(spec.base);
  const vector = async (p: typeof first): Promise<string> => {
    const out = join(dir, `tau-${p.label}.safetensors`);
    await extractVector({ base, finetuned: ctx.model(p.model), out, kind: 'time', label: p.label, overwrite: true });
    return out;
  };
  const tauFirst = await vector(first);
  const tauLast = await vector(last);
  const points = alphas.map((a) => ({ out: join(dir, `alpha-${tag(a)}.safetensors`), scales: [a, 1 - a] }));
  await applyVectorPath({ base, vectors: [tauFirst, tauLast], points, overwrite: true });

  const rows: TimeRow[] = [];
  for (const p of periods.slice(1, -1)) {
    const grid: GridPoint[] = [];
    for (let i = 0; i < alphas.length; i++) grid.push({ value: alphas[i]!, score: await ctx.accuracy(points[i]!.out, p.task, 'val'), feasible: true });
    const picked = selectBest(grid);
    rows.push({
      period: p.label,
      degrees: p.degrees,
      base: await ctx.accuracy(base, p.task, 'test'),
      first: await ctx.accuracy(ctx.model(first.model), p.task, 'test'),
      last: await ctx.accuracy(ctx.model(last.model), p.task, 'test'),
      alpha: alphas[picked]!,
      interpolated: await ctx.accuracy(points[picked]!.out, p.task, 'test'),
      own: await ctx.accuracy(ctx.model(p.model), p.task, 'test'),
      points: grid,
    });
  }
  return { first: first.label, last: last.label, rows };
}
