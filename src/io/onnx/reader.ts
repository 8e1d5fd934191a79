// ONNX checkpoint reader: the initializers of a model's main graph as a CheckpointReader (inline raw_data, typed
// fields such as float_data, or external data files). Guarantees: the whole layout is validated at open (dims,
// dtypes, lengths, external paths and sizes) without reading tensor payloads; reads fetch exactly the bytes asked
// for. Malformed input only ever yields WeightkitError. Must not import onnxruntime-node.

import { realpath, type FileHandle } from 'node:fs/promises';
import { openForRead } from '../file.js';
import * as path from 'node:path';
import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import {
  GraphProtoSchema,
  ModelProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  type GraphProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { FormatError, UsageError, WeightkitError, wrapIoError } from '../../errors.js';
import { DTYPE_INFO, MAX_TENSOR_BYTES, allocData, dtypeFromOnnx, viewData, type DType } from '../../tensor/dtype.js';
import { toF32 } from '../../tensor/convert.js';
import { checkedByteLength, checkedNumel, makeTensor, rowCount, rowNumel, type Tensor } from '../../tensor/tensor.js';
import type {
  CheckpointReader,
  ReadBytesOptions,
  ReadF32Options,
  ReadRange,
  ShardInfo,
  TensorInfo,
} from '../types.js';
import { parseExternalData, resolveExternal } from './external.js';
import {
  ByteCursor,
  TENSOR_DATA_FIELDS,
  WT_I32,
  WT_I64,
  WT_LEN,
  WT_VARINT,
  readExactly,
  readFieldBytes,
  scanModel,
  type FieldRef,
  type InitializerEntry,
  type ModelLayout,
} from './wire.js';

/** A graph input or output: element dtype (if a tensor of a supported type) and shape (symbolic dims as strings). */
export interface OnnxValueInfo {
  readonly name: string;
  /** ONNX TensorProto.DataType code of the elements (0 if not a tensor). */
  readonly elemType: number;
  readonly dtype: DType | undefined;
  /** Dims: numbers, symbolic names, or '?' for unknown; undefined if the rank is unknown or not a tensor. */
  readonly shape: readonly (number | string)[] | undefined;
}

/** Where an initializer's bytes live. */
export type OnnxStorage =
  | { readonly kind: 'bytes'; readonly segments: readonly { start: number; end: number }[] } // model file, LE bytes
  | { readonly kind: 'external'; readonly offset: number; readonly location: string }
  | { readonly kind: 'typed'; readonly field: number; readonly refs: readonly FieldRef[] }
  | { readonly kind: 'empty' };

/** Everything known about one initializer (used by the patcher). */
export interface OnnxInitializer {
  readonly info: TensorInfo;
  readonly storage: OnnxStorage;
  readonly entry: InitializerEntry;
  /** The TensorProto's non-data fields, decoded. */
  readonly header: TensorProto;
}

function decode<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array, file: string, what: string): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes);
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    throw new FormatError('ONNX_PARSE', `cannot decode ${what}: ${detail}`, { where: { file }, cause: e });
  }
}

/** Typed field of TensorProto allowed for each dtype (ONNX spec). */
function typedFieldFor(dtype: DType): number {
  switch (dtype) {
    case 'F32':
      return 4;
    case 'F64':
      return 10;
    case 'I64':
      return 7;
    case 'U64':
    case 'U32':
      return 11;
    case 'I32':
    case 'I16':
    case 'I8':
    case 'U16':
    case 'U8':
    case 'BOOL':
    case 'F16':
    case 'BF16':
    case 'F8_E4M3':
    case 'F8_E5M2':
      return 5;
  }
}

const FIELD_NAMES: Record<number, string> = {
  4: 'float_data',
  5: 'int32_data',
  7: 'int64_data',
  9: 'raw_data',
  10: 'double_data',
  11: 'uint64_data',
};

function dimsToShape(dims: readonly bigint[], file: string, tensor: string): number[] {
  const shape: number[] = [];
  for (const d of dims) {
    if (d < 0n || d > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new FormatError('ONNX_INVALID_TENSOR', `dimension ${d} is not a non-negative safe integer`, {
        where: { file, tensor },
      });
    }
    shape.push(Number(d));
  }
  return shape;
}

function valueInfo(v: ValueInfoProto): OnnxValueInfo {
  if (v.type?.value.case !== 'tensorType') return { name: v.name, elemType: 0, dtype: undefined, shape: undefined };
  const t = v.type.value.value;
  const shape = t.shape?.dim.map((d): number | string => {
    if (d.value.case === 'dimValue') return Number(d.value.value);
    if (d.value.case === 'dimParam') return d.value.value;
    return '?';
  });
  return { name: v.name, elemType: t.elemType, dtype: dtypeFromOnnx(t.elemType), shape };
}

