// One streaming output for every command that writes a whole checkpoint: a `.safetensors` file, a model folder
// (sharded safetensors + index, companion files copied from a donor folder) or a patched `.onnx` model (weights
// staged in a temp safetensors file, spliced into the donor graph at the end). Everything is written under a
// temporary name and published by close(); abort() leaves nothing behind.

import { rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { UsageError } from '../errors.js';
import type { TensorData } from '../tensor/dtype.js';
import { copyCompanionFiles } from './companions.js';
import { patchOnnxFromWeights } from './convert.js';
import { tmpPathFor } from './file.js';
import { checkOutputFile, stageOutputDir, type StagedDir } from './output.js';
import { openSafetensorsWriter, type SafetensorsWriter } from './safetensors/writer.js';
import { DEFAULT_SHARD_SIZE, openShardedWriter, type ShardedWriter } from './safetensors/sharded-writer.js';
import type { TensorDecl } from './types.js';

export type SinkKind = 'file' | 'folder' | 'onnx';

export interface SinkOptions {
  /** Stored as safetensors `__metadata__` (every shard and the index for folders). */
  metadata?: Record<string, string>;
  shardSize?: number;
  overwrite?: boolean;
  /** Paths read by the command: the output may not overlap them. */
  inputs?: readonly string[];
  /** A model folder whose config/tokenizer files are copied into a folder output; the ONNX graph for `.onnx` outputs. */
  donor?: string;
  /**
   * Large writes with O_DIRECT where allowed (default true; see SafetensorsWriterOptions.direct); false for an output
   * that is read again at once. An `.onnx` output's intermediate safetensors file never uses them.
   */
  direct?: boolean;
}

export interface CheckpointSink {
  readonly kind: SinkKind;
  /** The final path (exists only after close()). */
  readonly out: string;
  write(name: string, data: Uint8Array | TensorData): Promise<void>;
  writeRange(name: string, byteOffset: number, data: Uint8Array | TensorData): Promise<void>;
  /**
   * Where to write an extra file that belongs with this output: inside the staged folder (published with it), or a
   * sibling `<out>.<fileName>` for file outputs (the caller publishes it; it is removed by abort()).
   */
  sidePath(fileName: string): string;
  /** Publish the output. Returns the final paths of the files written. */
  close(): Promise<string[]>;
  abort(): Promise<void>;
}

export function sinkKindOf(out: string): SinkKind {
  if (out.endsWith('.safetensors')) return 'file';
  if (out.endsWith('.onnx')) return 'onnx';
  return 'folder';
}

/** Open the output `out` for the declared tensors; the kind follows the path (`.safetensors`, `.onnx`, folder). */
export async function openCheckpointSink(out: string, decls: readonly TensorDecl[], options: SinkOptions = {}): Promise<CheckpointSink> {
  const kind = sinkKindOf(out);
  const metadata = options.metadata;
  const sides: string[] = [];
  const sidePath = (fileName: string): string => {
    const p = join(dirname(out), `${basename(out)}.${fileName}`);
    sides.push(p);
    return p;
  };
  const removeSides = async (): Promise<void> => {
    for (const s of sides) await rm(s, { force: true });
  };
  if (kind === 'file' || kind === 'onnx') {
    // one safetensors writer: the output itself, or (.onnx) the weights spliced into the donor graph at close()
    let donor: string | undefined;
    if (kind === 'onnx') {
      if (options.donor === undefined || !options.donor.endsWith('.onnx')) {
        throw new UsageError('USAGE', `an .onnx output (${out}) needs an ONNX model to patch; the input here is not an .onnx file`, {
          where: { file: out },
          hint: 'write a .safetensors file or a folder instead',
        });
      }
      donor = options.donor;
    }
    await checkOutputFile(out, { overwrite: options.overwrite, inputs: options.inputs });
    const target = donor === undefined ? out : tmpPathFor(out) + '.safetensors';
    // an .onnx output's safetensors file is read again at once (spliced into the graph): through the page cache
    const direct = options.direct !== false && donor === undefined;
    const w: SafetensorsWriter = await openSafetensorsWriter(target, decls, { metadata, replace: donor !== undefined || options.overwrite === true, ...(direct ? {} : { direct: false }) });
    return {
      kind,
      out,
      write: (n, d) => w.write(n, d),
      writeRange: (n, o, d) => w.writeRange(n, o, d),
      sidePath,
      async close() {
        if (donor === undefined) {
          await w.close();
          return [out];
        }
        try {
          await w.close();
          await patchOnnxFromWeights({ model: donor, weights: target, out, overwrite: true, allowMissing: true });
        } finally {
          await rm(target, { force: true });
        }
        return [out];
      },
      async abort() {
        await w.abort();
        if (donor !== undefined) await rm(target, { force: true });
        await removeSides();
      },
    };
  }
  const staged: StagedDir = await stageOutputDir(out, { overwrite: options.overwrite, inputs: options.inputs });
  let w: ShardedWriter;
  try {
    w = await openShardedWriter(staged.staging, decls, { shardSize: options.shardSize ?? DEFAULT_SHARD_SIZE, metadata, ...(options.direct === false ? { direct: false } : {}) });
  } catch (e) {
    await staged.abort();
    throw e;
  }
  const extra: string[] = [];
  return {
    kind,
    out,
    write: (n, d) => w.write(n, d),
    writeRange: (n, o, d) => w.writeRange(n, o, d),
    sidePath(fileName: string) {
      extra.push(fileName);
      return join(staged.staging, fileName);
    },
    async close() {
      await w.close();
      const copied = options.donor !== undefined ? await copyCompanionFiles(options.donor, staged.staging) : [];
      const files = [...w.files.map((f) => join(out, basename(f))), ...[...copied, ...extra].map((f) => join(out, f))];
      await staged.commit();
      return files;
    },
    async abort() {
      await w.abort();
      await staged.abort();
    },
  };
}
