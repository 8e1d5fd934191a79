// Running a method over in-memory tensors: parameter defaults and checks, the statistics passes and the emit pass
// over chunks. `mergeTensors` is the notebook-style API (`mergeTensorsAsync` for methods with an async compute step);
// the streaming executor uses the same chunk protocol.

import { UsageError } from '../errors.js';
import type { ParamSpec, ParamValue } from '../recipe/spec.js';
import { checkParamValue } from '../recipe/validate.js';
import { didYouMean } from '../recipe/suggest.js';
import { methodCatalog } from './registry.js';
import { toF32 } from '../tensor/convert.js';
import type { MatMulBackend } from '../tensor/linalg/backend.js';
import { streamKey } from '../tensor/rng.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Chunk, MergeMethod, Params, TensorContext, TensorMerger } from './types.js';

/** Fill defaults and check values of one parameter record against its specs. */
export function resolveParams(
  specs: readonly ParamSpec[],
  given: Readonly<Record<string, ParamValue | undefined>>,
  where: string,
): Params {
  const out: Record<string, ParamValue> = {};
  for (const s of specs) {
    const v = given[s.name];
    if (v === undefined) {
      if (s.required) throw new UsageError('RECIPE_PARAM_REQUIRED', `${where}: parameter '${s.name}' is required (${s.description})`, { where: { path: s.name } });
      if (s.default !== undefined) out[s.name] = s.default;
      continue;
    }
    const p = checkParamValue(s, v);
    if (p) throw new UsageError(p.code, `${where}: ${p.message}`, { where: { path: s.name } });
    out[s.name] = v;
  }
  for (const k of Object.keys(given)) {
    if (given[k] !== undefined && !specs.some((s) => s.name === k)) {
      const names = specs.map((s) => s.name);
      throw new UsageError('RECIPE_UNKNOWN_PARAM', `${where}: unknown parameter '${k}'${didYouMean(k, names)}`, { where: { path: k } });
    }
  }
  return out;
}

/** Chunk length (elements) respecting the merger's chunking rule. */
export function chunkElements(m: TensorMerger, numel: number, rowLength: number, maxElements: number): number {
  if (m.chunking === 'tensor' || numel <= maxElements) return Math.max(1, numel);
  if (m.chunking === 'rows') return Math.max(1, Math.floor(maxElements / rowLength)) * rowLength;
  return Math.max(1, maxElements);
}

/** Synchronous driver: statistics passes then emit, over chunks produced by `chunkAt`. */
export function drive(
  m: TensorMerger,
  numel: number,
  step: number,
  chunkAt: (offset: number, length: number) => Chunk,
  out: Float32Array,
): void {
  if (m.beginPass && m.observe) {
    for (let p = 0; m.beginPass(p); p++) {
      for (let o = 0; o < numel; o += step) m.observe(p, chunkAt(o, Math.min(step, numel - o)));
    }
  }
  for (let o = 0; o < numel; o += step) {
    const len = Math.min(step, numel - o);
    m.emit(chunkAt(o, len), out.subarray(o, o + len));
  }
  if (numel === 0) m.emit(chunkAt(0, 0), out.subarray(0, 0));
}

export interface MergeTensorsOptions {
  /** global (method-level) parameters */
  params?: Record<string, ParamValue>;
  /** per-model parameters, one record per non-base model */
  modelParams?: Record<string, ParamValue>[];
  seed?: number;
  /** tensor name (keys the random streams, as in a real merge) */
  name?: string;
  /** tensor shape; defaults to 1-D */
  shape?: readonly number[];
  /** process in chunks of at most this many elements (results are identical at any chunk size) */
  chunkElements?: number;
  /** matrix products of `linalg` methods (mergeTensorsAsync only; default jsMatMul) */
  linalg?: MatMulBackend;
}

export interface MergeTensorsInputs {
  base?: Float32Array | Tensor;
  models: readonly (Float32Array | Tensor)[];
}

function asF32(x: Float32Array | Tensor): Float32Array {
  return x instanceof Float32Array ? x : toF32(x.dtype, x.data);
}

