// Streaming safetensors writer: the header is computed from the declarations up front (Hugging Face's layout: larger
// element sizes first, then by name, so every tensor is element-aligned; `__metadata__` first; padded with spaces to a
// multiple of 8), then tensors or byte ranges arrive in any order as positional writes into a temp file renamed into
// place only when every byte was written exactly once. Must not import src/plan, src/merge, src/cli or onnxruntime.

import type { FileHandle } from 'node:fs/promises';
import { BlockAssembler, DirectWriter } from '../direct.js';

import { IoError, UsageError, WeightkitError, wrapIoError } from '../../errors.js';
import { isDType, type DType, type TensorData } from '../../tensor/dtype.js';
import { checkedByteLength, type Tensor } from '../../tensor/tensor.js';
import { createTempFile, publish, removeIfExists, writeExactlyAt } from '../file.js';
import type { TensorDecl } from '../types.js';
import { MAX_HEADER_BYTES, METADATA_KEY } from './header.js';

export interface SafetensorsWriterOptions {
  /** String metadata stored as `__metadata__` (omitted when absent or empty). */
  metadata?: Record<string, string>;
  /**
   * Write large ranges with O_DIRECT where allowed (src/io/direct.ts; default true): cheaper here, but the file is
   * then not in the page cache. False for files read again at once (a multi-document recipe's intermediate stages).
   */
  direct?: boolean;
  /**
   * Replace a file that exists at the path when publishing (default true). False: publishing fails with OUT_EXISTS
   * if one appeared after the caller checked the path (an output is never replaced without --overwrite).
   */
  replace?: boolean;
}

/** Where one declared tensor goes. */
export interface PlannedTensor {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** Offset relative to the data area, as in `data_offsets`. */
  readonly begin: number;
}

/** A complete file layout: the 8-byte prefix plus padded JSON header, and where each tensor's bytes go. */
export interface SafetensorsLayout {
  /** The first `dataStart` bytes of the file: u64 LE header length, then the space-padded JSON header. */
  readonly headerBytes: Uint8Array;
  readonly dataStart: number;
  readonly dataByteLength: number;
  readonly fileByteLength: number;
  /** Tensors in file order (dtype layout rank, then name). */
  readonly tensors: readonly PlannedTensor[];
}

/** A tensor's place in a file being written. */
export interface TensorLocation {
  readonly file: string;
  /** Absolute byte position of the tensor's first byte in `file`. */
  readonly offset: number;
}

/** Bytes at an absolute position of the file that another thread left to the writer (markWritten). */
export interface WrittenEdge {
  readonly position: number;
  readonly bytes: Uint8Array;
}

export interface SafetensorsWriter {
  /** The final path, which exists only after a successful close(). */
  readonly path: string;
  /** The temp file being written, in the same folder. */
  readonly tmpPath: string;
  readonly layout: SafetensorsLayout;
  /**
   * Write one declared tensor's bytes (raw little-endian bytes, or a typed array of the dtype's storage class).
   * Any order, concurrently if wanted; each tensor exactly once. The data must not change until the promise settles.
   */
  write(name: string, data: Uint8Array | TensorData): Promise<void>;
  /**
   * Write part of a tensor: `data` goes to bytes [byteOffset, byteOffset + data.byteLength) of it (row chunks of a
   * streamed tensor). Ranges may come in any order; each byte exactly once (overlap is OUT_WRITTEN_TWICE). A zero-size
   * tensor is written by an empty range or an empty write().
   */
  writeRange(name: string, byteOffset: number, data: Uint8Array | TensorData): Promise<void>;
  /**
   * Where tensor `name` goes, for writers in other threads: the temp file and the absolute position of its first byte.
   * Write its bytes there, then call markWritten(name).
   */
  locate(name: string): TensorLocation;
  /**
   * Record that every byte of `name` was written at locate(name) by someone else (e.g. a worker thread), but for
   * `edges`: the parts of 4 KiB blocks it shares with its neighbours, handed here to be written (see BlockAssembler).
   */
  markWritten(name: string, edges?: readonly WrittenEdge[]): void;
  /** Check every tensor was written, close the temp file and rename it to `path`. Idempotent once it succeeds. */
  close(): Promise<void>;
  /** Close and delete the temp file. Idempotent; a no-op after a successful close(). */
  abort(): Promise<void>;
  /** Aborts unless close() succeeded: leaving a `using` scope by an exception never publishes a partial file. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * The order in which Hugging Face's serializer (safetensors 0.8.0, Rust `Dtype` descending) lays dtypes out. Element
 * sizes never increase along it, so each tensor starts at a multiple of its element size.
 */
export const LAYOUT_DTYPE_ORDER: readonly DType[] = [
  'U64', 'I64', 'F64', 'F32', 'U32', 'I32', 'BF16', 'F16', 'U16', 'I16', 'F8_E4M3', 'F8_E5M2', 'I8', 'U8', 'BOOL',
];
const LAYOUT_RANK = new Map<DType, number>(LAYOUT_DTYPE_ORDER.map((d, i) => [d, i]));

/** Code point order (UTF-8 byte order), as Rust and Python sort strings. */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate (0xD800-0xDFFF) encodes a code point above every BMP unit; lift it past 0xFFFF to compare.
    const cx = x >= 0xd800 && x <= 0xdfff ? x + 0x10000 : x;
    const cy = y >= 0xd800 && y <= 0xdfff ? y + 0x10000 : y;
    return cx - cy;
  }
  return a.length - b.length;
}

