// The model a recipe's `vector: file` entry stands for: base + vector, as a virtual CheckpointReader over the
// base's tensors (same names, dtypes, shapes). Float tensors the vector holds read as f32(base) + f32(vector) (one
// f32 rounding), encoded back to the base's dtype for raw reads; everything else reads straight from the base
// (zero delta; the vector's skipped integer tensors). Pool workers rebuild the same reader from the vector's path
// over their own base reader. Imports only io, tensor and vectors.

import { VectorError } from '../errors.js';
import type { CheckpointReader, ReadBytesOptions, ReadF32Options, ReadRange, ShardInfo, TensorInfo } from '../io/types.js';
import { fromF32 } from '../tensor/convert.js';
import { isFloatDType } from '../tensor/dtype.js';
import { formatShape, makeTensor, shapesEqual, type Tensor } from '../tensor/tensor.js';
import { fingerprintCheckpoint } from '../vectors/format.js';
import { openVector, type VectorReader } from '../vectors/reader.js';

class VectorModelReader implements CheckpointReader {
  readonly format;
  readonly path: string;

  constructor(
    private readonly base: CheckpointReader,
    private readonly vector: VectorReader,
    private readonly ownsBase: boolean,
  ) {
    this.format = base.format;
    this.path = vector.path;
  }

  tensors(): readonly TensorInfo[] {
    return this.base.tensors();
  }

  has(name: string): boolean {
    return this.base.has(name);
  }

  info(name: string): TensorInfo {
    return this.base.info(name);
  }

  metadata(): Readonly<Record<string, string>> {
    return this.base.metadata();
  }

  shards(): readonly ShardInfo[] {
    return this.base.shards();
  }

  /** whether reads of `name` add a delta (checked at open: a vector tensor is always a float tensor of the base) */
  private adds(name: string): boolean {
    return this.vector.has(name);
  }

  async readF32(name: string, options: ReadF32Options = {}): Promise<Float32Array> {
    const out = await this.base.readF32(name, options);
    if (!this.adds(name)) return out;
    const delta = await this.vector.readF32(name, { rowStart: options.rowStart, rowEnd: options.rowEnd });
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + delta[i]!;
    return out;
  }

  async read(name: string, range?: ReadRange): Promise<Tensor> {
    if (!this.adds(name)) return this.base.read(name, range);
    const info = this.base.info(name);
    const f = await this.readF32(name, range ?? {});
    const rows = (range?.rowEnd ?? info.shape[0] ?? 1) - (range?.rowStart ?? 0);
    const shape = range === undefined || info.shape.length === 0 ? info.shape : [rows, ...info.shape.slice(1)];
    return makeTensor(info.dtype, shape, fromF32(info.dtype, f));
  }

  async readBytes(name: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
    if (!this.adds(name)) return this.base.readBytes(name, options);
    const f = await this.readF32(name, { rowStart: options.rowStart, rowEnd: options.rowEnd });
    const data = fromF32(this.base.info(name).dtype, f);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (options.into === undefined) return bytes;
    options.into.set(bytes);
    return options.into.subarray(0, bytes.byteLength);
  }

  async close(): Promise<void> {
    await this.vector.close();
    if (this.ownsBase) await this.base.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The model base + vector. Every vector tensor must be a float tensor of the base with the same shape
 * (TENSOR_NOT_FOUND, TENSOR_SHAPE_MISMATCH, TENSOR_DTYPE_MISMATCH otherwise). Closing it closes the vector, and
 * the base only when `ownsBase`.
 */
export function vectorModel(base: CheckpointReader, vector: VectorReader, options: { ownsBase?: boolean } = {}): CheckpointReader {
  for (const t of vector.tensors()) {
    const where = { file: vector.path, tensor: t.name };
    if (!base.has(t.name)) {
      throw new VectorError('TENSOR_NOT_FOUND', `tensor '${t.name}' of vector ${vector.path} is not in the base ${base.path}`, { where });
    }
    const b = base.info(t.name);
    if (!shapesEqual(b.shape, t.shape)) {
      throw new VectorError(
        'TENSOR_SHAPE_MISMATCH',
        `tensor '${t.name}' has shape ${formatShape(t.shape)} in vector ${vector.path} but ${formatShape(b.shape)} in the base ${base.path}`,
        { where },
      );
    }
    if (!isFloatDType(b.dtype)) {
      throw new VectorError('TENSOR_DTYPE_MISMATCH', `tensor '${t.name}' of vector ${vector.path} is ${b.dtype} (not a float) in the base ${base.path}`, { where });
    }
  }
  return new VectorModelReader(base, vector, options.ownsBase ?? false);
}

/** VECTOR_BASE_MISMATCH unless the vector was made on a checkpoint with `baseFingerprint`. */
export function assertVectorBase(vector: VectorReader, baseFingerprint: string, basePath: string): void {
  if (vector.meta.baseFingerprint === baseFingerprint) return;
  const made = vector.meta.base !== undefined ? ` (it was made on ${vector.meta.base})` : '';
  throw new VectorError(
    'VECTOR_BASE_MISMATCH',
    `vector ${vector.path} was made on a different base than ${basePath}${made}: fingerprint ${vector.meta.baseFingerprint}, base has ${baseFingerprint}`,
    { where: { file: vector.path }, hint: 'set force_vector_base: true in the recipe to add it anyway' },
  );
}

/** Open base + vector from a vector file over an open base (checks the base fingerprint unless `force`). */
export async function openVectorModel(
  base: CheckpointReader,
  vectorPath: string,
  options: { force?: boolean; baseFingerprint?: () => Promise<string> } = {},
): Promise<CheckpointReader> {
  const vector = await openVector(vectorPath);
  try {
    if (!options.force) assertVectorBase(vector, await (options.baseFingerprint ?? (() => fingerprintCheckpoint(base)))(), base.path);
    return vectorModel(base, vector);
  } catch (e) {
    await vector.close();
    throw e;
  }
}
