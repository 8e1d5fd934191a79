// Patch an ONNX model's initializer values and write a new model, splicing the protobuf wire format: every byte
// outside the replaced (or moved) TensorProtos is copied verbatim, so the graph, metadata and unknown fields survive
// untouched. Output goes to a temp name in the destination folder and is renamed when complete; the input is never
// modified. Must not import onnxruntime-node.

import { randomUUID } from 'node:crypto';
import { open, realpath, rename, unlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { FormatError, PlanError, UsageError, WeightkitError, wrapIoError } from '../../errors.js';
import { castTensor } from '../../tensor/convert.js';
import { formatShape, shapesEqual, tensorBytes, type Tensor } from '../../tensor/tensor.js';
import type { TensorInfo } from '../types.js';
import { trackTemp, untrackTemp } from '../temps.js';
import { openOnnx, type OnnxInitializer, type OnnxReader } from './reader.js';
import { openForRead } from '../file.js';
import { TENSOR_DATA_FIELDS, concatBytes, encodeVarint, lenPrefix, readExactly, varintLength } from './wire.js';

/** Inline models above this many initializer bytes are written with external data when `external: 'auto'`. */
export const EXTERNAL_AUTO_THRESHOLD_BYTES = 1_800_000_000;
/** The largest protobuf message (and so inline .onnx file) protobuf and ONNX Runtime accept. */
export const PROTOBUF_LIMIT_BYTES = 2 ** 31 - 1;
/** Inline tensors smaller than this stay inline when writing external data (onnx's size_threshold default). */
export const EXTERNAL_MIN_TENSOR_BYTES = 1024;
/** External data offsets are aligned to the page size; tensors of 1 MiB or more to 64 KiB (Windows mmap granularity). */
export const EXTERNAL_ALIGN_BYTES = 4096;
export const EXTERNAL_LARGE_ALIGN_BYTES = 65536;
const LARGE_TENSOR_BYTES = 1 << 20;

export type OnnxReplacements = Map<string, Tensor> | ((name: string, info: TensorInfo) => Promise<Tensor | undefined>);

export interface PatchOnnxOptions {
  /** The input model (never modified). */
  model: string;
  /** The output .onnx path; an existing file is replaced atomically. */
  out: string;
  /**
   * New values by initializer name, or a function called per initializer (undefined keeps the value). Functions are
   * called once per initializer: first for typed-field (float_data ...) initializers kept inline, then in file order.
   */
  replacements: OnnxReplacements;
  /** Convert replacements to the initializer's dtype when they differ (default: TENSOR_DTYPE_MISMATCH). */
  cast?: boolean;
  /** Weights in an external data file next to the output. 'auto' (default): only above `externalThresholdBytes`. */
  external?: boolean | 'auto';
  /** File name of the external data, in the output's folder (default `<out basename>.data`). */
  externalDataName?: string;
  /** Threshold of total initializer bytes for `external: 'auto'` (default EXTERNAL_AUTO_THRESHOLD_BYTES). */
  externalThresholdBytes?: number;
  /** Inline tensors below this size stay inline when writing external data (default 1024). */
  externalMinTensorBytes?: number;
  /** Refuse inline output above this size (default PROTOBUF_LIMIT_BYTES; lower it only to test the refusal). */
  inlineLimitBytes?: number;
}

export interface PatchOnnxResult {
  readonly out: string;
  /** The external data file written, if any (none when every tensor stayed inline). */
  readonly externalData: string | undefined;
  /** Names of the initializers whose values were replaced, in file order. */
  readonly replaced: readonly string[];
  /** Size of the written .onnx file. */
  readonly byteLength: number;
}

type Target =
  | { kind: 'verbatim' }
  | { kind: 'splice' } // inline raw_data stays in place; only the payload bytes change
  | { kind: 'inline'; keep: Uint8Array } // kept fields + new raw_data field
  | { kind: 'external'; keep: Uint8Array; offset: number; ext: Uint8Array }; // kept fields + external_data + location

interface Planned {
  readonly init: OnnxInitializer;
  readonly target: Target;
  /** Length of the new TensorProto (the entry's payload). */
  readonly contentLength: number;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function stringEntry(key: string, value: string): Uint8Array {
  const enc = new TextEncoder();
  const k = enc.encode(key);
  const v = enc.encode(value);
  const body = concatBytes([lenPrefix(1, k.length), k, lenPrefix(2, v.length), v]);
  return concatBytes([lenPrefix(13, body.length), body]);
}

/** external_data (location, offset, length) + data_location = EXTERNAL, as TensorProto fields. */
function externalFields(location: string, offset: number, length: number): Uint8Array {
  return concatBytes([
    stringEntry('location', location),
    stringEntry('offset', String(offset)),
    stringEntry('length', String(length)),
    new Uint8Array([14 * 8, 1]),
  ]);
}

/** Validate (and cast, if allowed) one replacement against the initializer it replaces. */
function checkReplacement(t: Tensor, info: TensorInfo, cast: boolean, model: string): Tensor {
  const where = { file: model, tensor: info.name };
  if (!shapesEqual(t.shape, info.shape)) {
    throw new PlanError(
      'TENSOR_SHAPE_MISMATCH',
      `replacement for '${info.name}' has shape ${formatShape(t.shape)}, the model has ${formatShape(info.shape)}`,
      { where },
    );
  }
  let out = t;
  if (t.dtype !== info.dtype) {
    if (!cast) {
      throw new PlanError('TENSOR_DTYPE_MISMATCH', `replacement for '${info.name}' is ${t.dtype}, the model has ${info.dtype}`, {
        where,
        hint: 'pass cast: true to convert it',
      });
    }
    try {
      out = castTensor(t, info.dtype);
    } catch (e) {
      if (e instanceof WeightkitError) throw new PlanError(e.code, `replacement for '${info.name}': ${e.message}`, { where, cause: e });
      throw e;
    }
  }
  if (out.data.byteLength !== info.byteLength) {
    throw new PlanError(
      'TENSOR_SHAPE_MISMATCH',
      `replacement for '${info.name}' holds ${out.data.byteLength} bytes, need ${info.byteLength}`,
      { where },
    );
  }
  return out;
}

/** Buffered sequential writer. */
class SeqWriter {
  private buf = new Uint8Array(1 << 20);
  private used = 0;
  position = 0;
  constructor(
    private readonly fh: FileHandle,
    private readonly file: string,
  ) {}
  async write(bytes: Uint8Array): Promise<void> {
    if (bytes.length >= this.buf.length) {
      await this.flush();
      await this.raw(bytes);
      return;
    }
    if (this.used + bytes.length > this.buf.length) await this.flush();
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }
  async flush(): Promise<void> {
    if (this.used === 0) return;
    const n = this.used;
    this.used = 0;
    await this.raw(this.buf.subarray(0, n));
  }
  private async raw(bytes: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.length) {
        const { bytesWritten } = await this.fh.write(bytes, done, bytes.length - done, this.position + done);
        done += bytesWritten;
      }
    } catch (e) {
      throw wrapIoError(e, this.file, 'writing ONNX output');
    }
    this.position += bytes.length;
  }
}

