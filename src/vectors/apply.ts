// `vector apply` / `vector remove`: θ = base + Σ s_k·V_k (rounded once to the model's dtype) and its inverse.
// Rounding makes plain subtraction inexact, so apply also writes an undo record: for every element where
// round(round(b + d) − d) differs from b, the index and the difference of the stored bits. `remove` subtracts
// again and adds those bit differences back, restoring the base byte for byte (then checks the base fingerprint).
// Also `applyVectorPath`: many coefficient sets over the same vectors (time-vector interpolation, analogies),
// all written in one streaming pass.

import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PlanError, UsageError, VectorError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import { openSafetensorsWriter } from '../io/safetensors/writer.js';
import { openCheckpointSink, sinkKindOf, type CheckpointSink } from '../io/sink.js';
import type { CheckpointReader, TensorDecl } from '../io/types.js';
import { fromF32, toF32 } from '../tensor/convert.js';
import { isFloatDType, type DType, type TensorData } from '../tensor/dtype.js';
import { formatShape, shapesEqual } from '../tensor/tensor.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import { fingerprintCheckpoint } from './format.js';
import { openVector, type VectorReader } from './reader.js';
import { runStream, type StreamJob, type StreamProgress } from './stream.js';

export interface VectorTerm {
  path: string;
  scale: number;
}

export const UNDO_FILE = 'weightkit-undo.safetensors';
export const UNDO_METADATA_KEY = 'weightkit_undo';
/** older records: the element indices as U32 */
const UNDO_INDEX_SUFFIX = '.__undo_indices';
/** the element indices as gaps: LEB128 varints of (index − previous index − 1), the first from −1, as U8 */
const UNDO_GAPS_SUFFIX = '.__undo_gaps';
const UNDO_BITS_SUFFIX = '.__undo_bits';

/**
 * Ascending indices as LEB128 varints of their gaps (index − prev − 1, prev starting at `prev`): about one byte per
 * index where records are dense (a few percent of the elements or more), against four as U32. Returns the bytes.
 */
export function encodeIndexGaps(idx: Uint32Array, prev: number): Uint8Array {
  const out = new Uint8Array(idx.length * 5);
  let o = 0;
  let last = prev;
  for (let i = 0; i < idx.length; i++) {
    let g = idx[i]! - last - 1;
    last = idx[i]!;
    while (g >= 0x80) {
      out[o++] = (g & 0x7f) | 0x80;
      g = Math.floor(g / 128);
    }
    out[o++] = g;
  }
  return out.subarray(0, o);
}

/** encodeIndexGaps' inverse for a whole tensor: exactly n indices, each below numel; undefined if the bytes are not that. */
export function decodeIndexGaps(bytes: Uint8Array, n: number, numel: number): Uint32Array | undefined {
  const idx = new Uint32Array(n);
  let o = 0;
  let last = -1;
  for (let i = 0; i < n; i++) {
    let g = 0;
    let scale = 1;
    for (;;) {
      if (o >= bytes.length || scale > 2 ** 35) return undefined;
      const b = bytes[o++]!;
      g += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) break;
    }
    last = last + 1 + g;
    if (last >= numel) return undefined;
    idx[i] = last;
  }
  return o === bytes.length ? idx : undefined;
}
const UNDO_DTYPES: readonly DType[] = ['F32', 'F16', 'BF16'];

interface UndoMeta {
  version: 1;
  baseFingerprint: string;
  vectors: Array<{ fingerprint: string; scale: number; path: string }>;
  /** patched tensors (a tensor of the base no vector touches is copied, so it needs no record) */
  tensors: string[];
}