const LONE_SURROGATE = /\p{Surrogate}/u;

function badArg(message: string, file: string, tensor?: string): never {
  const where: { file: string; tensor?: string } = { file };
  if (tensor !== undefined) where.tensor = tensor;
  throw new UsageError('OUT_INVALID', message, { where });
}

/**
 * Validate declarations (names non-empty, unique, well-formed Unicode, not `__metadata__`; known dtypes; valid
 * shapes) and return them with their byte lengths, sorted by name. Throws OUT_INVALID naming the tensor.
 */
export function validateDecls(decls: readonly TensorDecl[], file: string): Array<TensorDecl & { byteLength: number }> {
  if (!Array.isArray(decls)) badArg('tensor declarations must be an array', file);
  const seen = new Set<string>();
  const out: Array<TensorDecl & { byteLength: number }> = [];
  for (const d of decls) {
    const name: unknown = d?.name;
    if (typeof name !== 'string' || name.length === 0) badArg(`tensor name must be a non-empty string, got ${JSON.stringify(name)}`, file);
    if (LONE_SURROGATE.test(name)) badArg(`tensor name ${JSON.stringify(name)} is not well-formed Unicode`, file, name);
    if (name === METADATA_KEY) badArg(`${METADATA_KEY} is reserved and cannot name a tensor`, file, name);
    if (seen.has(name)) badArg(`tensor ${JSON.stringify(name)} is declared twice`, file, name);
    seen.add(name);
    if (!isDType(d.dtype)) badArg(`tensor ${JSON.stringify(name)}: unknown dtype ${JSON.stringify(d.dtype)}`, file, name);
    const shape: unknown = d.shape;
    const byteLength = Array.isArray(shape) ? checkedByteLength(d.dtype, shape) : undefined;
    if (byteLength === undefined) {
      badArg(`tensor ${JSON.stringify(name)}: shape must be an array of non-negative integers with a safe size`, file, name);
    }
    out.push({ name, dtype: d.dtype, shape: (shape as number[]).slice(), byteLength });
  }
  out.sort((a, b) => compareNames(a.name, b.name));
  return out;
}

/** Validate string metadata; returns its entries sorted by key. */
export function validateMetadata(metadata: unknown, file: string): Array<[string, string]> {
  if (metadata === undefined) return [];
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    badArg('metadata must be an object of strings', file, METADATA_KEY);
  }
  const entries = Object.entries(metadata as Record<string, unknown>);
  for (const [k, v] of entries) {
    if (typeof v !== 'string') badArg(`metadata[${JSON.stringify(k)}] must be a string, got ${typeof v}`, file, METADATA_KEY);
    if (LONE_SURROGATE.test(k) || LONE_SURROGATE.test(v)) {
      badArg(`metadata[${JSON.stringify(k)}] is not well-formed Unicode`, file, METADATA_KEY);
    }
  }
  return (entries as Array<[string, string]>).sort((a, b) => compareNames(a[0], b[0]));
}

