// Reader for a Hugging Face safetensors folder: model.safetensors.index.json plus shards, or one model.safetensors.
// Guarantees: the index and every shard header are validated when opened (shard files confined to the folder, every
// listed tensor present in its shard); tensors a shard holds but the index does not list are ignored, as in HF.
// Must not import src/plan, src/merge, src/cli or onnxruntime.

import * as nodePath from 'node:path';

import { FormatError, IoError, WeightkitError, wrapIoError } from '../../errors.js';
import type { Tensor } from '../../tensor/tensor.js';
import { openForRead, readExactlyAt, statOrUndefined } from '../file.js';
import type { CheckpointReader, KnownHeader, ReadBytesOptions, ReadF32Options, ReadRange, ShardInfo, TensorInfo, TensorLocation } from '../types.js';
import { findDuplicateKey } from './header.js';
import { openSafetensorsFile, type SafetensorsOpenOptions, type SafetensorsReader } from './reader.js';
import { INDEX_FILE, SINGLE_FILE } from './sharded-writer.js';

/** An index larger than this is refused (a 100k-tensor index is about 10 MB). */
export const MAX_INDEX_BYTES = 100_000_000;

/** A validated shard index: tensor -> shard file name (relative to the folder), in index order. */
export interface ShardIndex {
  readonly weightMap: ReadonlyArray<readonly [string, string]>;
  /** The index's `metadata` entries whose values are strings (total_size, a number, is in `totalSize`). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly totalSize: number | undefined;
}

function indexError(message: string, file: string, tensor?: string): never {
  const where: { file: string; tensor?: string } = { file };
  if (tensor !== undefined) where.tensor = tensor;
  throw new FormatError('ST_INDEX_INVALID', message, { where });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True when `name` is a relative path that stays inside its folder. */
function isConfinedName(name: string): boolean {
  if (name.length === 0 || name.includes('\0')) return false;
  if (nodePath.posix.isAbsolute(name) || nodePath.win32.isAbsolute(name)) return false;
  const parts = name.split(/[\\/]/);
  return !parts.some((p) => p === '..' || p === '');
}

/**
 * Validate the text of model.safetensors.index.json. Pure. Throws ST_INDEX_INVALID (file = `file`) for anything
 * malformed, including shard names that are absolute or climb out of the folder, and ST_SHARD_DUPLICATE when
 * weight_map lists a tensor twice.
 */
export function parseShardIndex(bytes: Uint8Array, file: string): ShardIndex {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    indexError('index is not valid UTF-8', file);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    indexError(`index is not valid JSON (${e instanceof Error ? e.message : String(e)})`, file);
  }
  if (!isPlainObject(json)) indexError('index is not a JSON object', file);
  const dup = findDuplicateKey(text, 2);
  if (dup !== undefined) {
    if (dup.path.length === 1 && dup.path[0] === 'weight_map') {
      throw new FormatError('ST_SHARD_DUPLICATE', `weight_map lists tensor ${JSON.stringify(dup.key)} twice`, {
        where: { file, tensor: dup.key },
      });
    }
    indexError(`key ${JSON.stringify(dup.key)} appears twice${dup.path.length > 0 ? ` in ${JSON.stringify(dup.path[0])}` : ''}`, file);
  }
  const wm = json['weight_map'];
  if (!isPlainObject(wm)) indexError('index has no "weight_map" object', file);
  const weightMap: Array<readonly [string, string]> = [];
  for (const name of Object.keys(wm)) {
    const shard = wm[name];
    if (typeof shard !== 'string') indexError(`weight_map[${JSON.stringify(name)}] is not a string`, file, name);
    if (!isConfinedName(shard)) {
      indexError(`weight_map[${JSON.stringify(name)}] = ${JSON.stringify(shard)} is not a file name inside the folder`, file, name);
    }
    weightMap.push([name, shard]);
  }
  const metaIn = json['metadata'];
  const metadata: Array<[string, string]> = [];
  let totalSize: number | undefined;
  if (metaIn !== undefined && metaIn !== null) {
    if (!isPlainObject(metaIn)) indexError('index "metadata" is not an object', file);
    for (const k of Object.keys(metaIn)) {
      const v = metaIn[k];
      if (k === 'total_size') {
        if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) indexError('metadata.total_size is not a non-negative integer', file);
        totalSize = v;
      } else if (typeof v === 'string') {
        metadata.push([k, v]);
      }
    }
  }
  return { weightMap, metadata: Object.fromEntries(metadata), totalSize };
}

