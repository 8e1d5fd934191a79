// Parameter sweeps: a grid over a recipe's parameters (`--vary lambda=0:1:0.1`), each point merged into a private
// temp folder and scored on every dataset of an eval config, then the paper's selection rule (task arithmetic: best
// mean normalised accuracy; negation: lowest target accuracy among points keeping control >= 95% of the base's).
// Guarantees: points run in grid order (first --vary outermost); the temp folder is removed on success, error and
// interrupt; the same inputs and seed give the same table. No src/cli.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { makeDirs } from '../io/file.js';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { isMap, isScalar, isSeq, parseAllDocuments, type Document, type Node as YamlNode } from 'yaml';
import { RecipeProblems, UsageError } from '../errors.js';
import type { MergeMethod } from '../merge/types.js';
import { loadRecipe } from '../plan/merge.js';
import { readRecipeText } from '../recipe/load.js';
import type { ParamSpec } from '../recipe/spec.js';
import { parseGrid } from '../vectors/grid.js';
import { loadEvalConfig, onnxScorer, type DatasetScores, type EvalConfig, type EvalReferences, type SweepScorer } from './eval-config.js';
import { mergeWithOrt } from './merge-with-ort.js';
import { SELECT_RULES, type SelectRule } from './select-rules.js';

/** Prefix of the temp folders of sweeps and searches. */
export const SWEEP_TEMP_PREFIX = 'weightkit-sweep-';

// ---------------------------------------------------------------------------------------------------------------
// parameter targets and recipe editing (shared with search.ts)

/** Where a varied parameter goes in the recipe's last document. */
export type ParamTarget =
  | { readonly kind: 'global'; readonly name: string }
  | { readonly kind: 'model'; readonly index: number | '*'; readonly name: string };

const TARGET_RE = /^(?:models\[(\d+|\*)\]\.(?:parameters\.)?([A-Za-z_][\w]*)|([A-Za-z_][\w]*)\[(\d+|\*)\]|([A-Za-z_][\w]*))$/;

/** Parse `lambda`, `weight[1]`, `weight[*]`, `models[1].weight` or `models[1].parameters.weight`. */
export function parseTarget(text: string, option: string): ParamTarget {
  const m = TARGET_RE.exec(text.trim());
  if (m === null) {
    throw new UsageError('USAGE', `--${option}: '${text}' is not a parameter (write name, name[i], name[*] or models[i].name)`);
  }
  if (m[5] !== undefined) return { kind: 'global', name: m[5] };
  const idx = m[1] ?? m[4]!;
  return { kind: 'model', index: idx === '*' ? '*' : Number(idx), name: m[2] ?? m[3]! };
}

export function formatTarget(t: ParamTarget): string {
  return t.kind === 'global' ? t.name : `${t.name}[${t.index}]`;
}

/** One setting of a parameter: a scalar, or one value per tensor-name group (mergekit filters) plus a fallback. */
export type ParamSetting = number | { readonly groups: readonly { readonly filter: string; readonly value: number }[]; readonly fallback: number };

/**
 * A recipe whose last document can be rewritten with new parameter values; model paths are made absolute so the
 * rewritten text can live in any folder. Built by `openRecipeEditor`, which validates the recipe first.
 */
export interface RecipeEditor {
  readonly file: string;
  readonly method: MergeMethod;
  /** Number of `models:` entries of the last document (0 for a slices recipe). */
  readonly modelCount: number;
  /** Check a target against the method's declaration; returns its spec. */
  check(target: ParamTarget, option: string): ParamSpec;
  /** The value the recipe sets now (a scalar number), if any. */
  current(target: ParamTarget): number | undefined;
  /** The recipe text with these settings applied (model paths absolute). */
  render(settings: ReadonlyArray<{ target: ParamTarget; value: ParamSetting }>): string;
}

const PATH_KEYS = new Set(['base_model', 'model', 'vector']);

function absolutizePaths(doc: Document, dir: string, stageNames: ReadonlySet<string>): void {
  const fix = (v: string): string => {
    if (stageNames.has(v) || isAbsolute(v)) return v;
    const whole = resolve(dir, v);
    if (existsSync(whole)) return whole;
    if (v.includes('+')) return v.split('+').map((p) => (isAbsolute(p) || !existsSync(resolve(dir, p)) ? p : resolve(dir, p))).join('+');
    return v;
  };
  const walk = (node: unknown): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '';
        if ((PATH_KEYS.has(key) || key === 'tokenizer_source') && isScalar(pair.value) && typeof pair.value.value === 'string') {
          const v = pair.value.value;
          if (key !== 'tokenizer_source' || (v !== 'base' && v !== 'union')) pair.value.value = fix(v);
        } else walk(pair.value);
      }
    } else if (isSeq(node)) for (const it of node.items) walk(it);
  };
  walk(doc.contents);
}