export interface ApplyOptions {
  base: string;
  vectors: readonly VectorTerm[];
  /** a .safetensors file, a model folder, or a .onnx file when the base is ONNX */
  out: string;
  /** output dtype of float tensors (default: the base's; exact removal needs the base's) */
  dtype?: DType;
  /** apply vectors made on another base (fingerprint mismatch) */
  force?: boolean;
  /** write the undo record (default true) */
  undo?: boolean;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface ApplyResult {
  out: string;
  files: string[];
  tensors: number;
  /** tensors changed by at least one vector */
  patched: number;
  /** the undo record and how many elements needed a correction */
  undo?: { path: string; entries: number };
  warnings: string[];
}

export interface RemoveOptions {
  model: string;
  vectors: readonly VectorTerm[];
  out: string;
  /** require the undo record (error when missing or not matching); default: use it when it matches */
  exact?: boolean;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface RemoveResult {
  out: string;
  files: string[];
  /** restored byte for byte with the undo record (and the base fingerprint checked) */
  exact: boolean;
  warnings: string[];
}

/** Where the undo record of a model output lives: inside a folder, or beside a file. */
export async function undoPathFor(model: string): Promise<string> {
  let isDir = false;
  try {
    isDir = (await stat(model)).isDirectory();
  } catch {
    isDir = sinkKindOf(model) === 'folder';
  }
  return isDir ? join(model, UNDO_FILE) : `${model}.${UNDO_FILE}`;
}

interface OpenedVectors {
  readers: VectorReader[];
  fingerprints: string[];
}

async function openVectors(terms: readonly VectorTerm[]): Promise<OpenedVectors> {
  if (terms.length === 0) throw new UsageError('USAGE', 'give at least one vector');
  const readers: VectorReader[] = [];
  try {
    for (const t of terms) {
      if (!Number.isFinite(t.scale)) throw new UsageError('USAGE', `scale of ${t.path} must be a finite number (got ${t.scale})`);
      readers.push(await openVector(t.path));
    }
    const fingerprints: string[] = [];
    for (const r of readers) fingerprints.push(await fingerprintCheckpoint(r.stored));
    return { readers, fingerprints };
  } catch (e) {
    for (const r of readers) await r.close();
    throw e;
  }
}

/** Every vector must be made on `base` (fingerprint), unless forced; every vector tensor must exist in it with its shape. */
async function checkVectorsFit(base: CheckpointReader, vectors: readonly VectorReader[], force: boolean, warnings: string[]): Promise<string> {
  const fp = await fingerprintCheckpoint(base);
  for (const v of vectors) {
    if (v.meta.baseFingerprint !== fp) {
      if (!force) {
        throw new VectorError(
          'VECTOR_BASE_MISMATCH',
          `vector ${v.path} was made on another base (${v.meta.base ?? 'unknown'}, fingerprint ${v.meta.baseFingerprint}) than ${base.path} (fingerprint ${fp})`,
          { where: { file: v.path }, hint: 'pass --force to apply it anyway' },
        );
      }
      warnings.push(`${v.path} was made on another base; applied anyway (--force)`);
    }
    for (const t of v.tensors()) {
      if (!base.has(t.name)) {
        throw new PlanError('TENSOR_NOT_FOUND', `tensor '${t.name}' of vector ${v.path} is not in ${base.path}`, {
          where: { file: v.path, tensor: t.name },
        });
      }
      const b = base.info(t.name);
      if (!shapesEqual(b.shape, t.shape)) {
        throw new PlanError(
          'TENSOR_SHAPE_MISMATCH',
          `tensor '${t.name}' has shape ${formatShape(t.shape)} in vector ${v.path} but ${formatShape(b.shape)} in ${base.path}`,
          { where: { file: v.path, tensor: t.name } },
        );
      }
      if (!isFloatDType(b.dtype)) {
        throw new PlanError('TENSOR_DTYPE_MISMATCH', `tensor '${t.name}' is ${b.dtype} in ${base.path}: a vector can only change float tensors`, {
          where: { file: v.path, tensor: t.name },
        });
      }
    }
  }
  return fp;
}

/** d = Σ scales[k]·vectors[k] (f64 sum in vector order, rounded once to f32) into `d`. */
function combineInto(vs: ReadonlyArray<Float32Array>, scales: readonly number[], n: number, d: Float32Array): void {
  if (vs.length === 1) {
    const v = vs[0]!;
    const s = scales[0]!;
    for (let i = 0; i < n; i++) d[i] = s * v[i]!;
    return;
  }
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let k = 0; k < vs.length; k++) acc += scales[k]! * vs[k]![i]!;
    d[i] = acc;
  }
}

/** elements per cache-sized piece of a chunk */
const PIECE = 16384;

