// `weightkit sweep`, `weightkit search` and `weightkit dawin`: parameter grids with the papers' selection rules,
// CMA-ES coefficient search, and DaWin dynamic interpolation, all scored through ONNX Runtime. Thin: parse, call the
// library in src/eval, render a table or JSON; Ctrl-C stops between evaluations and removes the temp files.

import { writeFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import type { DawinResult } from '../../eval/dawin.js';
import type { SearchResult } from '../../eval/search.js';
import { SELECT_RULES, type SelectRule } from '../../eval/select-rules.js';
import type { SweepResult } from '../../eval/sweep.js';
import { parseGrid } from '../../vectors/grid.js';
import type { CommandContext } from '../main.js';
import { interruptible } from '../progress.js';
import { table } from '../render.js';

const pct = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '-' : `${(v * 100).toFixed(2)}%`);

function positiveInt(v: unknown, option: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError('USAGE', `--${option} must be a positive integer, got '${String(v)}'`);
  return n;
}

function integer(v: unknown, option: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n)) throw new UsageError('USAGE', `--${option} must be an integer, got '${String(v)}'`);
  return n;
}

function list(v: unknown): string[] {
  return v === undefined ? [] : (Array.isArray(v) ? v : [v]).map(String);
}

export function renderSweep(r: SweepResult): string {
  const tasks = r.datasets.filter((d) => d.role === 'task');
  const head = ['#', ...r.axes, ...r.datasets.map((d) => `${d.name}${d.role === 'control' ? ' (ctl)' : ''}`), r.select === 'negation' ? 'mean target' : 'mean norm.', ...(r.select === 'negation' ? ['control ok'] : []), ''];
  const rows = r.points.map((p, i) => [
    String(p.index),
    ...r.axes.map((a) => String(p.values[a])),
    ...r.datasets.map((d) => pct(p.scores[d.name])),
    pct(r.select === 'negation' ? p.meanTarget : p.meanNormalized),
    ...(r.select === 'negation' ? [p.controlOk ? 'yes' : 'no'] : []),
    r.best === i ? '<- best' : '',
  ]);
  let s = table([head, ...rows], [true, ...r.axes.map(() => true), ...r.datasets.map(() => true), true, ...(r.select === 'negation' ? [false] : []), false]);
  s += '\nreferences: ' + r.datasets.map((d) => `${d.name} base ${pct(r.references.base[d.name])}${r.references.finetuned[d.name] !== undefined ? `, fine-tuned ${pct(r.references.finetuned[d.name])}` : ''}`).join('; ') + '\n';
  if (r.best === undefined) s += `no point qualifies (${r.select}: control accuracy >= ${r.controlRatio} x the base's)\n`;
  else {
    const b = r.points[r.best]!;
    const what = r.select === 'negation' ? `lowest mean target accuracy ${pct(b.meanTarget)} with control >= ${r.controlRatio} x base` : `mean normalised accuracy ${pct(b.meanNormalized)} over ${tasks.length} task(s)`;
    s += `best: ${r.axes.map((a) => `${a}=${b.values[a]}`).join(' ')} (${what})\n`;
  }
  return s;
}

function selectOption(v: unknown, option: string): SelectRule | undefined {
  if (v === undefined) return undefined;
  const s = String(v);
  if (!SELECT_RULES.includes(s as SelectRule)) throw new UsageError('USAGE', `--${option} must be one of ${SELECT_RULES.join(', ')}, got '${s}'`);
  return s as SelectRule;
}