function settingNode(doc: Document, value: ParamSetting): unknown {
  if (typeof value === 'number') return value;
  return doc.createNode([...value.groups.map((g) => ({ filter: g.filter, value: g.value })), { value: value.fallback }]);
}

/** Load, validate and prepare a recipe for rewriting (RecipeProblems with line:col when it is invalid). */
export async function openRecipeEditor(recipePath: string): Promise<RecipeEditor> {
  const { stages } = await loadRecipe(recipePath);
  const text = await readRecipeText(recipePath);
  const docs = parseAllDocuments(text) as Document.Parsed[];
  const stageNames = new Set(stages.map((s) => s.doc.name?.value).filter((n): n is string => n !== undefined));
  const dir = dirname(resolve(recipePath));
  for (const d of docs) absolutizePaths(d, dir, stageNames);
  const lastIndex = docs.length - 1;
  const lastStage = stages.find((s) => s.doc.index === lastIndex) ?? stages[stages.length - 1]!;
  const method = lastStage.method;
  const last = docs[lastIndex]!;
  const models = last.get('models');
  const modelCount = isSeq(models) ? models.items.length : 0;
  const modelSets = (i: number, name: string): boolean => last.hasIn(['models', i, 'parameters', name]);
  const editor: RecipeEditor = {
    file: recipePath,
    method,
    modelCount,
    check(target, option) {
      const g = method.params.find((p) => p.name === target.name);
      const m = method.modelParams.find((p) => p.name === target.name);
      const known = [...method.params, ...method.modelParams].map((p) => p.name);
      if (g === undefined && m === undefined) {
        throw new UsageError('USAGE', `--${option}: method '${method.name}' has no parameter '${target.name}' (it has ${known.join(', ') || 'none'})`);
      }
      const spec = (g ?? m)!;
      if (spec.type !== 'number') throw new UsageError('USAGE', `--${option}: '${target.name}' is a ${spec.type} parameter; only numbers can be varied`);
      if (target.kind === 'model') {
        if (m === undefined) throw new UsageError('USAGE', `--${option}: '${target.name}' is a global parameter of '${method.name}'; vary it as '${target.name}'`);
        if (modelCount === 0) throw new UsageError('USAGE', `--${option}: per-model parameters need a recipe with 'models:' (this one has none)`);
        if (target.index !== '*' && target.index >= modelCount) {
          throw new UsageError('USAGE', `--${option}: model index ${target.index} is out of range (the recipe has ${modelCount} models, 0-based)`);
        }
      } else if (g === undefined) {
        const own = Array.from({ length: modelCount }, (_, i) => i).filter((i) => modelSets(i, target.name));
        if (own.length > 0) {
          throw new UsageError('USAGE', `--${option}: models[${own.join(', ')}] set '${target.name}' themselves, which overrides the top level; vary '${target.name}[*]' instead`);
        }
      }
      return spec;
    },
    current(target) {
      const path = target.kind === 'global' ? ['parameters', target.name] : ['models', target.index === '*' ? 0 : target.index, 'parameters', target.name];
      const v = last.getIn(path);
      if (typeof v === 'number') return v;
      if (target.kind === 'model') {
        const t = last.getIn(['parameters', target.name]);
        if (typeof t === 'number') return t;
      }
      return undefined;
    },
    render(settings) {
      const copy = last.clone();
      for (const { target, value } of settings) {
        if (target.kind === 'global') copy.setIn(['parameters', target.name], settingNode(copy, value));
        else {
          const idx = target.index === '*' ? Array.from({ length: modelCount }, (_, i) => i) : [target.index];
          for (const i of idx) copy.setIn(['models', i, 'parameters', target.name], settingNode(copy, value));
        }
      }
      const parts = docs.map((d, i) => (i === lastIndex ? copy : d).toString());
      return parts.map((p, i) => (i > 0 && !p.startsWith('---') ? `---\n${p}` : p)).join('');
    },
  };
  return editor;
}

