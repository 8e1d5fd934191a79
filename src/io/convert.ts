// `convert` as library functions: any checkpoint -> (dtype-converted) safetensors, streamed tensor by tensor with
// reused buffers; and ONNX model + safetensors weights -> patched ONNX model. Outputs are staged and renamed
// when complete; inputs are never modified.

import { PlanError, UsageError } from '../errors.js';
import { fromF32 } from '../tensor/convert.js';
import { DTYPE_INFO, isFloatDType, viewData, type DType } from '../tensor/dtype.js';
import { formatShape, shapesEqual, type Tensor } from '../tensor/tensor.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { openCheckpointPath } from './open.js';
import { checkOutputFile, stageOutputDir } from './output.js';
import { openSafetensorsWriter } from './safetensors/writer.js';
import { openShardedWriter } from './safetensors/sharded-writer.js';
import type { CheckpointReader, TensorDecl, TensorInfo } from './types.js';

export const DEFAULT_SHARD_SIZE = 5_000_000_000;

export interface ConvertProgress {
  tensor: string;
  index: number;
  count: number;
  bytesDone: number;
  bytesTotal: number;
}

export interface ConvertOptions {
  input: string;
  /** A `.safetensors` file path (single file) or a folder (sharded Hugging Face layout). */
  out: string;
  /** Convert float tensors to this dtype; integer and bool tensors are copied unchanged. */
  dtype?: DType;
  /** Shard size in bytes for folder outputs (default 5 GB, like Hugging Face). */
  shardSize?: number;
  overwrite?: boolean;
  onProgress?: (p: ConvertProgress) => void;
}

export interface ConvertResult {
  out: string;
  tensors: number;
  byteLength: number;
  files: string[];
  /** tensors whose finite values overflowed the output dtype (F16 beyond ±65504 becomes ±inf) */
  warnings: string[];
}

const CONVERTIBLE: readonly DType[] = ['F32', 'F16', 'BF16'];

export function outputDecls(reader: CheckpointReader, dtype: DType | undefined): TensorDecl[] {
  return reader.tensors().map((t) => ({
    name: t.name,
    dtype: dtype !== undefined && isFloatDType(t.dtype) ? dtype : t.dtype,
    shape: t.shape,
  }));
}

/** Convert any checkpoint (safetensors, sharded folder, ONNX initializers) to safetensors. */
export async function convertCheckpoint(options: ConvertOptions): Promise<ConvertResult> {
  const { input, out } = options;
  if (options.dtype !== undefined && !CONVERTIBLE.includes(options.dtype)) {
    throw new UsageError('USAGE', `--dtype must be one of bf16, f16, f32 (got ${options.dtype})`);
  }
  const shardSize = options.shardSize ?? DEFAULT_SHARD_SIZE;
  if (!Number.isSafeInteger(shardSize) || shardSize <= 0) {
    throw new UsageError('USAGE', `shard size must be a positive number of bytes (got ${shardSize})`);
  }
  const reader = await openCheckpointPath(input);
  try {
    const decls = outputDecls(reader, options.dtype);
    const metadata: Record<string, string> = { format: 'pt', ...reader.metadata() };
    metadata['weightkit_version'] = WEIGHTKIT_VERSION;
    metadata['weightkit_source_format'] = reader.format;
    if (options.dtype !== undefined) metadata['weightkit_dtype'] = options.dtype;
    const single = out.endsWith('.safetensors');
    if (single) {
      await checkOutputFile(out, { overwrite: options.overwrite, inputs: [input] });
      const writer = await openSafetensorsWriter(out, decls, { metadata, replace: options.overwrite === true });
      try {
        const warnings: string[] = [];
        const bytes = await copyTensors(reader, decls, writer.write.bind(writer), options.onProgress, warnings);
        await writer.close();
        return { out, tensors: decls.length, byteLength: bytes, files: [out], warnings };
      } catch (e) {
        await writer.abort();
        throw e;
      }
    }
    const staged = await stageOutputDir(out, { overwrite: options.overwrite, inputs: [input] });
    try {
      const writer = await openShardedWriter(staged.staging, decls, { shardSize, metadata });
      let bytes: number;
      const warnings: string[] = [];
      try {
        bytes = await copyTensors(reader, decls, writer.write.bind(writer), options.onProgress, warnings);
        await writer.close();
      } catch (e) {
        await writer.abort();
        throw e;
      }
      const files = writer.files.map((f) => f.replace(staged.staging, out));
      await staged.commit();
      return { out, tensors: decls.length, byteLength: bytes, files, warnings };
    } catch (e) {
      await staged.abort();
      throw e;
    }
  } finally {
    await reader.close();
  }
}

type WriteFn = (name: string, data: Uint8Array) => Promise<void>;

/** How many finite values of `src` became ±inf in their F16 bits `dst`. */
export function f16Overflows(src: Float32Array, dst: Uint16Array): number {
  let n = 0;
  for (let i = 0; i < src.length; i++) if ((dst[i]! & 0x7fff) === 0x7c00 && Math.abs(src[i]!) !== Infinity) n++;
  return n;
}

