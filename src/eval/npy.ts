// A small strict reader (and writer, for tests and tools) of NumPy .npy files: magic, version 1/2/3 header, a
// little-endian dtype from a closed list (<f4 <f2 <i8 <i4 |u1), C order, a shape; the data must exactly cover the
// rest of the file. Every malformation is an EVAL_DATA error naming the file. Row-range reads; never whole-file.

import type { FileHandle } from 'node:fs/promises';
import * as fsp from 'node:fs/promises';
import { EvalError, WeightkitError, wrapIoError } from '../errors.js';
import { readExactlyAt } from '../io/file.js';
import { DTYPE_INFO, viewData, type DType, type TensorData } from '../tensor/dtype.js';
import { checkedByteLength, formatShape, rowNumel } from '../tensor/tensor.js';

export const NPY_MAGIC = new Uint8Array([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY
/** Header dicts longer than this are refused (numpy itself caps v1 at 65535 and writes far less). */
export const NPY_MAX_HEADER_BYTES = 1 << 20;

/** The supported descr strings and the dtype each maps to. */
const DESCR: Readonly<Record<string, DType>> = { '<f4': 'F32', '<f2': 'F16', '<i8': 'I64', '<i4': 'I32', '|u1': 'U8' };

export interface NpyHeader {
  readonly version: 1 | 2 | 3;
  readonly dtype: DType;
  readonly descr: string;
  readonly shape: readonly number[];
  /** Byte offset of the first data byte. */
  readonly dataOffset: number;
  readonly byteLength: number;
}

function bad(file: string, message: string, byteOffset?: number): EvalError {
  return new EvalError('EVAL_DATA', `not a valid .npy file: ${message}`, {
    where: byteOffset === undefined ? { file } : { file, byteOffset },
  });
}

/** Tokens of a Python dict literal as written by numpy: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } */
type Value = string | boolean | number[];

function parseDict(text: string, file: string, base: number): Map<string, Value> {
  let i = 0;
  const err = (m: string) => bad(file, `header dict: ${m} at character ${i}`, base + i);
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
  };
  const str = (): string => {
    const q = text[i];
    if (q !== "'" && q !== '"') throw err('expected a quoted string');
    const end = text.indexOf(q, i + 1);
    if (end < 0) throw err('unterminated string');
    const s = text.slice(i + 1, end);
    if (s.includes('\\')) throw err('escapes are not supported');
    i = end + 1;
    return s;
  };
  const value = (): Value => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') return str();
    if (text.startsWith('True', i)) {
      i += 4;
      return true;
    }
    if (text.startsWith('False', i)) {
      i += 5;
      return false;
    }
    if (c === '(') {
      i++;
      const dims: number[] = [];
      for (;;) {
        ws();
        if (text[i] === ')') {
          i++;
          return dims;
        }
        const m = /^[0-9]+/.exec(text.slice(i, i + 32));
        if (m === null) throw err('expected a non-negative integer dimension');
        const d = Number(m[0]);
        if (!Number.isSafeInteger(d)) throw err(`dimension ${m[0]} is too large`);
        dims.push(d);
        i += m[0].length;
        ws();
        if (text[i] === 'L') i++; // Python 2 long suffix
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== ')') throw err("expected ',' or ')' in shape");
      }
    }
    throw err('unsupported value');
  };
  const out = new Map<string, Value>();
  ws();
  if (text[i] !== '{') throw err("expected '{'");
  i++;
  for (;;) {
    ws();
    if (text[i] === '}') {
      i++;
      break;
    }
    const k = str();
    if (out.has(k)) throw err(`duplicate key '${k}'`);
    ws();
    if (text[i] !== ':') throw err("expected ':'");
    i++;
    out.set(k, value());
    ws();
    if (text[i] === ',') i++;
    else if (text[i] !== '}') throw err("expected ',' or '}'");
  }
  if (!/^[ \t]*\n?[ \t\0]*$/.test(text.slice(i))) throw err('unexpected text after the dict');
  return out;
}

