// Reader for one .safetensors file: reads the 8-byte prefix and the header only, validates the whole layout, then
// serves tensors with positional reads of exactly their byte ranges (rows along dim 0 for ranged reads).
// Guarantees: never reads the whole file; every allocation is bounded by a validated byte range; conversions to f32
// stream through at most two reused scratch chunks. Must not import src/plan, src/merge, src/cli or onnxruntime.

import type { FileHandle } from 'node:fs/promises';

import { FormatError, IoError, UsageError, wrapIoError } from '../../errors.js';
import { toF32 } from '../../tensor/convert.js';
import { DTYPE_INFO, MAX_TENSOR_BYTES, allocData, viewData } from '../../tensor/dtype.js';
import { checkedNumel, type Tensor } from '../../tensor/tensor.js';
import { openForRead, readExactlyAt } from '../file.js';
import type {
  CheckpointReader,
  KnownHeader,
  ReadBytesOptions,
  ReadF32Options,
  ReadRange,
  ShardInfo,
  TensorInfo,
  TensorLocation,
} from '../types.js';
import { parseSafetensorsHeader, readHeaderByteLength, type SafetensorsEntry, type SafetensorsHeader } from './header.js';

/**
 * Default scratch chunk for reads converted to f32. A read followed by a conversion wants the chunk cache-resident,
 * but a cold read wants large requests. Measured on a 2.2 GB BF16 file (all tensors to f32, one run each): warm
 * 0.60 s with 2 MiB, 0.64 s with 4 MiB, 0.78 s with 8 MiB; cold (page cache dropped) 1.84 s with 2 MiB, 1.39 s
 * with 4 MiB, 1.62 s with 8 MiB, against 1.05 s for a plain 16 MiB read. 4 MiB balances the two.
 * Reads that need no conversion go straight into the destination.
 */
export const CONVERT_CHUNK_BYTES = 4 * 1024 * 1024;

export interface SafetensorsOpenOptions {
  /** Bytes per positional read when converting to f32 (the reused scratch chunk). Default CONVERT_CHUNK_BYTES. */
  chunkBytes?: number;
  /**
   * Headers another reader already validated, by file path (CheckpointReader.knownHeaders): a file whose size and
   * modification time still match is not read and parsed again. A merge's worker threads open the main thread's
   * models so: parsing a 1.1B model's four headers cost each worker ~10-20 ms of its start, on the way to its first
   * tensor.
   */
  known?: ReadonlyMap<string, KnownHeader>;
}

/** A CheckpointReader over one safetensors file, plus its validated header (offsets, for inspection tools). */
export interface SafetensorsReader extends CheckpointReader {
  readonly format: 'safetensors';
  /** The file actually read (equals `path` unless opened through a folder). */
  readonly file: string;
  readonly header: SafetensorsHeader;
  /** Bytes currently held in scratch chunks (diagnostic: bounded by the chunk size and the file's data size). */
  readonly scratchByteLength: number;
  knownHeaders(): readonly KnownHeader[];
}

/** Open and validate one safetensors file. Throws CKPT_NOT_FOUND, IO_ERROR or a FormatError with an ST_* code. */
export async function openSafetensors(path: string, options: SafetensorsOpenOptions = {}): Promise<SafetensorsReader> {
  return openSafetensorsFile(path, path, options);
}

/**
 * Open `file` but report `label` as the reader's `path` (a folder holding a single model.safetensors is opened
 * through it). Internal to src/io.
 */
export async function openSafetensorsFile(
  file: string,
  label: string,
  options: SafetensorsOpenOptions = {},
): Promise<SafetensorsReader> {
  const chunkBytes = options.chunkBytes ?? CONVERT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 8) {
    throw new UsageError('USAGE', `chunkBytes must be an integer >= 8, got ${String(chunkBytes)}`, { where: { file } });
  }
  const fh = await openForRead(file);
  try {
    let size: number;
    let isFile: boolean;
    let mtimeMs: number;
    try {
      const st = await fh.stat();
      size = st.size;
      isFile = st.isFile();
      mtimeMs = st.mtimeMs;
    } catch (e) {
      throw wrapIoError(e, file, 'checking the file size');
    }
    if (!isFile) {
      throw new FormatError('CKPT_UNKNOWN_FORMAT', 'expected a .safetensors file, found a folder or special file', {
        where: { file },
      });
    }
    const known = options.known?.get(file);
    if (known !== undefined && known.size === size && known.mtimeMs === mtimeMs) return new FileReader(label, file, fh, size, mtimeMs, known.header, chunkBytes);
    const prefix = new Uint8Array(8);
    if (size >= 8) await readExactlyAt(fh, prefix, 0, file);
    const n = readHeaderByteLength(prefix, size, file);
    const bytes = new Uint8Array(8 + n);
    bytes.set(prefix);
    await readExactlyAt(fh, bytes.subarray(8), 8, file);
    const header = parseSafetensorsHeader(bytes, size, file);
    return new FileReader(label, file, fh, size, mtimeMs, header, chunkBytes);
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
}