export function sweepCommands(y: Argv, ctx: CommandContext): Argv {
  return y
    .command(
      'sweep <recipe>',
      'merge and evaluate a recipe over a grid of parameter values; select a point by the papers\' rules',
      (b) =>
        b
          .positional('recipe', { type: 'string', demandOption: true, describe: 'the recipe (its last document is varied)' })
          .option('vary', { type: 'string', array: true, demandOption: true, describe: 'name=grid: lambda=0:1:0.1 (top-level), weight[*]=0.5,1 (every model), weight[1]=... or models[1].weight=... (one model, 0-based)' })
          .option('eval', { type: 'string', demandOption: true, describe: 'eval.yaml: the ONNX graph and the task/control datasets (docs/eval.md)' })
          .option('select', { type: 'string', describe: `selection rule: ${SELECT_RULES.join(' | ')} (default: negation when the eval config has control datasets)` })
          .option('csv', { type: 'string', describe: 'write every point as CSV here' })
          .option('seed', { type: 'number', describe: 'merge seed (random methods)' })
          .option('threads', { type: 'number', describe: 'merge and ONNX Runtime threads' })
          .option('json', { type: 'boolean', default: false, describe: 'print the result (and errors) as JSON' })
          .option('quiet', { type: 'boolean', default: false, describe: 'no per-point progress lines' })
          .example('weightkit sweep ta.yaml --vary lambda=0:1:0.05 --eval eval.yaml --csv ta.csv', 'task arithmetic lambda on 21 points'),
      async (argv) => {
        const seed = integer(argv.seed, 'seed');
        const threads = positiveInt(argv.threads, 'threads');
        const select = selectOption(argv.select, 'select');
        const irq = interruptible();
        let r: SweepResult;
        let sweeps: typeof import('../../eval/sweep.js');
        try {
          // the evaluation stack is loaded by the commands that use it
          sweeps = await import('../../eval/sweep.js');
          r = await sweeps.sweep({
            recipe: String(argv.recipe),
            vary: list(argv.vary),
            eval: String(argv.eval),
            signal: irq.signal,
            ...(select !== undefined ? { select } : {}),
            ...(seed !== undefined ? { seed } : {}),
            ...(threads !== undefined ? { threads } : {}),
            onPoint: (p, done, total) => {
              if (!argv.quiet && !argv.json) ctx.io.stderr(`sweep ${done}/${total}: ${Object.entries(p.values).map(([k, v]) => `${k}=${v}`).join(' ')} (${p.seconds.toFixed(2)}s)\n`);
            },
          });
        } finally {
          irq.dispose();
        }
        if (argv.csv !== undefined) await writeFile(String(argv.csv), sweeps.sweepCsv(r));
        if (argv.json) ctx.io.stdout(JSON.stringify({ ...r, bestPoint: r.best === undefined ? null : r.points[r.best] }, null, 2) + '\n');
        else ctx.io.stdout(renderSweep(r));
      },
    )
    .command(
      'search <recipe>',
      'CMA-ES over recipe coefficients (per model, optionally per tensor group) against the eval config\'s validation objective',
      (b) =>
        b
          .positional('recipe', { type: 'string', demandOption: true, describe: 'the recipe (its last document is searched)' })
          .option('params', { type: 'string', array: true, demandOption: true, describe: 'coefficients: weight[*] (one per model), weight[1], lambda' })
          .option('groups', { type: 'string', describe: 'comma list of tensor-name filters: one coefficient per group (aTLAS-style), e.g. layers.0,layers.1' })
          .option('eval', { type: 'string', demandOption: true, describe: 'eval.yaml (validation datasets)' })
          .option('budget', { type: 'number', demandOption: true, describe: 'number of evaluations (merge + evaluate), including the starting point' })
          .option('seed', { type: 'number', default: 0, describe: 'CMA-ES and merge seed' })
          .option('bounds', { type: 'string', default: '0:1', describe: 'lo:hi box of every coefficient' })
          .option('sigma', { type: 'number', describe: 'initial step (default 0.3 x the box width)' })
          .option('population', { type: 'number', describe: 'CMA-ES population (default 4 + 3 ln n)' })
          .option('objective', { type: 'string', describe: `${SELECT_RULES.join(' | ')} (default: negation with control datasets)` })
          .option('log', { type: 'string', describe: 'JSONL file: one line per evaluation' })
          .option('out', { type: 'string', demandOption: true, describe: 'write the best recipe here (YAML)' })
          .option('threads', { type: 'number', describe: 'merge and ONNX Runtime threads' })
          .option('json', { type: 'boolean', default: false, describe: 'print the result (and errors) as JSON' })
          .option('quiet', { type: 'boolean', default: false, describe: 'no per-evaluation lines' })
          .example('weightkit search ta.yaml --params weight[*] --eval val.yaml --budget 60 --seed 1 --log s.jsonl --out best.yaml', 'per-model weights'),
      async (argv) => {
        const budget = positiveInt(argv.budget, 'budget')!;
        const seed = integer(argv.seed, 'seed');
        const threads = positiveInt(argv.threads, 'threads');
        const popSize = positiveInt(argv.population, 'population');
        const objective = selectOption(argv.objective, 'objective');
        const bm = /^\s*(-?[\d.eE+-]+)\s*:\s*(-?[\d.eE+-]+)\s*$/.exec(String(argv.bounds));
        if (bm === null) throw new UsageError('USAGE', `--bounds expects lo:hi, got '${String(argv.bounds)}'`);
        const bounds = [Number(bm[1]), Number(bm[2])] as const;
        const groups = argv.groups === undefined ? undefined : String(argv.groups).split(',').map((s) => s.trim()).filter((s) => s !== '');
        const irq = interruptible();
        let r: SearchResult;
        try {
          const { search } = await import('../../eval/search.js');
          r = await search({
            recipe: String(argv.recipe),
            params: list(argv.params),
            eval: String(argv.eval),
            budget,
            bounds,
            out: String(argv.out),
            signal: irq.signal,
            ...(groups !== undefined ? { groups } : {}),
            ...(seed !== undefined ? { seed } : {}),
            ...(threads !== undefined ? { threads } : {}),
            ...(popSize !== undefined ? { popSize } : {}),
            ...(argv.sigma !== undefined ? { sigma0: Number(argv.sigma) } : {}),
            ...(objective !== undefined ? { objective } : {}),
            ...(argv.log !== undefined ? { log: String(argv.log) } : {}),
            onEvaluation: (e) => {
              if (!argv.quiet && !argv.json) ctx.io.stderr(`search ${e.evaluation + 1}/${budget}: objective ${e.objective.toFixed(4)}\n`);
            },
          });
        } finally {
          irq.dispose();
        }
        if (argv.json) ctx.io.stdout(JSON.stringify({ ...r, bestRecipe: undefined }, null, 2) + '\n');
        else {
          const b = r.best;
          let s = table([['coefficient', 'best'], ...r.coordinates.map((c) => [c, String(Number(b.coefficients[c]!.toFixed(6)))])], [false, true]);
          s += `\nbest of ${r.evaluations.length} evaluations: #${b.evaluation}, objective ${b.objective.toFixed(4)} (${r.objectiveRule}); ` + Object.entries(b.scores).map(([k, v]) => `${k} ${pct(v)}`).join(', ') + '\n';
          s += `start: objective ${r.evaluations[0]!.objective.toFixed(4)}\nbest recipe -> ${r.out}\n`;
          ctx.io.stdout(s);
        }
      },
    )
    .command(
      'dawin',
      'DaWin: per-sample entropy-based interpolation between two models (K Beta-mixture components), vs the best static interpolation',
      (b) =>
        b
          .option('model', { type: 'string', demandOption: true, describe: 'the ONNX graph' })
          .option('from', { type: 'string', demandOption: true, describe: 'coefficient-0 endpoint (zero-shot / base / old)' })
          .option('to', { type: 'string', demandOption: true, describe: 'coefficient-1 endpoint (fine-tuned / new)' })
          .option('data', { type: 'string', demandOption: true, describe: 'test dataset' })
          .option('validation', { type: 'string', describe: 'dataset on which the static coefficient is chosen (default: --data)' })
          .option('k', { type: 'number', default: 3, describe: 'Beta-mixture components (merged models built)' })
          .option('alphas', { type: 'string', default: '0:1:0.1', describe: 'static coefficients tried' })
          .option('t-from', { type: 'number', describe: 'entropy temperature of --from (default 1)' })
          .option('t-to', { type: 'number', describe: 'entropy temperature of --to (default 1)' })
          .option('offset-adjustment', { type: 'boolean', default: true, describe: 'the paper\'s offset adjustment (--no-offset-adjustment disables it)' })
          .option('seed', { type: 'number', default: 0, describe: 'mixture initialisation seed' })
          .option('threads', { type: 'number', describe: 'ONNX Runtime threads' })
          .option('json', { type: 'boolean', default: false, describe: 'print the result (and errors) as JSON' }),
      async (argv) => {
        const k = positiveInt(argv.k, 'k')!;
        const seed = integer(argv.seed, 'seed');
        const threads = positiveInt(argv.threads, 'threads');
        const irq = interruptible();
        let r: DawinResult;
        try {
          const { dawin } = await import('../../eval/dawin.js');
          r = await dawin({
            model: String(argv.model),
            from: String(argv.from),
            to: String(argv.to),
            data: String(argv.data),
            k,
            alphas: parseGrid(String(argv.alphas), 'alphas'),
            offsetAdjustment: argv['offset-adjustment'] !== false,
            temperatures: { ...(argv['t-from'] !== undefined ? { from: Number(argv['t-from']) } : {}), ...(argv['t-to'] !== undefined ? { to: Number(argv['t-to']) } : {}) },
            signal: irq.signal,
            ...(argv.validation !== undefined ? { validation: String(argv.validation) } : {}),
            ...(seed !== undefined ? { seed } : {}),
            ...(threads !== undefined ? { threads } : {}),
          });
        } finally {
          irq.dispose();
        }
        if (argv.json) {
          const { coefficients, assignments, ...rest } = r;
          ctx.io.stdout(JSON.stringify({ ...rest, coefficientMean: coefficients.reduce((a, v) => a + v, 0) / Math.max(1, coefficients.length) }, null, 2) + '\n');
        } else {
          let s = table(
            [
              ['component', 'alpha', 'weight', 'samples', 'accuracy'],
              ...r.perComponent.map((c) => [String(c.component), c.alpha.toFixed(4), c.weight.toFixed(3), String(c.count), pct(c.accuracy)]),
            ],
            [true, true, true, true, true],
          );
          s += '\n' + table(
            [
              ['from', pct(r.endpoints.from)],
              ['to', pct(r.endpoints.to)],
              [`static best (alpha ${r.staticBest.alpha}, chosen on ${r.staticBest.selectedOn})`, pct(r.staticBest.accuracy)],
              [`DaWin (K=${r.k})`, pct(r.accuracy)],
            ],
            [false, true],
          );
          ctx.io.stdout(s);
        }
      },
    );
}
