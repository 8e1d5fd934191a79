// Safetensors header validation, pure: from the file's leading bytes and its size to a fully checked layout, or a
// FormatError with one ST_* code per broken invariant (Hugging Face safetensors rules, plus stricter typing).
// Guarantees: nothing is trusted before it is checked; no allocation depends on an unchecked number. No node: imports.

import { FormatError, IoError, type ErrorCode } from '../../errors.js';
import { DTYPE_INFO, isDType, type DType } from '../../tensor/dtype.js';
import { checkedNumel } from '../../tensor/tensor.js';

/** Hugging Face's cap on the JSON header (safetensors `MAX_HEADER_SIZE`). */
export const MAX_HEADER_BYTES = 100_000_000;

/** The optional key holding string -> string file metadata. */
export const METADATA_KEY = '__metadata__';

/** One validated tensor entry. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly numel: number;
  readonly byteLength: number;
  /** Offset of the first byte, relative to the start of the data area (as stored in `data_offsets`). */
  readonly begin: number;
  /** Offset one past the last byte, relative to the start of the data area. */
  readonly end: number;
}

/** A validated header: every entry checked, and together the entries cover the data area exactly. */
export interface SafetensorsHeader {
  /** The declared JSON header length N (the u64 after which the JSON starts). */
  readonly headerByteLength: number;
  /** Absolute file offset of the data area: 8 + N. */
  readonly dataStart: number;
  /** Length of the data area: file size - 8 - N. */
  readonly dataByteLength: number;
  /** Entries in file order (ascending `begin`; ties by end, then name). */
  readonly entries: readonly SafetensorsEntry[];
  readonly metadata: Readonly<Record<string, string>>;
}

const ENTRY_KEYS = ['dtype', 'shape', 'data_offsets'] as const;

function fail(code: ErrorCode, message: string, file: string, tensor?: string, byteOffset?: number): never {
  const where: { file: string; tensor?: string; byteOffset?: number } = { file };
  if (tensor !== undefined) where.tensor = tensor;
  if (byteOffset !== undefined) where.byteOffset = byteOffset;
  throw new FormatError(code, message, { where });
}

