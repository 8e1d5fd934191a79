// Sharded safetensors writer, Hugging Face layout: tensors in name order split into model-0000i-of-0000n.safetensors
// files of at most `shardSize` tensor bytes (or one model.safetensors), plus model.safetensors.index.json written the
// way transformers writes it. Every file is written under a temp name and renamed at close; nothing else is deleted.
// Must not import src/plan, src/merge, src/cli or onnxruntime.

import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { UsageError, wrapIoError } from '../../errors.js';
import type { TensorData } from '../../tensor/dtype.js';
import { createTempFile, makeDirs, publish, removeIfExists, writeExactlyAt } from '../file.js';
import type { TensorDecl } from '../types.js';
import { SafetensorsFileWriter, compareNames, validateDecls, validateMetadata, type TensorLocation, type WrittenEdge } from './writer.js';

export const INDEX_FILE = 'model.safetensors.index.json';
export const SINGLE_FILE = 'model.safetensors';
/** transformers' default max_shard_size ("5GB"). */
export const DEFAULT_SHARD_SIZE = 5_000_000_000;

export interface ShardedWriterOptions {
  /** Maximum tensor bytes per shard; a single larger tensor gets a shard of its own. Default 5e9. */
  shardSize?: number;
  /**
   * String metadata: stored in every shard's `__metadata__` (with `format: "pt"` unless given, which transformers
   * requires to load a shard that has metadata) and in the index's `metadata` next to `total_size`.
   */
  metadata?: Record<string, string>;
  /** see SafetensorsWriterOptions.direct (default true) */
  direct?: boolean;
}

/** One planned shard: its file name and tensors (name order). */
export interface ShardPlan {
  readonly file: string;
  readonly tensors: readonly TensorDecl[];
  readonly byteLength: number;
}

