// Model soups (Wortsman et al., ICML 2022): the uniform soup θ = (1/K) Σ θ_k written in one streaming pass, and the
// greedy soup, which grows a uniform soup ingredient by ingredient and keeps one only if a held-out score strictly
// increases. Candidate soups are evaluated through a virtual averaging reader, never written. The f64 accumulation
// order is fixed (members in order), so the evaluated soup and the written one are the same numbers. No src/cli.

import { PlanError, UsageError, VectorError } from '../errors.js';
import { openCheckpointSink } from '../io/sink.js';
import type { CheckpointReader, ReadBytesOptions, ReadF32Options, ReadRange, TensorDecl, TensorInfo } from '../io/types.js';
import { fromF32 } from '../tensor/convert.js';
import { isFloatDType, type DType, type TensorData } from '../tensor/dtype.js';
import { formatShape, shapesEqual, type Tensor } from '../tensor/tensor.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { checkOutputDtype, modelJobs, openAllCheckpoints, closeAllCheckpoints, pairAll } from './interpolate.js';
import { interrupted, runStream, type StreamJob, type StreamProgress } from './stream.js';

export interface UniformSoupOptions {
  models: readonly string[];
  /** a .safetensors file, a model folder or an .onnx model (patched from the first model, which is the donor) */
  out: string;
  /** float output dtype (default: each tensor's dtype in the first model) */
  dtype?: DType;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface UniformSoupResult {
  out: string;
  files: string[];
  /** averaged tensors */
  tensors: number;
  /** non-float tensors, copied from the first model */
  skipped: string[];
}

export interface SoupEvaluator {
  /** held-out score of a model; higher is better */
  evaluate(model: CheckpointReader, label: string): Promise<number>;
}

export interface GreedySoupStep {
  candidate: string;
  score: number;
  accepted: boolean;
  /** the soup's members after this step */
  members: string[];
}

export interface GreedySoupResult {
  members: string[];
  score: number;
  /** the first step is the best single ingredient (accepted), then one step per remaining ingredient */
  steps: GreedySoupStep[];
  /** every ingredient's own score, in input order */
  individual: Array<{ model: string; score: number }>;
  /** the written soup, when `out` was given */
  written?: UniformSoupResult;
}

export interface GreedySoupOptions extends Omit<UniformSoupOptions, 'models' | 'out'> {
  /** write the final soup here (with uniformSoup) */
  out?: string;
}

/** Mean of the members' values at one position: f64 sum in member order, divided by the count. */
function meanInto(parts: readonly Float32Array[], n: number, out: Float32Array): void {
  const k = parts.length;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let m = 0; m < k; m++) s += parts[m]![i]!;
    out[i] = s / k;
  }
}

/** Check that every reader has the same float tensors with the same shapes as the first. */
function assertSameFloatTensors(readers: readonly CheckpointReader[]): void {
  const first = readers[0]!;
  for (let m = 1; m < readers.length; m++) {
    const r = readers[m]!;
    for (const t of first.tensors()) {
      if (!isFloatDType(t.dtype)) continue;
      if (!r.has(t.name)) {
        throw new PlanError('TENSOR_NOT_FOUND', `tensor '${t.name}' of ${first.path} is not in ${r.path}`, { where: { file: r.path, tensor: t.name } });
      }
      const u = r.info(t.name);
      if (!shapesEqual(u.shape, t.shape)) {
        throw new PlanError(
          'TENSOR_SHAPE_MISMATCH',
          `tensor '${t.name}' has shape ${formatShape(t.shape)} in ${first.path} but ${formatShape(u.shape)} in ${r.path}`,
          { where: { file: r.path, tensor: t.name } },
        );
      }
      if (!isFloatDType(u.dtype)) {
        throw new PlanError('TENSOR_DTYPE_MISMATCH', `tensor '${t.name}' is ${t.dtype} in ${first.path} but ${u.dtype} in ${r.path}`, {
          where: { file: r.path, tensor: t.name },
        });
      }
    }
    for (const u of r.tensors()) {
      if (isFloatDType(u.dtype) && !first.has(u.name)) {
        throw new PlanError('TENSOR_NOT_FOUND', `tensor '${u.name}' of ${r.path} is not in ${first.path}`, { where: { file: first.path, tensor: u.name } });
      }
    }
  }
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * A virtual checkpoint whose float tensors are the uniform average of the members' (rows read from every member,
 * summed in f64 in member order, divided by the count). Metadata, tensor list, dtypes and `path` are the first
 * member's; non-float tensors are the first member's bytes; `read`/`readBytes` encode the average in the first
 * member's dtype. All members must hold the same float tensors with the same shapes (TENSOR_NOT_FOUND /
 * TENSOR_SHAPE_MISMATCH otherwise). close() does not close the members: their owner does.
 */
