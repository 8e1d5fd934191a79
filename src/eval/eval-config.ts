// The evaluation config of sweeps and searches (eval.yaml): the ONNX graph, one labelled dataset per task with its
// role (task or control) and normalisation reference, parsed strictly (every problem at once, each with line:col, as
// RecipeProblems), plus the scorer that evaluates a set of weights on every dataset through ORT.
// Guarantees: paths resolve against the config's folder; sessions are closed on every path. No src/cli.

import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode, type YAMLMap } from 'yaml';
import { EvalError, RecipeError, RecipeProblems, UsageError, type ErrorCode } from '../errors.js';
import type { CheckpointReader } from '../io/types.js';
import { readRecipeText } from '../recipe/load.js';
import { didYouMean } from '../recipe/suggest.js';
import { rowNumel } from '../tensor/tensor.js';
import { assertLabelsInRange, checkDatasetInput, openDataset, staticClassCount, type Dataset } from './dataset.js';
import { MetricsAccumulator } from './metrics.js';
import { openEvalSession, readModelIo } from './session.js';

export type DatasetRole = 'task' | 'control';

export interface EvalDatasetSpec {
  readonly name: string;
  /** Absolute path of the dataset (safetensors file, .npy folder). */
  readonly data: string;
  readonly role: DatasetRole;
  /** Fine-tuned accuracy on this dataset (normaliser of task datasets): a number, or weights to evaluate for it. */
  readonly finetuned?: { readonly accuracy: number } | { readonly weights: string };
  readonly line: number;
  readonly col: number;
}

export interface EvalConfig {
  readonly file: string;
  /** Absolute path of the ONNX graph. */
  readonly model: string;
  /** Weights of the base (zero-shot) model; default: the graph's own initializers. */
  readonly base?: string;
  readonly input?: string;
  readonly label?: string;
  readonly batch?: number;
  /** Negation: admissible points keep control accuracy >= controlRatio x the base's (default 0.95). */
  readonly controlRatio: number;
  readonly datasets: readonly EvalDatasetSpec[];
}

export const DEFAULT_CONTROL_RATIO = 0.95;

const TOP_KEYS = ['model', 'base', 'input', 'label', 'batch', 'control_ratio', 'datasets'] as const;
const DATASET_KEYS = ['name', 'data', 'role', 'finetuned'] as const;