/** Build the per-tensor context a method sees. */
export function makeContext(
  method: MergeMethod,
  init: {
    name: string;
    shape: readonly number[];
    hasBase: boolean;
    params: Params;
    modelParams: readonly Params[];
    seed: number;
    modelStats?: unknown;
    linalg?: MatMulBackend;
    warn?: (message: string) => void;
    inputName?: (input: 'base' | number) => string;
  },
): TensorContext {
  const numel = init.shape.reduce((a, b) => a * b, 1);
  const rowLength = init.shape.length <= 1 ? 1 : init.shape.slice(1).reduce((a, b) => a * b, 1);
  return {
    name: init.name,
    shape: init.shape,
    numel,
    rowLength,
    params: init.params,
    modelParams: init.modelParams,
    hasBase: init.hasBase,
    modelCount: init.modelParams.length,
    rng: (i, purpose = method.name) => streamKey(init.seed, init.name, i, purpose),
    ...(init.modelStats !== undefined ? { modelStats: init.modelStats } : {}),
    ...(init.linalg !== undefined ? { linalg: init.linalg } : {}),
    warn: init.warn ?? (() => undefined),
    inputName: init.inputName ?? ((i) => (i === 'base' ? 'the base model' : `model ${i + 1} (in recipe order)`)),
  };
}

interface PreparedMerge {
  merger: TensorMerger;
  numel: number;
  step: number;
  chunkAt: (offset: number, length: number) => Chunk;
}

interface ResolvedInputs {
  numel: number;
  shape: readonly number[];
  name: string;
  hasBase: boolean;
  params: Params;
  modelParams: Params[];
  chunkAt: (offset: number, length: number) => Chunk;
}

function resolveInputs(method: MergeMethod, inputs: MergeTensorsInputs, options: MergeTensorsOptions): ResolvedInputs {
  const name = options.name ?? 'tensor';
  const where = { tensor: name };
  // Tensors carry their shapes: every input's must agree (with options.shape too, when given)
  const shapes = [...(inputs.base === undefined ? [] : [inputs.base]), ...inputs.models].filter((x): x is Tensor => !(x instanceof Float32Array)).map((t) => t.shape);
  const tensorShape = options.shape ?? shapes[0];
  for (const sh of shapes) {
    if (tensorShape !== undefined && (sh.length !== tensorShape.length || sh.some((d, i) => d !== tensorShape[i]))) {
      throw new UsageError('TENSOR_SHAPE_MISMATCH', `tensor '${name}': an input of shape [${sh.join(', ')}] where [${tensorShape.join(', ')}] was given`, { where });
    }
  }
  const models = inputs.models.map(asF32);
  const base = inputs.base === undefined ? undefined : asF32(inputs.base);
  const numel = (base ?? models[0])?.length ?? 0;
  for (const [i, m] of models.entries()) {
    if (m.length !== numel) throw new UsageError('TENSOR_SHAPE_MISMATCH', `tensor '${name}': model ${i} has ${m.length} elements, expected ${numel}`, { where });
  }
  if (options.modelParams !== undefined && options.modelParams.length !== models.length) {
    throw new UsageError('USAGE', `${method.name}: ${options.modelParams.length} modelParams record(s) for ${models.length} model(s)`, { where });
  }
  if (options.chunkElements !== undefined && !(Number.isSafeInteger(options.chunkElements) && options.chunkElements > 0)) {
    throw new UsageError('USAGE', `chunkElements must be a positive integer (got ${options.chunkElements})`, { where });
  }
  if (options.seed !== undefined && !(Number.isSafeInteger(options.seed) && options.seed >= 0)) {
    throw new UsageError('USAGE', `seed must be a non-negative integer (got ${options.seed})`, { where });
  }
  if (method.base === 'required' && !base) throw new UsageError('RECIPE_BASE_REQUIRED', `${method.name} needs a base tensor`, { where });
  if ((method.base === 'none' || method.base === 'input') && base) {
    throw new UsageError('RECIPE_BASE_NOT_ALLOWED', `${method.name} takes no base tensor (pass every input as a model)`, { where });
  }
  const shape = tensorShape ?? [numel];
  if (shape.reduce((a, b) => a * b, 1) !== numel) throw new UsageError('TENSOR_SHAPE_MISMATCH', `tensor '${name}': shape [${shape.join(', ')}] does not hold ${numel} elements`, { where });
  if (models.length < method.minModels || (method.maxModels !== undefined && models.length > method.maxModels)) {
    throw new UsageError('RECIPE_MODEL_COUNT', `${method.name} takes ${method.minModels}${method.maxModels === undefined ? '+' : `..${method.maxModels}`} models (got ${models.length})`, { where });
  }
  const params = resolveParams(method.params, options.params ?? {}, method.name);
  const modelParams = models.map((_, i) => resolveParams(method.modelParams, options.modelParams?.[i] ?? {}, `${method.name} model ${i}`));
  const chunkAt = (o: number, len: number): Chunk => ({
    offset: o,
    length: len,
    base: base?.subarray(o, o + len),
    models: models.map((m) => m.subarray(o, o + len)),
  });
  return { numel, shape, name, hasBase: base !== undefined, params, modelParams, chunkAt };
}