/** The vector inputs (ins[1..]) cut to elements [p0, p1). */
function pieces(ins: ReadonlyArray<unknown>, p0: number, p1: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let k = 1; k < ins.length; k++) out.push((ins[k] as Float32Array).subarray(p0, p1));
  return out;
}

function addInto(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
}

function subTo(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! - b[i]!;
}

function subInto(a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) a[i] = a[i]! - b[i]!;
}

/** Record (offset + i, want - got mod 2^16) wherever the 16-bit patterns differ. */
function diffBits16(want: Uint16Array, got: Uint16Array, n: number, offset: number, records: UndoRecords): void {
  for (let i = 0; i < n; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w !== g) records.push(offset + i, (w - g) & 0xffff);
  }
}

/** Record (offset + i, want - got mod 2^32 as i32) wherever the f32 bit patterns differ. */
function diffBits32(wantF: Float32Array, gotF: Float32Array, n: number, offset: number, records: UndoRecords): void {
  const want = new Uint32Array(wantF.buffer, wantF.byteOffset, n);
  const got = new Uint32Array(gotF.buffer, gotF.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w !== g) records.push(offset + i, (w - g) | 0);
  }
}

/** Growable (index, bit difference) records of one tensor, flushed to a side file per chunk. */
class UndoRecords {
  private idx = new Uint32Array(1024);
  private bits = new Int32Array(1024);
  n = 0;
  push(i: number, diff: number): void {
    if (this.n === this.idx.length) {
      const idx = new Uint32Array(this.n * 2);
      idx.set(this.idx);
      this.idx = idx;
      const bits = new Int32Array(this.n * 2);
      bits.set(this.bits);
      this.bits = bits;
    }
    this.idx[this.n] = i;
    this.bits[this.n] = diff;
    this.n++;
  }
  /** The records so far; `narrow` stores 16-bit differences (mod 2^16, so 0..65535) as U16 instead of I32. */
  take(narrow: boolean): { idx: Uint32Array; bits: Int32Array | Uint16Array } {
    const out = { idx: this.idx.slice(0, this.n), bits: narrow ? Uint16Array.from(this.bits.subarray(0, this.n)) : this.bits.slice(0, this.n) };
    this.n = 0;
    return out;
  }
}

/** Side file of undo records: per tensor, segments of (indices, bits) appended in order. */
class UndoSpool {
  /** per tensor, its segments: where in the spool, how many records, how many bytes of gaps */
  readonly segments = new Map<string, Array<{ at: number; count: number; gapBytes: number }>>();
  /** the last index recorded for each tensor (the next segment's gaps continue from it) */
  private readonly lastIndex = new Map<string, number>();
  /** bytes per stored difference of each tensor: 2 (U16, for BF16/F16) or 4 (I32, for F32) */
  private readonly widths = new Map<string, 2 | 4>();
  private size = 0;
  private fh: Awaited<ReturnType<typeof open>> | undefined;
  private opening: Promise<Awaited<ReturnType<typeof open>>> | undefined;
  constructor(readonly path: string) {}
  async append(tensor: string, idx: Uint32Array, bits: Int32Array | Uint16Array): Promise<void> {
    if (idx.length === 0) return;
    this.widths.set(tensor, bits.BYTES_PER_ELEMENT as 2 | 4);
    // a tensor's chunks arrive in order, so its indices ascend across segments: gaps continue from the last one
    const gaps = encodeIndexGaps(idx, this.lastIndex.get(tensor) ?? -1);
    this.lastIndex.set(tensor, idx[idx.length - 1]!);
    // reserve the range and record the segment before any await: jobs of several lanes append concurrently
    const at = this.size;
    this.size += gaps.byteLength + bits.byteLength;
    let list = this.segments.get(tensor);
    if (list === undefined) this.segments.set(tensor, (list = []));
    list.push({ at, count: idx.length, gapBytes: gaps.byteLength });
    this.opening ??= open(this.path, 'w+');
    const fh = (this.fh = await this.opening);
    await fh.write(gaps, 0, gaps.byteLength, at);
    await fh.write(new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength), 0, bits.byteLength, at + gaps.byteLength);
  }
  count(tensor: string): number {
    return (this.segments.get(tensor) ?? []).reduce((a, s) => a + s.count, 0);
  }
  /** Write the spooled records as a safetensors undo file. */
  async writeUndo(path: string, meta: UndoMeta): Promise<number> {
    const decls: TensorDecl[] = [];
    let entries = 0;
    for (const [t, segs] of this.segments) {
      const n = this.count(t);
      entries += n;
      const gapBytes = segs.reduce((a, x) => a + x.gapBytes, 0);
      decls.push({ name: t + UNDO_GAPS_SUFFIX, dtype: 'U8', shape: [gapBytes] }, { name: t + UNDO_BITS_SUFFIX, dtype: this.widths.get(t) === 2 ? 'U16' : 'I32', shape: [n] });
    }
    const w = await openSafetensorsWriter(path, decls, { metadata: { [UNDO_METADATA_KEY]: JSON.stringify(meta), weightkit_version: WEIGHTKIT_VERSION } });
    try {
      for (const [t, segs] of this.segments) {
        const width = this.widths.get(t) ?? 4;
        let done = 0;
        let gapsDone = 0;
        for (const s of segs) {
          const buf = new Uint8Array(s.gapBytes + s.count * width);
          await this.fh!.read(buf, 0, buf.byteLength, s.at);
          await w.writeRange(t + UNDO_GAPS_SUFFIX, gapsDone, buf.subarray(0, s.gapBytes));
          await w.writeRange(t + UNDO_BITS_SUFFIX, done * width, buf.subarray(s.gapBytes));
          done += s.count;
          gapsDone += s.gapBytes;
        }
      }
      await w.close();
    } catch (e) {
      await w.abort();
      throw e;
    }
    return entries;
  }
  async dispose(): Promise<void> {
    if (this.opening !== undefined) await (await this.opening.catch(() => undefined))?.close();
    this.fh = undefined;
    this.opening = undefined;
    await rm(this.path, { force: true });
  }
}