/** Stream every tensor from reader to writer, converting dtypes with two reused buffers. Returns bytes written. */
async function copyTensors(
  reader: CheckpointReader,
  decls: readonly TensorDecl[],
  write: WriteFn,
  onProgress: ((p: ConvertProgress) => void) | undefined,
  warnings: string[],
): Promise<number> {
  let maxIn = 0;
  let maxOut = 0;
  let total = 0;
  for (const d of decls) {
    const info = reader.info(d.name);
    maxIn = Math.max(maxIn, info.numel);
    const outBytes = info.numel * DTYPE_INFO[d.dtype].bytes;
    maxOut = Math.max(maxOut, outBytes);
    total += outBytes;
  }
  let f32: Float32Array | undefined;
  let outBuf: ArrayBuffer | undefined;
  let done = 0;
  for (let i = 0; i < decls.length; i++) {
    const d = decls[i]!;
    const info = reader.info(d.name);
    let bytes: Uint8Array;
    if (d.dtype === info.dtype) {
      bytes = await reader.readBytes(d.name);
    } else {
      f32 ??= new Float32Array(maxIn);
      outBuf ??= new ArrayBuffer(Math.max(8, maxOut));
      const src = await reader.readF32(d.name, { into: f32.subarray(0, info.numel) });
      const dst = viewData(d.dtype, outBuf, 0, info.numel);
      fromF32(d.dtype, src, dst);
      if (d.dtype === 'F16') {
        const over = f16Overflows(src, dst as Uint16Array);
        if (over > 0) warnings.push(`tensor '${d.name}': ${over} finite value(s) beyond the F16 range (±65504) became ±inf`);
      }
      bytes = new Uint8Array(outBuf, 0, info.numel * DTYPE_INFO[d.dtype].bytes);
    }
    await write(d.name, bytes);
    done += bytes.byteLength;
    onProgress?.({ tensor: d.name, index: i + 1, count: decls.length, bytesDone: done, bytesTotal: total });
  }
  return done;
}

export interface PatchFromWeightsOptions {
  /** The ONNX model whose graph is kept. */
  model: string;
  /** A safetensors file or folder whose tensors replace the model's initializers of the same name. */
  weights: string;
  out: string;
  /** Keep the model's own value for initializers the weights do not have (default: error). */
  allowMissing?: boolean;
  /** Convert weights to the initializer's dtype when they differ (default: error). */
  cast?: boolean;
  /** Write weights to an external data file next to the output (`auto`: only when required, above ~1.8 GB). */
  external?: boolean | 'auto';
  overwrite?: boolean;
}

export interface PatchFromWeightsResult {
  out: string;
  replaced: number;
  kept: string[];
}

/** Patch an ONNX model's initializers with the same-named tensors of a safetensors checkpoint. */
export async function patchOnnxFromWeights(options: PatchFromWeightsOptions): Promise<PatchFromWeightsResult> {
  await checkOutputFile(options.out, { overwrite: options.overwrite, inputs: [options.model, options.weights] });
  const model = await openCheckpointPath(options.model);
  const weights = await openCheckpointPath(options.weights);
  try {
    if (model.format !== 'onnx') {
      throw new UsageError('USAGE', `${options.model} is not an ONNX model (found ${model.format})`, {
        where: { file: options.model },
      });
    }
    const missing: TensorInfo[] = [];
    for (const t of model.tensors()) {
      if (!weights.has(t.name)) {
        missing.push(t);
        continue;
      }
      const w = weights.info(t.name);
      if (!shapesEqual(w.shape, t.shape)) {
        throw new PlanError(
          'TENSOR_SHAPE_MISMATCH',
          `tensor '${t.name}' has shape ${formatShape(w.shape)} in the weights but ${formatShape(t.shape)} in the model`,
          { where: { file: options.weights, tensor: t.name } },
        );
      }
      if (w.dtype !== t.dtype && !options.cast) {
        throw new PlanError(
          'TENSOR_DTYPE_MISMATCH',
          `tensor '${t.name}' is ${w.dtype} in the weights but ${t.dtype} in the model`,
          { where: { file: options.weights, tensor: t.name }, hint: 'pass --cast to convert it to the model dtype' },
        );
      }
    }
    if (missing.length > 0 && !options.allowMissing) {
      const first = missing[0]!;
      const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
      throw new PlanError(
        'TENSOR_NOT_FOUND',
        `initializer '${first.name}' of the model has no tensor in the weights${more}`,
        { where: { file: options.weights, tensor: first.name }, hint: 'pass --allow-missing to keep the model values' },
      );
    }
    const extra = weights.tensors().filter((w) => !model.has(w.name));
    if (extra.length > 0) {
      const more = extra.length > 1 ? ` (and ${extra.length - 1} more)` : '';
      throw new PlanError(
        'TENSOR_NOT_FOUND',
        `tensor '${extra[0]!.name}' of the weights is not an initializer of the model${more}`,
        { where: { file: options.model, tensor: extra[0]!.name } },
      );
    }
    const replacements = async (name: string): Promise<Tensor | undefined> =>
      weights.has(name) ? weights.read(name) : undefined;
    // loaded here: the ONNX protobuf schema is only needed when an ONNX graph is patched
    const { patchOnnx } = await import('./onnx/patch.js');
    await patchOnnx({
      model: options.model,
      out: options.out,
      replacements,
      cast: options.cast ?? false,
      external: options.external ?? 'auto',
    });
    return { out: options.out, replaced: model.tensors().length - missing.length, kept: missing.map((m) => m.name) };
  } finally {
    await weights.close();
    await model.close();
  }
}