export interface ShardedWriter {
  readonly dir: string;
  /** Final paths of every file written: the shards in order, then the index (when there is more than one shard). */
  readonly files: readonly string[];
  readonly shards: readonly ShardPlan[];
  /** Sum of all tensors' bytes (the index's `total_size`). */
  readonly totalSize: number;
  /** Write one declared tensor; any order, concurrently if wanted, each exactly once. */
  write(name: string, data: Uint8Array | TensorData): Promise<void>;
  /** Write bytes [byteOffset, byteOffset + data.byteLength) of one tensor (see SafetensorsWriter.writeRange). */
  writeRange(name: string, byteOffset: number, data: Uint8Array | TensorData): Promise<void>;
  /** The temp shard file and absolute offset of tensor `name`, for writers in other threads (then markWritten). */
  locate(name: string): TensorLocation;
  /** Record that every byte of `name` was written at locate(name) by someone else, but for `edges` (handed in). */
  markWritten(name: string, edges?: readonly WrittenEdge[]): void;
  /** Check everything was written, rename every shard, then write and rename the index. */
  close(): Promise<void>;
  /** Delete this writer's temp files. A no-op after a successful close(). */
  abort(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** `model-00001-of-00003.safetensors`, as transformers names shards. */
export function shardFileName(index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/** Assign tensors (name order) to shards. Pure. */
export function planShards(decls: readonly TensorDecl[], shardSize: number, file = '<shards>'): ShardPlan[] {
  if (!Number.isSafeInteger(shardSize) || shardSize <= 0) {
    throw new UsageError('OUT_INVALID', `shardSize must be a positive integer number of bytes, got ${String(shardSize)}`, { where: { file } });
  }
  const sorted = validateDecls(decls, file);
  const groups: Array<{ tensors: TensorDecl[]; byteLength: number }> = [{ tensors: [], byteLength: 0 }];
  for (const d of sorted) {
    let cur = groups[groups.length - 1]!;
    if (cur.tensors.length > 0 && cur.byteLength + d.byteLength > shardSize) {
      cur = { tensors: [], byteLength: 0 };
      groups.push(cur);
    }
    cur.tensors.push({ name: d.name, dtype: d.dtype, shape: d.shape });
    cur.byteLength += d.byteLength;
  }
  const n = groups.length;
  return groups.map((g, i) => ({ file: n === 1 ? SINGLE_FILE : shardFileName(i, n), tensors: g.tensors, byteLength: g.byteLength }));
}

/** JSON string the way Python's json.dumps writes it (ensure_ascii: every non-ASCII unit as a \uXXXX escape). */
function pyString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The index text exactly as transformers writes it: json.dumps(index, indent=2, sort_keys=True) + "\n".
 * `metadata` values are strings, except total_size which is a number.
 */
export function formatShardIndex(totalSize: number, metadata: ReadonlyArray<[string, string]>, weightMap: ReadonlyArray<[string, string]>): string {
  const meta: Array<[string, string]> = [['total_size', String(totalSize)]];
  for (const [k, v] of metadata) if (k !== 'total_size') meta.push([k, pyString(v)]);
  meta.sort((a, b) => compareNames(a[0], b[0]));
  const map = [...weightMap].sort((a, b) => compareNames(a[0], b[0]));
  const block = (rows: Array<[string, string]>): string =>
    rows.length === 0 ? '{}' : `{\n${rows.map(([k, v]) => `    ${pyString(k)}: ${v}`).join(',\n')}\n  }`;
  return `{\n  "metadata": ${block(meta)},\n  "weight_map": ${block(map.map(([k, v]) => [k, pyString(v)]))}\n}\n`;
}

class ShardedFileWriter implements ShardedWriter {
  readonly files: readonly string[];
  readonly totalSize: number;
  private readonly shardOf = new Map<string, number>();
  private readonly writers: readonly SafetensorsFileWriter[];
  private readonly remaining: number[];
  private readonly written = new Set<string>();
  private readonly finishes: Array<Promise<void> | undefined>;
  private readonly indexPath: string | undefined;
  private indexTmp: string | undefined;
  private state: 'open' | 'closed' | 'aborted' = 'open';
  private closing: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    readonly shards: readonly ShardPlan[],
    writers: readonly SafetensorsFileWriter[],
    private readonly indexMetadata: Array<[string, string]>,
  ) {
    shards.forEach((s, i) => {
      for (const t of s.tensors) this.shardOf.set(t.name, i);
    });
    this.writers = writers;
    this.finishes = shards.map(() => undefined);
    this.remaining = shards.map((s) => s.tensors.length);
    this.totalSize = shards.reduce((a, s) => a + s.byteLength, 0);
    this.indexPath = shards.length > 1 ? path.join(dir, INDEX_FILE) : undefined;
    const files = shards.map((s) => path.join(dir, s.file));
    if (this.indexPath !== undefined) files.push(this.indexPath);
    this.files = files;
  }

  private shardIndex(name: string): number {
    const i = this.shardOf.get(name);
    if (i === undefined) {
      throw new UsageError('TENSOR_NOT_FOUND', `tensor ${JSON.stringify(name)} was not declared for this checkpoint`, {
        where: { file: this.dir, tensor: name },
      });
    }
    return i;
  }

  locate(name: string): TensorLocation {
    return this.writers[this.shardIndex(name)]!.locate(name);
  }

  markWritten(name: string, edges?: readonly WrittenEdge[]): void {
    if (this.state !== 'open') {
      throw new UsageError('OUT_INVALID', `cannot write: the writer is ${this.state}`, { where: { file: this.dir, tensor: name } });
    }
    const i = this.shardIndex(name);
    this.writers[i]!.markWritten(name, edges);
    this.noteWritten(i, name);
  }

  /** Count a completed tensor once; close a shard's file as soon as all its tensors are in, to bound open files. */
  private noteWritten(i: number, name: string): void {
    const w = this.writers[i]!;
    if (!w.isWritten(name) || this.written.has(name)) return;
    this.written.add(name);
    this.remaining[i]! -= 1;
    if (this.remaining[i] === 0 && this.finishes[i] === undefined) {
      const f = w.finish();
      f.catch(() => undefined);
      this.finishes[i] = f;
    }
  }

  write(name: string, data: Uint8Array | TensorData): Promise<void> {
    return this.put(name, (w) => w.write(name, data));
  }

  writeRange(name: string, byteOffset: number, data: Uint8Array | TensorData): Promise<void> {
    return this.put(name, (w) => w.writeRange(name, byteOffset, data));
  }

  private async put(name: string, op: (w: SafetensorsFileWriter) => Promise<void>): Promise<void> {
    if (this.state !== 'open') {
      throw new UsageError('OUT_INVALID', `cannot write: the writer is ${this.state}`, { where: { file: this.dir, tensor: name } });
    }
    const i = this.shardIndex(name);
    await op(this.writers[i]!);
    this.noteWritten(i, name);
  }

  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.closing ??= this.doClose().finally(() => {
      this.closing = undefined;
    });
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.state === 'aborted') throw new UsageError('OUT_INVALID', 'the writer was aborted', { where: { file: this.dir } });
    const writers = this.writers;
    for (const f of this.finishes) if (f !== undefined) await f.catch(() => undefined);
    for (const w of writers) await w.finish();
    for (const w of writers) await w.publish();
    if (this.indexPath !== undefined) {
      const weightMap: Array<[string, string]> = [];
      for (const s of this.shards) for (const t of s.tensors) weightMap.push([t.name, s.file]);
      const text = formatShardIndex(this.totalSize, this.indexMetadata, weightMap);
      const { fh, tmpPath: tmp } = await createTempFile(this.indexPath);
      this.indexTmp = tmp;
      try {
        await writeExactlyAt(fh, new TextEncoder().encode(text), 0, this.indexPath);
      } finally {
        await fh.close().catch(() => undefined);
      }
      await publish(tmp, this.indexPath);
      this.indexTmp = undefined;
    }
    this.state = 'closed';
  }