/** Parse eval.yaml text; throws RecipeProblems listing every problem with its line:col. */
export function parseEvalConfig(text: string, file: string): EvalConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const problems: RecipeError[] = [];
  const at = (node: YamlNode | null | undefined): { line: number; col: number } => {
    const off = node?.range?.[0] ?? 0;
    return lc.linePos(off);
  };
  const add = (code: ErrorCode, message: string, node: YamlNode | null | undefined, path: string, pos?: { line: number; col: number }): void => {
    const p = pos ?? at(node);
    problems.push(new RecipeError(code, message, { where: { file, line: p.line, col: p.col, path } }));
  };
  for (const e of doc.errors) {
    const lp = e.linePos?.[0] ?? lc.linePos(e.pos[0]);
    add(e.code === 'DUPLICATE_KEY' ? 'RECIPE_UNKNOWN_KEY' : 'RECIPE_YAML', e.code === 'DUPLICATE_KEY' ? 'duplicate key in mapping' : `YAML syntax: ${e.message.split('\n')[0]}`, null, '', lp);
  }
  if (problems.length > 0) throw new RecipeProblems(file, problems);
  const dir = dirname(resolve(file));
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(dir, p));
  const root = doc.contents;
  if (!isMap(root)) {
    add('RECIPE_NOT_MAPPING', 'an eval config is a mapping with model and datasets', root, '');
    throw new RecipeProblems(file, problems);
  }
  const keysOf = (map: YAMLMap, allowed: readonly string[], path: string): Map<string, YamlNode | null> => {
    const out = new Map<string, YamlNode | null>();
    for (const pair of map.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!allowed.includes(k)) {
        add('RECIPE_UNKNOWN_KEY', `unknown key '${k}'${didYouMean(k, allowed)}; expected one of ${allowed.join(', ')}`, pair.key as YamlNode, path ? `${path}.${k}` : k);
        continue;
      }
      out.set(k, pair.value as YamlNode | null);
    }
    return out;
  };
  const str = (node: YamlNode | null | undefined, path: string): string | undefined => {
    if (isScalar(node) && typeof node.value === 'string' && node.value !== '') return node.value;
    add('RECIPE_TYPE', `${path} must be a non-empty string`, node, path);
    return undefined;
  };
  const num = (node: YamlNode | null | undefined, path: string, ok: (v: number) => boolean, what: string): number | undefined => {
    if (isScalar(node) && typeof node.value === 'number' && Number.isFinite(node.value)) {
      if (ok(node.value)) return node.value;
      add('RECIPE_PARAM_RANGE', `${path} must be ${what}, got ${node.value}`, node, path);
      return undefined;
    }
    add('RECIPE_TYPE', `${path} must be ${what}`, node, path);
    return undefined;
  };
  const top = keysOf(root, TOP_KEYS, '');
  const model = top.has('model') ? str(top.get('model'), 'model') : undefined;
  if (!top.has('model')) add('RECIPE_MISSING_KEY', "missing key 'model' (the ONNX graph)", root, '');
  const base = top.has('base') ? str(top.get('base'), 'base') : undefined;
  const input = top.has('input') ? str(top.get('input'), 'input') : undefined;
  const label = top.has('label') ? str(top.get('label'), 'label') : undefined;
  const batch = top.has('batch') ? num(top.get('batch'), 'batch', (v) => Number.isSafeInteger(v) && v >= 1, 'a positive integer') : undefined;
  const controlRatio = top.has('control_ratio') ? num(top.get('control_ratio'), 'control_ratio', (v) => v >= 0 && v <= 1, 'a number in [0, 1]') : undefined;
  const datasets: EvalDatasetSpec[] = [];
  const dsNode = top.get('datasets');
  if (!top.has('datasets')) add('RECIPE_MISSING_KEY', "missing key 'datasets' (one entry per task)", root, '');
  else if (!isSeq(dsNode) || dsNode.items.length === 0) add('RECIPE_TYPE', 'datasets must be a non-empty list', dsNode, 'datasets');
  else {
    const names = new Set<string>();
    for (const [i, item] of dsNode.items.entries()) {
      const path = `datasets[${i}]`;
      const node = item as YamlNode;
      if (!isMap(node)) {
        add('RECIPE_TYPE', `${path} must be a mapping with name, data and role`, node, path);
        continue;
      }
      const k = keysOf(node, DATASET_KEYS, path);
      for (const req of ['name', 'data', 'role'] as const) if (!k.has(req)) add('RECIPE_MISSING_KEY', `${path} is missing '${req}'`, node, path);
      const name = k.has('name') ? str(k.get('name'), `${path}.name`) : undefined;
      if (name !== undefined) {
        if (names.has(name)) add('RECIPE_DUPLICATE_NAME', `dataset name '${name}' is used twice`, k.get('name'), `${path}.name`);
        names.add(name);
      }
      const data = k.has('data') ? str(k.get('data'), `${path}.data`) : undefined;
      let role: DatasetRole | undefined;
      if (k.has('role')) {
        const r = k.get('role');
        if (isScalar(r) && (r.value === 'task' || r.value === 'control')) role = r.value;
        else add('RECIPE_TYPE', `${path}.role must be 'task' or 'control', got ${isScalar(r) ? JSON.stringify(r.value) : 'a collection'}`, r, `${path}.role`);
      }
      let finetuned: EvalDatasetSpec['finetuned'];
      if (k.has('finetuned')) {
        const f = k.get('finetuned');
        if (isScalar(f) && typeof f.value === 'number') {
          const v = num(f, `${path}.finetuned`, (x) => x > 0 && x <= 1, 'an accuracy in (0, 1]');
          if (v !== undefined) finetuned = { accuracy: v };
        } else if (isScalar(f) && typeof f.value === 'string' && f.value !== '') finetuned = { weights: abs(f.value) };
        else add('RECIPE_TYPE', `${path}.finetuned must be an accuracy in (0, 1] or the fine-tuned weights' path`, f, `${path}.finetuned`);
        if (role === 'control') add('RECIPE_CONFLICT', `${path}.finetuned applies to task datasets only`, f, `${path}.finetuned`);
      }
      if (name !== undefined && data !== undefined && role !== undefined) {
        const p = at(node);
        datasets.push({ name, data: abs(data), role, ...(finetuned !== undefined ? { finetuned } : {}), line: p.line, col: p.col });
      }
    }
    if (datasets.length > 0 && !datasets.some((d) => d.role === 'task')) add('RECIPE_MISSING_KEY', "datasets need at least one entry with role 'task'", dsNode, 'datasets');
  }
  if (problems.length > 0) throw new RecipeProblems(file, problems.sort((a, b) => (a.where.line ?? 0) - (b.where.line ?? 0) || (a.where.col ?? 0) - (b.where.col ?? 0)));
  return {
    file,
    model: abs(model!),
    ...(base !== undefined ? { base: abs(base) } : {}),
    ...(input !== undefined ? { input } : {}),
    ...(label !== undefined ? { label } : {}),
    ...(batch !== undefined ? { batch } : {}),
    controlRatio: controlRatio ?? DEFAULT_CONTROL_RATIO,
    datasets,
  };
}