/** Parse and validate a .npy header from the file's first bytes; `fileSize` checks that the data fills the file. */
export function parseNpyHeader(bytes: Uint8Array, fileSize: number, file: string): NpyHeader {
  if (bytes.length < 10 || fileSize < 10) throw bad(file, `file is ${fileSize} bytes, shorter than the 10-byte preamble`);
  for (let k = 0; k < NPY_MAGIC.length; k++) if (bytes[k] !== NPY_MAGIC[k]) throw bad(file, 'missing the \\x93NUMPY magic', 0);
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) throw bad(file, `unsupported format version ${major}.${minor}`, 6);
  const lenBytes = major === 1 ? 2 : 4;
  const prefix = 8 + lenBytes;
  if (bytes.length < prefix) throw bad(file, 'file ends inside the header length', 8);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  if (headerLen > NPY_MAX_HEADER_BYTES) throw bad(file, `header length ${headerLen} is above the ${NPY_MAX_HEADER_BYTES}-byte cap`, 8);
  if (prefix + headerLen > fileSize || prefix + headerLen > bytes.length) {
    throw bad(file, `header length ${headerLen} runs past the end of the file (${fileSize} bytes)`, 8);
  }
  const raw = bytes.subarray(prefix, prefix + headerLen);
  let text: string;
  if (major === 3) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw bad(file, 'header is not UTF-8', prefix);
    }
  } else {
    for (const b of raw) if (b > 0x7e) throw bad(file, 'header is not ASCII', prefix);
    text = new TextDecoder('latin1').decode(raw);
  }
  const dict = parseDict(text, file, prefix);
  for (const k of dict.keys()) {
    if (k !== 'descr' && k !== 'fortran_order' && k !== 'shape') throw bad(file, `unknown header key '${k}'`, prefix);
  }
  const descr = dict.get('descr');
  const fortran = dict.get('fortran_order');
  const shape = dict.get('shape');
  if (typeof descr !== 'string') throw bad(file, "header lacks a string 'descr'", prefix);
  if (typeof fortran !== 'boolean') throw bad(file, "header lacks a boolean 'fortran_order'", prefix);
  if (!Array.isArray(shape)) throw bad(file, "header lacks a tuple 'shape'", prefix);
  const dtype = DESCR[descr];
  if (dtype === undefined) {
    const be = descr.startsWith('>') ? ' (big-endian data is not supported)' : '';
    throw bad(file, `dtype '${descr}' is not supported${be}; use one of ${Object.keys(DESCR).join(' ')}`, prefix);
  }
  if (fortran) throw bad(file, 'Fortran-order arrays are not supported (save with C order)', prefix);
  const byteLength = checkedByteLength(dtype, shape);
  if (byteLength === undefined) throw bad(file, `shape ${formatShape(shape)} overflows`, prefix);
  const dataOffset = prefix + headerLen;
  if (dataOffset + byteLength !== fileSize) {
    throw bad(
      file,
      `shape ${formatShape(shape)} of ${descr} needs ${byteLength} data bytes, the file holds ${fileSize - dataOffset}`,
      dataOffset,
    );
  }
  return { version: major, dtype, descr, shape, dataOffset, byteLength };
}

/** An open .npy file: validated header, ranged reads of rows (along the first dimension). */
export class NpyFile implements AsyncDisposable {
  private closed = false;
  private constructor(
    readonly file: string,
    readonly header: NpyHeader,
    private readonly fh: FileHandle,
  ) {}

  get dtype(): DType {
    return this.header.dtype;
  }
  get shape(): readonly number[] {
    return this.header.shape;
  }

  static async open(file: string): Promise<NpyFile> {
    let fh: FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch (e) {
      const w = wrapIoError(e, file, 'opening .npy file');
      throw w.code === 'CKPT_NOT_FOUND' ? new EvalError('EVAL_DATA', 'no such .npy file', { where: { file }, cause: e }) : w;
    }
    try {
      const size = (await fh.stat()).size;
      const first = new Uint8Array(Math.min(size, 4096));
      await readExactlyAt(fh, first, 0, file);
      let head = first;
      if (size >= 12) {
        const dv = new DataView(first.buffer);
        const v1 = first[6] === 1;
        const declared = v1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
        const want = (v1 ? 10 : 12) + Math.min(declared, NPY_MAX_HEADER_BYTES);
        if (want > first.length && want <= size) {
          head = new Uint8Array(want);
          await readExactlyAt(fh, head, 0, file);
        }
      }
      return new NpyFile(file, parseNpyHeader(head, size, file), fh);
    } catch (e) {
      await fh.close().catch(() => undefined);
      if (e instanceof WeightkitError) throw e;
      throw wrapIoError(e, file, 'reading .npy header');
    }
  }

  /** Rows [rowStart, rowEnd) in the stored dtype (a scalar array has one row). */
  async readRows(rowStart: number, rowEnd: number): Promise<TensorData> {
    if (this.closed) throw new EvalError('EVAL_DATA', 'read after close', { where: { file: this.file } });
    const rows = this.shape.length === 0 ? 1 : this.shape[0]!;
    if (!(Number.isSafeInteger(rowStart) && Number.isSafeInteger(rowEnd) && 0 <= rowStart && rowStart <= rowEnd && rowEnd <= rows)) {
      throw new EvalError('EVAL_DATA', `row range [${rowStart}, ${rowEnd}) is outside [0, ${rows}]`, { where: { file: this.file } });
    }
    const per = rowNumel([...this.shape]);
    const elBytes = DTYPE_INFO[this.dtype].bytes;
    const n = (rowEnd - rowStart) * per;
    const buf = new Uint8Array(n * elBytes);
    await readExactlyAt(this.fh, buf, this.header.dataOffset + rowStart * per * elBytes, this.file);
    return viewData(this.dtype, buf.buffer, 0, n);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export function openNpy(file: string): Promise<NpyFile> {
  return NpyFile.open(file);
}

/** Encode a C-order .npy (version 1.0, 64-byte aligned header) of one of the supported dtypes. */
export function encodeNpy(dtype: DType, shape: readonly number[], data: TensorData): Uint8Array {
  const descr = Object.keys(DESCR).find((k) => DESCR[k] === dtype);
  if (descr === undefined) throw new EvalError('EVAL_DATA', `dtype ${dtype} has no supported .npy spelling`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const total = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = new TextEncoder().encode(dict);
  const body = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(10 + head.length + body.length);
  out.set(NPY_MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, head.length, true);
  out.set(head, 10);
  out.set(body, 10 + head.length);
  return out;
}
