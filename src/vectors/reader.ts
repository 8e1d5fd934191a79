// Opening a stored vector: the safetensors file plus its `weightkit_vector` metadata, presented as a CheckpointReader
// of dense logical tensors whatever the storage (dense under the tensor's own name; sparse as ascending U32 indices
// plus values; quantised as codes plus an F64 range), so every consumer (apply, combine, recipes, analysis) reads
// vectors the same way, by row ranges, without loading a whole tensor.

import { VectorError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import type { CheckpointReader, ReadBytesOptions, ReadF32Options, ReadRange, ShardInfo, TensorInfo } from '../io/types.js';
import { isFloatDType } from '../tensor/dtype.js';
import { formatShape, makeTensor, numel, shapesEqual, type Tensor } from '../tensor/tensor.js';
import { densifyRangeInto, dequantizeLinearInto, dequantizeLogInto, type Codes } from '../tensor/vector-codecs.js';
import {
  decodeVectorMeta,
  QUANT_CODE_SUFFIX,
  QUANT_RANGE_SUFFIX,
  SPARSE_INDEX_SUFFIX,
  SPARSE_VALUE_SUFFIX,
  type TensorEncoding,
  type VectorMeta,
} from './format.js';

const SUFFIXES = [SPARSE_INDEX_SUFFIX, SPARSE_VALUE_SUFFIX, QUANT_CODE_SUFFIX, QUANT_RANGE_SUFFIX];

export interface VectorReader extends CheckpointReader {
  readonly meta: VectorMeta;
  /** the stored file's own reader (encoded tensors under their suffixed names) */
  readonly stored: CheckpointReader;
}

interface Logical {
  info: TensorInfo;
  enc?: TensorEncoding;
  range?: Float64Array;
}

function invalid(file: string, tensor: string, what: string): VectorError {
  return new VectorError('VECTOR_INVALID', `${file}: tensor '${tensor}': ${what}`, { where: { file, tensor } });
}

class StoredVectorReader implements VectorReader {
  readonly format;
  readonly path: string;
  private readonly byName = new Map<string, Logical>();
  private readonly list: TensorInfo[] = [];

  constructor(
    readonly stored: CheckpointReader,
    readonly meta: VectorMeta,
  ) {
    this.format = stored.format;
    this.path = stored.path;
    const file = stored.path;
    const encodings = meta.encodings ?? {};
    for (const t of stored.tensors()) {
      const suffix = SUFFIXES.find((s) => t.name.endsWith(s));
      if (suffix !== undefined) {
        const owner = t.name.slice(0, -suffix.length);
        if (encodings[owner] === undefined) throw invalid(file, t.name, `encoded part of '${owner}', which has no encoding in the metadata`);
        continue;
      }
      if (encodings[t.name] !== undefined) throw invalid(file, t.name, 'stored both dense and encoded');
      if (!isFloatDType(t.dtype)) throw invalid(file, t.name, `vector values must be floats (found ${t.dtype})`);
      this.add({ info: t });
    }
    for (const [name, enc] of Object.entries(encodings)) {
      const n = numel(enc.shape);
      const need = (suffix: string, dtypes: readonly string[], shape: readonly number[]): TensorInfo => {
        const part = name + suffix;
        if (!stored.has(part)) throw invalid(file, name, `missing its encoded part '${part}'`);
        const p = stored.info(part);
        if (!dtypes.includes(p.dtype) || !shapesEqual(p.shape, shape)) {
          throw invalid(file, part, `expected ${dtypes.join('/')} ${formatShape(shape)}, found ${p.dtype} ${formatShape(p.shape)}`);
        }
        return p;
      };
      if (enc.enc === 'sparse') {
        if (enc.nnz > n) throw invalid(file, name, `${enc.nnz} stored entries for ${n} elements`);
        need(SPARSE_INDEX_SUFFIX, ['U32'], [enc.nnz]);
        need(SPARSE_VALUE_SUFFIX, ['F32', 'BF16', 'F16'], [enc.nnz]);
      } else {
        need(QUANT_CODE_SUFFIX, [enc.levels <= 256 ? 'U8' : 'U16'], enc.shape);
        need(QUANT_RANGE_SUFFIX, ['F64'], [2]);
      }
      this.add({ info: { name, dtype: 'F32', shape: enc.shape, numel: n, byteLength: n * 4, file }, enc });
    }
  }

  private add(l: Logical): void {
    this.byName.set(l.info.name, l);
    this.list.push(l.info);
  }

  tensors(): readonly TensorInfo[] {
    return this.list;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const l = this.byName.get(name);
    if (l === undefined) {
      throw new VectorError('TENSOR_NOT_FOUND', `tensor '${name}' is not in vector ${this.path}`, { where: { file: this.path, tensor: name } });
    }
    return l.info;
  }

  metadata(): Readonly<Record<string, string>> {
    return this.stored.metadata();
  }

  shards(): readonly ShardInfo[] {
    return this.stored.shards();
  }

  /** the encoding of a logical tensor (undefined: dense) */
  encodingOf(name: string): TensorEncoding | undefined {
    this.info(name);
    return this.byName.get(name)!.enc;
  }

  private rows(info: TensorInfo, range: ReadRange | undefined): [number, number, number] {
    const rows = info.shape.length === 0 ? 1 : info.shape[0]!;
    const rowLength = info.shape.length <= 1 ? 1 : info.numel / Math.max(1, rows);
    const r0 = range?.rowStart ?? 0;
    const r1 = range?.rowEnd ?? rows;
    if (!(Number.isSafeInteger(r0) && Number.isSafeInteger(r1) && 0 <= r0 && r0 <= r1 && r1 <= rows)) {
      throw new VectorError('TENSOR_ROW_RANGE', `rows [${r0}, ${r1}) out of range for tensor '${info.name}' with ${rows} rows`, {
        where: { file: this.path, tensor: info.name },
      });
    }
    return [r0 * rowLength, r1 * rowLength, rowLength];
  }

  async readF32(name: string, options: ReadF32Options = {}): Promise<Float32Array> {
    const l = this.byName.get(name);
    if (l === undefined || l.enc === undefined) {
      this.info(name);
      return this.stored.readF32(name, options);
    }
    const [start, end] = this.rows(l.info, options);
    const n = end - start;
    const out = options.into ? options.into.subarray(0, n) : new Float32Array(n);
    const enc = l.enc;
    if (enc.enc === 'sparse') {
      const lo = await this.lowerBound(name, enc.nnz, start);
      const hi = await this.lowerBound(name, enc.nnz, end);
      // a read reaching the tensor's end sees every remaining index: they must all lie before it
      if (end === l.info.numel && hi < enc.nnz) throw invalid(this.path, name, 'sparse index past the end of the tensor');
      const idx = (await this.stored.read(name + SPARSE_INDEX_SUFFIX, { rowStart: lo, rowEnd: hi })).data as Uint32Array;
      const vals = await this.stored.readF32(name + SPARSE_VALUE_SUFFIX, { rowStart: lo, rowEnd: hi });
      for (let i = 1; i < idx.length; i++) {
        if (!(idx[i]! > idx[i - 1]!)) throw invalid(this.path, name, 'sparse indices are not strictly ascending');
      }
      if (idx.length > 0 && idx[idx.length - 1]! >= l.info.numel) throw invalid(this.path, name, 'sparse index past the end of the tensor');
      densifyRangeInto({ numel: l.info.numel, indices: idx, values: vals }, start, end, out);
      return out;
    }
    l.range ??= (await this.stored.read(name + QUANT_RANGE_SUFFIX)).data as Float64Array;
    const [a, b] = [l.range[0]!, l.range[1]!];
    if (!Number.isFinite(a) || !Number.isFinite(b)) throw invalid(this.path, name, 'quantisation range is not finite');
    const rowLength = l.info.shape.length <= 1 ? 1 : l.info.numel / Math.max(1, l.info.shape[0]!);
    const codes = (await this.stored.read(name + QUANT_CODE_SUFFIX, { rowStart: start / rowLength, rowEnd: end / rowLength })).data as Codes;
    const max = enc.enc === 'log' ? 2 * Math.floor((enc.levels - 1) / 2) : enc.levels - 1;
    for (let i = 0; i < codes.length; i++) {
      if (codes[i]! > max) throw invalid(this.path, name, `quantisation code ${codes[i]} out of range for ${enc.levels} levels`);
    }
    if (enc.enc === 'linear') dequantizeLinearInto({ codes, min: a, max: b, levels: enc.levels }, 0, n, out);
    else dequantizeLogInto({ codes, lo: a, hi: b, levels: enc.levels }, 0, n, out);
    return out;
  }

  /** First position p in the sparse indices of `name` with indices[p] >= target (binary search by single-element reads). */
  private async lowerBound(name: string, nnz: number, target: number): Promise<number> {
    let lo = 0;
    let hi = nnz;
    const one = new Uint8Array(4);
    const view = new DataView(one.buffer);
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      await this.stored.readBytes(name + SPARSE_INDEX_SUFFIX, { rowStart: mid, rowEnd: mid + 1, into: one });
      if (view.getUint32(0, true) < target) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async read(name: string, range?: ReadRange): Promise<Tensor> {
    const l = this.byName.get(name);
    if (l === undefined || l.enc === undefined) {
      this.info(name);
      return this.stored.read(name, range);
    }
    const data = await this.readF32(name, range ?? {});
    const rows = range === undefined ? undefined : (range.rowEnd ?? l.info.shape[0] ?? 1) - (range.rowStart ?? 0);
    const shape = rows === undefined || l.info.shape.length === 0 ? l.info.shape : [rows, ...l.info.shape.slice(1)];
    return makeTensor('F32', shape, data);
  }

  async readBytes(name: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
    const l = this.byName.get(name);
    if (l === undefined || l.enc === undefined) {
      this.info(name);
      return this.stored.readBytes(name, options);
    }
    const f = await this.readF32(name, { rowStart: options.rowStart, rowEnd: options.rowEnd });
    const bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    if (options.into === undefined) return bytes;
    options.into.set(bytes);
    return options.into.subarray(0, bytes.byteLength);
  }

  close(): Promise<void> {
    return this.stored.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Open a stored vector (a .safetensors file written by weightkit); VECTOR_INVALID when it is not one. */
export async function openVector(path: string): Promise<VectorReader> {
  const stored = await openCheckpointPath(path);
  try {
    if (stored.format === 'onnx') throw new VectorError('VECTOR_INVALID', `${path} is an ONNX model, not a vector file`, { where: { file: path } });
    const meta = decodeVectorMeta(stored.metadata(), path);
    return new StoredVectorReader(stored, meta);
  } catch (e) {
    await stored.close();
    throw e;
  }
}
