// The checkpoint interfaces every format implements (safetensors file, sharded folder, ONNX model), so code
// above src/io never cares which format it has. Readers validate all metadata when opened and then read
// exactly the byte ranges asked for; nothing reads a whole checkpoint into memory.

import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SafetensorsHeader } from './safetensors/header.js';

export type CheckpointFormat = 'safetensors' | 'safetensors-sharded' | 'onnx';

/** Validated metadata of one stored tensor. No I/O is needed to get it. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly numel: number;
  readonly byteLength: number;
  /** The file that holds the tensor's bytes (shard, model file or external-data file). */
  readonly file: string;
}

export interface ShardInfo {
  readonly file: string;
  readonly byteLength: number;
  readonly tensorCount: number;
}

export interface ReadRange {
  /** First row (index along dim 0) to read; default 0. */
  rowStart?: number;
  /** One past the last row; default all rows. A 0-d tensor has one row; a 1-D tensor has one element per row. */
  rowEnd?: number;
}

export interface ReadF32Options extends ReadRange {
  /** Reuse this buffer for the result (must hold at least the rows' element count); the result is a view of it. */
  into?: Float32Array;
}

export interface ReadBytesOptions extends ReadRange {
  /** Reuse this buffer for the raw bytes; must hold the rows' byte count. */
  into?: Uint8Array;
}

export interface CheckpointReader {
  readonly format: CheckpointFormat;
  /** The path the checkpoint was opened from (file or folder), as given. */
  readonly path: string;
  /** Every tensor, in a stable order (file order for one file; index order for a sharded folder). */
  tensors(): readonly TensorInfo[];
  has(name: string): boolean;
  /** Metadata of one tensor; throws TENSOR_NOT_FOUND naming the checkpoint. */
  info(name: string): TensorInfo;
  /** String metadata (safetensors `__metadata__`, ONNX metadata_props). */
  metadata(): Readonly<Record<string, string>>;
  /** Files the checkpoint consists of, with sizes. */
  shards(): readonly ShardInfo[];
  /** Read a tensor (or a row range of it) in its stored dtype. */
  read(name: string, range?: ReadRange): Promise<Tensor>;
  /** Read raw little-endian bytes of a tensor (or row range), optionally into a reused buffer. */
  readBytes(name: string, options?: ReadBytesOptions): Promise<Uint8Array>;
  /** Read a float (or integer) tensor converted to f32, optionally into a reused buffer. */
  readF32(name: string, options?: ReadF32Options): Promise<Float32Array>;
  /**
   * Optional: where a tensor's stored bytes lie in an open file (its descriptor, the absolute byte position), for
   * kernels that map the file instead of reading it; undefined when they are not one contiguous range of a file.
   * Valid until close().
   */
  locate?(name: string): TensorLocation | undefined;
  /**
   * Optional: the validated headers of the checkpoint's safetensors files, for opening the same files again in
   * another thread without reading and parsing them (SafetensorsOpenOptions.known).
   */
  knownHeaders?(): readonly KnownHeader[];
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * A safetensors file's validated header as a reader parsed it, with the file's size and modification time then: a
 * later open of the same file takes it instead of parsing again while both still match (plain data: it crosses to
 * worker threads).
 */
export interface KnownHeader {
  readonly file: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly header: SafetensorsHeader;
}

/** A tensor's stored bytes in an open file (see CheckpointReader.locate). */
export interface TensorLocation {
  /** the file (a shard's own path for a sharded checkpoint) */
  readonly file: string;
  readonly fd: number;
  readonly position: number;
  readonly byteLength: number;
}

/** A tensor to be written: its declaration is known before any data (streaming writers need all of them). */
export interface TensorDecl {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}