/**
 * Open a folder: with model.safetensors.index.json, every shard it names (headers validated up front); otherwise a
 * single model.safetensors. Errors: CKPT_NOT_FOUND (no such folder), CKPT_UNKNOWN_FORMAT (neither file present),
 * ST_INDEX_INVALID, ST_SHARD_DUPLICATE, ST_SHARD_MISSING (file = the missing shard, tensor = a tensor listed in
 * it), ST_SHARD_TENSOR_MISSING (file = the shard, tensor = the tensor), and any shard's own ST_* error.
 */
export async function openShardedSafetensors(dir: string, options: SafetensorsOpenOptions = {}): Promise<CheckpointReader> {
  const st = await statOrUndefined(dir);
  if (st === undefined) throw new IoError('CKPT_NOT_FOUND', 'no such folder', { where: { file: dir } });
  if (!st.isDirectory()) {
    throw new FormatError('CKPT_UNKNOWN_FORMAT', 'expected a folder holding safetensors shards', { where: { file: dir } });
  }
  const indexPath = nodePath.join(dir, INDEX_FILE);
  const indexStat = await statOrUndefined(indexPath);
  // model.safetensors first, as transformers loads a folder that holds both it and an index
  const single = nodePath.join(dir, SINGLE_FILE);
  if (indexStat === undefined || (await statOrUndefined(single)) !== undefined) {
    if ((await statOrUndefined(single)) === undefined) {
      throw new FormatError('CKPT_UNKNOWN_FORMAT', `folder has neither ${INDEX_FILE} nor ${SINGLE_FILE}`, { where: { file: dir } });
    }
    return openSafetensorsFile(single, dir, options);
  }
  if (!indexStat.isFile()) indexError('index is not a regular file', indexPath);
  if (indexStat.size > MAX_INDEX_BYTES) indexError(`index is ${indexStat.size} bytes, more than the ${MAX_INDEX_BYTES} accepted`, indexPath);
  const fh = await openForRead(indexPath);
  const bytes = new Uint8Array(indexStat.size);
  try {
    await readExactlyAt(fh, bytes, 0, indexPath);
  } finally {
    await fh.close().catch(() => undefined);
  }
  const index = parseShardIndex(bytes, indexPath);

  // Shard files in order of first mention, with the first tensor that names each.
  const shardFiles: string[] = [];
  const firstTensor = new Map<string, string>();
  for (const [name, shard] of index.weightMap) {
    if (!firstTensor.has(shard)) {
      firstTensor.set(shard, name);
      shardFiles.push(shard);
    }
  }
  const settled = await Promise.allSettled(shardFiles.map((s) => openSafetensorsFile(nodePath.join(dir, s), nodePath.join(dir, s), options)));
  const readers = new Map<string, SafetensorsReader>();
  settled.forEach((r, i) => {
    if (r.status === 'fulfilled') readers.set(shardFiles[i]!, r.value);
  });
  const closeAll = async (): Promise<void> => {
    await Promise.all([...readers.values()].map((r) => r.close().catch(() => undefined)));
  };
  try {
    settled.forEach((r, i) => {
      if (r.status === 'fulfilled') return;
      const shard = shardFiles[i]!;
      const file = nodePath.join(dir, shard);
      const e = r.reason;
      if (e instanceof WeightkitError && e.code === 'CKPT_NOT_FOUND') {
        throw new FormatError('ST_SHARD_MISSING', `shard ${JSON.stringify(shard)} named in ${INDEX_FILE} does not exist`, {
          where: { file, tensor: firstTensor.get(shard)! },
          cause: e,
        });
      }
      throw e instanceof WeightkitError ? e : wrapIoError(e, file, 'opening a shard');
    });
    for (const [name, shard] of index.weightMap) {
      if (!readers.get(shard)!.has(name)) {
        throw new FormatError(
          'ST_SHARD_TENSOR_MISSING',
          `${INDEX_FILE} puts tensor ${JSON.stringify(name)} in shard ${JSON.stringify(shard)}, which does not hold it`,
          { where: { file: nodePath.join(dir, shard), tensor: name } },
        );
      }
    }
  } catch (e) {
    await closeAll();
    throw e;
  }
  return new ShardedReader(dir, index, shardFiles.map((s) => readers.get(s)!));
}

