// ONNX Runtime sessions for evaluation: an ONNX graph, optionally with its initializers replaced by a checkpoint's
// tensors (patched into a private temp folder as external data, cast to the graph's dtypes at the boundary since
// ORT-JS has no bf16), loaded by path with `disable_prepacking` (ORT maps the weights instead of copying them).
// close() releases the session and deletes the temp files. One of the few modules that may import onnxruntime-node.

import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import * as nodePath from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { EvalError, PlanError } from '../errors.js';
import { openOnnx, type OnnxValueInfo } from '../io/onnx/reader.js';
import { patchOnnx } from '../io/onnx/patch.js';
import { openCheckpointPath } from '../io/open.js';
import type { CheckpointReader } from '../io/types.js';
import { isFloatDType, type DType } from '../tensor/dtype.js';
import { makeTensor, type Tensor } from '../tensor/tensor.js';

/** Prefix of every temp folder an EvalSession creates (followed by the process id and a random suffix). */
export const EVAL_TEMP_PREFIX = 'weightkit-eval-';

export interface EvalSessionOptions {
  /** Weights replacing the graph's initializers of the same names: a safetensors file/folder, a model, or a reader. */
  weights?: string | CheckpointReader;
  /** Graph input to feed (default: the first input that is not an initializer). */
  input?: string;
  /** Graph output to read (default: the first output). */
  output?: string;
  /** ORT intra-op threads (default: min(2, available cores)); inter-op is always 1. */
  threads?: number;
  /** Parent folder of the temp folder holding a patched model (default os.tmpdir()). */
  tmpDir?: string;
  /** Let ORT pre-pack MatMul weights (copies them: slower loads; default false). */
  prepacking?: boolean;
}

/** The output of one batch: a float32 tensor. */
export interface BatchOutput {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

export interface EvalSession extends AsyncDisposable {
  /** The graph the session was built from, as given. */
  readonly model: string;
  /** The file ORT loaded: the graph itself, or the patched copy in the temp folder. */
  readonly file: string;
  /** The temp folder holding the patched copy (deleted by close), if any. */
  readonly tempDir: string | undefined;
  readonly input: OnnxValueInfo;
  readonly output: OnnxValueInfo;
  /** Initializers whose values came from `weights`, in file order. */
  readonly patched: readonly string[];
  /** Milliseconds spent patching (0 without weights) and creating the ORT session. */
  readonly timing: { readonly patchMs: number; readonly createMs: number };
  /** Run one batch: `data` is row-major f32 of `shape` (its first dim is the batch). */
  run(data: Float32Array, shape: readonly number[]): Promise<BatchOutput>;
  /** Release the session and delete the temp files; safe to call twice. */
  close(): Promise<void>;
}

export function defaultThreads(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

function ortMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The graph input and output an evaluation uses (first ones unless named): EVAL_MODEL if absent. */
export async function readModelIo(model: string, input?: string, output?: string): Promise<{ input: OnnxValueInfo; output: OnnxValueInfo }> {
  const reader = await openOnnx(model);
  try {
    const ins = reader.graphInputs();
    const outs = reader.graphOutputs();
    const pick = (list: readonly OnnxValueInfo[], name: string | undefined, role: string): OnnxValueInfo => {
      const v = name === undefined ? list[0] : list.find((x) => x.name === name);
      if (v === undefined) {
        const have = list.map((x) => `'${x.name}'`).join(', ') || 'none';
        throw new EvalError(
          'EVAL_MODEL',
          name === undefined ? `the model has no graph ${role}` : `the model has no graph ${role} '${name}' (it has ${have})`,
          { where: name === undefined ? { file: model } : { file: model, tensor: name } },
        );
      }
      return v;
    };
    return { input: pick(ins, input, 'input'), output: pick(outs, output, 'output') };
  } finally {
    await reader.close();
  }
}

/** The replacement of one initializer from `weights`; F32 graph tensors are decoded with the fast f32 readers. */
async function replacementFor(weights: CheckpointReader, name: string, graphDType: DType): Promise<Tensor | undefined> {
  if (!weights.has(name)) return undefined;
  const info = weights.info(name);
  if (graphDType === 'F32' && info.dtype !== 'F32' && isFloatDType(info.dtype)) {
    return makeTensor('F32', info.shape, await weights.readF32(name)); // BF16/F16 -> F32 at the boundary
  }
  return weights.read(name); // patchOnnx casts (cast: true) to the graph's dtype
}

/**
 * Open an ONNX model for evaluation. With `weights`, every weights tensor must name an initializer of the graph
 * (TENSOR_NOT_FOUND otherwise) with the same shape (TENSOR_SHAPE_MISMATCH); initializers the weights lack keep the
 * graph's values. ORT failures are EVAL_MODEL with ORT's message and the file.
 */
export async function openEvalSession(model: string, options: EvalSessionOptions = {}): Promise<EvalSession> {
  const io = await readModelIo(model, options.input, options.output);
  const threads = options.threads ?? defaultThreads();
  if (!Number.isSafeInteger(threads) || threads < 1) {
    throw new EvalError('EVAL_MODEL', `threads must be a positive integer, got ${threads}`, { where: { file: model } });
  }
  let tempDir: string | undefined;
  let file = model;
  let patched: readonly string[] = [];
  let ownedWeights: CheckpointReader | undefined;
  const t0 = performance.now();
  let patchMs = 0;
  const cleanup = async () => {
    await ownedWeights?.close().catch(() => undefined);
    ownedWeights = undefined;
    if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    if (options.weights !== undefined) {
      const weights = typeof options.weights === 'string' ? (ownedWeights = await openCheckpointPath(options.weights)) : options.weights;
      const graph = await openOnnx(model);
      try {
        for (const t of weights.tensors()) {
          if (!graph.has(t.name)) {
            throw new PlanError('TENSOR_NOT_FOUND', `weights tensor '${t.name}' is not an initializer of the graph`, {
              where: { file: weights.path, tensor: t.name },
              hint: `the graph ${model} must use the same tensor names as the weights`,
            });
          }
        }
      } finally {
        await graph.close();
      }
      tempDir = await mkdtemp(nodePath.join(options.tmpDir ?? tmpdir(), `${EVAL_TEMP_PREFIX}${process.pid}-`));
      const out = nodePath.join(tempDir, 'model.onnx');
      const result = await patchOnnx({
        model,
        out,
        replacements: (name, info) => replacementFor(weights, name, info.dtype),
        cast: true,
        external: true,
        externalDataName: 'model.onnx.data',
      });
      patched = result.replaced;
      file = out;
      await ownedWeights?.close();
      ownedWeights = undefined;
      patchMs = performance.now() - t0;
    }
    const t1 = performance.now();
    // loaded on first use: importing weightkit (or its CLI) does not load the native addon
    const ort: typeof Ort = await import('onnxruntime-node');
    let session: Ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(file, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
        extra: options.prepacking ? {} : { session: { disable_prepacking: '1' } },
      });
    } catch (e) {
      throw new EvalError('EVAL_MODEL', `ONNX Runtime cannot load the model: ${ortMessage(e)}`, {
        where: { file: model },
        cause: e,
      });
    }
    const createMs = performance.now() - t1;
    return new OrtEvalSession(ort, model, file, tempDir, io.input, io.output, patched, { patchMs, createMs }, session);
  } catch (e) {
    await cleanup();
    throw e;
  }
}