/** The stored bits of f32/f16/bf16 values as unsigned integers (a view, no copy). */
function bitsOf(dtype: DType, data: TensorData): Uint16Array | Uint32Array {
  if (dtype === 'F32') {
    const f = data as Float32Array;
    return new Uint32Array(f.buffer, f.byteOffset, f.length);
  }
  return data as Uint16Array;
}

class Scratch {
  private bufs: Float32Array[] = [];
  get(i: number, n: number): Float32Array {
    let b = this.bufs[i];
    if (b === undefined || b.length < n) this.bufs[i] = b = new Float32Array(n);
    return b.subarray(0, n);
  }
  raw(dtype: DType, i: number, n: number): TensorData {
    const f = this.get(i, dtype === 'F32' ? n : (n + 1) >> 1);
    return dtype === 'F32' ? f : new Uint16Array(f.buffer, f.byteOffset, n);
  }
}

/** Apply Σ s_k·V_k to `base` and write the result (with an undo record unless disabled). */
export async function applyVectors(o: ApplyOptions): Promise<ApplyResult> {
  const warnings: string[] = [];
  const { readers: vectors, fingerprints } = await openVectors(o.vectors);
  try {
    const base = await openCheckpointPath(o.base);
    try {
      const baseFp = await checkVectorsFit(base, vectors, o.force ?? false, warnings);
      if (o.dtype !== undefined && !isFloatDType(o.dtype)) throw new UsageError('USAGE', `--dtype must be a float dtype (got ${o.dtype})`);
      const scales = o.vectors.map((t) => t.scale);
      const outDtype = (d: DType): DType => (isFloatDType(d) && o.dtype !== undefined ? o.dtype : d);
      const decls: TensorDecl[] = base.tensors().map((t) => ({ name: t.name, dtype: outDtype(t.dtype), shape: t.shape }));
      const patchedNames = base.tensors().filter((t) => vectors.some((v) => v.has(t.name))).map((t) => t.name);
      let undo = o.undo ?? true;
      if (undo) {
        const bad = base.tensors().find((t) => isFloatDType(t.dtype) && (outDtype(t.dtype) !== t.dtype || !UNDO_DTYPES.includes(t.dtype)) && patchedNames.includes(t.name));
        if (bad !== undefined) {
          warnings.push(`no undo record: tensor '${bad.name}' is ${bad.dtype} -> ${outDtype(bad.dtype)} (exact removal needs F32/F16/BF16 kept in the base dtype)`);
          undo = false;
        }
      }
      const sink = await openCheckpointSink(o.out, decls, {
        metadata: {
          format: 'pt',
          weightkit_version: WEIGHTKIT_VERSION,
          weightkit_applied: JSON.stringify(o.vectors.map((t, k) => ({ path: t.path, scale: t.scale, fingerprint: fingerprints[k] }))),
        },
        overwrite: o.overwrite,
        inputs: [o.base, ...o.vectors.map((t) => t.path)],
        donor: o.base,
      });
      const undoPath = undo ? sink.sidePath(UNDO_FILE) : undefined;
      const spool = undoPath !== undefined ? new UndoSpool(`${undoPath}.spool`) : undefined;
      try {
        const scratch = new Scratch();
        const jobs: StreamJob[] = base.tensors().map((t): StreamJob => {
          const dOut = outDtype(t.dtype);
          const vs = vectors.map((v, k) => (v.has(t.name) ? k : -1)).filter((k) => k >= 0);
          if (vs.length === 0) {
            if (dOut === t.dtype) return { name: t.name, shape: t.shape, inputs: [{ reader: base, tensor: t.name }], outputs: [{ sink: 0, dtype: dOut }], copy: true };
            return {
              name: t.name,
              shape: t.shape,
              inputs: [{ reader: base, tensor: t.name }],
              outputs: [{ sink: 0, dtype: dOut }],
              emit: (ins, outs, c) => (outs[0] as Float32Array).set((ins[0] as Float32Array).subarray(0, c.numel)),
            };
          }
          const s = vs.map((k) => scales[k]!);
          const records = new UndoRecords();
          return {
            name: t.name,
            shape: t.shape,
            inputs: [{ reader: base, tensor: t.name, raw: true }, ...vs.map((k) => ({ reader: vectors[k]!, tensor: t.name }))],
            outputs: [{ sink: 0, dtype: dOut, raw: true }],
                        emit(ins, outs, c) {
              // cache-sized pieces through every step (the steps are memory-bound one by one)
              const n = c.numel;
              const base0 = ins[0]!;
              const out = outs[0]!;
              for (let p0 = 0; p0 < n; p0 += PIECE) {
                const p1 = Math.min(n, p0 + PIECE);
                const m = p1 - p0;
                const bRaw = base0.subarray(p0, p1) as TensorData;
                const b = toF32(t.dtype, bRaw, scratch.get(0, m));
                const d = scratch.get(1, m);
                combineInto(pieces(ins, p0, p1), s, m, d);
                const o32 = scratch.get(2, m);
                addInto(b, d, o32, m);
                const oRaw = out.subarray(p0, p1) as TensorData;
                fromF32(dOut, o32, oRaw);
                if (spool === undefined) continue;
                // what remove will compute: round(f32(out) - d) in the base dtype; record where it misses the base bits
                const back = toF32(dOut, oRaw, scratch.get(3, m));
                subInto(back, d, m);
                const c2 = fromF32(t.dtype, back, scratch.raw(t.dtype, 4, m));
                if (t.dtype === 'F32') diffBits32(bRaw as Float32Array, c2 as Float32Array, m, c.offset + p0, records);
                else diffBits16(bRaw as Uint16Array, c2 as Uint16Array, m, c.offset + p0, records);
              }
            },
            async afterChunk() {
              if (spool !== undefined && records.n > 0) {
                const r = records.take(t.dtype !== 'F32');
                await spool.append(t.name, r.idx, r.bits);
              }
            },
          };
        });
        await runStream(jobs, { sinks: [sink], budgetBytes: o.budgetBytes, signal: o.signal, onProgress: o.onProgress });
        let undoInfo: ApplyResult['undo'];
        if (spool !== undefined && undoPath !== undefined) {
          const meta: UndoMeta = {
            version: 1,
            baseFingerprint: baseFp,
            vectors: o.vectors.map((t, k) => ({ fingerprint: fingerprints[k]!, scale: t.scale, path: t.path })),
            tensors: patchedNames,
          };
          const entries = await spool.writeUndo(undoPath, meta);
          const finalUndo = sink.kind === 'folder' ? join(o.out, UNDO_FILE) : undoPath;
          undoInfo = { path: finalUndo, entries };
        }
        await spool?.dispose();
        const files = await sink.close();
        const result: ApplyResult = { out: o.out, files, tensors: decls.length, patched: patchedNames.length, warnings };
        if (undoInfo !== undefined) {
          result.undo = undoInfo;
          if (sink.kind !== 'folder') result.files.push(undoInfo.path);
        }
        return result;
      } catch (e) {
        await spool?.dispose();
        await sink.abort();
        throw e;
      }
    } finally {
      await base.close();
    }
  } finally {
    for (const v of vectors) await v.close();
  }
}

