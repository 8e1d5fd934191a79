// The stored-vector format: a safetensors file whose `__metadata__` carries one JSON entry, `weightkit_vector`,
// describing what the vector is (kind, label, sources, the base's fingerprint) and how each logical tensor is
// encoded (dense under its own name; sparse or quantised under suffixed names). Plus the base fingerprint: a hash
// over a checkpoint's tensor declarations and a sample of its bytes, independent of file layout (one file, shards
// or ONNX initializers give the same fingerprint for the same tensors and bytes).

import { createHash } from 'node:crypto';
import { VectorError } from '../errors.js';
import type { CheckpointReader } from '../io/types.js';
import type { DType } from '../tensor/dtype.js';
import { compareNames } from '../io/safetensors/writer.js';

export const VECTOR_METADATA_KEY = 'weightkit_vector';
export const VECTOR_FORMAT_VERSION = 1;

export const VECTOR_KINDS = ['task', 'time', 'robustness', 'signature', 'combination'] as const;
export type VectorKind = (typeof VECTOR_KINDS)[number];

/** How one logical tensor of a vector is stored. */
export type TensorEncoding =
  | { enc: 'sparse'; shape: number[]; density: number; nnz: number }
  | { enc: 'linear' | 'log'; shape: number[]; levels: number };

export interface VectorMeta {
  version: number;
  kind: VectorKind;
  label?: string;
  /** fingerprint of the base the vector is relative to */
  baseFingerprint: string;
  /** source paths as given (informational) */
  base?: string;
  finetuned?: string;
  /** for combinations: the canonical expression and its inputs */
  expression?: string;
  /** tensors of the models that are not part of the vector (integer buffers), kept from the base when applied */
  skipped?: string[];
  /** logical tensors stored with an encoding other than dense, by logical name */
  encodings?: Record<string, TensorEncoding>;
  /** free-form extra information (quantisation report, signature layer table ...) */
  notes?: Record<string, unknown>;
}

export const SPARSE_INDEX_SUFFIX = '.__sparse_indices';
export const SPARSE_VALUE_SUFFIX = '.__sparse_values';
export const QUANT_CODE_SUFFIX = '.__quant_codes';
/** F64 [2]: the quantiser's range, [min, max] (linear) or [lo, hi] of log2|v| (log) */
export const QUANT_RANGE_SUFFIX = '.__quant_range';

export function encodeVectorMeta(meta: VectorMeta): Record<string, string> {
  return { [VECTOR_METADATA_KEY]: JSON.stringify(meta) };
}

function bad(file: string, what: string): VectorError {
  return new VectorError('VECTOR_INVALID', `${file}: ${what}`, { where: { file } });
}

function isShape(x: unknown): x is number[] {
  return Array.isArray(x) && x.every((d) => Number.isSafeInteger(d) && d >= 0);
}

/** Parse and validate the vector metadata of a safetensors file; VECTOR_INVALID when absent or malformed. */
export function decodeVectorMeta(metadata: Readonly<Record<string, string>>, file: string): VectorMeta {
  const text = metadata[VECTOR_METADATA_KEY];
  if (text === undefined) {
    throw new VectorError('VECTOR_INVALID', `${file} is not a weightkit vector (no '${VECTOR_METADATA_KEY}' metadata)`, {
      where: { file },
      hint: 'create vectors with `weightkit vector extract`',
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad(file, `'${VECTOR_METADATA_KEY}' metadata is not valid JSON`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(file, 'vector metadata is not an object');
  const m = raw as Record<string, unknown>;
  if (m['version'] !== VECTOR_FORMAT_VERSION) throw bad(file, `unsupported vector format version ${JSON.stringify(m['version'])}`);
  if (!VECTOR_KINDS.includes(m['kind'] as VectorKind)) throw bad(file, `unknown vector kind ${JSON.stringify(m['kind'])}`);
  if (typeof m['baseFingerprint'] !== 'string' || m['baseFingerprint'] === '') throw bad(file, 'vector metadata lacks baseFingerprint');
  for (const k of ['label', 'base', 'finetuned', 'expression'] as const) {
    if (m[k] !== undefined && typeof m[k] !== 'string') throw bad(file, `vector metadata '${k}' is not a string`);
  }
  if (m['skipped'] !== undefined && !(Array.isArray(m['skipped']) && m['skipped'].every((s) => typeof s === 'string'))) {
    throw bad(file, "vector metadata 'skipped' is not a list of names");
  }
  const encodings = m['encodings'];
  if (encodings !== undefined) {
    if (typeof encodings !== 'object' || encodings === null || Array.isArray(encodings)) throw bad(file, "'encodings' is not an object");
    for (const [name, e] of Object.entries(encodings as Record<string, unknown>)) {
      const enc = e as Record<string, unknown>;
      const ok =
        typeof enc === 'object' &&
        enc !== null &&
        isShape(enc['shape']) &&
        ((enc['enc'] === 'sparse' && typeof enc['density'] === 'number' && Number.isSafeInteger(enc['nnz'])) ||
          ((enc['enc'] === 'linear' || enc['enc'] === 'log') &&
            Number.isSafeInteger(enc['levels']) &&
            (enc['levels'] as number) >= (enc['enc'] === 'log' ? 3 : 2) &&
            (enc['levels'] as number) <= 65536));
      if (!ok) throw new VectorError('VECTOR_INVALID', `${file}: malformed encoding of tensor '${name}'`, { where: { file, tensor: name } });
    }
  }
  return m as unknown as VectorMeta;
}

/** Rows sampled per tensor for the fingerprint: first, middle and last (rows above this many bytes are not sampled). */
const FINGERPRINT_MAX_ROW_BYTES = 1 << 20;

/**
 * A fingerprint of a checkpoint: sha256 over every tensor's name, dtype and shape (name order) and the bytes of its
 * first, middle and last rows. Cheap (three small reads per tensor) and independent of the file layout.
 */
export async function fingerprintCheckpoint(reader: CheckpointReader, only?: (name: string, dtype: DType) => boolean): Promise<string> {
  const h = createHash('sha256');
  h.update('weightkit-fingerprint-v1\n');
  const infos = reader
    .tensors()
    .filter((t) => only === undefined || only(t.name, t.dtype))
    .slice()
    .sort((a, b) => compareNames(a.name, b.name));
  for (const t of infos) {
    h.update(`${t.name}\t${t.dtype}\t${t.shape.join(',')}\n`);
    const rows = t.shape.length === 0 ? 1 : t.shape[0]!;
    if (t.numel === 0 || rows === 0) continue;
    const rowBytes = t.byteLength / rows;
    if (rowBytes > FINGERPRINT_MAX_ROW_BYTES) continue;
    for (const r of new Set([0, rows >> 1, rows - 1])) {
      h.update(await reader.readBytes(t.name, { rowStart: r, rowEnd: r + 1 }));
    }
  }
  return h.digest('hex').slice(0, 32);
}