class OrtEvalSession implements EvalSession {
  private session: Ort.InferenceSession | undefined;
  private closing: Promise<void> | undefined;
  constructor(
    private readonly ort: typeof Ort,
    readonly model: string,
    readonly file: string,
    readonly tempDir: string | undefined,
    readonly input: OnnxValueInfo,
    readonly output: OnnxValueInfo,
    readonly patched: readonly string[],
    readonly timing: { readonly patchMs: number; readonly createMs: number },
    session: Ort.InferenceSession,
  ) {
    this.session = session;
  }

  async run(data: Float32Array, shape: readonly number[]): Promise<BatchOutput> {
    const s = this.session;
    if (s === undefined) throw new EvalError('EVAL_MODEL', 'the session is closed', { where: { file: this.model } });
    let out: Ort.InferenceSession.OnnxValueMapType;
    try {
      out = await s.run({ [this.input.name]: new this.ort.Tensor('float32', data, [...shape]) }, [this.output.name]);
    } catch (e) {
      throw new EvalError('EVAL_MODEL', `ONNX Runtime failed to run the model: ${ortMessage(e)}`, {
        where: { file: this.model, tensor: this.input.name },
        cause: e,
      });
    }
    const y = out[this.output.name];
    if (y === undefined || y.type !== 'float32') {
      throw new EvalError('EVAL_MODEL', `output '${this.output.name}' is ${y?.type ?? 'missing'}, expected float32 logits`, {
        where: { file: this.model, tensor: this.output.name },
      });
    }
    return { data: y.data as Float32Array, shape: y.dims.map(Number) };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const s = this.session;
      this.session = undefined;
      try {
        await s?.release();
      } finally {
        if (this.tempDir !== undefined) await rm(this.tempDir, { recursive: true, force: true });
      }
    })();
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