/** Count elements of one typed field and check its wire types. */
async function typedCount(cur: ByteCursor, refs: readonly FieldRef[], field: number): Promise<number> {
  let n = 0;
  for (const r of refs) {
    const bad = (): FormatError => cur.parseError(`${FIELD_NAMES[field]} has wire type ${r.wireType}`, r.tagStart);
    if (field === 4) {
      if (r.wireType === WT_I32) n += 1;
      else if (r.wireType === WT_LEN && (r.end - r.start) % 4 === 0) n += (r.end - r.start) / 4;
      else throw bad();
    } else if (field === 10) {
      if (r.wireType === WT_I64) n += 1;
      else if (r.wireType === WT_LEN && (r.end - r.start) % 8 === 0) n += (r.end - r.start) / 8;
      else throw bad();
    } else if (r.wireType === WT_VARINT) n += 1;
    else if (r.wireType === WT_LEN) n += await cur.countVarints(r.start, r.end);
    else throw bad();
  }
  return n;
}

export class OnnxReader implements CheckpointReader {
  readonly format = 'onnx' as const;
  private closed = false;
  private readonly extHandles = new Map<string, Promise<FileHandle>>();

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly cur: ByteCursor,
    /** @internal the wire layout, for the patcher */
    readonly layout: ModelLayout,
    private readonly entries: readonly OnnxInitializer[],
    private readonly byName: ReadonlyMap<string, OnnxInitializer>,
    private readonly graph: GraphProto,
    private readonly meta: Readonly<Record<string, string>>,
    private readonly externalFiles: ReadonlyMap<string, number>,
  ) {}

  /** @internal */
  static async open(file: string): Promise<OnnxReader> {
    // a regular file only (a FIFO would block the open; see openForRead)
    const fh: FileHandle = await openForRead(file);
    try {
      let size: number;
      try {
        size = (await fh.stat()).size;
      } catch (e) {
        throw wrapIoError(e, file, 'opening ONNX model');
      }
      const cur = new ByteCursor(fh, size, file);
      const layout = await scanModel(cur);
      const model = decode(ModelProtoSchema, layout.modelRest, file, 'ModelProto');
      if (layout.graph === undefined) {
        throw new FormatError('ONNX_PARSE', 'not an ONNX model: no graph field', { where: { file, byteOffset: 0 } });
      }
      const graph = decode(GraphProtoSchema, layout.graphRest, file, 'GraphProto');
      let realDir: string | undefined;
      const externalFiles = new Map<string, number>();
      const entries: OnnxInitializer[] = [];
      const byName = new Map<string, OnnxInitializer>();
      for (const entry of layout.initializers) {
        const headerRefs = entry.fields.filter((f) => !TENSOR_DATA_FIELDS.has(f.field));
        const dataRefs = entry.fields.filter((f) => TENSOR_DATA_FIELDS.has(f.field));
        const header = decode(TensorProtoSchema, await readFieldBytes(cur, headerRefs), file, 'TensorProto');
        const name = header.name;
        const where = { file, tensor: name };
        if (byName.has(name)) {
          throw new FormatError('ONNX_DUPLICATE_INITIALIZER', `initializer '${name}' appears more than once`, { where });
        }
        const dtype = dtypeFromOnnx(header.dataType);
        if (dtype === undefined) {
          throw new FormatError('ONNX_UNSUPPORTED_DTYPE', `initializer '${name}' has unsupported data_type ${header.dataType}`, {
            where,
          });
        }
        if (header.segment !== undefined) {
          throw new FormatError('ONNX_INVALID_TENSOR', `initializer '${name}' is a segment (chunked tensors are not supported)`, {
            where,
          });
        }
        const shape = dimsToShape(header.dims, file, name);
        const numel = checkedNumel(shape);
        const byteLength = checkedByteLength(dtype, shape);
        if (numel === undefined || byteLength === undefined) {
          throw new FormatError('ONNX_INVALID_TENSOR', `shape [${shape.join(', ')}] overflows`, { where });
        }
        const kinds = new Set(dataRefs.map((r) => r.field));
        let storage: OnnxStorage;
        let dataFile = file;
        if (header.dataLocation === TensorProto_DataLocation.EXTERNAL) {
          if (kinds.size > 0) {
            throw new FormatError('ONNX_INVALID_TENSOR', `external initializer '${name}' also has inline data`, { where });
          }
          const ref = parseExternalData(header.externalData, file, name);
          if (ref.length !== undefined && ref.length !== byteLength) {
            throw new FormatError(
              'ONNX_RAW_DATA_LENGTH',
              `external data length ${ref.length} != ${byteLength} (numel ${numel} x ${DTYPE_INFO[dtype].bytes} bytes)`,
              { where },
            );
          }
          realDir ??= await realpathDir(file);
          const resolved = await resolveExternal(ref.location, file, realDir, name);
          if (ref.offset + byteLength > resolved.size) {
            throw new FormatError(
              'ONNX_EXTERNAL_SHORT',
              `external data file has ${resolved.size} bytes, tensor needs [${ref.offset}, ${ref.offset + byteLength})`,
              { where: { file: resolved.file, tensor: name, byteOffset: ref.offset } },
            );
          }
          dataFile = resolved.file;
          externalFiles.set(resolved.file, resolved.size);
          storage = { kind: 'external', offset: ref.offset, location: ref.location };
        } else if (header.dataLocation !== TensorProto_DataLocation.DEFAULT) {
          throw new FormatError('ONNX_INVALID_TENSOR', `data_location ${header.dataLocation} is not DEFAULT or EXTERNAL`, {
            where,
          });
        } else if (header.externalData.length > 0) {
          throw new FormatError('ONNX_EXTERNAL_INVALID', 'external_data given but data_location is not EXTERNAL', { where });
        } else if (kinds.size > 1) {
          const names = [...kinds].map((k) => FIELD_NAMES[k]).join(', ');
          throw new FormatError('ONNX_INVALID_TENSOR', `initializer '${name}' has data in several fields (${names})`, {
            where,
          });
        } else if (kinds.size === 0) {
          if (numel !== 0) {
            throw new FormatError('ONNX_INVALID_TENSOR', `initializer '${name}' has no data`, { where });
          }
          storage = { kind: 'empty' };
        } else {
          const field = dataRefs[0]!.field;
          if (field === 9) {
            if (dataRefs.length !== 1 || dataRefs[0]!.wireType !== WT_LEN) {
              throw new FormatError('ONNX_INVALID_TENSOR', `raw_data of '${name}' appears more than once`, { where });
            }
            const r = dataRefs[0]!;
            if (r.end - r.start !== byteLength) {
              throw new FormatError(
                'ONNX_RAW_DATA_LENGTH',
                `raw_data has ${r.end - r.start} bytes, shape [${shape.join(', ')}] of ${dtype} needs ${byteLength}`,
                { where: { file, tensor: name, byteOffset: r.start } },
              );
            }
            storage = { kind: 'bytes', segments: [{ start: r.start, end: r.end }] };
          } else {
            if (field !== typedFieldFor(dtype)) {
              throw new FormatError('ONNX_INVALID_TENSOR', `${FIELD_NAMES[field]} cannot hold ${dtype} data`, { where });
            }
            const count = await typedCount(cur, dataRefs, field);
            if (count !== numel) {
              throw new FormatError(
                'ONNX_INVALID_TENSOR',
                `${FIELD_NAMES[field]} has ${count} elements, shape [${shape.join(', ')}] needs ${numel}`,
                { where },
              );
            }
            const packedFixed = (field === 4 || field === 10) && dataRefs.every((r) => r.wireType === WT_LEN);
            storage = packedFixed
              ? { kind: 'bytes', segments: dataRefs.map((r) => ({ start: r.start, end: r.end })) }
              : { kind: 'typed', field, refs: dataRefs };
          }
        }
        const info: TensorInfo = { name, dtype, shape, numel, byteLength, file: dataFile };
        const init: OnnxInitializer = { info, storage, entry, header };
        entries.push(init);
        byName.set(name, init);
      }
      const meta: Record<string, string> = {};
      if (model.producerName !== '') meta['onnx.producer_name'] = model.producerName;
      if (model.producerVersion !== '') meta['onnx.producer_version'] = model.producerVersion;
      meta['onnx.ir_version'] = String(model.irVersion);
      if (model.opsetImport.length > 0) {
        meta['onnx.opset_import'] = model.opsetImport.map((o) => `${o.domain === '' ? 'ai.onnx' : o.domain}=${o.version}`).join(',');
      }
      for (const p of model.metadataProps) meta[p.key] = p.value;
      return new OnnxReader(file, fh, cur, layout, entries, byName, graph, meta, externalFiles);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  tensors(): readonly TensorInfo[] {
    return this.entries.map((e) => e.info);
  }

  /** @internal initializers with their storage, in file order (for the patcher). */
  initializers(): readonly OnnxInitializer[] {
    return this.entries;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    return this.get(name).info;
  }

  metadata(): Readonly<Record<string, string>> {
    return this.meta;
  }

  shards(): readonly ShardInfo[] {
    const out: ShardInfo[] = [
      {
        file: this.path,
        byteLength: this.layout.size,
        tensorCount: this.entries.filter((e) => e.storage.kind !== 'external').length,
      },
    ];
    for (const [file, byteLength] of this.externalFiles) {
      out.push({ file, byteLength, tensorCount: this.entries.filter((e) => e.info.file === file).length });
    }
    return out;
  }

  /** Graph inputs that are not initializers (what a caller must feed), with dtypes and shapes. */
  graphInputs(): readonly OnnxValueInfo[] {
    return this.graph.input.filter((v) => !this.byName.has(v.name)).map(valueInfo);
  }

  graphOutputs(): readonly OnnxValueInfo[] {
    return this.graph.output.map(valueInfo);
  }

  async read(name: string, range?: ReadRange): Promise<Tensor> {
    const e = this.get(name);
    const { rows, byteStart, byteLength, numel } = this.rowsOf(e.info, range);
    const bytes = new Uint8Array(byteLength);
    await this.readInto(e, byteStart, bytes);
    const shape = range === undefined || e.info.shape.length === 0 ? e.info.shape : [rows, ...e.info.shape.slice(1)];
    return makeTensor(e.info.dtype, shape, viewData(e.info.dtype, bytes.buffer, 0, numel));
  }

  async readBytes(name: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
    const e = this.get(name);
    const { byteStart, byteLength } = this.rowsOf(e.info, options);
    let out: Uint8Array;
    if (options.into !== undefined) {
      if (options.into.length < byteLength) {
        throw new UsageError('USAGE', `readBytes 'into' has ${options.into.length} bytes, need ${byteLength}`, {
          where: { file: this.path, tensor: name },
        });
      }
      out = options.into.subarray(0, byteLength);
    } else {
      out = new Uint8Array(byteLength);
    }
    await this.readInto(e, byteStart, out);
    return out;
  }

  async readF32(name: string, options: ReadF32Options = {}): Promise<Float32Array> {
    const e = this.get(name);
    const { byteStart, byteLength, numel } = this.rowsOf(e.info, options);
    let dst: Float32Array | undefined;
    if (options.into !== undefined) {
      if (options.into.length < numel) {
        throw new UsageError('USAGE', `readF32 'into' has ${options.into.length} elements, need ${numel}`, {
          where: { file: this.path, tensor: name },
        });
      }
      dst = options.into.subarray(0, numel);
    }
    if (e.info.dtype === 'F32') {
      const out = dst ?? new Float32Array(numel);
      await this.readInto(e, byteStart, new Uint8Array(out.buffer, out.byteOffset, byteLength));
      return out;
    }
    const bytes = new Uint8Array(byteLength);
    await this.readInto(e, byteStart, bytes);
    return toF32(e.info.dtype, viewData(e.info.dtype, bytes.buffer, 0, numel), dst);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const handles = [...this.extHandles.values()];
    this.extHandles.clear();
    await Promise.allSettled(handles.map(async (h) => (await h).close()));
    await this.fh.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private get(name: string): OnnxInitializer {
    const e = this.byName.get(name);
    if (e === undefined) {
      throw new FormatError('TENSOR_NOT_FOUND', `no initializer named '${name}'`, { where: { file: this.path, tensor: name } });
    }
    return e;
  }

  private rowsOf(
    info: TensorInfo,
    range: ReadRange | undefined,
  ): { rows: number; byteStart: number; byteLength: number; numel: number } {
    const total = rowCount(info.shape);
    const start = range?.rowStart ?? 0;
    const end = range?.rowEnd ?? total;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > total) {
      throw new UsageError('TENSOR_ROW_RANGE', `row range [${start}, ${end}) is not within [0, ${total}]`, {
        where: { file: this.path, tensor: info.name },
      });
    }
    const perRow = rowNumel(info.shape);
    const bytes = DTYPE_INFO[info.dtype].bytes;
    const numel = (end - start) * perRow;
    if (numel * bytes > MAX_TENSOR_BYTES) {
      throw new UsageError('TENSOR_TOO_LARGE', `${numel * bytes} bytes do not fit one typed array; read fewer rows`, {
        where: { file: this.path, tensor: info.name },
      });
    }
    return { rows: end - start, byteStart: start * perRow * bytes, byteLength: numel * bytes, numel };
  }

  private assertOpen(): void {
    if (this.closed) throw new UsageError('USAGE', 'reader is closed', { where: { file: this.path } });
  }

  /**
   * @internal Fill `out` with the tensor's little-endian bytes starting at byte `byteStart` (no row alignment needed;
   * the patcher streams large tensors through this in chunks). The range must lie within the tensor.
   */
  async readByteRange(name: string, byteStart: number, out: Uint8Array): Promise<void> {
    const e = this.get(name);
    if (!Number.isSafeInteger(byteStart) || byteStart < 0 || byteStart + out.length > e.info.byteLength) {
      throw new UsageError('TENSOR_ROW_RANGE', `byte range [${byteStart}, ${byteStart + out.length}) is outside the tensor`, {
        where: { file: this.path, tensor: name },
      });
    }
    await this.readInto(e, byteStart, out);
  }

  /** Fill `out` with the tensor's little-endian bytes starting at `byteStart`. */
  private async readInto(e: OnnxInitializer, byteStart: number, out: Uint8Array): Promise<void> {
    this.assertOpen();
    if (out.length === 0) return;
    const s = e.storage;
    switch (s.kind) {
      case 'empty':
        return;
      case 'bytes': {
        let logical = 0;
        const want = byteStart + out.length;
        for (const seg of s.segments) {
          const segLen = seg.end - seg.start;
          const from = Math.max(byteStart, logical);
          const to = Math.min(want, logical + segLen);
          if (from < to) {
            await readExactly(this.fh, out.subarray(from - byteStart, to - byteStart), seg.start + (from - logical), this.path);
          }
          logical += segLen;
        }
        return;
      }
      case 'external': {
        const fh = await this.externalHandle(e.info.file);
        try {
          await readExactly(fh, out, s.offset + byteStart, e.info.file);
        } catch (err) {
          if (err instanceof WeightkitError && err.code === 'ONNX_PARSE') {
            throw new FormatError('ONNX_EXTERNAL_SHORT', 'external data file shrank after it was opened', {
              where: { file: e.info.file, tensor: e.info.name, byteOffset: s.offset + byteStart },
              cause: err,
            });
          }
          throw err;
        }
        return;
      }
      case 'typed': {
        const all = await this.decodeTyped(e, s.field, s.refs);
        out.set(all.subarray(byteStart, byteStart + out.length));
        return;
      }
    }
  }

  /** Decode a typed field (float_data, int32_data ...) into the tensor's full little-endian bytes. */
  private async decodeTyped(e: OnnxInitializer, field: number, refs: readonly FieldRef[]): Promise<Uint8Array> {
    const msg = decode(TensorProtoSchema, await readFieldBytes(this.cur, refs), this.path, 'TensorProto data');
    const { dtype, numel } = e.info;
    const data = allocData(dtype, numel);
    let values: ArrayLike<number | bigint>;
    switch (field) {
      case 4:
        values = msg.floatData;
        break;
      case 5:
        values = msg.int32Data;
        break;
      case 7:
        values = msg.int64Data;
        break;
      case 10:
        values = msg.doubleData;
        break;
      default:
        values = msg.uint64Data;
        break;
    }
    if (values.length !== numel) {
      throw new FormatError('ONNX_INVALID_TENSOR', `${FIELD_NAMES[field]} has ${values.length} elements, need ${numel}`, {
        where: { file: this.path, tensor: e.info.name },
      });
    }
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
      for (let i = 0; i < numel; i++) data[i] = BigInt(values[i]!);
    } else {
      // integer typed arrays wrap modulo 2^bits, which is the bit-pattern semantics int32_data uses for F16/BF16/F8
      for (let i = 0; i < numel; i++) data[i] = Number(values[i]!);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }

  private externalHandle(file: string): Promise<FileHandle> {
    let h = this.extHandles.get(file);
    if (h === undefined) {
      h = openForRead(file).catch((e: unknown) => {
        this.extHandles.delete(file);
        throw e instanceof WeightkitError ? e : wrapIoError(e, file, 'opening external data');
      });
      this.extHandles.set(file, h);
    }
    return h;
  }
}

async function realpathDir(file: string): Promise<string> {
  const dir = path.dirname(path.resolve(file));
  try {
    return await realpath(dir);
  } catch (e) {
    throw wrapIoError(e, dir, 'resolving model folder');
  }
}

/** Open an ONNX model and validate every initializer of its main graph. */
export function openOnnx(file: string): Promise<OnnxReader> {
  return OnnxReader.open(file);
}