async function copyRange(src: FileHandle, srcFile: string, from: number, to: number, w: SeqWriter): Promise<void> {
  const chunk = 8 << 20;
  for (let p = from; p < to; ) {
    const n = Math.min(chunk, to - p);
    const buf = new Uint8Array(n);
    await readExactly(src, buf, p, srcFile);
    await w.write(buf);
    p += n;
  }
}

async function writeAt(fh: FileHandle, file: string, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  try {
    while (done < bytes.length) {
      const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, position + done);
      done += bytesWritten;
    }
  } catch (e) {
    throw wrapIoError(e, file, 'writing external data');
  }
}

async function samePath(a: string, b: string): Promise<boolean> {
  if (path.resolve(a) === path.resolve(b)) return true;
  try {
    return (await realpath(a)) === (await realpath(b));
  } catch {
    return false;
  }
}

/** Replace initializer values of an ONNX model and write the result to `options.out`. */
export async function patchOnnx(options: PatchOnnxOptions): Promise<PatchOnnxResult> {
  const { model } = options;
  const cast = options.cast ?? false;
  const out = path.resolve(options.out);
  const outDir = path.dirname(out);
  const dataName = options.externalDataName ?? `${path.basename(out)}.data`;
  if (dataName === '' || dataName === '.' || dataName === '..' || /[/\\\0]/.test(dataName)) {
    throw new UsageError('USAGE', `externalDataName must be a plain file name, got '${dataName}'`, {
      where: { file: options.out },
    });
  }
  const dataPath = path.join(outDir, dataName);
  if (await samePath(out, model)) {
    throw new UsageError('OUT_INVALID', 'the output must not be the input model', { where: { file: options.out } });
  }

  const reader: OnnxReader = await openOnnx(model);
  let src: FileHandle | undefined;
  const temps: string[] = [];
  try {
    const inits = reader.initializers();
    const layout = reader.layout;
    const map = options.replacements instanceof Map ? options.replacements : undefined;
    const fn = options.replacements instanceof Map ? undefined : options.replacements;
    const ready = new Map<string, Tensor>();
    const asked = new Set<string>(); // names the replacement function was already called for
    if (map !== undefined) {
      const missing = [...map.keys()].filter((n) => !reader.has(n));
      if (missing.length > 0) {
        const more = missing.length > 1 ? ` (and ${missing.length - 1} more: ${missing.slice(1, 6).join(', ')})` : '';
        throw new PlanError('TENSOR_NOT_FOUND', `the model has no initializer '${missing[0]}'${more}`, {
          where: { file: model, tensor: missing[0]! },
        });
      }
      for (const init of inits) {
        const t = map.get(init.info.name);
        if (t !== undefined) ready.set(init.info.name, checkReplacement(t, init.info, cast, model));
      }
    }

    let total = 0;
    for (const init of inits) total += init.info.byteLength;
    const external =
      options.external === true ||
      ((options.external ?? 'auto') === 'auto' && total > (options.externalThresholdBytes ?? EXTERNAL_AUTO_THRESHOLD_BYTES));
    if (external) {
      for (const f of [model, ...reader.shards().map((s) => s.file)]) {
        if (await samePath(dataPath, f)) {
          throw new UsageError('OUT_INVALID', `external data '${dataName}' would overwrite an input file`, {
            where: { file: dataPath },
          });
        }
      }
    }
    const minExternal = options.externalMinTensorBytes ?? EXTERNAL_MIN_TENSOR_BYTES;

    src = await openForRead(model);
    const keptFields = async (init: OnnxInitializer): Promise<Uint8Array> => {
      const parts: Uint8Array[] = [];
      for (const f of init.entry.fields) {
        if (TENSOR_DATA_FIELDS.has(f.field) || f.field === 13 || f.field === 14) continue;
        const b = new Uint8Array(f.end - f.tagStart);
        await readExactly(src!, b, f.tagStart, model);
        parts.push(b);
      }
      return concatBytes(parts);
    };

    // plan: the new TensorProto of every initializer and its length, before any byte is written
    const plans: Planned[] = [];
    let dataEnd = 0;
    for (const init of inits) {
      const { info, storage, entry } = init;
      const oldLength = entry.end - entry.start;
      const moveOut =
        external && (storage.kind === 'external' || (storage.kind !== 'empty' && info.byteLength >= minExternal));
      if (moveOut) {
        const offset = alignUp(dataEnd, info.byteLength >= LARGE_TENSOR_BYTES ? EXTERNAL_LARGE_ALIGN_BYTES : EXTERNAL_ALIGN_BYTES);
        dataEnd = offset + info.byteLength;
        const keep = await keptFields(init);
        const ext = externalFields(dataName, offset, info.byteLength);
        plans.push({ init, target: { kind: 'external', keep, offset, ext }, contentLength: keep.length + ext.length });
      } else if (storage.kind === 'external') {
        const keep = await keptFields(init);
        plans.push({
          init,
          target: { kind: 'inline', keep },
          contentLength: keep.length + varintLength(9 * 8 + 2) + varintLength(info.byteLength) + info.byteLength,
        });
      } else if (storage.kind === 'bytes' && init.entry.fields.some((f) => f.field === 9)) {
        plans.push({ init, target: { kind: 'splice' }, contentLength: oldLength });
      } else if (storage.kind === 'empty') {
        plans.push({ init, target: { kind: 'verbatim' }, contentLength: oldLength });
      } else {
        // typed field (float_data ...) kept inline: re-encoded as raw_data only if replaced
        let t = ready.get(info.name);
        if (t === undefined && fn !== undefined) {
          asked.add(info.name);
          const got = await fn(info.name, info);
          if (got !== undefined) {
            t = checkReplacement(got, info, cast, model);
            ready.set(info.name, t);
          }
        }
        if (t === undefined) {
          plans.push({ init, target: { kind: 'verbatim' }, contentLength: oldLength });
        } else {
          const keep = await keptFields(init);
          plans.push({
            init,
            target: { kind: 'inline', keep },
            contentLength: keep.length + varintLength(9 * 8 + 2) + varintLength(info.byteLength) + info.byteLength,
          });
        }
      }
    }

    const writesData = plans.some((p) => p.target.kind === 'external');

    // sizes: the graph's length prefix changes only if some entry changed length
    const graph = layout.graph;
    let graphDelta = 0;
    for (const p of plans) {
      if (p.target.kind === 'verbatim' || p.target.kind === 'splice') continue; // copied with their own prefixes
      const old = p.init.entry.end - p.init.entry.tagStart;
      graphDelta += lenPrefix(5, p.contentLength).length + p.contentLength - old;
    }
    let outSize = layout.size;
    let graphPrefix: Uint8Array | undefined;
    if (graph !== undefined && graphDelta !== 0) {
      const newLen = graph.end - graph.start + graphDelta;
      graphPrefix = concatBytes([encodeVarint(7 * 8 + 2), encodeVarint(newLen)]);
      outSize += graphDelta + graphPrefix.length - (graph.start - graph.tagStart);
    }
    if (outSize > (options.inlineLimitBytes ?? PROTOBUF_LIMIT_BYTES)) {
      throw new FormatError(
        'ONNX_TOO_LARGE',
        `the patched model would be ${outSize} bytes, above the 2 GB protobuf limit`,
        { where: { file: options.out }, hint: "write the weights to external data (external: true or 'auto')" },
      );
    }

    // write: external data first (positional), then the model (sequential splice)
    const tag = `.tmp-${process.pid}-${randomUUID().slice(0, 8)}`;
    const tmpModel = path.join(outDir, `.${path.basename(out)}${tag}`);
    const tmpData = path.join(outDir, `.${dataName}${tag}`);
    let dataFh: FileHandle | undefined;
    let outFh: FileHandle | undefined;
    const replaced: string[] = [];
    try {
      try {
        outFh = await open(tmpModel, 'wx');
        temps.push(tmpModel);
        trackTemp(tmpModel);
        if (writesData) {
          dataFh = await open(tmpData, 'wx');
          temps.push(tmpData);
          trackTemp(tmpData);
        }
      } catch (e) {
        throw wrapIoError(e, outDir, 'creating ONNX output');
      }
      const w = new SeqWriter(outFh, tmpModel);
      /** Copy an unreplaced tensor's stored bytes in bounded chunks (tensors may exceed one typed array). */
      const streamStored = async (init: OnnxInitializer, sink: (chunk: Uint8Array, at: number) => Promise<void>) => {
        const chunk = 64 << 20;
        for (let at = 0; at < init.info.byteLength; at += chunk) {
          const buf = new Uint8Array(Math.min(chunk, init.info.byteLength - at));
          await reader.readByteRange(init.info.name, at, buf);
          await sink(buf, at);
        }
      };

      let pos = 0;
      if (graph !== undefined) {
        if (graphPrefix !== undefined) {
          await copyRange(src, model, 0, graph.tagStart, w);
          await w.write(graphPrefix);
        } else {
          await copyRange(src, model, 0, graph.start, w);
        }
        pos = graph.start;
      }
      for (const p of plans) {
        const { entry } = p.init;
        await copyRange(src, model, pos, entry.tagStart, w);
        pos = entry.end;
        const t = p.target;
        if (t.kind === 'verbatim') {
          await copyRange(src, model, entry.tagStart, entry.end, w);
          continue;
        }
        if (t.kind === 'splice') {
          const raw = p.init.entry.fields.find((f) => f.field === 9)!;
          const replacement = await replacementFor(p.init);
          if (replacement === undefined) {
            await copyRange(src, model, entry.tagStart, entry.end, w);
          } else {
            await copyRange(src, model, entry.tagStart, raw.start, w);
            await w.write(replacement);
            await copyRange(src, model, raw.end, entry.end, w);
          }
          continue;
        }
        await w.write(lenPrefix(5, p.contentLength));
        await w.write(t.keep);
        const bytes = await replacementFor(p.init);
        if (t.kind === 'inline') {
          await w.write(lenPrefix(9, p.init.info.byteLength));
          if (bytes !== undefined) await w.write(bytes);
          else await streamStored(p.init, (c) => w.write(c));
        } else {
          await w.write(t.ext);
          if (bytes !== undefined) await writeAt(dataFh!, tmpData, bytes, t.offset);
          else await streamStored(p.init, (c, at) => writeAt(dataFh!, tmpData, c, t.offset + at));
        }
      }
      await copyRange(src, model, pos, layout.size, w);
      await w.flush();
      if (w.position !== outSize) {
        throw new FormatError('OUT_INVALID', `internal size mismatch: wrote ${w.position} bytes, planned ${outSize}`, {
          where: { file: options.out },
        });
      }
      if (dataFh !== undefined && dataEnd > 0) {
        try {
          await dataFh.truncate(dataEnd);
        } catch (e) {
          throw wrapIoError(e, tmpData, 'writing external data');
        }
      }
      try {
        await outFh.sync();
        await dataFh?.sync();
      } catch (e) {
        throw wrapIoError(e, tmpModel, 'writing ONNX output');
      }
    } finally {
      await outFh?.close().catch(() => undefined);
      await dataFh?.close().catch(() => undefined);
    }
    try {
      if (writesData) {
        await rename(tmpData, dataPath);
        temps.splice(temps.indexOf(tmpData), 1);
        untrackTemp(tmpData);
      }
      await rename(tmpModel, out);
      untrackTemp(tmpModel);
      temps.length = 0;
    } catch (e) {
      throw wrapIoError(e, out, 'renaming ONNX output');
    }
    return { out, externalData: writesData ? dataPath : undefined, replaced, byteLength: outSize };

    /** The replacement's bytes (validated, cast), or undefined to keep the stored value. */
    async function replacementFor(init: OnnxInitializer): Promise<Uint8Array | undefined> {
      const name = init.info.name;
      let t = ready.get(name);
      ready.delete(name);
      if (t === undefined && fn !== undefined && !asked.has(name)) {
        const got = await fn(name, init.info);
        if (got !== undefined) t = checkReplacement(got, init.info, cast, model);
      }
      if (t === undefined) return undefined;
      replaced.push(name);
      return tensorBytes(t);
    }
  } finally {
    await src?.close().catch(() => undefined);
    await reader.close();
    for (const t of temps) {
      await unlink(t).catch(() => undefined);
      untrackTemp(t);
    }
  }
}