  async abort(): Promise<void> {
    if (this.state !== 'open') return;
    if (this.closing !== undefined) await this.closing.catch(() => undefined);
    if ((this.state as ShardedFileWriter['state']) === 'closed') return;
    this.state = 'aborted';
    for (const w of this.writers) await w.abort();
    if (this.indexTmp !== undefined) await removeIfExists(this.indexTmp);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.abort();
  }
}

/**
 * Create a sharded writer into `outDir` (created if missing). Validates every declaration up front and creates every
 * shard's temp file with its header. Overwrite policy is the caller's: existing files of the same final
 * names are replaced at close().
 */
export async function openShardedWriter(
  outDir: string,
  decls: readonly TensorDecl[],
  options: ShardedWriterOptions = {},
): Promise<ShardedWriter> {
  const shards = planShards(decls, options.shardSize ?? DEFAULT_SHARD_SIZE, outDir);
  const meta = validateMetadata(options.metadata, outDir);
  const shardMetadata: Record<string, string> = Object.fromEntries([['format', 'pt'], ...meta]);
  try {
    await makeDirs(outDir);
  } catch (e) {
    throw wrapIoError(e, outDir, 'creating the output folder');
  }
  // Every shard's temp file exists from the start, so locate() can hand it to other threads at once.
  const opened = await Promise.allSettled(
    shards.map((s) => SafetensorsFileWriter.open(path.join(outDir, s.file), s.tensors, { metadata: shardMetadata, ...(options.direct === false ? { direct: false } : {}) })),
  );
  const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) {
    for (const r of opened) if (r.status === 'fulfilled') await r.value.abort().catch(() => undefined);
    throw failed.reason;
  }
  const writers = opened.map((r) => (r as PromiseFulfilledResult<SafetensorsFileWriter>).value);
  return new ShardedFileWriter(outDir, shards, writers, meta);
}