/** The byte and element extent of a row range of one tensor. */
interface Extent {
  readonly shape: number[];
  readonly numel: number;
  readonly byteLength: number;
  /** Absolute file position of the first byte. */
  readonly position: number;
}

/** At most two scratch chunks per reader, grown on demand, never beyond what the reads in question need. */
class ScratchPool {
  private readonly free: Uint8Array[] = [];
  held = 0;
  acquire(bytes: number): Uint8Array {
    for (let i = 0; i < this.free.length; i++) {
      const b = this.free[i]!;
      if (b.byteLength >= bytes) {
        this.free.splice(i, 1);
        return b;
      }
    }
    const dropped = this.free.shift();
    if (dropped !== undefined) this.held -= dropped.byteLength;
    this.held += bytes;
    return new Uint8Array(bytes);
  }
  release(b: Uint8Array): void {
    if (this.free.length < 2) this.free.push(b);
    else this.held -= b.byteLength;
  }
  clear(): void {
    this.free.length = 0;
    this.held = 0;
  }
}

class FileReader implements SafetensorsReader {
  readonly format = 'safetensors' as const;
  private readonly byName = new Map<string, SafetensorsEntry>();
  private readonly infos: readonly TensorInfo[];
  private readonly infoByName = new Map<string, TensorInfo>();
  private readonly meta: Readonly<Record<string, string>>;
  private readonly pool = new ScratchPool();
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    readonly path: string,
    readonly file: string,
    private readonly fh: FileHandle,
    private readonly fileByteLength: number,
    private readonly mtimeMs: number,
    readonly header: SafetensorsHeader,
    private readonly chunkBytes: number,
  ) {
    const infos: TensorInfo[] = [];
    for (const e of header.entries) {
      this.byName.set(e.name, e);
      const info: TensorInfo = Object.freeze({
        name: e.name,
        dtype: e.dtype,
        shape: Object.freeze(e.shape.slice()),
        numel: e.numel,
        byteLength: e.byteLength,
        file,
      });
      infos.push(info);
      this.infoByName.set(e.name, info);
    }
    this.infos = Object.freeze(infos);
    this.meta = Object.freeze({ ...header.metadata });
  }

  get scratchByteLength(): number {
    return this.pool.held;
  }

  tensors(): readonly TensorInfo[] {
    return this.infos;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.infoByName.get(name);
    if (info === undefined) this.notFound(name);
    return info;
  }

  metadata(): Readonly<Record<string, string>> {
    return this.meta;
  }

  shards(): readonly ShardInfo[] {
    return [{ file: this.file, byteLength: this.fileByteLength, tensorCount: this.infos.length }];
  }

  knownHeaders(): readonly KnownHeader[] {
    return [{ file: this.file, size: this.fileByteLength, mtimeMs: this.mtimeMs, header: this.header }];
  }

  async read(name: string, range: ReadRange = {}): Promise<Tensor> {
    const entry = this.entry(name);
    const ext = this.extent(entry, range);
    this.assertFits(entry, ext.byteLength);
    const data = allocData(entry.dtype, ext.numel);
    await this.readAt(new Uint8Array(data.buffer, data.byteOffset, ext.byteLength), ext.position);
    return { dtype: entry.dtype, shape: ext.shape, data };
  }

  async readBytes(name: string, options: ReadBytesOptions = {}): Promise<Uint8Array> {
    const entry = this.entry(name);
    const ext = this.extent(entry, options);
    let dst: Uint8Array;
    if (options.into !== undefined) {
      if (options.into.byteLength < ext.byteLength) {
        throw new UsageError(
          'TENSOR_SHAPE_MISMATCH',
          `readBytes: 'into' holds ${options.into.byteLength} bytes, the rows need ${ext.byteLength}`,
          { where: { file: this.file, tensor: name } },
        );
      }
      dst = options.into.subarray(0, ext.byteLength);
    } else {
      this.assertFits(entry, ext.byteLength);
      dst = new Uint8Array(ext.byteLength);
    }
    await this.readAt(dst, ext.position);
    return dst;
  }

  locate(name: string): TensorLocation {
    const entry = this.entry(name);
    const ext = this.extent(entry, {});
    return { file: this.file, fd: this.fh.fd, position: ext.position, byteLength: ext.byteLength };
  }

  async readF32(name: string, options: ReadF32Options = {}): Promise<Float32Array> {
    const entry = this.entry(name);
    const ext = this.extent(entry, options);
    let dst: Float32Array;
    if (options.into !== undefined) {
      if (options.into.length < ext.numel) {
        throw new UsageError(
          'TENSOR_SHAPE_MISMATCH',
          `readF32: 'into' holds ${options.into.length} elements, the rows need ${ext.numel}`,
          { where: { file: this.file, tensor: name } },
        );
      }
      dst = options.into.subarray(0, ext.numel);
    } else {
      this.assertFits(entry, ext.numel * 4);
      dst = new Float32Array(ext.numel);
    }
    if (entry.dtype === 'F32') {
      await this.readAt(new Uint8Array(dst.buffer, dst.byteOffset, ext.byteLength), ext.position);
    } else {
      await this.convertInto(entry, ext, dst);
    }
    return dst;
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.closed = true;
      this.pool.clear();
      this.closing = this.fh.close().catch((e: unknown) => {
        throw wrapIoError(e, this.file, 'closing');
      });
    }
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // -------------------------------------------------------------------------------------------------------

  private notFound(name: string): never {
    throw new FormatError('TENSOR_NOT_FOUND', `no tensor named ${JSON.stringify(name)} in this file`, {
      where: { file: this.path, tensor: name },
    });
  }

  private entry(name: string): SafetensorsEntry {
    if (this.closed) {
      throw new IoError('IO_ERROR', 'the reader is closed', { where: { file: this.file, tensor: name } });
    }
    const e = this.byName.get(name);
    if (e === undefined) this.notFound(name);
    return e;
  }

  private assertFits(entry: SafetensorsEntry, byteLength: number): void {
    if (byteLength > MAX_TENSOR_BYTES) {
      throw new FormatError(
        'TENSOR_TOO_LARGE',
        `${byteLength} bytes do not fit one typed array (at most ${MAX_TENSOR_BYTES}); read it in row ranges`,
        { where: { file: this.file, tensor: entry.name } },
      );
    }
  }

  /** Validate a row range and compute its extent; all products are bounded by the validated tensor size. */
  private extent(entry: SafetensorsEntry, range: ReadRange): Extent {
    const shape = entry.shape;
    const rows = shape.length === 0 ? 1 : shape[0]!;
    const start = range.rowStart ?? 0;
    const end = range.rowEnd ?? rows;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end || end > rows) {
      throw new UsageError(
        'TENSOR_ROW_RANGE',
        `row range [${String(start)}, ${String(end)}) is not within [0, ${rows}] with start <= end`,
        { where: { file: this.file, tensor: entry.name } },
      );
    }
    if (start === 0 && end === rows) {
      return { shape: shape.slice(), numel: entry.numel, byteLength: entry.byteLength, position: this.header.dataStart + entry.begin };
    }
    // rows > 0 here, so the product of the remaining dims is at most numel and cannot overflow.
    const rest = shape.slice(1);
    const rowNumel = checkedNumel(rest) ?? 0;
    const rowBytes = rowNumel * DTYPE_INFO[entry.dtype].bytes;
    const count = end - start;
    return {
      shape: [count, ...rest],
      numel: count * rowNumel,
      byteLength: count * rowBytes,
      position: this.header.dataStart + entry.begin + start * rowBytes,
    };
  }

  private async readAt(dst: Uint8Array, position: number): Promise<void> {
    if (dst.byteLength === 0) return;
    await readExactlyAt(this.fh, dst, position, this.file);
  }

  /**
   * Decode a non-f32 tensor range into `dst` chunk by chunk: read chunk i+1 into one scratch buffer while chunk i is
   * converted from the other, so the disk and the conversion overlap and the source bytes stay cache-hot.
   */
  private async convertInto(entry: SafetensorsEntry, ext: Extent, dst: Float32Array): Promise<void> {
    const n = ext.numel;
    if (n === 0) return;
    const eb = DTYPE_INFO[entry.dtype].bytes;
    const perChunk = Math.max(1, Math.floor(this.chunkBytes / eb));
    const chunks = Math.ceil(n / perChunk);
    const bufBytes = Math.min(n, perChunk) * eb;
    // The second buffer serves the odd chunks; sized so the two together never exceed the range itself.
    const bufs = [this.pool.acquire(bufBytes)];
    if (chunks > 1) bufs.push(this.pool.acquire(chunks === 2 ? (n - perChunk) * eb : bufBytes));
    const readChunk = (c: number): Promise<void> => {
      const e0 = c * perChunk;
      const k = Math.min(perChunk, n - e0);
      return readExactlyAt(this.fh, bufs[c % 2]!.subarray(0, k * eb), ext.position + e0 * eb, this.file);
    };
    let pending: Promise<void> | undefined = readChunk(0);
    try {
      for (let c = 0; c < chunks; c++) {
        await pending;
        pending = c + 1 < chunks ? readChunk(c + 1) : undefined;
        const e0 = c * perChunk;
        const k = Math.min(perChunk, n - e0);
        toF32(entry.dtype, viewData(entry.dtype, bufs[c % 2]!.buffer, 0, k), dst.subarray(e0, e0 + k));
      }
    } finally {
      if (pending !== undefined) await pending.catch(() => undefined);
      for (const b of bufs) this.pool.release(b);
    }
  }
}