/** Merge a rewritten recipe text into `dir/out` (writing `dir/recipe.yaml`); returns the output folder. */
export async function mergeText(text: string, dir: string, options: { seed?: number; threads?: number; signal?: AbortSignal; label: string }): Promise<string> {
  await makeDirs(dir);
  const recipe = join(dir, 'recipe.yaml');
  await writeFile(recipe, text);
  try {
    await loadRecipe(recipe);
  } catch (e) {
    if (e instanceof RecipeProblems) {
      throw new UsageError('USAGE', `${options.label}: the recipe is invalid with these values: ${e.problems.map((p) => `${p.where.path ?? ''}: ${p.message}`).join('; ')}`, { cause: e });
    }
    throw e;
  }
  const out = join(dir, 'out');
  await mergeWithOrt(recipe, {
    out,
    pool: 'auto',
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// objectives and selection

export { SELECT_RULES, type SelectRule };

export interface PointSummary {
  /** acc / fine-tuned acc per task dataset (raw accuracy when no fine-tuned reference is given) */
  readonly normalized: Record<string, number>;
  readonly meanNormalized: number;
  /** mean accuracy over task (target) datasets */
  readonly meanTarget: number;
  /** every control dataset's accuracy >= controlRatio x the base's (true without control datasets) */
  readonly controlOk: boolean;
}

/** The paper quantities of one point's scores. */
export function summarizeScores(
  scores: DatasetScores,
  datasets: readonly { name: string; role: 'task' | 'control' }[],
  refs: EvalReferences,
  controlRatio: number,
): PointSummary {
  const normalized: Record<string, number> = {};
  let sumN = 0;
  let sumT = 0;
  let nT = 0;
  let controlOk = true;
  for (const d of datasets) {
    const acc = scores[d.name]!;
    if (d.role === 'task') {
      const ft = refs.finetuned[d.name];
      const n = ft !== undefined && ft > 0 ? acc / ft : acc;
      normalized[d.name] = n;
      sumN += n;
      sumT += acc;
      nT++;
    } else if (acc < controlRatio * refs.base[d.name]!) controlOk = false;
  }
  return { normalized, meanNormalized: nT > 0 ? sumN / nT : NaN, meanTarget: nT > 0 ? sumT / nT : NaN, controlOk };
}

/**
 * Index of the selected point: 'mean-normalized' takes the highest mean normalised accuracy; 'negation' the lowest
 * mean target accuracy among points with controlOk (undefined if none). Ties go to the earliest point.
 */
export function selectPoint(points: readonly PointSummary[], rule: SelectRule): number | undefined {
  let best: number | undefined;
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    if (rule === 'mean-normalized') {
      if (best === undefined || p.meanNormalized > points[best]!.meanNormalized) best = i;
    } else if (p.controlOk && (best === undefined || p.meanTarget < points[best]!.meanTarget)) best = i;
  }
  return best;
}

/** The default rule: negation when the eval config has a control dataset, else mean normalised accuracy. */
export function defaultRule(datasets: readonly { role: 'task' | 'control' }[]): SelectRule {
  return datasets.some((d) => d.role === 'control') ? 'negation' : 'mean-normalized';
}

// ---------------------------------------------------------------------------------------------------------------
// the sweep

export interface VaryAxis {
  readonly target: ParamTarget;
  readonly values: readonly number[];
}

/** Parse `--vary name=grid` (grid: start:stop:step, a comma list or one number). */
export function parseVary(text: string): VaryAxis {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new UsageError('USAGE', `--vary expects name=grid (e.g. lambda=0:1:0.1), got '${text}'`);
  return { target: parseTarget(text.slice(0, eq), 'vary'), values: parseGrid(text.slice(eq + 1), 'vary') };
}

export interface SweepPoint extends PointSummary {
  readonly index: number;
  /** value per axis label (formatTarget) */
  readonly values: Record<string, number>;
  readonly scores: DatasetScores;
  readonly seconds: number;
}

export interface SweepOptions {
  recipe: string;
  vary: readonly (VaryAxis | string)[];
  /** eval.yaml path or parsed config (or give `scorer`) */
  eval?: string | EvalConfig;
  /** scores weights on the datasets (default: onnxScorer of `eval`); closed by the sweep only if it made it */
  scorer?: SweepScorer;
  select?: SelectRule;
  seed?: number;
  threads?: number;
  /** parent of the temp folder (default os.tmpdir()) */
  tmpDir?: string;
  signal?: AbortSignal;
  onPoint?: (p: SweepPoint, done: number, total: number) => void;
}

export interface SweepResult {
  readonly recipe: string;
  readonly method: string;
  readonly axes: readonly string[];
  readonly datasets: readonly { name: string; role: 'task' | 'control' }[];
  readonly references: EvalReferences;
  readonly controlRatio: number;
  readonly select: SelectRule;
  readonly points: readonly SweepPoint[];
  /** index into points of the selected point; undefined when no point qualifies (negation) */
  readonly best: number | undefined;
}

/** Every combination of the axes' values, first axis outermost. */
export function gridPoints(axes: readonly VaryAxis[]): number[][] {
  let out: number[][] = [[]];
  for (const a of axes) out = out.flatMap((prefix) => a.values.map((v) => [...prefix, v]));
  return out;
}

async function makeScorer(options: { eval?: string | EvalConfig; scorer?: SweepScorer; threads?: number; tmpDir?: string; signal?: AbortSignal }): Promise<{ scorer: SweepScorer; owned: boolean }> {
  if (options.scorer !== undefined) return { scorer: options.scorer, owned: false };
  if (options.eval === undefined) throw new UsageError('USAGE', 'give an eval config (eval) or a scorer');
  const config = typeof options.eval === 'string' ? await loadEvalConfig(options.eval) : options.eval;
  return {
    scorer: onnxScorer(config, {
      ...(options.threads !== undefined ? { threads: options.threads } : {}),
      ...(options.tmpDir !== undefined ? { tmpDir: options.tmpDir } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    }),
    owned: true,
  };
}

/** Run the grid: merge and score every point, then select. */
export async function sweep(options: SweepOptions): Promise<SweepResult> {
  if (options.vary.length === 0) throw new UsageError('USAGE', 'a sweep needs at least one --vary name=grid');
  if (options.select !== undefined && !SELECT_RULES.includes(options.select)) {
    throw new UsageError('USAGE', `select must be one of ${SELECT_RULES.join(', ')}, got '${String(options.select)}'`);
  }
  const axes = options.vary.map((v) => (typeof v === 'string' ? parseVary(v) : v));
  const editor = await openRecipeEditor(options.recipe);
  const labels = axes.map((a) => formatTarget(a.target));
  if (new Set(labels).size !== labels.length) throw new UsageError('USAGE', `--vary names a parameter twice (${labels.join(', ')})`);
  for (const a of axes) editor.check(a.target, 'vary');
  const grid = gridPoints(axes);
  // render and validate every point before any merge: a value out of range fails now, not after an hour
  const texts = grid.map((vals) => editor.render(axes.map((a, i) => ({ target: a.target, value: vals[i]! }))));
  const { scorer, owned } = await makeScorer(options);
  const select = options.select ?? defaultRule(scorer.datasets);
  const tmp = await mkdtemp(join(options.tmpDir ?? tmpdir(), SWEEP_TEMP_PREFIX));
  try {
    const references = await scorer.references();
    const points: SweepPoint[] = [];
    for (const [index, vals] of grid.entries()) {
      if (options.signal?.aborted) throw new UsageError('INTERRUPTED', 'sweep interrupted; the temp folder was removed');
      const t0 = performance.now();
      const values: Record<string, number> = {};
      labels.forEach((l, i) => (values[l] = vals[i]!));
      const label = labels.map((l, i) => `${l}=${vals[i]}`).join(' ');
      const dir = join(tmp, `point-${index}`);
      const out = await mergeText(texts[index]!, dir, { label, ...pick(options) });
      const scores = await scorer.score(out, { index, values });
      await rm(dir, { recursive: true, force: true });
      const p: SweepPoint = { index, values, scores, ...summarizeScores(scores, scorer.datasets, references, scorer.controlRatio), seconds: (performance.now() - t0) / 1000 };
      points.push(p);
      options.onPoint?.(p, points.length, grid.length);
    }
    return {
      recipe: options.recipe,
      method: editor.method.name,
      axes: labels,
      datasets: scorer.datasets,
      references,
      controlRatio: scorer.controlRatio,
      select,
      points,
      best: selectPoint(points, select),
    };
  } finally {
    await rm(tmp, { recursive: true, force: true });
    if (owned) await scorer.close();
  }
}

function pick(o: { seed?: number; threads?: number; signal?: AbortSignal }): { seed?: number; threads?: number; signal?: AbortSignal } {
  return {
    ...(o.seed !== undefined ? { seed: o.seed } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
  };
}

function csvCell(v: string | number | boolean): string {
  const s = typeof v === 'number' ? (Number.isNaN(v) ? '' : String(v)) : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * The sweep as CSV: `index`, one column per axis, `acc_<dataset>` per dataset, `norm_<task>` per task dataset,
 * `mean_normalized`, `mean_target`, `control_ok`, `selected` (1 on the selected row).
 */
export function sweepCsv(r: SweepResult): string {
  const tasks = r.datasets.filter((d) => d.role === 'task');
  const head = ['index', ...r.axes, ...r.datasets.map((d) => `acc_${d.name}`), ...tasks.map((d) => `norm_${d.name}`), 'mean_normalized', 'mean_target', 'control_ok', 'selected'];
  const rows = r.points.map((p, i) => [
    p.index,
    ...r.axes.map((a) => p.values[a]!),
    ...r.datasets.map((d) => p.scores[d.name]!),
    ...tasks.map((d) => p.normalized[d.name]!),
    p.meanNormalized,
    p.meanTarget,
    p.controlOk ? 1 : 0,
    r.best === i ? 1 : 0,
  ]);
  return [head, ...rows].map((row) => row.map(csvCell).join(',')).join('\n') + '\n';
}
