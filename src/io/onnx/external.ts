// ONNX external-data references: parse a TensorProto's external_data key/values and resolve the location to a
// file inside the model's folder. Guarantees: absolute paths, `..` escapes and symlinks leading out of the folder
// are refused (ONNX_EXTERNAL_ESCAPE) before any byte is read. Must not import onnxruntime-node.

import { realpath, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { FormatError, wrapIoError } from '../../errors.js';

export interface ExternalRef {
  /** The location exactly as written in the model. */
  readonly location: string;
  readonly offset: number;
  /** Declared length, if any. */
  readonly length: number | undefined;
}

const KNOWN_KEYS = new Set(['location', 'offset', 'length', 'checksum']);

function invalid(message: string, file: string, tensor: string): FormatError {
  return new FormatError('ONNX_EXTERNAL_INVALID', message, { where: { file, tensor } });
}

function parseCount(key: string, value: string, file: string, tensor: string): number {
  if (/^[0-9]{17,}$/.test(value)) throw invalid(`external_data '${key}' is too large: ${value.length > 40 ? `${value.slice(0, 40)}...` : value}`, file, tensor);
  if (!/^[0-9]{1,16}$/.test(value)) {
    throw invalid(`external_data '${key}' must be a non-negative decimal integer, got '${value}'`, file, tensor);
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw invalid(`external_data '${key}' is too large: ${value}`, file, tensor);
  return n;
}

/** Validate the key/value list of one tensor (`file` is the model file, for error positions). */
export function parseExternalData(
  entries: readonly { key: string; value: string }[],
  file: string,
  tensor: string,
): ExternalRef {
  const seen = new Map<string, string>();
  for (const { key, value } of entries) {
    if (!KNOWN_KEYS.has(key)) throw invalid(`unknown external_data key '${key}'`, file, tensor);
    if (seen.has(key)) throw invalid(`external_data key '${key}' appears twice`, file, tensor);
    seen.set(key, value);
  }
  const location = seen.get('location');
  if (location === undefined || location === '') throw invalid('external_data has no location', file, tensor);
  if (location.includes('\0')) throw invalid('external_data location contains a NUL byte', file, tensor);
  const offsetText = seen.get('offset');
  const lengthText = seen.get('length');
  return {
    location,
    offset: offsetText === undefined ? 0 : parseCount('offset', offsetText, file, tensor),
    length: lengthText === undefined ? undefined : parseCount('length', lengthText, file, tensor),
  };
}

function escape(message: string, file: string, tensor: string): FormatError {
  return new FormatError('ONNX_EXTERNAL_ESCAPE', message, { where: { file, tensor } });
}

function isInside(folder: string, target: string): boolean {
  const rel = path.relative(folder, target);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

/**
 * Resolve `location` against the folder of `modelFile`. Returns the absolute path and the file size.
 * `realModelDir` is `realpath(dirname(modelFile))`, computed once by the caller.
 */
export async function resolveExternal(
  location: string,
  modelFile: string,
  realModelDir: string,
  tensor: string,
): Promise<{ file: string; size: number }> {
  if (path.posix.isAbsolute(location) || path.win32.isAbsolute(location) || /^[a-zA-Z]:/.test(location)) {
    throw escape(`external data location '${location}' is absolute`, modelFile, tensor);
  }
  const dir = path.dirname(modelFile);
  const joined = path.join(dir, location.replaceAll('\\', '/'));
  if (!isInside(path.resolve(dir), path.resolve(joined))) {
    throw escape(`external data location '${location}' leaves the model folder`, modelFile, tensor);
  }
  let real: string;
  try {
    real = await realpath(path.resolve(joined));
  } catch (e) {
    const code = (e as { code?: unknown })?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new FormatError('ONNX_EXTERNAL_MISSING', `external data file '${location}' does not exist`, {
        where: { file: joined, tensor },
        cause: e,
      });
    }
    throw wrapIoError(e, joined, 'resolving external data');
  }
  if (!isInside(realModelDir, real)) {
    throw escape(`external data location '${location}' resolves to '${real}', outside the model folder`, modelFile, tensor);
  }
  let size: number;
  try {
    const st = await stat(real);
    if (!st.isFile()) {
      throw new FormatError('ONNX_EXTERNAL_MISSING', `external data location '${location}' is not a file`, {
        where: { file: joined, tensor },
      });
    }
    size = st.size;
  } catch (e) {
    throw wrapIoError(e, joined, 'reading external data');
  }
  return { file: joined, size };
}
