// Protobuf wire-format scanner for ONNX ModelProto files: walks ModelProto -> graph (field 7) -> initializer
// (field 5) with positional reads, recording byte ranges instead of loading tensor payloads. Guarantees: every
// length is bounds-checked against its parent, every failure is a FormatError ONNX_PARSE with the byte offset.
// Imports node:fs only for the file handle type; must not import onnxruntime-node.

import type { FileHandle } from 'node:fs/promises';
import { FormatError, wrapIoError } from '../../errors.js';

export const WT_VARINT = 0;
export const WT_I64 = 1;
export const WT_LEN = 2;
export const WT_I32 = 5;

/** One field occurrence: the tag starts at `tagStart`, the payload spans [start, end). */
export interface FieldRef {
  readonly field: number;
  readonly wireType: number;
  readonly tagStart: number;
  readonly start: number;
  readonly end: number;
}

/** One initializer entry in the graph: the `field 5` tag at `tagStart`, the TensorProto bytes at [start, end). */
export interface InitializerEntry {
  readonly tagStart: number;
  readonly start: number;
  readonly end: number;
  /** Every field of the TensorProto in file order. */
  readonly fields: readonly FieldRef[];
}

export interface ModelLayout {
  readonly size: number;
  /** The graph field (ModelProto field 7), if any. */
  readonly graph: FieldRef | undefined;
  /** Top-level fields other than the graph, concatenated (tag + payload), ready for a ModelProto decode. */
  readonly modelRest: Uint8Array;
  /** Graph fields other than initializers, concatenated, ready for a GraphProto decode. */
  readonly graphRest: Uint8Array;
  readonly initializers: readonly InitializerEntry[];
}

const WINDOW = 1 << 15; // small: scanning hops over tensor payloads, each hop reloads the window

/** Positional, windowed reads from one file. Reads past the end throw ONNX_PARSE. */
export class ByteCursor {
  private win: Uint8Array = new Uint8Array(0);
  private winStart = 0;
  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    readonly file: string,
  ) {}

  parseError(message: string, byteOffset: number): FormatError {
    return new FormatError('ONNX_PARSE', message, { where: { file: this.file, byteOffset } });
  }

  /**
   * Ensure [pos, pos + n) (clipped to the file end) is inside a window; returns that window and the offset of pos
   * in it (the window is returned, not read from `this`, so concurrent callers never see each other's windows).
   */
  private async load(pos: number, n: number): Promise<{ w: Uint8Array; o: number }> {
    const want = Math.min(n, this.size - pos);
    if (pos >= this.winStart && pos + want <= this.winStart + this.win.length) {
      return { w: this.win, o: pos - this.winStart };
    }
    const len = Math.min(Math.max(WINDOW, want), this.size - pos);
    const buf = new Uint8Array(len);
    let got = 0;
    try {
      while (got < len) {
        const { bytesRead } = await this.fh.read(buf, got, len - got, pos + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
    } catch (e) {
      throw wrapIoError(e, this.file, 'reading ONNX model');
    }
    if (got < len) throw this.parseError(`file ended early (read ${got} of ${len} bytes at ${pos})`, pos + got);
    this.win = buf;
    this.winStart = pos;
    return { w: buf, o: 0 };
  }

  /** A varint at `pos` that must end before `limit`. Values above 2^53 are reported as ONNX_PARSE. */
  async varint(pos: number, limit: number): Promise<{ value: number; next: number }> {
    const { w, o } = await this.load(pos, 10);
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (pos + i >= limit || o + i >= w.length) throw this.parseError('truncated varint', pos);
      const b = w[o + i]!;
      value += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) {
        if (!Number.isSafeInteger(value)) throw this.parseError('varint too large', pos);
        return { value, next: pos + i + 1 };
      }
    }
    throw this.parseError('varint longer than 10 bytes', pos);
  }

  /** The end of a varint at `pos` (its value may be any 64-bit number). */
  async skipVarint(pos: number, limit: number): Promise<number> {
    const { w, o } = await this.load(pos, 10);
    for (let i = 0; i < 10; i++) {
      if (pos + i >= limit || o + i >= w.length) throw this.parseError('truncated varint', pos);
      if ((w[o + i]! & 0x80) === 0) return pos + i + 1;
    }
    throw this.parseError('varint longer than 10 bytes', pos);
  }

  /** A fresh copy of [pos, pos + len). */
  async bytes(pos: number, len: number): Promise<Uint8Array> {
    if (pos + len > this.size) throw this.parseError('range past the end of the file', pos);
    if (len <= WINDOW) {
      const { w, o } = await this.load(pos, len);
      return w.slice(o, o + len);
    }
    const out = new Uint8Array(len);
    await readExactly(this.fh, out, pos, this.file);
    return out;
  }

  /** Read one field (tag + payload bounds) at `pos`; the field must end at or before `limit`. */
  async field(pos: number, limit: number): Promise<FieldRef> {
    const tag = await this.varint(pos, limit);
    const field = Math.floor(tag.value / 8);
    const wireType = tag.value % 8;
    if (field === 0 || field > 0x1fffffff) throw this.parseError(`invalid field number ${field}`, pos);
    let start = tag.next;
    let end: number;
    switch (wireType) {
      case WT_VARINT:
        end = await this.skipVarint(start, limit);
        break;
      case WT_I64:
        end = start + 8;
        break;
      case WT_I32:
        end = start + 4;
        break;
      case WT_LEN: {
        const len = await this.varint(start, limit);
        start = len.next;
        end = start + len.value;
        break;
      }
      default:
        throw this.parseError(`unsupported wire type ${wireType} (field ${field})`, pos);
    }
    if (end > limit) throw this.parseError(`field ${field} runs past the end of its message`, pos);
    return { field, wireType, tagStart: pos, start, end };
  }

  /** Count the varints in [start, end) (a packed varint field); the last one must be complete. */
  async countVarints(start: number, end: number): Promise<number> {
    let n = 0;
    let pos = start;
    while (pos < end) {
      const chunk = Math.min(WINDOW, end - pos);
      const { w, o } = await this.load(pos, chunk);
      for (let i = 0; i < chunk; i++) if ((w[o + i]! & 0x80) === 0) n++;
      pos += chunk;
    }
    if (end > start) {
      const { w, o } = await this.load(end - 1, 1);
      if ((w[o]! & 0x80) !== 0) throw this.parseError('truncated packed varint', end - 1);
    }
    return n;
  }
}