class ShardedReader implements CheckpointReader {
  readonly format = 'safetensors-sharded' as const;
  private readonly byName = new Map<string, SafetensorsReader>();
  private readonly infos: readonly TensorInfo[];
  private readonly meta: Readonly<Record<string, string>>;
  private readonly shardInfos: readonly ShardInfo[];
  private closing: Promise<void> | undefined;

  constructor(
    readonly path: string,
    index: ShardIndex,
    private readonly readers: readonly SafetensorsReader[],
  ) {
    const byFile = new Map<string, SafetensorsReader>();
    for (const r of readers) byFile.set(r.file, r);
    const infos: TensorInfo[] = [];
    const counts = new Map<SafetensorsReader, number>();
    for (const [name, shard] of index.weightMap) {
      const r = byFile.get(nodePath.join(this.path, shard))!;
      this.byName.set(name, r);
      infos.push(r.info(name));
      counts.set(r, (counts.get(r) ?? 0) + 1);
    }
    this.infos = Object.freeze(infos);
    // Shards' __metadata__ (the first shard wins a conflict), overlaid by the index's string metadata.
    // fromEntries keeps the last of repeated keys, so push shards last-to-first, then the index.
    const meta: Array<[string, string]> = [];
    for (const r of [...readers].reverse()) for (const kv of Object.entries(r.metadata())) meta.push(kv);
    for (const kv of Object.entries(index.metadata)) meta.push(kv);
    this.meta = Object.freeze(Object.fromEntries(meta));
    this.shardInfos = Object.freeze(
      readers.map((r) => ({ file: r.file, byteLength: r.shards()[0]!.byteLength, tensorCount: counts.get(r) ?? 0 })),
    );
  }

  tensors(): readonly TensorInfo[] {
    return this.infos;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    return this.reader(name).info(name);
  }

  metadata(): Readonly<Record<string, string>> {
    return this.meta;
  }

  shards(): readonly ShardInfo[] {
    return this.shardInfos;
  }

  read(name: string, range?: ReadRange): Promise<Tensor> {
    return this.call(name, (r) => r.read(name, range));
  }

  locate(name: string): TensorLocation | undefined {
    return this.reader(name).locate?.(name);
  }

  knownHeaders(): readonly KnownHeader[] {
    return this.readers.flatMap((r) => r.knownHeaders());
  }

  readBytes(name: string, options?: ReadBytesOptions): Promise<Uint8Array> {
    return this.call(name, (r) => r.readBytes(name, options));
  }

  readF32(name: string, options?: ReadF32Options): Promise<Float32Array> {
    return this.call(name, (r) => r.readF32(name, options));
  }

  close(): Promise<void> {
    this.closing ??= Promise.all(this.readers.map((r) => r.close())).then(() => undefined);
    return this.closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private call<T>(name: string, fn: (r: SafetensorsReader) => Promise<T>): Promise<T> {
    try {
      return fn(this.reader(name));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private reader(name: string): SafetensorsReader {
    const r = this.byName.get(name);
    if (r === undefined) {
      throw new FormatError('TENSOR_NOT_FOUND', `no tensor named ${JSON.stringify(name)} in this checkpoint`, {
        where: { file: this.path, tensor: name },
      });
    }
    return r;
  }
}