const q = (s: string): string => JSON.stringify(s);

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${q(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  return `${typeof v === 'object' ? 'an' : 'a'} ${typeof v}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validate the 8-byte prefix against the file size and return the header length N. Checks, in order:
 * ST_FILE_TOO_SMALL, ST_HEADER_TOO_LARGE (not a safe integer, or > 100,000,000), ST_HEADER_TOO_SMALL (< 2),
 * ST_HEADER_OUT_OF_FILE (8 + N > file size).
 */
export function readHeaderByteLength(prefix: Uint8Array, fileByteLength: number, file: string): number {
  if (fileByteLength < 8) {
    fail('ST_FILE_TOO_SMALL', `file is ${fileByteLength} bytes, expected at least 8 (the header length prefix)`, file);
  }
  if (prefix.byteLength < 8) {
    throw new IoError('IO_ERROR', `got ${prefix.byteLength} bytes of the header length prefix, expected 8`, {
      where: { file, byteOffset: 0 },
    });
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  if (hi >= 2 ** 21) {
    fail('ST_HEADER_TOO_LARGE', `header length is ${view.getBigUint64(0, true)} bytes, expected at most ${MAX_HEADER_BYTES}`, file, undefined, 0);
  }
  const n = hi * 2 ** 32 + lo;
  if (n > MAX_HEADER_BYTES) {
    fail('ST_HEADER_TOO_LARGE', `header length is ${n} bytes, expected at most ${MAX_HEADER_BYTES}`, file, undefined, 0);
  }
  if (n < 2) {
    fail('ST_HEADER_TOO_SMALL', `header length is ${n} bytes, expected at least 2 (the JSON "{}")`, file, undefined, 0);
  }
  if (8 + n > fileByteLength) {
    fail(
      'ST_HEADER_OUT_OF_FILE',
      `header length is ${n} bytes, so the header ends at byte ${8 + n}, but the file is ${fileByteLength} bytes`,
      file,
      undefined,
      0,
    );
  }
  return n;
}

const DECODER = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Validate a whole safetensors header. `bytes` are the file's first bytes: at least 8 + N of them (the prefix and
 * the JSON header; any more are ignored). `fileByteLength` is the size of the whole file. Throws a FormatError
 * whose code names the first broken invariant and whose `where` names the file (and tensor when one is at fault).
 *
 * Typing rules: an entry must have exactly the keys dtype (a string), shape (an array) and data_offsets (an
 * array); a missing or extra key or a key of the wrong JSON type is ST_INVALID_ENTRY. An array with bad contents is
 * ST_INVALID_SHAPE / ST_INVALID_OFFSETS. Duplicate keys inside an entry are ST_INVALID_ENTRY, inside
 * `__metadata__` ST_INVALID_METADATA, at the top level ST_DUPLICATE_NAME.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, fileByteLength: number, file: string): SafetensorsHeader {
  const n = readHeaderByteLength(bytes, fileByteLength, file);
  if (bytes.byteLength < 8 + n) {
    throw new IoError('IO_ERROR', `got ${bytes.byteLength} bytes of the file, the header needs ${8 + n}`, {
      where: { file, byteOffset: 0 },
    });
  }
  const dataStart = 8 + n;
  const dataByteLength = fileByteLength - dataStart;

  let text: string;
  try {
    text = DECODER.decode(bytes.subarray(8, 8 + n));
  } catch {
    fail('ST_HEADER_NOT_UTF8', `header (${n} bytes at byte 8) is not valid UTF-8`, file, undefined, 8);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    const detail = e instanceof Error ? e.message : String(e);
    fail('ST_HEADER_NOT_JSON', `header is not valid JSON (${detail})`, file, undefined, 8);
  }
  if (!isPlainObject(json)) {
    fail('ST_HEADER_NOT_OBJECT', `header is ${describe(json)}, expected a JSON object`, file, undefined, 8);
  }
  checkDuplicateKeys(text, file);

  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const name of Object.keys(json)) {
    const value = json[name];
    if (name === METADATA_KEY) {
      metadata = parseMetadata(value, file);
      continue;
    }
    entries.push(parseEntry(name, value, dataByteLength, file, dataStart));
  }

  entries.sort((a, b) => a.begin - b.begin || a.end - b.end || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  let covered = 0;
  for (const e of entries) {
    if (e.begin > covered) {
      fail(
        'ST_GAP',
        `tensor ${q(e.name)} starts at data offset ${e.begin}, expected ${covered} (${e.begin - covered} bytes unaccounted for before it)`,
        file,
        e.name,
        dataStart + covered,
      );
    }
    if (e.begin < covered) {
      fail(
        'ST_OVERLAP',
        `tensor ${q(e.name)} starts at data offset ${e.begin}, expected ${covered}: the previous tensor ends at ${covered}`,
        file,
        e.name,
        dataStart + e.begin,
      );
    }
    covered = e.end;
  }
  if (covered !== dataByteLength) {
    fail(
      'ST_DATA_SIZE_MISMATCH',
      `tensors cover ${covered} bytes of data, but the data area is ${dataByteLength} bytes (file ${fileByteLength} bytes - 8 - header ${n})`,
      file,
      undefined,
      dataStart + covered,
    );
  }
  return { headerByteLength: n, dataStart, dataByteLength, entries, metadata };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  // null means "no metadata": the Rust crate reads `__metadata__` as an Option, so files with null load there.
  if (value === null) return {};
  if (!isPlainObject(value)) {
    fail('ST_INVALID_METADATA', `${METADATA_KEY} is ${describe(value)}, expected an object of strings`, file, METADATA_KEY);
  }
  const out: Array<[string, string]> = [];
  for (const key of Object.keys(value)) {
    const v = value[key];
    if (typeof v !== 'string') {
      fail('ST_INVALID_METADATA', `${METADATA_KEY}[${q(key)}] is ${describe(v)}, expected a string`, file, METADATA_KEY);
    }
    out.push([key, v]);
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays data.
  return Object.fromEntries(out);
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && !Object.is(v, -0);
}

function parseEntry(name: string, value: unknown, dataByteLength: number, file: string, dataStart: number): SafetensorsEntry {
  if (!isPlainObject(value)) {
    fail('ST_HEADER_NOT_OBJECT', `entry ${q(name)} is ${describe(value)}, expected an object`, file, name);
  }
  for (const key of ENTRY_KEYS) {
    if (!Object.prototype.hasOwnProperty.call(value, key)) {
      fail('ST_INVALID_ENTRY', `entry ${q(name)} lacks the key ${q(key)}; expected keys dtype, shape, data_offsets`, file, name);
    }
  }
  for (const key of Object.keys(value)) {
    if (!(ENTRY_KEYS as readonly string[]).includes(key)) {
      fail('ST_INVALID_ENTRY', `entry ${q(name)} has the unexpected key ${q(key)}; expected only dtype, shape, data_offsets`, file, name);
    }
  }
  const { dtype, shape, data_offsets: offsets } = value as { dtype: unknown; shape: unknown; data_offsets: unknown };
  if (typeof dtype !== 'string') fail('ST_INVALID_ENTRY', `entry ${q(name)}: dtype is ${describe(dtype)}, expected a string`, file, name);
  if (!Array.isArray(shape)) fail('ST_INVALID_ENTRY', `entry ${q(name)}: shape is ${describe(shape)}, expected an array`, file, name);
  if (!Array.isArray(offsets)) {
    fail('ST_INVALID_ENTRY', `entry ${q(name)}: data_offsets is ${describe(offsets)}, expected an array`, file, name);
  }
  if (!isDType(dtype)) fail('ST_UNKNOWN_DTYPE', `entry ${q(name)}: dtype ${q(dtype)} is not one of ${Object.keys(DTYPE_INFO).join(' ')}`, file, name);

  for (let i = 0; i < shape.length; i++) {
    if (!isIndex(shape[i])) {
      fail('ST_INVALID_SHAPE', `entry ${q(name)}: shape[${i}] is ${describe(shape[i])}, expected a non-negative integer`, file, name);
    }
  }
  const numel = checkedNumel(shape);
  const bytes = numel === undefined ? undefined : numel * DTYPE_INFO[dtype].bytes;
  if (numel === undefined || bytes === undefined || !Number.isSafeInteger(bytes)) {
    fail('ST_INVALID_SHAPE', `entry ${q(name)}: shape [${shape.join(', ')}] of ${dtype} overflows the safe integer range`, file, name);
  }

  if (offsets.length !== 2 || !isIndex(offsets[0]) || !isIndex(offsets[1])) {
    fail(
      'ST_INVALID_OFFSETS',
      `entry ${q(name)}: data_offsets is [${offsets.map((o) => describe(o)).join(', ')}], expected [begin, end] of non-negative integers`,
      file,
      name,
    );
  }
  const begin = offsets[0] as number;
  const end = offsets[1] as number;
  if (begin > end) fail('ST_INVALID_OFFSETS', `entry ${q(name)}: data_offsets [${begin}, ${end}] has begin > end`, file, name);
  if (end > dataByteLength) {
    fail(
      'ST_OFFSET_OUT_OF_BOUNDS',
      `entry ${q(name)}: data_offsets end ${end} is past the end of the data area (${dataByteLength} bytes)`,
      file,
      name,
      dataStart + begin,
    );
  }
  if (end - begin !== bytes) {
    fail(
      'ST_SIZE_MISMATCH',
      `entry ${q(name)}: data_offsets span ${end - begin} bytes, but ${dtype} [${shape.join(', ')}] needs ${bytes}`,
      file,
      name,
      dataStart + begin,
    );
  }
  return { name, dtype, shape: shape.slice() as number[], numel, byteLength: bytes, begin, end };
}

/**
 * JSON.parse keeps the last of duplicate keys silently, which would let a file hide an entry. Scan the (already
 * known valid) JSON text for duplicate keys in the top-level object and in the objects directly inside it.
 */
function checkDuplicateKeys(text: string, file: string): void {
  const dup = findDuplicateKey(text, 2);
  if (dup === undefined) return;
  if (dup.path.length === 0) {
    if (dup.key === METADATA_KEY) fail('ST_INVALID_METADATA', `${METADATA_KEY} appears twice in the header`, file, METADATA_KEY);
    fail('ST_DUPLICATE_NAME', `tensor ${q(dup.key)} appears twice in the header`, file, dup.key);
  }
  const parent = dup.path[0]!;
  if (parent === METADATA_KEY) fail('ST_INVALID_METADATA', `${METADATA_KEY} has the key ${q(dup.key)} twice`, file, METADATA_KEY);
  fail('ST_INVALID_ENTRY', `entry ${q(parent)} has the key ${q(dup.key)} twice`, file, parent);
}

/** A duplicate key: `key`, inside the object reached by the keys in `path` (empty for the top level). */
export interface DuplicateKey {
  readonly key: string;
  readonly path: readonly string[];
}

/**
 * Find the first duplicate object key in valid JSON text, looking at objects nested at most `maxDepth` deep
 * (1 = the top-level object only). The text must already have parsed with JSON.parse.
 */
export function findDuplicateKey(text: string, maxDepth: number): DuplicateKey | undefined {
  // One frame per open container: its key set (objects only) and the key under which it sits in its parent.
  interface Frame {
    keys: Set<string> | undefined;
    expectKey: boolean;
    lastKey: string | undefined;
    path: string[];
  }
  const stack: Frame[] = [];
  const len = text.length;
  let i = 0;
  while (i < len) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = text.indexOf('"', i + 1);
      while (j !== -1) {
        let k = j - 1;
        while (text.charCodeAt(k) === 0x5c /* \ */) k--;
        if ((j - 1 - k) % 2 === 0) break;
        j = text.indexOf('"', j + 1);
      }
      if (j === -1) return undefined; // unreachable for valid JSON
      const top = stack[stack.length - 1];
      if (top !== undefined && top.keys !== undefined && top.expectKey) {
        const raw = text.slice(i + 1, j);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        if (top.keys.has(key)) return { key, path: top.path };
        top.keys.add(key);
        top.lastKey = key;
        top.expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const parent = stack[stack.length - 1];
      const path = parent === undefined ? [] : parent.keys !== undefined ? [...parent.path, parent.lastKey ?? ''] : parent.path;
      const tracked = c === 0x7b && stack.length < maxDepth;
      stack.push({ keys: tracked ? new Set() : undefined, expectKey: c === 0x7b, lastKey: undefined, path });
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top !== undefined && top.keys !== undefined) top.expectKey = true;
    }
    i++;
  }
  return undefined;
}