interface LoadedUndo {
  path: string;
  reader: CheckpointReader;
  meta: UndoMeta;
}

async function loadUndo(model: string): Promise<LoadedUndo | undefined> {
  const path = await undoPathFor(model);
  try {
    await stat(path);
  } catch {
    return undefined;
  }
  const reader = await openCheckpointPath(path);
  const text = reader.metadata()[UNDO_METADATA_KEY];
  let meta: UndoMeta | undefined;
  try {
    meta = text === undefined ? undefined : (JSON.parse(text) as UndoMeta);
  } catch {
    meta = undefined;
  }
  if (meta === undefined || meta.version !== 1 || !Array.isArray(meta.vectors) || !Array.isArray(meta.tensors)) {
    await reader.close();
    throw new VectorError('VECTOR_INVALID', `${path} is not a weightkit undo record`, { where: { file: path } });
  }
  return { path, reader, meta };
}

/** Subtract Σ s_k·V_k from `model`; byte-exact when the model's undo record matches the vectors and scales. */
export async function removeVectors(o: RemoveOptions): Promise<RemoveResult> {
  const warnings: string[] = [];
  const { readers: vectors, fingerprints } = await openVectors(o.vectors);
  let undo: LoadedUndo | undefined;
  try {
    const model = await openCheckpointPath(o.model);
    try {
      undo = await loadUndo(o.model);
      const scales = o.vectors.map((t) => t.scale);
      if (undo !== undefined) {
        const m = undo.meta;
        const same = m.vectors.length === fingerprints.length && m.vectors.every((v, k) => v.fingerprint === fingerprints[k] && v.scale === scales[k]);
        if (!same) {
          const msg = `the undo record of ${o.model} was made for other vectors or scales (${m.vectors.map((v) => `${v.scale}*${v.path}`).join(' + ')})`;
          if (o.exact) throw new VectorError('VECTOR_UNDO_MISMATCH', msg, { where: { file: o.model }, hint: 'give the same vectors and scales, in the same order, as when applying' });
          warnings.push(`${msg}: subtracting without it (not byte-exact)`);
          await undo.reader.close();
          undo = undefined;
        }
      } else if (o.exact) {
        throw new VectorError('VECTOR_UNDO_MISMATCH', `${o.model} has no undo record (${await undoPathFor(o.model)})`, { where: { file: o.model } });
      } else {
        warnings.push(`${o.model} has no undo record: subtracting (rounding makes this not byte-exact)`);
      }
      for (const v of vectors) {
        for (const t of v.tensors()) {
          if (!model.has(t.name)) {
            throw new PlanError('TENSOR_NOT_FOUND', `tensor '${t.name}' of vector ${v.path} is not in ${o.model}`, { where: { file: v.path, tensor: t.name } });
          }
          const i = model.info(t.name);
          if (!shapesEqual(i.shape, t.shape)) {
            throw new PlanError('TENSOR_SHAPE_MISMATCH', `tensor '${t.name}' has shape ${formatShape(t.shape)} in vector ${v.path} but ${formatShape(i.shape)} in ${o.model}`, {
              where: { file: v.path, tensor: t.name },
            });
          }
        }
      }
      const decls: TensorDecl[] = model.tensors().map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape }));
      const sink: CheckpointSink = await openCheckpointSink(o.out, decls, {
        metadata: { format: 'pt', weightkit_version: WEIGHTKIT_VERSION },
        overwrite: o.overwrite,
        inputs: [o.model, ...o.vectors.map((t) => t.path)],
        donor: o.model,
      });
      try {
        const scratch = new Scratch();
        const u = undo;
        const jobs: StreamJob[] = model.tensors().map((t): StreamJob => {
          const vs = vectors.map((v, k) => (v.has(t.name) ? k : -1)).filter((k) => k >= 0);
          if (vs.length === 0) return { name: t.name, shape: t.shape, inputs: [{ reader: model, tensor: t.name }], outputs: [{ sink: 0, dtype: t.dtype }], copy: true };
          const s = vs.map((k) => scales[k]!);
          let fixIdx: Uint32Array = new Uint32Array(0);
          let fixBits: Int32Array | Uint16Array = new Int32Array(0); // U16 for 16-bit dtypes (I32 in older records)
          let cursor = 0;
          return {
            name: t.name,
            shape: t.shape,
            inputs: [{ reader: model, tensor: t.name }, ...vs.map((k) => ({ reader: vectors[k]!, tensor: t.name }))],
            outputs: [{ sink: 0, dtype: t.dtype, raw: true }],
                        async prepare() {
              cursor = 0;
              if (u === undefined || !u.reader.has(t.name + UNDO_BITS_SUFFIX)) return;
              fixBits = (await u.reader.read(t.name + UNDO_BITS_SUFFIX)).data as Int32Array | Uint16Array;
              if (u.reader.has(t.name + UNDO_GAPS_SUFFIX)) {
                const gaps = (await u.reader.read(t.name + UNDO_GAPS_SUFFIX)).data as Uint8Array;
                const idx = decodeIndexGaps(gaps, fixBits.length, t.shape.reduce((a, b) => a * b, 1));
                if (idx === undefined) {
                  throw new VectorError('VECTOR_INVALID', `undo record ${u.path}: the indices of tensor '${t.name}' are corrupt (${gaps.length} bytes of gaps for ${fixBits.length} records)`, {
                    where: { file: u.path, tensor: t.name },
                  });
                }
                fixIdx = idx;
              } else fixIdx = (await u.reader.read(t.name + UNDO_INDEX_SUFFIX)).data as Uint32Array; // older records
            },
            emit(ins, outs, c) {
              const n = c.numel;
              const model = ins[0] as Float32Array;
              for (let p0 = 0; p0 < n; p0 += PIECE) {
                const p1 = Math.min(n, p0 + PIECE);
                const m = p1 - p0;
                const d = scratch.get(1, m);
                combineInto(pieces(ins, p0, p1), s, m, d);
                const back = scratch.get(3, m);
                subTo(model.subarray(p0, p1), d, back, m);
                fromF32(t.dtype, back, outs[0]!.subarray(p0, p1) as TensorData);
              }
              if (fixIdx.length === 0) return;
              const bits = bitsOf(t.dtype, outs[0]!);
              const end = c.offset + n;
              const wide = t.dtype === 'F32';
              while (cursor < fixIdx.length && fixIdx[cursor]! < end) {
                const j = fixIdx[cursor]! - c.offset;
                if (j >= 0) bits[j] = wide ? (bits[j]! + fixBits[cursor]!) >>> 0 : (bits[j]! + fixBits[cursor]!) & 0xffff;
                cursor++;
              }
            },
          };
        });
        await runStream(jobs, { sinks: [sink], budgetBytes: o.budgetBytes, signal: o.signal, onProgress: o.onProgress });
        const files = await sink.close();
        let exact = false;
        if (undo !== undefined) {
          const restored = await openCheckpointPath(o.out);
          try {
            const fp = await fingerprintCheckpoint(restored);
            if (fp !== undo.meta.baseFingerprint) {
              warnings.push(`the restored model's fingerprint ${fp} differs from the recorded base ${undo.meta.baseFingerprint}`);
            } else exact = true;
          } finally {
            await restored.close();
          }
        }
        return { out: o.out, files, exact, warnings };
      } catch (e) {
        await sink.abort();
        throw e;
      }
    } finally {
      await model.close();
    }
  } finally {
    await undo?.reader.close();
    for (const v of vectors) await v.close();
  }
}

