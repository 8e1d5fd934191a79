// Coefficient search (mergekit-evolve's idea, aTLAS-style anisotropic coefficients without gradients): CMA-ES over
// per-model and optionally per-tensor-group recipe parameters, each candidate merged into a temp folder and scored on
// the eval config's validation datasets, within an evaluation budget; every evaluation is logged (JSONL) and the best
// recipe is written as YAML. Guarantees: the same recipe, data and seed give the same log; temp files are removed on
// every path. No src/cli.

import { mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { cmaesMinimize } from './cmaes.js';
import { loadEvalConfig, onnxScorer, type DatasetScores, type EvalConfig, type EvalReferences, type SweepScorer } from './eval-config.js';
import {
  SELECT_RULES,
  SWEEP_TEMP_PREFIX,
  defaultRule,
  formatTarget,
  mergeText,
  openRecipeEditor,
  parseTarget,
  summarizeScores,
  type ParamSetting,
  type ParamTarget,
  type PointSummary,
  type SelectRule,
} from './sweep.js';

/** Weight of the control-accuracy shortfall in the negation objective. */
export const CONTROL_PENALTY = 10;

export interface SearchOptions {
  recipe: string;
  /** `lambda`, `weight[*]` (one coefficient per model), `weight[1]`, `models[1].weight` */
  params: readonly (string | ParamTarget)[];
  /** tensor-name filters (mergekit substring or `re:`): one coefficient per group for every parameter */
  groups?: readonly string[];
  eval?: string | EvalConfig;
  scorer?: SweepScorer;
  /** what to optimise (default: negation with control datasets, else mean-normalized) */
  objective?: SelectRule;
  /** evaluations, including the starting point */
  budget: number;
  seed?: number;
  /** box for every coefficient (default [0, 1]) */
  bounds?: readonly [number, number];
  /** initial CMA-ES step (default 0.3 x the box width) */
  sigma0?: number;
  popSize?: number;
  /** JSONL file receiving one line per evaluation (written as the search runs) */
  log?: string;
  /** write the best recipe here (YAML; model paths absolute) */
  out?: string;
  threads?: number;
  tmpDir?: string;
  signal?: AbortSignal;
  onEvaluation?: (e: SearchEvaluation) => void;
}

export interface SearchEvaluation extends PointSummary {
  readonly evaluation: number;
  /** -1 for the starting point */
  readonly generation: number;
  readonly coefficients: Record<string, number>;
  readonly scores: DatasetScores;
  /** minimised: -mean normalised accuracy, or mean target accuracy + 10 x control shortfall */
  readonly objective: number;
  readonly seconds: number;
}

export interface SearchResult {
  readonly recipe: string;
  readonly method: string;
  readonly objectiveRule: SelectRule;
  readonly coordinates: readonly string[];
  readonly references: EvalReferences;
  readonly evaluations: readonly SearchEvaluation[];
  /** the evaluation with the lowest objective (earliest on ties) */
  readonly best: SearchEvaluation;
  /** the best recipe's text */
  readonly bestRecipe: string;
  readonly out?: string;
}

interface Coordinate {
  target: ParamTarget;
  group?: string;
  label: string;
}

/** The objective (minimised) of one point's summary. */
export function objectiveOf(s: PointSummary, scores: DatasetScores, rule: SelectRule, datasets: readonly { name: string; role: string }[], refs: EvalReferences, ratio: number): number {
  if (rule === 'mean-normalized') return -s.meanNormalized;
  let shortfall = 0;
  for (const d of datasets) if (d.role === 'control') shortfall += Math.max(0, ratio * refs.base[d.name]! - scores[d.name]!);
  return s.meanTarget + CONTROL_PENALTY * shortfall;
}

/** Run the search. */
export async function search(options: SearchOptions): Promise<SearchResult> {
  if (options.params.length === 0) throw new UsageError('USAGE', 'a search needs at least one --params entry');
  if (options.objective !== undefined && !SELECT_RULES.includes(options.objective)) {
    throw new UsageError('USAGE', `objective must be one of ${SELECT_RULES.join(', ')}, got '${String(options.objective)}'`);
  }
  if (!Number.isSafeInteger(options.budget) || options.budget < 1) throw new UsageError('USAGE', `budget must be a positive integer, got ${options.budget}`);
  const [lo, hi] = options.bounds ?? [0, 1];
  if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi > lo)) throw new UsageError('USAGE', `bounds must be two finite numbers lo < hi, got ${lo}:${hi}`);
  const editor = await openRecipeEditor(options.recipe);
  const coords: Coordinate[] = [];
  for (const p of options.params) {
    const t = typeof p === 'string' ? parseTarget(p, 'params') : p;
    editor.check(t, 'params');
    const expanded: ParamTarget[] = t.kind === 'model' && t.index === '*' ? Array.from({ length: editor.modelCount }, (_, i) => ({ kind: 'model', index: i, name: t.name })) : [t];
    for (const e of expanded) {
      if (options.groups !== undefined && options.groups.length > 0) for (const g of options.groups) coords.push({ target: e, group: g, label: `${formatTarget(e)}@${g}` });
      else coords.push({ target: e, label: formatTarget(e) });
    }
  }
  const labels = coords.map((c) => c.label);
  if (new Set(labels).size !== labels.length) throw new UsageError('USAGE', `--params names a coefficient twice (${labels.join(', ')})`);
  const clamp = (v: number): number => Math.min(hi, Math.max(lo, v));
  const x0 = coords.map((c) => clamp(editor.current(c.target) ?? (lo + hi) / 2));
  const settingsOf = (x: readonly number[]): Array<{ target: ParamTarget; value: ParamSetting }> => {
    const byTarget = new Map<string, { target: ParamTarget; groups: { filter: string; value: number }[]; scalar?: number }>();
    coords.forEach((c, i) => {
      const key = formatTarget(c.target);
      const e = byTarget.get(key) ?? { target: c.target, groups: [] };
      if (c.group !== undefined) e.groups.push({ filter: c.group, value: x[i]! });
      else e.scalar = x[i]!;
      byTarget.set(key, e);
    });
    return [...byTarget.values()].map((e) => ({
      target: e.target,
      value: e.scalar ?? { groups: e.groups, fallback: clamp(editor.current(e.target) ?? (lo + hi) / 2) },
    }));
  };
  // the starting recipe must be valid before anything runs
  editor.render(settingsOf(x0));

  let scorer: SweepScorer;
  let owned = false;
  if (options.scorer !== undefined) scorer = options.scorer;
  else {
    if (options.eval === undefined) throw new UsageError('USAGE', 'give an eval config (eval) or a scorer');
    const config = typeof options.eval === 'string' ? await loadEvalConfig(options.eval) : options.eval;
    scorer = onnxScorer(config, {
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(options.tmpDir !== undefined ? { tmpDir: options.tmpDir } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    owned = true;
  }
  const rule = options.objective ?? defaultRule(scorer.datasets);
  const tmp = await mkdtemp(join(options.tmpDir ?? tmpdir(), SWEEP_TEMP_PREFIX));
  let log: FileHandle | undefined;
  try {
    if (options.log !== undefined) log = await open(options.log, 'w');
    const references = await scorer.references();
    const evaluations: SearchEvaluation[] = [];
    const evaluateAt = async (x: readonly number[], generation: number): Promise<number> => {
      const t0 = performance.now();
      const index = evaluations.length;
      const coefficients: Record<string, number> = {};
      labels.forEach((l, i) => (coefficients[l] = x[i]!));
      const dir = join(tmp, `eval-${index}`);
      const out = await mergeText(editor.render(settingsOf(x)), dir, {
        label: `evaluation ${index}`,
        ...(options.seed !== undefined ? { seed: options.seed } : {}),
        ...(options.threads !== undefined ? { threads: options.threads } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
      const scores = await scorer.score(out, { index, values: coefficients });
      await rm(dir, { recursive: true, force: true });
      const summary = summarizeScores(scores, scorer.datasets, references, scorer.controlRatio);
      const objective = objectiveOf(summary, scores, rule, scorer.datasets, references, scorer.controlRatio);
      const e: SearchEvaluation = { evaluation: index, generation, coefficients, scores, ...summary, objective, seconds: (performance.now() - t0) / 1000 };
      evaluations.push(e);
      if (log !== undefined) await log.write(JSON.stringify({ ...e, seconds: Number(e.seconds.toFixed(3)) }) + '\n');
      options.onEvaluation?.(e);
      return objective;
    };
    await evaluateAt(x0, -1);
    if (options.budget > 1) {
      await cmaesMinimize((x, info) => evaluateAt(x, info.generation), {
        x0,
        sigma0: options.sigma0 ?? 0.3 * (hi - lo),
        lower: x0.map(() => lo),
        upper: x0.map(() => hi),
        seed: options.seed ?? 0,
        budget: options.budget - 1,
        ...(options.popSize !== undefined ? { popSize: options.popSize } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      });
    }
    let best = evaluations[0]!;
    for (const e of evaluations) if (e.objective < best.objective) best = e;
    const bestRecipe = editor.render(settingsOf(labels.map((l) => best.coefficients[l]!)));
    if (options.out !== undefined) await writeFile(options.out, bestRecipe);
    return {
      recipe: options.recipe,
      method: editor.method.name,
      objectiveRule: rule,
      coordinates: labels,
      references,
      evaluations,
      best,
      bestRecipe,
      ...(options.out !== undefined ? { out: options.out } : {}),
    };
  } finally {
    await log?.close();
    await rm(tmp, { recursive: true, force: true });
    if (owned) await scorer.close();
  }
}
