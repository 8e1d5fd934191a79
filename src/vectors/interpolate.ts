// Weight interpolation between two checkpoints (BCWI, WiSE-FT: θ(α) = (1 − α)·θ_from + α·θ_to), optionally
// Fisher-weighted per parameter, for one α or a whole grid written in ONE streaming pass; and Fisher-weighted
// averaging of N models (Matena & Raffel; MergeLM's ε and normalisation). Guarantees: α = 0 / α = 1 reproduce the
// endpoints exactly, chunking never changes a byte, nothing is published unless everything succeeded. No src/cli.

import { join } from 'node:path';
import { PlanError, UsageError, VectorError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import { stageOutputDir } from '../io/output.js';
import { openCheckpointSink, type CheckpointSink } from '../io/sink.js';
import type { CheckpointReader, TensorDecl, TensorInfo } from '../io/types.js';
import { isFloatDType, type DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/tensor.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { formatAlpha } from './grid.js';
import { slerpCoefficients } from '../merge/methods/slerp.js';
import { pairTensors, requireShared } from './pairing.js';
import { runStream, type StreamJob, type StreamProgress } from './stream.js';

export const DEFAULT_FISHER_FLOOR = 1e-8;
export const DEFAULT_FISHER_EPSILON = 1e-6;
/** Float dtypes an output may be converted to. */
export const OUTPUT_DTYPES: readonly DType[] = ['F32', 'BF16', 'F16'];

export interface InterpolateOptions {
  /** θ_old (the deployed model); also the layout donor and the source of non-float tensors */
  from: string;
  /** θ_new */
  to: string;
  alphas: readonly number[];
  /**
   * `linear` (default): (1 − α)·θ_from + α·θ_to. `slerp`: spherical interpolation per tensor over the flattened
   * tensor, with mergekit's slerp formula and 0.9995 colinearity fallback (the merge method `slerp`, t = α).
   */
  method?: 'linear' | 'slerp';
  /** one α: the output (file, folder or .onnx). Several: a folder holding one model folder per α (formatAlpha). */
  out: string;
  /** diagonal Fisher of `from` / `to`: safetensors with the same tensor names and shapes, values >= 0 */
  fisherFrom?: string;
  fisherTo?: string;
  /** f_min (default 1e-8, as WiSE-FT) */
  fisherFloor?: number;
  /** float output dtype (default: each tensor's dtype in `from`) */
  dtype?: DType;
  /** tensors on one side only: those of `from` are kept unchanged, those of `to` left out */
  allowMissing?: boolean;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface InterpolateResult {
  outputs: Array<{ alpha: number; path: string }>;
  /** interpolated tensors */
  tensors: number;
  /** non-float tensors, copied from `from` */
  skipped: string[];
  /** tensors on one side only (allowMissing) */
  missing: string[];
  /** tensors whose result is all NaN (slerp's angle is not finite: an input holds NaN or infinite values) */
  warnings: string[];
}

export interface FisherAverageOptions {
  models: readonly string[];
  /** one diagonal Fisher per model, same tensor names and shapes, values >= 0 */
  fishers: readonly string[];
  out: string;
  /** λ_i (default 1/N) */
  lambdas?: readonly number[];
  /** ε added to every Fisher value (default 1e-6, as MergeLM) */
  epsilon?: number;
  /** multiply λ_i by (1/(‖F_i‖+ε)) / Σ_j 1/(‖F_j‖+ε), ‖F_i‖ the L2 norm over all merged tensors (MergeLM) */
  normalize?: boolean;
  dtype?: DType;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface FisherAverageResult {
  out: string;
  files: string[];
  tensors: number;
  skipped: string[];
  /** the λ_i used (after normalisation) */
  lambdas: number[];
  /** ‖F_i‖ (only with normalize) */
  fisherNorms?: number[];
}

export function checkOutputDtype(dtype: DType | undefined): DType | undefined {
  if (dtype !== undefined && !OUTPUT_DTYPES.includes(dtype)) {
    throw new UsageError('USAGE', `output dtype must be one of f32, bf16, f16 (got ${dtype})`);
  }
  return dtype;
}

/** The metadata every written model carries (safetensors `__metadata__`). */
function modelMetadata(what: string, detail: object): Record<string, string> {
  return { format: 'pt', weightkit_version: WEIGHTKIT_VERSION, [`weightkit_${what}`]: JSON.stringify(detail) };
}

/** Open every Fisher tensor named in `tensors` and check it exists with the model's shape. */
export function checkFisher(fisher: CheckpointReader, tensors: readonly TensorInfo[]): void {
  for (const t of tensors) {
    if (!fisher.has(t.name)) {
      throw new PlanError('TENSOR_NOT_FOUND', `the Fisher file has no tensor '${t.name}'`, { where: { file: fisher.path, tensor: t.name } });
    }
    const f = fisher.info(t.name);
    if (!shapesEqual(f.shape, t.shape)) {
      throw new PlanError(
        'TENSOR_SHAPE_MISMATCH',
        `Fisher tensor '${t.name}' has shape ${formatShape(f.shape)}, the model's is ${formatShape(t.shape)}`,
        { where: { file: fisher.path, tensor: t.name } },
      );
    }
  }
}

/** Throw VECTOR_NOT_FINITE at the first Fisher value that is negative, NaN or infinite. */
function assertFisherValues(f: Float32Array, n: number, file: string, tensor: string, offset: number): void {
  for (let i = 0; i < n; i++) {
    const v = f[i]!;
    if (!(v >= 0 && v < Infinity)) {
      throw new VectorError(
        'VECTOR_NOT_FINITE',
        `Fisher values must be finite and >= 0; element ${offset + i} of '${tensor}' is ${String(v)}`,
        { where: { file, tensor } },
      );
    }
  }
}

function checkAlphas(alphas: readonly number[], fisher: boolean): void {
  if (alphas.length === 0) throw new UsageError('USAGE', 'give at least one alpha');
  const names = new Set<string>();
  for (const a of alphas) {
    if (!Number.isFinite(a)) throw new UsageError('USAGE', `alpha must be a finite number (got ${String(a)})`);
    if (fisher && !(a >= 0 && a <= 1)) {
      throw new UsageError('USAGE', `with Fisher weights alpha must be in [0, 1] (got ${a}): the weights (1 − α)·F and α·F must be >= 0`);
    }
    const n = formatAlpha(a);
    if (names.has(n)) throw new UsageError('USAGE', `alpha ${a} is given twice (both would be written to ${n})`);
    names.add(n);
  }
}

/** Open every path; on a failure close those already open. */
export async function openAllCheckpoints(paths: readonly string[]): Promise<CheckpointReader[]> {
  const readers: CheckpointReader[] = [];
  try {
    for (const p of paths) readers.push(await openCheckpointPath(p));
  } catch (e) {
    await closeAllCheckpoints(readers);
    throw e;
  }
  return readers;
}

export async function closeAllCheckpoints(readers: readonly CheckpointReader[]): Promise<void> {
  for (const r of readers) await r.close();
}

/** A job copying one tensor of `reader` unchanged (non-float, or a float converted to `dtype`) to every sink. */
export function keepJob(t: TensorInfo, reader: CheckpointReader, sinks: number, dtype: DType | undefined): StreamJob {
  const out = dtype !== undefined && isFloatDType(t.dtype) ? dtype : t.dtype;
  const outputs = Array.from({ length: sinks }, (_, k) => ({ sink: k, dtype: out }));
  if (out === t.dtype) return { name: t.name, shape: t.shape, inputs: [{ reader, tensor: t.name }], outputs, copy: true };
  return {
    name: t.name,
    shape: t.shape,
    inputs: [{ reader, tensor: t.name }],
    outputs,
    emit(ins, outs, c) {
      const a = ins[0] as Float32Array;
      for (const o of outs) (o as Float32Array).set(a.subarray(0, c.numel));
    },
  };
}

/**
 * Jobs and output declarations for a model written from `first`'s tensor list: `make(t, dtype)` for the tensors in
 * `shared`, the others (non-float, or on one side only) kept unchanged from `first` into every one of `sinks` sinks.
 */
export function modelJobs(
  first: CheckpointReader,
  shared: ReadonlySet<string>,
  sinks: number,
  dtype: DType | undefined,
  make: (t: TensorInfo, out: DType) => StreamJob,
): { decls: TensorDecl[]; jobs: StreamJob[] } {
  const decls: TensorDecl[] = [];
  const jobs: StreamJob[] = [];
  for (const t of first.tensors()) {
    if (!shared.has(t.name)) {
      const job = keepJob(t, first, sinks, dtype);
      decls.push({ name: t.name, dtype: job.outputs[0]!.dtype, shape: t.shape });
      jobs.push(job);
      continue;
    }
    const out = dtype ?? t.dtype;
    decls.push({ name: t.name, dtype: out, shape: t.shape });
    jobs.push(make(t, out));
  }
  return { decls, jobs };
}

/**
 * Interpolate `from` → `to` at every α of `alphas`, all in one pass over the inputs. Plain: θ = (1 − α)·θ_from +
 * α·θ_to. With Fisher files: c_old = (1 − α)·max(F_from, f_min), c_new = α·max(F_to, f_min), θ = (c_old·θ_from +
 * c_new·θ_to)/(c_old + c_new). α = 0 and α = 1 copy the endpoint's values. Several alphas go to
 * `out/<formatAlpha(α)>/`, each a model folder (companion files copied from `from` when it is a folder), published
 * together: the whole `out` folder is staged and renamed into place at the end.
 */
export async function interpolateModels(options: InterpolateOptions): Promise<InterpolateResult> {
  const useFisher = options.fisherFrom !== undefined || options.fisherTo !== undefined;
  if (useFisher && (options.fisherFrom === undefined || options.fisherTo === undefined)) {
    throw new UsageError('USAGE', 'Fisher-weighted interpolation needs both --fisher-from and --fisher-to');
  }
  const floor = options.fisherFloor ?? DEFAULT_FISHER_FLOOR;
  if (!(floor > 0 && floor < Infinity)) throw new UsageError('USAGE', `--fisher-floor must be a positive number (got ${String(floor)})`);
  checkAlphas(options.alphas, useFisher);
  const method = options.method ?? 'linear';
  if (method !== 'linear' && method !== 'slerp') throw new UsageError('USAGE', `--method must be linear or slerp (got '${String(method)}')`);
  if (method === 'slerp' && useFisher) throw new UsageError('USAGE', 'Fisher weights apply to linear interpolation only (not --method slerp)');
  const dtype = checkOutputDtype(options.dtype);
  const alphas = [...options.alphas];
  const multi = alphas.length > 1;
  if (multi && (options.out.endsWith('.safetensors') || options.out.endsWith('.onnx'))) {
    throw new UsageError('USAGE', `several alphas are written as folders under --out; ${options.out} must be a folder path`);
  }
  const inputPaths = [options.from, options.to, ...(useFisher ? [options.fisherFrom!, options.fisherTo!] : [])];
  const readers = await openAllCheckpoints(inputPaths);
  try {
    const [from, to, fFrom, fTo] = readers as [CheckpointReader, CheckpointReader, CheckpointReader?, CheckpointReader?];
    const pairing = pairTensors(from, to, { allowMissing: options.allowMissing, canAllowMissing: true, roles: ['from model', 'to model'] });
    requireShared(pairing.shared, 'the two models', options.to);
    if (fFrom !== undefined && fTo !== undefined) {
      checkFisher(fFrom, pairing.shared);
      checkFisher(fTo, pairing.shared);
    }
    const shared = new Set(pairing.shared.map((t) => t.name));
    const warnings: string[] = [];
    const { decls, jobs } = modelJobs(from, shared, alphas.length, dtype, (t, out) =>
      method === 'slerp' ? slerpJob(t, from, to, alphas, out, warnings) : interpolationJob(t, from, to, fFrom, fTo, alphas, floor, out),
    );
    const detail = (alpha: number): object => ({
      from: options.from,
      to: options.to,
      alpha,
      method,
      ...(useFisher ? { fisherFrom: options.fisherFrom, fisherTo: options.fisherTo, fisherFloor: floor } : {}),
    });
    const paths = multi ? alphas.map((a) => join(options.out, formatAlpha(a))) : [options.out];
    const staged = multi ? await stageOutputDir(options.out, { overwrite: options.overwrite, inputs: inputPaths }) : undefined;
    const sinks: CheckpointSink[] = [];
    try {
      for (let k = 0; k < alphas.length; k++) {
        const target = staged !== undefined ? join(staged.staging, formatAlpha(alphas[k]!)) : options.out;
        sinks.push(
          await openCheckpointSink(target, decls, {
            metadata: modelMetadata('interpolation', detail(alphas[k]!)),
            overwrite: options.overwrite,
            inputs: inputPaths,
            donor: options.from,
          }),
        );
      }
      await runStream(jobs, { sinks, budgetBytes: options.budgetBytes, signal: options.signal, onProgress: options.onProgress });
      for (const s of sinks) await s.close();
      await staged?.commit();
    } catch (e) {
      for (const s of sinks) await s.abort().catch(() => undefined);
      await staged?.abort();
      throw e;
    }
    return {
      outputs: alphas.map((alpha, k) => ({ alpha, path: paths[k]! })),
      tensors: pairing.shared.length,
      skipped: pairing.skipped,
      missing: pairing.missing,
      warnings,
    };
  } finally {
    await closeAllCheckpoints(readers);
  }
}

/** SLERP per tensor: a statistics pass for the Gram entries (f64, element order), then s0·from + s1·to per alpha. */
function slerpJob(t: TensorInfo, from: CheckpointReader, to: CheckpointReader, alphas: readonly number[], dtype: DType, warnings: string[]): StreamJob {
  let g00 = 0;
  let g11 = 0;
  let g01 = 0;
  let coefs: Array<{ s0: number; s1: number }> = [];
  return {
    name: t.name,
    shape: t.shape,
    inputs: [
      { reader: from, tensor: t.name },
      { reader: to, tensor: t.name },
    ],
    outputs: alphas.map((_, k) => ({ sink: k, dtype })),
    passes: 1,
    observe(_pass, ins, c) {
      const a = ins[0] as Float32Array;
      const b = ins[1] as Float32Array;
      for (let i = 0; i < c.numel; i++) {
        const x = a[i]!;
        const y = b[i]!;
        g00 += x * x;
        g11 += y * y;
        g01 += x * y;
      }
    },
    emit(ins, outs, c) {
      if (c.r0 === 0) {
        coefs = alphas.map((al) => slerpCoefficients(al, g00, g11, g01));
        if (coefs.some((x, k) => alphas[k] !== 0 && alphas[k] !== 1 && !(Number.isFinite(x.s0) && Number.isFinite(x.s1)))) {
          warnings.push(`tensor '${t.name}': slerp's angle is not finite (an input holds NaN or infinite values), so every value of the interpolated tensor is NaN`);
        }
      }
      const a = ins[0] as Float32Array;
      const b = ins[1] as Float32Array;
      for (let k = 0; k < alphas.length; k++) {
        const o = outs[k] as Float32Array;
        const { s0, s1 } = coefs[k]!;
        if (alphas[k] === 0) o.set(a.subarray(0, c.numel));
        else if (alphas[k] === 1) o.set(b.subarray(0, c.numel));
        else for (let i = 0; i < c.numel; i++) o[i] = s0 * a[i]! + s1 * b[i]!;
      }
    },
  };
}

function interpolationJob(
  t: TensorInfo,
  from: CheckpointReader,
  to: CheckpointReader,
  fFrom: CheckpointReader | undefined,
  fTo: CheckpointReader | undefined,
  alphas: readonly number[],
  floor: number,
  dtype: DType,
): StreamJob {
  const fisher = fFrom !== undefined && fTo !== undefined;
  return {
    name: t.name,
    shape: t.shape,
    inputs: [
      { reader: from, tensor: t.name },
      { reader: to, tensor: t.name },
      ...(fisher ? [{ reader: fFrom, tensor: t.name }, { reader: fTo, tensor: t.name }] : []),
    ],
    outputs: alphas.map((_, k) => ({ sink: k, dtype })),
    emit(ins, outs, c) {
      const n = c.numel;
      const a = ins[0] as Float32Array;
      const b = ins[1] as Float32Array;
      if (fisher) {
        assertFisherValues(ins[2] as Float32Array, n, fFrom.path, t.name, c.offset);
        assertFisherValues(ins[3] as Float32Array, n, fTo.path, t.name, c.offset);
      }
      for (let k = 0; k < alphas.length; k++) {
        const alpha = alphas[k]!;
        const o = outs[k] as Float32Array;
        if (alpha === 0) o.set(a.subarray(0, n));
        else if (alpha === 1) o.set(b.subarray(0, n));
        else if (!fisher) {
          const wa = 1 - alpha;
          for (let i = 0; i < n; i++) o[i] = wa * a[i]! + alpha * b[i]!;
        } else {
          const fa = ins[2] as Float32Array;
          const fb = ins[3] as Float32Array;
          const wa = 1 - alpha;
          for (let i = 0; i < n; i++) {
            const ca = wa * Math.max(fa[i]!, floor);
            const cb = alpha * Math.max(fb[i]!, floor);
            o[i] = (ca * a[i]! + cb * b[i]!) / (ca + cb);
          }
        }
      }
    },
  };
}

/** Tensors every reader shares as floats with equal shapes (the first reader's order) and the first reader's rest. */
export function pairAll(readers: readonly CheckpointReader[], role = 'model'): { shared: TensorInfo[]; skipped: string[] } {
  const first = readers[0]!;
  const skipped = new Set<string>();
  for (let i = 1; i < readers.length; i++) {
    const p = pairTensors(first, readers[i]!, { roles: [`${role} 1`, `${role} ${i + 1}`] });
    for (const s of p.skipped) skipped.add(s);
  }
  const shared: TensorInfo[] = [];
  for (const t of first.tensors()) {
    if (!isFloatDType(t.dtype)) skipped.add(t.name);
    else if (!skipped.has(t.name)) shared.push(t);
  }
  requireShared(shared, `the ${readers.length} ${role}s`, first.path);
  return { shared, skipped: first.tensors().filter((t) => skipped.has(t.name)).map((t) => t.name) };
}

/**
 * Fisher-weighted average of N models: θ* = Σ λ_i (F_i + ε) θ_i / Σ λ_i (F_i + ε), λ default 1/N. With `normalize`,
 * a first streaming pass over the Fisher files computes ‖F_i‖ and λ_i is multiplied by (1/(‖F_i‖+ε)) /
 * Σ_j 1/(‖F_j‖+ε) (MergeLM). Non-float tensors are copied from the first model (also the layout donor).
 */
export async function fisherAverage(options: FisherAverageOptions): Promise<FisherAverageResult> {
  const n = options.models.length;
  if (n === 0) throw new UsageError('USAGE', 'fisher averaging needs at least one model');
  if (options.fishers.length !== n) {
    throw new UsageError('USAGE', `give one Fisher file per model (${n} model(s), ${options.fishers.length} Fisher file(s))`);
  }
  const eps = options.epsilon ?? DEFAULT_FISHER_EPSILON;
  if (!(eps >= 0 && eps < Infinity)) throw new UsageError('USAGE', `epsilon must be a finite number >= 0 (got ${String(eps)})`);
  let lambdas = options.lambdas !== undefined ? [...options.lambdas] : options.models.map(() => 1 / n);
  if (lambdas.length !== n) throw new UsageError('USAGE', `give one lambda per model (${n} model(s), ${lambdas.length} lambda(s))`);
  for (const l of lambdas) if (!(l >= 0 && l < Infinity)) throw new UsageError('USAGE', `lambdas must be finite and >= 0 (got ${String(l)})`);
  const dtype = checkOutputDtype(options.dtype);
  const inputPaths = [...options.models, ...options.fishers];
  const models = await openAllCheckpoints(options.models);
  try {
    const fishers = await openAllCheckpoints(options.fishers);
    try {
      const { shared, skipped } = pairAll(models);
      for (const f of fishers) checkFisher(f, shared);
      let fisherNorms: number[] | undefined;
      if (options.normalize) {
        const sq = fishers.map(() => 0);
        const normJobs: StreamJob[] = shared.map((t) => ({
          name: t.name,
          shape: t.shape,
          inputs: fishers.map((f) => ({ reader: f, tensor: t.name })),
          outputs: [],
          emit(ins, _outs, c) {
            for (let i = 0; i < n; i++) {
              const f = ins[i] as Float32Array;
              assertFisherValues(f, c.numel, fishers[i]!.path, t.name, c.offset);
              let s = 0;
              for (let j = 0; j < c.numel; j++) s += f[j]! * f[j]!;
              sq[i] = sq[i]! + s;
            }
          },
        }));
        await runStream(normJobs, { sinks: [], budgetBytes: options.budgetBytes, signal: options.signal });
        fisherNorms = sq.map((s) => Math.sqrt(s));
        const inv = fisherNorms.map((x) => 1 / (x + eps));
        const total = inv.reduce((a, b) => a + b, 0);
        lambdas = lambdas.map((l, i) => (l * inv[i]!) / total);
      }
      const sharedNames = new Set(shared.map((t) => t.name));
      const lam = lambdas;
      const { decls, jobs } = modelJobs(models[0]!, sharedNames, 1, dtype, (t, out) => ({
        name: t.name,
        shape: t.shape,
        inputs: [...models.map((m) => ({ reader: m, tensor: t.name })), ...fishers.map((f) => ({ reader: f, tensor: t.name }))],
        outputs: [{ sink: 0, dtype: out }],
        emit(ins, outs, c) {
          for (let i = 0; i < n; i++) assertFisherValues(ins[n + i] as Float32Array, c.numel, fishers[i]!.path, t.name, c.offset);
          const o = outs[0] as Float32Array;
          for (let j = 0; j < c.numel; j++) {
            let num = 0;
            let den = 0;
            for (let i = 0; i < n; i++) {
              const w = lam[i]! * ((ins[n + i] as Float32Array)[j]! + eps);
              num += w * (ins[i] as Float32Array)[j]!;
              den += w;
            }
            o[j] = num / den;
          }
        },
      }));
      const sink = await openCheckpointSink(options.out, decls, {
        metadata: modelMetadata('fisher_average', { models: options.models, fishers: options.fishers, lambdas, epsilon: eps }),
        overwrite: options.overwrite,
        inputs: inputPaths,
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
      return {
        out: options.out,
        files,
        tensors: shared.length,
        skipped,
        lambdas,
        ...(fisherNorms !== undefined ? { fisherNorms } : {}),
      };
    } finally {
      await closeAllCheckpoints(fishers);
    }
  } finally {
    await closeAllCheckpoints(models);
  }
}
