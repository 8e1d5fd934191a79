// Evaluate an ONNX classifier (optionally with patched weights) on a labelled dataset through ONNX Runtime, in
// batches sized to a memory budget, optionally side by side with a reference model (negative flips, agreement);
// and `onnxEvaluator`, the SoupEvaluator that scores any CheckpointReader (e.g. a virtual soup) this way.
// Guarantees: data and model inputs are validated before any batch runs; sessions and temp files are released on
// every path. No src/cli.

import { EvalError, UsageError } from '../errors.js';
import type { CheckpointReader } from '../io/types.js';
import { rowNumel } from '../tensor/tensor.js';
import type { SoupEvaluator } from '../vectors/soup.js';
import {
  assertLabelsInRange,
  checkDatasetInput,
  inputRowBytes,
  openDataset,
  staticClassCount,
  type Dataset,
  type ModelIo,
  type NpyPairSource,
} from './dataset.js';
import {
  MetricsAccumulator,
  compareWithReference,
  type ClassificationMetrics,
  type ReferenceComparison,
} from './metrics.js';
import { openEvalSession, readModelIo, type EvalSession } from './session.js';

export const DEFAULT_EVAL_BATCH = 256;
/** Bytes of one batch's input and output buffers (f32) that batches are capped to. */
export const DEFAULT_EVAL_BUDGET_BYTES = 256 * 1024 * 1024;

export interface EvaluateOptions {
  /** The ONNX graph (.onnx). */
  model: string;
  /** Weights for the graph's initializers: safetensors file/folder, a model, or any CheckpointReader. */
  weights?: string | CheckpointReader;
  /** A dataset path (see openDataset), two .npy paths, or an open Dataset (not closed here). */
  data: string | NpyPairSource | Dataset;
  /** Dataset tensor (or .npy stem) names; default `inputs` / `labels`. */
  input?: string;
  label?: string;
  /** Graph input / output names; default the first of each. */
  modelInput?: string;
  modelOutput?: string;
  /** Examples per batch (default 256), lowered to fit `budgetBytes`; a graph with a fixed batch dim uses that. */
  batch?: number;
  budgetBytes?: number;
  /** k of top-k accuracy (default 5, capped at the class count). */
  topK?: number;
  /** ORT intra-op threads per session. */
  threads?: number;
  /** A second model run on the same batches: negative flip rate and agreement. */
  reference?: { model: string; weights?: string | CheckpointReader };
  /** Parent folder of patched-model temp folders (default os.tmpdir()). */
  tmpDir?: string;
  signal?: AbortSignal;
  /** Called after every batch with the examples done so far. */
  onProgress?: (done: number, total: number) => void;
}

export interface EvalReport extends ClassificationMetrics {
  readonly model: string;
  /** The weights' path (a reader's `path`), if weights were given. */
  readonly weights: string | undefined;
  readonly data: string;
  /** Rows per batch actually used. */
  readonly batch: number;
  /** Number of graph initializers replaced by the weights. */
  readonly patched: number;
  readonly timing: { readonly patchMs: number; readonly createMs: number; readonly runMs: number };
  readonly reference?: {
    readonly model: string;
    readonly weights: string | undefined;
    readonly metrics: ClassificationMetrics;
    readonly comparison: ReferenceComparison;
  };
}

function weightsLabel(w: string | CheckpointReader | undefined): string | undefined {
  return w === undefined ? undefined : typeof w === 'string' ? w : w.path;
}

function isDataset(d: EvaluateOptions['data']): d is Dataset {
  return typeof d === 'object' && typeof (d as Dataset).readInputs === 'function';
}

function positiveInt(v: number | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1) throw new UsageError('USAGE', `${name} must be a positive integer, got ${v}`);
  return v;
}