/** Read and parse an eval.yaml (RECIPE_NOT_FOUND when it cannot be read). */
export async function loadEvalConfig(path: string): Promise<EvalConfig> {
  // a regular file of bounded size, as recipes (readRecipeText)
  return parseEvalConfig(await readRecipeText(path, 'eval config'), path);
}

/** Accuracy per dataset name. */
export type DatasetScores = Record<string, number>;

/** The normalisers: fine-tuned accuracy per task dataset (when known) and the base's accuracy per dataset. */
export interface EvalReferences {
  readonly finetuned: Record<string, number>;
  readonly base: DatasetScores;
}

export interface ScoreOptions {
  threads?: number;
  tmpDir?: string;
  signal?: AbortSignal;
}

/** Logits of a batch: row-major [rows, classes]. */
export type LogitsSink = (start: number, rows: number, logits: Float32Array, labels: Float64Array) => void;

/**
 * Run `model` (patched with `weights`, or as is) over a dataset batch by batch, giving each batch's logits to the
 * sinks in order. One session for all the sinks; validated like `evaluate` before running. Returns the class count.
 */
export async function runLogits(
  model: string,
  weights: string | CheckpointReader | undefined,
  ds: Dataset,
  sink: LogitsSink,
  options: ScoreOptions & { batch?: number } = {},
): Promise<number> {
  const io = await readModelIo(model);
  const { fixedBatch } = checkDatasetInput(ds, { file: model, ...io });
  let classes = staticClassCount({ file: model, ...io });
  if (classes !== undefined) await assertLabelsInRange(ds, classes);
  const session = await openEvalSession(model, {
    ...(weights !== undefined ? { weights } : {}),
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    ...(options.tmpDir !== undefined ? { tmpDir: options.tmpDir } : {}),
  });
  try {
    const perRow = rowNumel([...ds.inputs.shape]);
    const batch = fixedBatch ?? Math.max(1, Math.min(options.batch ?? 256, ds.count));
    const buf = new Float32Array(batch * perRow);
    for (let start = 0; start < ds.count; start += batch) {
      if (options.signal?.aborted) throw new UsageError('INTERRUPTED', 'evaluation interrupted');
      const end = Math.min(ds.count, start + batch);
      const rows = end - start;
      const x = await ds.readInputs(start, end, buf);
      const fed = fixedBatch !== undefined && rows < fixedBatch ? fixedBatch : rows;
      if (fed > rows) buf.fill(0, rows * perRow, fed * perRow);
      const out = await session.run(fed > rows ? buf.subarray(0, fed * perRow) : x, [fed, ...ds.inputs.shape.slice(1)]);
      if (out.shape.length !== 2 || out.shape[0] !== fed) {
        throw new EvalError('EVAL_SHAPE', `output '${session.output.name}' has shape [${out.shape.join(', ')}]; expected logits [${fed}, C]`, {
          where: { file: model, tensor: session.output.name },
        });
      }
      if (classes === undefined) {
        classes = out.shape[1]!;
        await assertLabelsInRange(ds, classes);
      }
      sink(start, rows, out.data.subarray(0, rows * classes), await ds.readLabels(start, end));
    }
    return classes ?? 0;
  } finally {
    await session.close();
  }
}