export function averageReader(readers: readonly CheckpointReader[]): CheckpointReader {
  if (readers.length === 0) throw new UsageError('USAGE', 'averageReader needs at least one checkpoint');
  assertSameFloatTensors(readers);
  const first = readers[0]!;
  const averageF32 = async (name: string, range: ReadRange, into?: Float32Array): Promise<Float32Array> => {
    const info = first.info(name);
    if (!isFloatDType(info.dtype) || readers.length === 1) return first.readF32(name, { ...range, ...(into ? { into } : {}) });
    const parts = await Promise.all(readers.map((r) => r.readF32(name, { rowStart: range.rowStart, rowEnd: range.rowEnd })));
    const n = parts[0]!.length;
    let out: Float32Array;
    if (into !== undefined) {
      if (into.length < n) {
        throw new UsageError('TENSOR_SHAPE_MISMATCH', `readF32: 'into' holds ${into.length} elements, the rows need ${n}`, {
          where: { file: first.path, tensor: name },
        });
      }
      out = into.subarray(0, n);
    } else out = new Float32Array(n);
    meanInto(parts, n, out);
    return out;
  };
  const rangeShape = (info: TensorInfo, range: ReadRange): number[] => {
    if (info.shape.length === 0) return [];
    const r0 = range.rowStart ?? 0;
    const r1 = range.rowEnd ?? info.shape[0]!;
    if (r0 === 0 && r1 === info.shape[0]) return [...info.shape];
    return [r1 - r0, ...info.shape.slice(1)];
  };
  const reader: CheckpointReader = {
    format: first.format,
    path: first.path,
    tensors: () => first.tensors(),
    has: (name) => first.has(name),
    info: (name) => first.info(name),
    metadata: () => first.metadata(),
    shards: () => first.shards(),
    async read(name: string, range: ReadRange = {}): Promise<Tensor> {
      const info = first.info(name);
      if (!isFloatDType(info.dtype) || readers.length === 1) return first.read(name, range);
      const f = await averageF32(name, range);
      return { dtype: info.dtype, shape: rangeShape(info, range), data: fromF32(info.dtype, f) };
    },
    async readBytes(name: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
      const info = first.info(name);
      if (!isFloatDType(info.dtype) || readers.length === 1) return first.readBytes(name, options);
      const f = await averageF32(name, options);
      const bytes = bytesOf(fromF32(info.dtype, f));
      if (options.into === undefined) return bytes;
      if (options.into.byteLength < bytes.byteLength) {
        throw new UsageError('TENSOR_SHAPE_MISMATCH', `readBytes: 'into' holds ${options.into.byteLength} bytes, the rows need ${bytes.byteLength}`, {
          where: { file: first.path, tensor: name },
        });
      }
      const dst = options.into.subarray(0, bytes.byteLength);
      dst.set(bytes);
      return dst;
    },
    readF32: (name: string, options: ReadF32Options = {}) => averageF32(name, options, options.into),
    close: async () => undefined,
    [Symbol.asyncDispose]: async () => undefined,
  };
  return reader;
}

