// openCheckpointPath: one entry point from a path to a CheckpointReader, whatever the format: a .safetensors file,
// a Hugging Face folder (index + shards, or model.safetensors, or exactly one *.safetensors), or an ONNX model.
// Guarantees: detection looks at names only (no data read before the format's own validation). Must not import
// src/plan, src/merge or src/cli; ONNX is loaded lazily so this module does not depend on it at load time.

import * as fsp from 'node:fs/promises';
import * as nodePath from 'node:path';

import { FormatError, IoError, WeightkitError, wrapIoError } from '../errors.js';
import { statOrUndefined } from './file.js';
import { openSafetensors, openSafetensorsFile, type SafetensorsOpenOptions } from './safetensors/reader.js';
import { openShardedSafetensors } from './safetensors/sharded.js';
import { INDEX_FILE, SINGLE_FILE } from './safetensors/sharded-writer.js';
import type { CheckpointReader } from './types.js';

/**
 * Open any checkpoint path. Files: `*.safetensors`, `*.onnx`, or a `model.safetensors.index.json` (its folder is
 * opened). Folders: index json, else model.safetensors, else exactly one `*.safetensors`, else exactly one `*.onnx`.
 * Errors: CKPT_NOT_FOUND (path does not exist), CKPT_UNKNOWN_FORMAT (nothing recognisable, or ambiguous), plus the
 * format's own errors.
 */
export async function openCheckpointPath(path: string, options: SafetensorsOpenOptions = {}): Promise<CheckpointReader> {
  const st = await statOrUndefined(path);
  if (st === undefined) throw new IoError('CKPT_NOT_FOUND', 'no such file or folder', { where: { file: path } });
  if (st.isDirectory()) return openFolder(path, options);
  const lower = path.toLowerCase();
  if (lower.endsWith('.safetensors')) return openSafetensors(path, options);
  if (lower.endsWith('.onnx')) return openOnnxLazily(path);
  if (nodePath.basename(path) === INDEX_FILE) return openShardedSafetensors(nodePath.dirname(path), options);
  throw new FormatError('CKPT_UNKNOWN_FORMAT', 'expected a .safetensors or .onnx file, or a folder holding one', {
    where: { file: path },
  });
}

async function openFolder(dir: string, options: SafetensorsOpenOptions): Promise<CheckpointReader> {
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).sort();
  } catch (e) {
    throw wrapIoError(e, dir, 'listing the folder');
  }
  if (names.includes(INDEX_FILE) || names.includes(SINGLE_FILE)) return openShardedSafetensors(dir, options);
  const safetensors = await regularFiles(dir, names, '.safetensors');
  if (safetensors.length === 1) return openSafetensorsFile(nodePath.join(dir, safetensors[0]!), dir, options);
  if (safetensors.length > 1) {
    throw new FormatError(
      'CKPT_UNKNOWN_FORMAT',
      `folder holds ${safetensors.length} .safetensors files (${safetensors.slice(0, 3).join(', ')}${safetensors.length > 3 ? ', ...' : ''}) but no ${INDEX_FILE}`,
      { where: { file: dir } },
    );
  }
  const onnx = await regularFiles(dir, names, '.onnx');
  if (onnx.length === 1) return openOnnxLazily(nodePath.join(dir, onnx[0]!));
  throw new FormatError(
    'CKPT_UNKNOWN_FORMAT',
    onnx.length > 1
      ? `folder holds ${onnx.length} .onnx models and no safetensors; open one of them`
      : 'folder holds no .safetensors or .onnx file',
    { where: { file: dir } },
  );
}

async function regularFiles(dir: string, names: readonly string[], ext: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of names) {
    if (!n.toLowerCase().endsWith(ext)) continue;
    const st = await statOrUndefined(nodePath.join(dir, n));
    if (st?.isFile()) out.push(n);
  }
  return out;
}

async function openOnnxLazily(file: string): Promise<CheckpointReader> {
  let mod: { openOnnx?: unknown };
  try {
    mod = (await import('./onnx/reader.js')) as { openOnnx?: unknown };
  } catch (e) {
    throw new FormatError('CKPT_UNKNOWN_FORMAT', 'ONNX support could not be loaded', { where: { file }, cause: e });
  }
  if (typeof mod.openOnnx !== 'function') {
    throw new FormatError('CKPT_UNKNOWN_FORMAT', 'ONNX support is not available in this build', { where: { file } });
  }
  try {
    return await (mod.openOnnx as (p: string) => Promise<CheckpointReader>)(file);
  } catch (e) {
    throw e instanceof WeightkitError ? e : wrapIoError(e, file, 'opening the ONNX model');
  }
}