/** Evaluates weights on every dataset of a config; `references()` measures (once) the normalisers. */
export interface SweepScorer {
  readonly datasets: readonly { readonly name: string; readonly role: DatasetRole }[];
  readonly controlRatio: number;
  references(): Promise<EvalReferences>;
  /** Accuracy per dataset of the given weights (`point` is informational: which grid point or candidate). */
  score(weights: string | CheckpointReader, point: { readonly index: number; readonly values: Readonly<Record<string, number>> }): Promise<DatasetScores>;
  close(): Promise<void>;
}

/** The ONNX Runtime scorer of an eval config: each dataset through its own session of the patched graph (datasets stay open until close()). */
export function onnxScorer(config: EvalConfig, options: ScoreOptions = {}): SweepScorer {
  const opened = new Map<string, Dataset>();
  const datasetOf = async (d: EvalDatasetSpec): Promise<Dataset> => {
    let ds = opened.get(d.name);
    if (ds === undefined) {
      ds = await openDataset(d.data, { ...(config.input !== undefined ? { input: config.input } : {}), ...(config.label !== undefined ? { label: config.label } : {}) });
      opened.set(d.name, ds);
    }
    return ds;
  };
  const scoreOn = async (weights: string | CheckpointReader | undefined, which: readonly EvalDatasetSpec[]): Promise<DatasetScores> => {
    const out: DatasetScores = {};
    for (const d of which) {
      const ds = await datasetOf(d);
      let acc: MetricsAccumulator | undefined;
      await runLogits(
        config.model,
        weights,
        ds,
        (_s, _rows, logits, labels) => {
          acc ??= new MetricsAccumulator(logits.length / labels.length, 1, 0);
          acc.add(logits, labels);
        },
        { ...options, ...(config.batch !== undefined ? { batch: config.batch } : {}) },
      );
      out[d.name] = acc!.finish().accuracy;
    }
    return out;
  };
  let refs: EvalReferences | undefined;
  return {
    datasets: config.datasets.map((d) => ({ name: d.name, role: d.role })),
    controlRatio: config.controlRatio,
    async references() {
      if (refs !== undefined) return refs;
      const base = await scoreOn(config.base, config.datasets);
      const finetuned: Record<string, number> = {};
      for (const d of config.datasets) {
        if (d.finetuned === undefined) continue;
        if ('accuracy' in d.finetuned) finetuned[d.name] = d.finetuned.accuracy;
        else finetuned[d.name] = (await scoreOn(d.finetuned.weights, [d]))[d.name]!;
      }
      refs = { finetuned, base };
      return refs;
    },
    score: (weights) => scoreOn(weights, config.datasets),
    async close() {
      for (const ds of opened.values()) await ds.close();
      opened.clear();
    },
  };
}
