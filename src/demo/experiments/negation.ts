// Experiment 2, forgetting by negation: NegMerge (the sign-consensus of several fine-tunes on the forget task,
// subtracted) against plain negation of one variant's task vector and of the variants' mean vector. λ is picked on
// validation with the NegMerge paper's rule: the lowest forget-task accuracy among the points whose control accuracy
// is at least 95% of the base's. Test accuracies are reported. Prints nothing; must not import src/cli.

import { grid, tag, type DemoContext, type DemoRecipe, type GridPoint } from './context.js';

/** Control accuracy must stay at or above this fraction of the base's (NegMerge, Kim et al. 2025). */
export const CONTROL_FLOOR = 0.95;
/** One grid for every method (the paper's 21 points, stretched to 3 because the zoo's task vectors are small). */
export const NEGATION_GRID = grid(0, 3, 0.15);

export interface NegationRow {
  name: string;
  /** what is subtracted */
  detail: string;
  /** the picked λ, undefined for the reference models */
  lambda?: number;
  /** the picked λ is the grid's largest: a wider grid might forget more */
  atGridEdge?: boolean;
  /** test accuracy on the forget task and on the control task */
  forget: number;
  control: number;
  /** validation accuracies at the picked point */
  valForget?: number;
  valControl?: number;
}

export interface NegationResult {
  forgetTask: string;
  controlTask: string;
  /** the base's validation control accuracy times CONTROL_FLOOR */
  controlFloor: number;
  rows: NegationRow[];
  grids: Array<{ name: string; points: Array<GridPoint & { valForget: number; valControl: number }>; picked: number }>;
}

/** Lowest forget score among feasible points; ties to the smaller λ (earlier point). */
export function selectForgetting(points: ReadonlyArray<{ valForget: number; feasible: boolean }>): number {
  let best = -1;
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    if (p.feasible && (best < 0 || p.valForget < points[best]!.valForget)) best = i;
  }
  return best;
}

export async function runNegation(ctx: DemoContext, options: { grid?: readonly number[] } = {}): Promise<NegationResult> {
  const spec = ctx.zoo.experiments.negation;
  const lambdas = options.grid ?? NEGATION_GRID;
  const { forgetTask, controlTask } = spec;
  const base = ctx.model(spec.base);
  const controlFloor = CONTROL_FLOOR * (await ctx.accuracy(base, controlTask, 'val'));
  const n = spec.variants.length;

  const methods: Array<{ name: string; detail: string; recipe: (l: number) => DemoRecipe }> = [
    {
      name: 'NegMerge',
      detail: `sign consensus of ${n} variants`,
      recipe: (l) => ({ merge_method: 'negmerge', base_model: spec.base, models: spec.variants.map((model) => ({ model })), parameters: { lambda: l } }),
    },
    {
      name: 'negate one',
      detail: `${spec.single}'s task vector`,
      recipe: (l) => ({ merge_method: 'task_arithmetic', base_model: spec.base, models: [{ model: spec.single, parameters: { weight: -1 } }], parameters: { lambda: l } }),
    },
    {
      name: 'negate mean',
      detail: `mean of the ${n} task vectors`,
      recipe: (l) => ({
        merge_method: 'task_arithmetic',
        base_model: spec.base,
        models: spec.variants.map((model) => ({ model, parameters: { weight: -1 / n } })),
        parameters: { lambda: l },
      }),
    },
  ];

  const rows: NegationRow[] = [
    { name: spec.base, detail: 'nothing (λ 0)', forget: await ctx.accuracy(base, forgetTask, 'test'), control: await ctx.accuracy(base, controlTask, 'test') },
    {
      name: spec.single,
      detail: 'a fine-tune on the forget task',
      forget: await ctx.accuracy(ctx.model(spec.single), forgetTask, 'test'),
      control: await ctx.accuracy(ctx.model(spec.single), controlTask, 'test'),
    },
  ];
  const grids: NegationResult['grids'] = [];
  for (const m of methods) {
    const points: NegationResult['grids'][number]['points'] = [];
    const outs: string[] = [];
    for (const l of lambdas) {
      // λ = 0 is the base itself: evaluate the base rather than an identical merge
      const out = l === 0 ? base : await ctx.merge(`negation/${m.name.replace(/ /g, '-')}-lambda-${tag(l)}`, m.recipe(l));
      outs.push(out);
      const valForget = await ctx.accuracy(out, forgetTask, 'val');
      const valControl = await ctx.accuracy(out, controlTask, 'val');
      points.push({ value: l, score: -valForget, feasible: valControl >= controlFloor, valForget, valControl });
    }
    const picked = selectForgetting(points);
    grids.push({ name: m.name, points, picked });
    const out = outs[picked]!;
    rows.push({
      name: m.name,
      detail: m.detail,
      lambda: lambdas[picked]!,
      atGridEdge: picked === lambdas.length - 1,
      forget: await ctx.accuracy(out, forgetTask, 'test'),
      control: await ctx.accuracy(out, controlTask, 'test'),
      valForget: points[picked]!.valForget,
      valControl: points[picked]!.valControl,
    });
  }
  return { forgetTask, controlTask, controlFloor, rows, grids };
}