/** Write the uniform soup of `models` in one streaming pass (non-float tensors from the first model). */
export async function uniformSoup(options: UniformSoupOptions): Promise<UniformSoupResult> {
  const k = options.models.length;
  if (k === 0) throw new UsageError('USAGE', 'a soup needs at least one model');
  const dtype = checkOutputDtype(options.dtype);
  const readers = await openAllCheckpoints(options.models);
  try {
    const { shared, skipped } = pairAll(readers);
    const sharedNames = new Set(shared.map((t) => t.name));
    const { decls, jobs } = modelJobs(readers[0]!, sharedNames, 1, dtype, (t, out) => ({
      name: t.name,
      shape: t.shape,
      inputs: readers.map((r) => ({ reader: r, tensor: t.name })),
      outputs: [{ sink: 0, dtype: out }],
      emit(ins, outs, c) {
        meanInto(ins as Float32Array[], c.numel, outs[0] as Float32Array);
      },
    }));
    const sink = await openCheckpointSink(options.out, decls, {
      metadata: { format: 'pt', weightkit_version: WEIGHTKIT_VERSION, weightkit_soup: JSON.stringify({ models: options.models }) },
      overwrite: options.overwrite,
      inputs: options.models,
      donor: options.models[0],
    });
    let files: string[];
    try {
      await runStream(jobs, { sinks: [sink], budgetBytes: options.budgetBytes, signal: options.signal, onProgress: options.onProgress });
      files = await sink.close();
    } catch (e) {
      await sink.abort();
      throw e;
    }
    return { out: options.out, files, tensors: shared.length, skipped };
  } finally {
    await closeAllCheckpoints(readers);
  }
}

async function scoreOf(evaluator: SoupEvaluator, model: CheckpointReader, label: string): Promise<number> {
  const s = await evaluator.evaluate(model, label);
  if (typeof s !== 'number' || !Number.isFinite(s)) {
    throw new VectorError('VECTOR_NOT_FINITE', `the evaluator returned ${String(s)} for ${label}; scores must be finite numbers`, {
      where: { file: model.path },
    });
  }
  return s;
}

/**
 * Greedy soup: score every ingredient alone, sort by score descending (ties keep input order), start with the best,
 * and for each next ingredient evaluate the uniform average of the members plus it; keep it only if the score
 * strictly increases. Candidates are evaluated through averageReader, never written; `out` writes the final soup.
 */
export async function greedySoup(models: readonly string[], evaluator: SoupEvaluator, options: GreedySoupOptions = {}): Promise<GreedySoupResult> {
  if (models.length === 0) throw new UsageError('USAGE', 'a greedy soup needs at least one model');
  const readers = await openAllCheckpoints(models);
  let result: GreedySoupResult;
  try {
    averageReader(readers); // validates that every ingredient holds the same float tensors
    const individual: Array<{ model: string; score: number }> = [];
    for (let i = 0; i < models.length; i++) {
      if (options.signal?.aborted) throw interrupted();
      individual.push({ model: models[i]!, score: await scoreOf(evaluator, readers[i]!, models[i]!) });
    }
    const order = individual.map((_, i) => i).sort((a, b) => individual[b]!.score - individual[a]!.score);
    const best = order[0]!;
    let members = [best];
    let score = individual[best]!.score;
    const names = (idx: readonly number[]): string[] => idx.map((i) => models[i]!);
    const steps: GreedySoupStep[] = [{ candidate: models[best]!, score, accepted: true, members: names(members) }];
    for (const c of order.slice(1)) {
      if (options.signal?.aborted) throw interrupted();
      const trial = [...members, c];
      const s = await scoreOf(evaluator, averageReader(trial.map((i) => readers[i]!)), `soup(${names(trial).join(' + ')})`);
      const accepted = s > score;
      if (accepted) {
        members = trial;
        score = s;
      }
      steps.push({ candidate: models[c]!, score: s, accepted, members: names(members) });
    }
    result = { members: names(members), score, steps, individual };
  } finally {
    await closeAllCheckpoints(readers);
  }
  if (options.out !== undefined) {
    const { out, ...rest } = options;
    result.written = await uniformSoup({ ...rest, models: result.members, out });
  }
  return result;
}