function contextOf(method: MergeMethod, r: ResolvedInputs, options: MergeTensorsOptions, modelStats: unknown): TensorContext {
  return makeContext(method, {
    name: r.name,
    shape: r.shape,
    hasBase: r.hasBase,
    params: r.params,
    modelParams: r.modelParams,
    seed: options.seed ?? 0,
    ...(modelStats !== undefined ? { modelStats } : {}),
    ...(options.linalg !== undefined ? { linalg: options.linalg } : {}),
  });
}

function finish(method: MergeMethod, r: ResolvedInputs, options: MergeTensorsOptions, modelStats: unknown): PreparedMerge {
  const ctx = contextOf(method, r, options, modelStats);
  const merger = method.create(ctx);
  const step = chunkElements(merger, r.numel, ctx.rowLength, options.chunkElements ?? r.numel);
  return { merger, numel: r.numel, step, chunkAt: r.chunkAt };
}

/** A method, or its name (an unknown name is RECIPE_UNKNOWN_METHOD with a did-you-mean). */
function methodOf(m: MergeMethod | string): MergeMethod {
  if (typeof m !== 'string') return m;
  const found = methodCatalog().get(m);
  if (found === undefined) throw new UsageError('RECIPE_UNKNOWN_METHOD', `unknown merge method '${m}'${didYouMean(m, methodCatalog().keys())}`);
  return found as MergeMethod;
}

function prepare(method: MergeMethod, inputs: MergeTensorsInputs, options: MergeTensorsOptions): PreparedMerge {
  const r = resolveInputs(method, inputs, options);
  // a whole-model pre-pass (e.g. TIES trim_scope: model) sees just this one tensor
  let modelStats: unknown;
  const collector = method.modelStats?.(r.params, r.modelParams);
  if (collector) {
    if (collector.observeTensor) {
      throw new UsageError('USAGE', `${method.name} has an asynchronous whole-model pre-pass with these parameters (tensor '${r.name}'): use mergeTensorsAsync`);
    }
    for (let p = 0; collector.beginPass(p); p++) collector.observe(p, r.name, r.chunkAt(0, r.numel));
    modelStats = collector.result();
  }
  return finish(method, r, options, modelStats);
}

/** prepare, awaiting a pre-pass collector's whole-tensor hook (observeTensor) when it has one. */
async function prepareAsync(method: MergeMethod, inputs: MergeTensorsInputs, options: MergeTensorsOptions): Promise<PreparedMerge> {
  const r = resolveInputs(method, inputs, options);
  let modelStats: unknown;
  const collector = method.modelStats?.(r.params, r.modelParams);
  if (collector) {
    const ctx = contextOf(method, r, options, undefined);
    for (let p = 0; collector.beginPass(p); p++) {
      if (collector.observeTensor) await collector.observeTensor(p, ctx, r.chunkAt(0, r.numel));
      else collector.observe(p, r.name, r.chunkAt(0, r.numel));
    }
    modelStats = collector.result();
  }
  return finish(method, r, options, modelStats);
}

/** Merge in-memory tensors with a method (notebook-style API). Returns the merged values as f32. */
export function mergeTensors(methodOrName: MergeMethod | string, inputs: MergeTensorsInputs, options: MergeTensorsOptions = {}): Float32Array {
  const method = methodOf(methodOrName);
  const { merger, numel, step, chunkAt } = prepare(method, inputs, options);
  if (merger.compute) {
    throw new UsageError('USAGE', `${method.name} has an asynchronous linear-algebra step for tensor '${options.name ?? 'tensor'}': use mergeTensorsAsync`);
  }
  const out = new Float32Array(numel);
  drive(merger, numel, step, chunkAt, out);
  return out;
}

/**
 * Like mergeTensors, for every method including those with an async compute step (TSV-M, Iso-C): statistics
 * passes, then compute() on the whole tensor, then emit. `options.linalg` runs their matrix products (default jsMatMul).
 */
export async function mergeTensorsAsync(methodOrName: MergeMethod | string, inputs: MergeTensorsInputs, options: MergeTensorsOptions = {}): Promise<Float32Array> {
  const method = methodOf(methodOrName);
  const { merger, numel, step, chunkAt } = await prepareAsync(method, inputs, options);
  const out = new Float32Array(numel);
  if (!merger.compute) {
    drive(merger, numel, step, chunkAt, out);
    return out;
  }
  if (merger.chunking !== 'tensor') throw new UsageError('USAGE', `${method.name}: compute() needs chunking 'tensor' (got '${merger.chunking}')`);
  const whole = chunkAt(0, numel);
  if (merger.beginPass && merger.observe) for (let p = 0; merger.beginPass(p); p++) merger.observe(p, whole);
  await merger.compute(whole);
  merger.emit(whole, out);
  return out;
}