/**
 * Compute the deterministic layout of a safetensors file from its declarations, byte-identical to what Hugging Face's
 * serializer writes for the same tensors (and metadata with at most one key; the Rust crate orders more keys by hash,
 * we sort them). Pure.
 */
export function planSafetensors(decls: readonly TensorDecl[], options: SafetensorsWriterOptions, file: string): SafetensorsLayout {
  const sorted = validateDecls(decls, file).sort(
    (a, b) => LAYOUT_RANK.get(a.dtype)! - LAYOUT_RANK.get(b.dtype)! || compareNames(a.name, b.name),
  );
  const meta = validateMetadata(options.metadata, file);
  const parts: string[] = [];
  if (meta.length > 0) {
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  }
  const tensors: PlannedTensor[] = [];
  let offset = 0;
  for (const d of sorted) {
    const end = offset + d.byteLength;
    if (!Number.isSafeInteger(end)) badArg('the tensors together exceed the safe integer byte range', file, d.name);
    parts.push(`${JSON.stringify(d.name)}:{"dtype":"${d.dtype}","shape":[${d.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    tensors.push({ name: d.name, dtype: d.dtype, shape: d.shape, byteLength: d.byteLength, begin: offset });
    offset = end;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.byteLength / 8) * 8;
  if (n > MAX_HEADER_BYTES) badArg(`the header would be ${n} bytes, more than the ${MAX_HEADER_BYTES} readers accept`, file);
  const headerBytes = new Uint8Array(8 + n);
  new DataView(headerBytes.buffer).setBigUint64(0, BigInt(n), true);
  headerBytes.set(json, 8);
  headerBytes.fill(0x20, 8 + json.byteLength);
  return { headerBytes, dataStart: 8 + n, dataByteLength: offset, fileByteLength: 8 + n + offset, tensors };
}

const STORAGE: Record<DType, new (n: number) => TensorData> = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  F8_E4M3: Uint8Array,
  F8_E5M2: Uint8Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  I8: Int8Array,
  U64: BigUint64Array,
  U32: Uint32Array,
  U16: Uint16Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

/**
 * Write bookkeeping of one tensor: the byte ranges claimed so far (sorted, disjoint, adjacent ones merged), the
 * bytes claimed, and the writes still in flight. A tensor is complete when every byte is claimed and written.
 */
interface Slot {
  readonly plan: PlannedTensor;
  ranges: Array<[number, number]>;
  claimed: number;
  touched: boolean;
  inflight: number;
}

/** Does [start, end) share a byte with a range in `ranges` (sorted, disjoint)? Empty ranges never do. */
function overlaps(ranges: ReadonlyArray<readonly [number, number]>, start: number, end: number): boolean {
  if (start === end) return false;
  for (const [a, b] of ranges) if (a < end && start < b) return true;
  return false;
}

/** Add [start, end) (known not to overlap) to `ranges`, merging with adjacent ranges. */
function claim(ranges: Array<[number, number]>, start: number, end: number): void {
  if (start === end) return;
  let i = 0;
  while (i < ranges.length && ranges[i]![1] <= start) i++;
  const prev = ranges[i - 1];
  const next = ranges[i];
  if (prev !== undefined && prev[1] === start) {
    prev[1] = end;
    if (next !== undefined && next[0] === end) {
      prev[1] = next[1];
      ranges.splice(i, 1);
    }
  } else if (next !== undefined && next[0] === end) {
    next[0] = start;
  } else {
    ranges.splice(i, 0, [start, end]);
  }
}

/**
 * The writer proper. `finish()` (all written, temp file closed and size-checked) and `publish()` (rename) are
 * separate so a sharded writer can close finished shards early and rename all of them at the end.
 */
export class SafetensorsFileWriter implements SafetensorsWriter {
  private readonly slots = new Map<string, Slot>();
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown;
  private state: 'open' | 'finishing' | 'finished' | 'published' | 'aborted' = 'open';
  private finishing: Promise<void> | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly path: string,
    readonly tmpPath: string,
    readonly layout: SafetensorsLayout,
    private readonly fh: FileHandle,
    /** a page-cache-bypassing handle for the aligned middle of large writes (src/io/direct.ts), where allowed */
    private readonly direct: DirectWriter | undefined,
    /** with it, the blocks writes share, put together and written directly too */
    private readonly blocks: BlockAssembler | undefined,
    /** publish over a file that exists at `path` (SafetensorsWriterOptions.replace) */
    private readonly replace: boolean,
  ) {
    for (const t of layout.tensors) this.slots.set(t.name, { plan: t, ranges: [], claimed: 0, touched: false, inflight: 0 });
  }

  /** Validate, create the temp file and write the header. */
  static async open(path: string, decls: readonly TensorDecl[], options: SafetensorsWriterOptions = {}): Promise<SafetensorsFileWriter> {
    const layout = planSafetensors(decls, options, path);
    const { fh, tmpPath } = await createTempFile(path);
    let direct: DirectWriter | undefined;
    let blocks: BlockAssembler | undefined;
    try {
      direct = options.direct === false ? undefined : await DirectWriter.open(tmpPath);
      if (direct !== undefined) {
        const d = direct;
        blocks = new BlockAssembler(
          layout.fileByteLength,
          (bytes, at) => d.writeBlock(fh, bytes, at),
          (bytes, at) => writeExactlyAt(fh, bytes, at, tmpPath),
        );
        // the header's blocks too (the last one waits for the first tensor's head)
        blocks.add(0, layout.headerBytes);
      } else {
        await writeExactlyAt(fh, layout.headerBytes, 0, tmpPath);
      }
    } catch (e) {
      await direct?.close().catch(() => undefined);
      await fh.close().catch(() => undefined);
      await removeIfExists(tmpPath).catch(() => undefined);
      throw e;
    }
    return new SafetensorsFileWriter(path, tmpPath, layout, fh, direct, blocks, options.replace !== false);
  }

  private static done(s: Slot): boolean {
    return s.touched && s.claimed === s.plan.byteLength && s.inflight === 0;
  }

  /** Names of declared tensors not completely written yet, in file order. */
  missing(): string[] {
    const out: string[] = [];
    for (const s of this.slots.values()) if (!SafetensorsFileWriter.done(s)) out.push(s.plan.name);
    return out;
  }

  /** True once every byte of tensor `name` has been written (false for unknown names). */
  isWritten(name: string): boolean {
    const s = this.slots.get(name);
    return s !== undefined && SafetensorsFileWriter.done(s);
  }

  write(name: string, data: Uint8Array | TensorData): Promise<void> {
    return this.put(name, 0, data, true);
  }

  writeRange(name: string, byteOffset: number, data: Uint8Array | TensorData): Promise<void> {
    return this.put(name, byteOffset, data, false);
  }

  locate(name: string): TensorLocation {
    const slot = this.slots.get(name);
    if (slot === undefined) {
      throw new UsageError('TENSOR_NOT_FOUND', `tensor ${JSON.stringify(name)} was not declared for this file`, { where: { file: this.path, tensor: name } });
    }
    return { file: this.tmpPath, offset: this.layout.dataStart + slot.plan.begin };
  }

  markWritten(name: string, edges: readonly WrittenEdge[] = []): void {
    const slot = this.slots.get(name);
    const where = { file: this.path, tensor: name };
    if (slot === undefined) throw new UsageError('TENSOR_NOT_FOUND', `tensor ${JSON.stringify(name)} was not declared for this file`, { where });
    if (slot.touched) throw new UsageError('OUT_WRITTEN_TWICE', `tensor ${JSON.stringify(name)} was already written`, { where });
    if (this.state !== 'open') throw new UsageError('OUT_INVALID', `cannot write: the writer is ${this.state}`, { where });
    const start = this.layout.dataStart + slot.plan.begin;
    for (const e of edges) {
      if (!(e.position >= start && e.position + e.bytes.byteLength <= start + slot.plan.byteLength)) {
        throw new UsageError('OUT_INVALID', `tensor ${JSON.stringify(name)}: bytes at ${e.position} handed in lie outside it`, { where });
      }
    }
    claim(slot.ranges, 0, slot.plan.byteLength);
    slot.claimed = slot.plan.byteLength;
    slot.touched = true;
    for (const e of edges) {
      if (this.blocks !== undefined) this.blocks.add(e.position, e.bytes);
      else this.track(writeExactlyAt(this.fh, e.bytes, e.position, this.path));
    }
  }

  /** A write in flight: waited for by finish(), its error kept as the writer's failure. */
  private track(p: Promise<void>): void {
    const tracked = p.catch((e: unknown) => {
      this.failure ??= e;
    });
    this.inflight.add(tracked);
    void tracked.finally(() => this.inflight.delete(tracked));
  }

  private put(name: string, byteOffset: number, data: Uint8Array | TensorData, whole: boolean): Promise<void> {
    const fail = (code: 'TENSOR_NOT_FOUND' | 'OUT_WRITTEN_TWICE' | 'OUT_INVALID' | 'TENSOR_DTYPE_MISMATCH' | 'TENSOR_SHAPE_MISMATCH', message: string): Promise<never> =>
      Promise.reject(new UsageError(code, message, { where: { file: this.path, tensor: name } }));
    const slot = this.slots.get(name);
    if (slot === undefined) return fail('TENSOR_NOT_FOUND', `tensor ${JSON.stringify(name)} was not declared for this file`);
    const plan = slot.plan;
    if (!ArrayBuffer.isView(data) || data instanceof DataView) {
      return fail('TENSOR_DTYPE_MISMATCH', `tensor ${JSON.stringify(name)}: data must be a Uint8Array or typed array`);
    }
    if (!(data instanceof Uint8Array) && !(data instanceof STORAGE[plan.dtype])) {
      return fail(
        'TENSOR_DTYPE_MISMATCH',
        `tensor ${JSON.stringify(name)} is ${plan.dtype}, expected its bytes as a Uint8Array or a ${STORAGE[plan.dtype].name}, got a ${data.constructor.name}`,
      );
    }
    const len = data.byteLength;
    if (whole && len !== plan.byteLength) {
      return fail('TENSOR_SHAPE_MISMATCH', `tensor ${JSON.stringify(name)} (${plan.dtype} [${plan.shape.join(', ')}]) needs ${plan.byteLength} bytes, got ${len}`);
    }
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset + len > plan.byteLength) {
      return fail('TENSOR_SHAPE_MISMATCH', `tensor ${JSON.stringify(name)}: bytes [${byteOffset}, ${byteOffset + len}) are outside its ${plan.byteLength} bytes`);
    }
    const twice = whole ? (plan.byteLength > 0 ? slot.claimed > 0 : slot.touched) : overlaps(slot.ranges, byteOffset, byteOffset + len);
    if (twice) {
      return fail('OUT_WRITTEN_TWICE', `tensor ${JSON.stringify(name)}: bytes [${byteOffset}, ${byteOffset + len}) were already written`);
    }
    if (this.state !== 'open') return fail('OUT_INVALID', `cannot write: the writer is ${this.state}`);
    claim(slot.ranges, byteOffset, byteOffset + len);
    slot.claimed += len;
    slot.touched = true;
    if (len === 0) return Promise.resolve();
    slot.inflight += 1;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, len);
    const at = this.layout.dataStart + plan.begin + byteOffset;
    const blocks = this.blocks;
    const edge = blocks !== undefined ? (position: number, part: Uint8Array) => blocks.add(position, part) : undefined;
    const p = (this.direct !== undefined ? this.direct.write(this.fh, bytes, at, edge) : writeExactlyAt(this.fh, bytes, at, this.path)).then(
      () => {
        slot.inflight -= 1;
      },
      (e: unknown) => {
        slot.inflight -= 1;
        this.failure ??= e;
        throw e;
      },
    );
    const tracked = p.finally(() => this.inflight.delete(tracked));
    tracked.catch(() => undefined);
    this.inflight.add(tracked);
    return p;
  }

  /** Wait for in-flight writes, check completeness, close the temp file and check its size. Does not rename. */
  finish(): Promise<void> {
    if (this.state === 'finished' || this.state === 'published') return Promise.resolve();
    if (this.state === 'aborted') return Promise.reject(new UsageError('OUT_INVALID', 'the writer was aborted', { where: { file: this.path } }));
    this.finishing ??= this.doFinish().finally(() => {
      this.finishing = undefined;
    });
    return this.finishing;
  }

  private async doFinish(): Promise<void> {
    this.state = 'finishing';
    try {
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
      if (this.failure === undefined) await this.blocks?.flush().catch((e: unknown) => void (this.failure ??= e));
      if (this.failure !== undefined) {
        throw this.failure instanceof WeightkitError ? this.failure : wrapIoError(this.failure, this.path, 'writing');
      }
      const missing = this.missing();
      if (missing.length > 0) {
        const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
        throw new UsageError('OUT_INCOMPLETE', `tensor ${JSON.stringify(missing[0])} was declared but never written${more}`, {
          where: { file: this.path, tensor: missing[0]! },
        });
      }
    } catch (e) {
      this.state = 'open';
      throw e;
    }
    try {
      const st = await this.fh.stat();
      if (st.size !== this.layout.fileByteLength) {
        throw new IoError('IO_ERROR', `temporary file is ${st.size} bytes, expected ${this.layout.fileByteLength}`, { where: { file: this.tmpPath } });
      }
      await this.direct?.close();
      // the bytes on the device before the file gets its final name: after a crash a published name never holds a
      // short or empty file (O_DIRECT data is there already; this flushes the buffered edges and the device cache)
      await this.fh.datasync();
      await this.fh.close();
    } catch (e) {
      this.failure ??= e;
      this.state = 'open';
      throw e instanceof WeightkitError ? e : wrapIoError(e, this.tmpPath, 'closing');
    }
    this.state = 'finished';
  }

  /** Rename the finished temp file to its final name. */
  async publish(): Promise<void> {
    if (this.state === 'published') return;
    if (this.state !== 'finished') throw new UsageError('OUT_INVALID', `cannot publish: the writer is ${this.state}`, { where: { file: this.path } });
    await publish(this.tmpPath, this.path, this.replace);
    this.state = 'published';
  }

  close(): Promise<void> {
    if (this.state === 'published') return Promise.resolve();
    this.closing ??= (async () => {
      await this.finish();
      await this.publish();
    })().finally(() => {
      this.closing = undefined;
    });
    return this.closing;
  }

  async abort(): Promise<void> {
    if (this.state === 'published' || this.state === 'aborted') return;
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
    if (this.finishing !== undefined) await this.finishing.catch(() => undefined);
    // Re-read the state: a concurrent close() or abort() may have moved it while we waited.
    const now = this.state as SafetensorsFileWriter['state'];
    if (now === 'published' || now === 'aborted') return;
    const wasFinished = now === 'finished';
    this.state = 'aborted';
    if (!wasFinished) {
      await this.direct?.close().catch(() => undefined);
      await this.fh.close().catch(() => undefined);
    }
    await removeIfExists(this.tmpPath);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.abort();
  }
}

/** Create a streaming writer for `path` (written to a temp name in the same folder, renamed at close). */
export async function openSafetensorsWriter(
  path: string,
  decls: readonly TensorDecl[],
  options: SafetensorsWriterOptions = {},
): Promise<SafetensorsWriter> {
  return SafetensorsFileWriter.open(path, decls, options);
}

/** Write whole tensors to one safetensors file (layout in name order), atomically via a temp name. */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyArray<{ name: string; tensor: Tensor }> | Readonly<Record<string, Tensor>>,
  options: SafetensorsWriterOptions = {},
): Promise<void> {
  const list = Array.isArray(tensors)
    ? (tensors as ReadonlyArray<{ name: string; tensor: Tensor }>)
    : Object.entries(tensors as Record<string, Tensor>).map(([name, tensor]) => ({ name, tensor }));
  const decls = list.map(({ name, tensor }) => ({ name, dtype: tensor?.dtype, shape: tensor?.shape }) as TensorDecl);
  const w = await SafetensorsFileWriter.open(path, decls, options);
  try {
    await Promise.all(list.map(({ name, tensor }) => w.write(name, tensor.data)));
    await w.close();
  } catch (e) {
    await w.abort();
    throw e;
  }
}