/** Fill `buf` from `fh` at `position`; a short file is an ONNX_PARSE error (for the model) or caller-checked. */
export async function readExactly(fh: FileHandle, buf: Uint8Array, position: number, file: string): Promise<void> {
  let got = 0;
  try {
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
  } catch (e) {
    throw wrapIoError(e, file, 'reading');
  }
  if (got < buf.length) {
    throw new FormatError('ONNX_PARSE', `file ended early (read ${got} of ${buf.length} bytes)`, {
      where: { file, byteOffset: position + got },
    });
  }
}

/** Fields of TensorProto that carry element data and are kept as byte ranges. */
export const TENSOR_DATA_FIELDS: ReadonlySet<number> = new Set([4, 5, 7, 9, 10, 11]);

async function concatFields(cur: ByteCursor, refs: readonly FieldRef[]): Promise<Uint8Array> {
  let total = 0;
  for (const r of refs) total += r.end - r.tagStart;
  const out = new Uint8Array(total);
  let o = 0;
  for (const r of refs) {
    out.set(await cur.bytes(r.tagStart, r.end - r.tagStart), o);
    o += r.end - r.tagStart;
  }
  return out;
}

/** Bytes of the given fields (tag + payload each), concatenated in order. */
export function readFieldBytes(cur: ByteCursor, refs: readonly FieldRef[]): Promise<Uint8Array> {
  return concatFields(cur, refs);
}

/** Scan the model's wire structure. Only non-data bytes are read into memory. */
export async function scanModel(cur: ByteCursor): Promise<ModelLayout> {
  const top: FieldRef[] = [];
  let graph: FieldRef | undefined;
  for (let pos = 0; pos < cur.size; ) {
    const f = await cur.field(pos, cur.size);
    if (f.field === 7) {
      if (f.wireType !== WT_LEN) throw cur.parseError('graph field has the wrong wire type', f.tagStart);
      if (graph !== undefined) throw cur.parseError('more than one graph field', f.tagStart);
      graph = f;
    } else {
      top.push(f);
    }
    pos = f.end;
  }
  const graphOther: FieldRef[] = [];
  const initializers: InitializerEntry[] = [];
  if (graph !== undefined) {
    for (let pos = graph.start; pos < graph.end; ) {
      const f = await cur.field(pos, graph.end);
      if (f.field === 5) {
        if (f.wireType !== WT_LEN) throw cur.parseError('initializer field has the wrong wire type', f.tagStart);
        const fields: FieldRef[] = [];
        for (let p = f.start; p < f.end; ) {
          const tf = await cur.field(p, f.end);
          fields.push(tf);
          p = tf.end;
        }
        initializers.push({ tagStart: f.tagStart, start: f.start, end: f.end, fields });
      } else {
        graphOther.push(f);
      }
      pos = f.end;
    }
  }
  return {
    size: cur.size,
    graph,
    modelRest: await concatFields(cur, top),
    graphRest: await concatFields(cur, graphOther),
    initializers,
  };
}

// ---------------------------------------------------------------------------------------------------------
// encoding helpers (used by the patcher)

export function varintLength(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

export function encodeVarint(v: number): Uint8Array {
  const out = new Uint8Array(varintLength(v));
  let i = 0;
  while (v >= 128) {
    out[i++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  out[i] = v;
  return out;
}

/** Tag + length prefix of a length-delimited field. */
export function lenPrefix(field: number, length: number): Uint8Array {
  const tag = encodeVarint(field * 8 + WT_LEN);
  const len = encodeVarint(length);
  const out = new Uint8Array(tag.length + len.length);
  out.set(tag, 0);
  out.set(len, tag.length);
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
