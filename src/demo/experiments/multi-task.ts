// Experiment 1, multi-task merging: the task fine-tunes of the zoo merged by task arithmetic, TIES, DARE-TIES,
// TSV-M, Iso-C, Iso-CTS and model stock. Each method's scale is picked on the validation splits (best mean normalised
// accuracy, i.e. accuracy / the task's own fine-tune's accuracy) from a fixed grid; every row reports test accuracy.
// Prints nothing; must not import src/cli.

import { grid, mean, selectBest, tag, type DemoContext, type DemoRecipe, type GridPoint } from './context.js';

/** The methods, their fixed settings and the grid of their scale parameter (the same for every run). */
export interface MultiTaskMethod {
  /** row label */
  label: string;
  method: string;
  /** the scale parameter searched (`lambda` or `alpha`), absent for methods without one */
  scale?: 'lambda' | 'alpha';
  grid?: number[];
  /** fixed per-model parameters (besides weight 1) and global parameters */
  modelParams?: Record<string, number>;
  params?: Record<string, number | string | boolean>;
  seed?: number;
  /** short description of the fixed settings, for the table */
  settings: string;
}

export const MULTI_TASK_METHODS: readonly MultiTaskMethod[] = [
  { label: 'task arithmetic', method: 'task_arithmetic', scale: 'lambda', grid: grid(0, 1, 0.1), settings: '' },
  // TIES averages the agreeing entries (disjoint mean), so its useful lambda is larger (zoo-lessons)
  { label: 'TIES', method: 'ties', scale: 'lambda', grid: grid(0.5, 3, 0.25), modelParams: { density: 0.5 }, settings: 'density 0.5' },
  {
    label: 'DARE-TIES',
    method: 'dare_ties',
    scale: 'lambda',
    grid: grid(0, 1, 0.1),
    modelParams: { density: 0.5 },
    seed: 7,
    settings: 'density 0.5, seed 7',
  },
  { label: 'TSV-M', method: 'tsv', scale: 'alpha', grid: grid(0.25, 2, 0.25), settings: '' },
  { label: 'Iso-C', method: 'iso_c', scale: 'alpha', grid: grid(0.25, 2, 0.25), settings: '' },
  { label: 'Iso-CTS', method: 'iso_cts', scale: 'alpha', grid: grid(0.25, 2, 0.25), settings: 'common 0.8' },
  { label: 'model stock', method: 'model_stock', settings: 'no scale' },
];

export interface MultiTaskRow {
  /** `base`, a fine-tune's name, or a method label */
  name: string;
  kind: 'base' | 'fine-tune' | 'merge';
  /** the picked scale (`lambda 0.30`), or '' */
  picked: string;
  /** fixed settings of a merge */
  settings: string;
  /** test accuracy per task, in the order of `tasks` */
  test: number[];
  /** mean test accuracy over the tasks */
  mean: number;
  /** mean of test accuracy / the task's fine-tune test accuracy */
  normalized: number;
  /** the validation score the scale was picked by (mean normalised validation accuracy) */
  valScore?: number;
}

export interface MultiTaskResult {
  tasks: string[];
  fineTunes: string[];
  /** cosine similarities of the task vectors (from the zoo manifest) */
  cosines: number[][];
  rows: MultiTaskRow[];
  /** every grid point's validation score, per method label */
  grids: Array<{ label: string; scale: string; points: GridPoint[]; picked: number }>;
}

export interface MultiTaskOptions {
  /** restrict to these method labels (default all) */
  methods?: readonly string[];
}

export async function runMultiTask(ctx: DemoContext, options: MultiTaskOptions = {}): Promise<MultiTaskResult> {
  const spec = ctx.zoo.experiments.multiTask;
  const tasks = [...spec.tasks];
  const fineTunes = [...spec.models];
  const accs = async (weights: string, split: 'val' | 'test'): Promise<number[]> => {
    const out: number[] = [];
    for (const t of tasks) out.push(await ctx.accuracy(weights, t, split));
    return out;
  };
  // each task's own fine-tune is the normaliser (on the split being scored)
  const ftVal: number[] = [];
  const ftTest: number[] = [];
  for (let i = 0; i < tasks.length; i++) {
    ftVal.push(await ctx.accuracy(ctx.model(fineTunes[i]!), tasks[i]!, 'val'));
    ftTest.push(await ctx.accuracy(ctx.model(fineTunes[i]!), tasks[i]!, 'test'));
  }
  const normalized = (a: readonly number[], by: readonly number[]): number => mean(a.map((x, i) => x / by[i]!));
  const row = (name: string, kind: MultiTaskRow['kind'], test: number[], extra: Partial<MultiTaskRow> = {}): MultiTaskRow => ({
    name,
    kind,
    picked: '',
    settings: '',
    test,
    mean: mean(test),
    normalized: normalized(test, ftTest),
    ...extra,
  });

  const rows: MultiTaskRow[] = [row(spec.base, 'base', await accs(ctx.model(spec.base), 'test'))];
  for (const ft of fineTunes) rows.push(row(ft, 'fine-tune', await accs(ctx.model(ft), 'test')));

  const grids: MultiTaskResult['grids'] = [];
  const wanted = options.methods === undefined ? undefined : new Set(options.methods);
  for (const m of MULTI_TASK_METHODS) {
    if (wanted !== undefined && !wanted.has(m.label)) continue;
    const recipe = (scale: number | undefined): DemoRecipe => ({
      merge_method: m.method,
      base_model: spec.base,
      models: fineTunes.map((model) => ({
        model,
        ...(m.method === 'model_stock' ? {} : { parameters: { weight: 1, ...(m.modelParams ?? {}) } }),
      })),
      ...(m.params !== undefined || scale !== undefined ? { parameters: { ...(m.params ?? {}), ...(scale === undefined ? {} : { [m.scale!]: scale }) } } : {}),
      ...(m.seed === undefined ? {} : { seed: m.seed }),
    });
    const name = (scale: number | undefined): string => `multi-task/${m.method}${scale === undefined ? '' : `-${m.scale}-${tag(scale)}`}`;
    if (m.scale === undefined || m.grid === undefined) {
      const out = await ctx.merge(name(undefined), recipe(undefined));
      const val = await accs(out, 'val');
      rows.push(row(m.label, 'merge', await accs(out, 'test'), { settings: m.settings, valScore: normalized(val, ftVal) }));
      continue;
    }
    const points: GridPoint[] = [];
    const outs: string[] = [];
    for (const s of m.grid) {
      const out = await ctx.merge(name(s), recipe(s));
      outs.push(out);
      points.push({ value: s, score: normalized(await accs(out, 'val'), ftVal), feasible: true });
    }
    const picked = selectBest(points);
    grids.push({ label: m.label, scale: m.scale, points, picked });
    rows.push(
      row(m.label, 'merge', await accs(outs[picked]!, 'test'), {
        picked: `${m.scale === 'lambda' ? 'λ' : 'α'} ${m.grid[picked]!.toFixed(2)}`,
        settings: m.settings,
        valScore: points[picked]!.score,
      }),
    );
  }
  return { tasks, fineTunes, cosines: spec.taskVectorCosine.map((r) => [...r]), rows, grids };
}