/** Run the model (and the reference) over the dataset and compute every metric. */
export async function evaluate(options: EvaluateOptions): Promise<EvalReport> {
  const batchWanted = positiveInt(options.batch, 'batch', DEFAULT_EVAL_BATCH);
  const topK = positiveInt(options.topK, 'topK', 5);
  const budget = positiveInt(options.budgetBytes, 'budgetBytes', DEFAULT_EVAL_BUDGET_BYTES);
  const ownsData = !isDataset(options.data);
  const ds = isDataset(options.data) ? options.data : await openDataset(options.data, { input: options.input, label: options.label });
  const sessions: EvalSession[] = [];
  try {
    // validate the data against every model before patching or running anything
    const models: Array<{ model: string; weights?: string | CheckpointReader }> = [{ model: options.model }];
    if (options.weights !== undefined) models[0]!.weights = options.weights;
    if (options.reference !== undefined) models.push(options.reference);
    const ios: ModelIo[] = [];
    let fixedBatch: number | undefined;
    let classes: number | undefined;
    for (const m of models) {
      const io = await readModelIo(m.model, options.modelInput, options.modelOutput);
      const mio: ModelIo = { file: m.model, ...io };
      ios.push(mio);
      const fb = checkDatasetInput(ds, mio).fixedBatch;
      if (fb !== undefined && fixedBatch !== undefined && fb !== fixedBatch) {
        throw new EvalError('EVAL_SHAPE', `the model and the reference have different fixed batch sizes (${fixedBatch} and ${fb})`, {
          where: { file: m.model, tensor: io.input.name },
        });
      }
      fixedBatch ??= fb;
      const c = staticClassCount(mio);
      if (c !== undefined && classes !== undefined && c !== classes) {
        throw new EvalError('EVAL_SHAPE', `the reference has ${c} classes, the model ${classes}`, {
          where: { file: m.model, tensor: io.output.name },
        });
      }
      classes ??= c;
    }
    if (classes !== undefined) await assertLabelsInRange(ds, classes);

    for (const m of models) {
      const s = await openEvalSession(m.model, {
        ...(m.weights !== undefined ? { weights: m.weights } : {}),
        ...(options.modelInput !== undefined ? { input: options.modelInput } : {}),
        ...(options.modelOutput !== undefined ? { output: options.modelOutput } : {}),
        ...(options.threads !== undefined ? { threads: options.threads } : {}),
        ...(options.tmpDir !== undefined ? { tmpDir: options.tmpDir } : {}),
      });
      sessions.push(s);
    }

    const perRow = rowNumel([...ds.inputs.shape]);
    const outRowBytes = 4 * (classes ?? 1) * sessions.length;
    const batch = fixedBatch ?? Math.max(1, Math.min(batchWanted, ds.count, Math.floor(budget / (inputRowBytes(ds) + outRowBytes))));
    const buf = new Float32Array(batch * perRow);
    const accs: MetricsAccumulator[] = [];
    const t0 = performance.now();
    for (let start = 0; start < ds.count; start += batch) {
      if (options.signal?.aborted) throw new UsageError('INTERRUPTED', 'evaluation interrupted');
      const end = Math.min(ds.count, start + batch);
      const rows = end - start;
      const x = await ds.readInputs(start, end, buf);
      // a fixed batch dim: pad the last partial batch with zeros and drop its extra outputs
      const fed = fixedBatch !== undefined && rows < fixedBatch ? fixedBatch : rows;
      if (fed > rows) buf.fill(0, rows * perRow, fed * perRow);
      const input = fed > rows ? buf.subarray(0, fed * perRow) : x;
      const labels = await ds.readLabels(start, end);
      for (let k = 0; k < sessions.length; k++) {
        const s = sessions[k]!;
        const out = await s.run(input, [fed, ...ds.inputs.shape.slice(1)]);
        if (out.shape.length !== 2 || out.shape[0] !== fed) {
          throw new EvalError('EVAL_SHAPE', `output '${s.output.name}' has shape [${out.shape.join(', ')}]; expected logits [${fed}, C]`, {
            where: { file: s.model, tensor: s.output.name },
          });
        }
        const c = out.shape[1]!;
        if (classes === undefined) {
          classes = c;
          await assertLabelsInRange(ds, classes); // symbolic class dim: known from the first batch, before any metric
        }
        if (c !== classes) {
          throw new EvalError('EVAL_SHAPE', `output '${s.output.name}' has ${c} classes, expected ${classes}`, {
            where: { file: s.model, tensor: s.output.name },
          });
        }
        accs[k] ??= new MetricsAccumulator(classes, topK, ds.count);
        accs[k]!.add(out.data.subarray(0, rows * c), labels);
      }
      options.onProgress?.(end, ds.count);
    }
    const runMs = performance.now() - t0;
    const main = accs[0]!.finish();
    const s0 = sessions[0]!;
    const report: EvalReport = {
      ...main,
      model: options.model,
      weights: weightsLabel(options.weights),
      data: ds.path,
      batch,
      patched: s0.patched.length,
      timing: { patchMs: s0.timing.patchMs, createMs: s0.timing.createMs, runMs },
    };
    if (options.reference !== undefined) {
      const ref = accs[1]!.finish();
      return {
        ...report,
        reference: {
          model: options.reference.model,
          weights: weightsLabel(options.reference.weights),
          metrics: ref,
          comparison: compareWithReference(main.predictions, ref.predictions, await allLabels(ds)),
        },
      };
    }
    return report;
  } finally {
    for (const s of sessions) await s.close().catch(() => undefined);
    if (ownsData) await ds.close();
  }
}

async function allLabels(ds: Dataset): Promise<Float64Array> {
  return ds.readLabels(0, ds.count);
}

/** Scores a SoupEvaluator can return (higher is better). */
export type EvalMetric = 'accuracy' | 'top_k_accuracy' | 'neg_cross_entropy' | 'neg_entropy';

export const EVAL_METRICS: readonly EvalMetric[] = ['accuracy', 'top_k_accuracy', 'neg_cross_entropy', 'neg_entropy'];

export function metricValue(m: ClassificationMetrics, metric: EvalMetric): number {
  switch (metric) {
    case 'accuracy':
      return m.accuracy;
    case 'top_k_accuracy':
      return m.topKAccuracy;
    case 'neg_cross_entropy':
      return -m.meanCrossEntropy;
    case 'neg_entropy':
      return -m.meanEntropy;
  }
}

export interface OnnxEvaluatorOptions extends Omit<EvaluateOptions, 'weights' | 'reference' | 'onProgress'> {
  /** The score (default accuracy). */
  metric?: EvalMetric;
  /** Called after each evaluation (a log of every candidate). */
  onEvaluate?: (label: string, score: number, report: EvalReport) => void;
}

/**
 * A SoupEvaluator running `model` with each candidate's weights (any CheckpointReader, e.g. a virtual average) on
 * `data`: `greedySoup(models, onnxEvaluator({ model, data }))`.
 */
export function onnxEvaluator(options: OnnxEvaluatorOptions): SoupEvaluator {
  const metric = options.metric ?? 'accuracy';
  if (!EVAL_METRICS.includes(metric)) {
    throw new UsageError('USAGE', `metric must be one of ${EVAL_METRICS.join(', ')}, got '${String(metric)}'`);
  }
  const { metric: _m, onEvaluate, ...rest } = options;
  return {
    async evaluate(weights: CheckpointReader, label: string): Promise<number> {
      const report = await evaluate({ ...rest, weights });
      const score = metricValue(report, metric);
      onEvaluate?.(label, score, report);
      return score;
    },
  };
}