export interface PathPoint {
  /** output path of this point (file, folder or .onnx as for apply) */
  out: string;
  /** one coefficient per vector */
  scales: readonly number[];
}

export interface ApplyPathOptions {
  base: string;
  vectors: readonly string[];
  points: readonly PathPoint[];
  dtype?: DType;
  force?: boolean;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface ApplyPathResult {
  outputs: Array<{ out: string; scales: number[]; files: string[] }>;
  warnings: string[];
}

/**
 * Write base + Σ_k scales[k]·V_k for every point, reading the base and the vectors once (time-vector paths,
 * analogy grids). Outputs are published together at the end; on failure none is left.
 */
export async function applyVectorPath(o: ApplyPathOptions): Promise<ApplyPathResult> {
  const warnings: string[] = [];
  if (o.points.length === 0) throw new UsageError('USAGE', 'no output points given');
  for (const p of o.points) {
    if (p.scales.length !== o.vectors.length || p.scales.some((x) => !Number.isFinite(x))) {
      throw new UsageError('USAGE', `point ${p.out} needs ${o.vectors.length} finite coefficients (got ${p.scales.join(', ')})`);
    }
  }
  const { readers: vectors } = await openVectors(o.vectors.map((path) => ({ path, scale: 1 })));
  try {
    const base = await openCheckpointPath(o.base);
    try {
      await checkVectorsFit(base, vectors, o.force ?? false, warnings);
      if (o.dtype !== undefined && !isFloatDType(o.dtype)) throw new UsageError('USAGE', `--dtype must be a float dtype (got ${o.dtype})`);
      const outDtype = (d: DType): DType => (isFloatDType(d) && o.dtype !== undefined ? o.dtype : d);
      const decls: TensorDecl[] = base.tensors().map((t) => ({ name: t.name, dtype: outDtype(t.dtype), shape: t.shape }));
      const sinks: CheckpointSink[] = [];
      try {
        for (const p of o.points) {
          sinks.push(
            await openCheckpointSink(p.out, decls, {
              metadata: { format: 'pt', weightkit_version: WEIGHTKIT_VERSION, weightkit_applied: JSON.stringify(o.vectors.map((path, k) => ({ path, scale: p.scales[k] }))) },
              overwrite: o.overwrite,
              inputs: [o.base, ...o.vectors],
              donor: o.base,
            }),
          );
        }
        const scratch = new Scratch();
        const jobs: StreamJob[] = base.tensors().map((t): StreamJob => {
          const dOut = outDtype(t.dtype);
          const outputs = o.points.map((_, k) => ({ sink: k, dtype: dOut }));
          const vs = vectors.map((v, k) => (v.has(t.name) ? k : -1)).filter((k) => k >= 0);
          if (vs.length === 0 && dOut === t.dtype) return { name: t.name, shape: t.shape, inputs: [{ reader: base, tensor: t.name }], outputs, copy: true };
          return {
            name: t.name,
            shape: t.shape,
            inputs: [{ reader: base, tensor: t.name }, ...vs.map((k) => ({ reader: vectors[k]!, tensor: t.name }))],
            outputs,
                        emit(ins, outs, c) {
              const n = c.numel;
              const b = ins[0] as Float32Array;
              const scales = o.points.map((p) => vs.map((k) => p.scales[k]!));
              for (let p0 = 0; p0 < n; p0 += PIECE) {
                const p1 = Math.min(n, p0 + PIECE);
                const m = p1 - p0;
                const bp = b.subarray(p0, p1);
                const vp = pieces(ins, p0, p1);
                const d = scratch.get(1, m);
                for (let j = 0; j < o.points.length; j++) {
                  const out = (outs[j] as Float32Array).subarray(p0, p1);
                  if (vs.length === 0) out.set(bp);
                  else {
                    combineInto(vp, scales[j]!, m, d);
                    addInto(bp, d, out, m);
                  }
                }
              }
            },
          };
        });
        await runStream(jobs, { sinks, budgetBytes: o.budgetBytes, signal: o.signal, onProgress: o.onProgress });
        const outputs: ApplyPathResult['outputs'] = [];
        for (let k = 0; k < sinks.length; k++) outputs.push({ out: o.points[k]!.out, scales: [...o.points[k]!.scales], files: await sinks[k]!.close() });
        return { outputs, warnings };
      } catch (e) {
        for (const s of sinks) await s.abort();
        throw e;
      }
    } finally {
      await base.close();
    }
  } finally {
    for (const v of vectors) await v.close();
  }
}
