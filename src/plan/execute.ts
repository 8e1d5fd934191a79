// Streaming execution of one plan tensor: read the inputs' rows (BF16/F16 as stored, others as f32; whole tensor
// when it fits the budget, row chunks otherwise, re-read once per statistics pass), run the method's passes over
// cache-sized f32 pieces (2-byte inputs widened exactly per piece), encode to the output dtype and write byte
// ranges (all-BF16 pieces widen lazily: kernels that read BF16 bits skip it). Bytes are identical at any chunk size
// and thread count.

import { bf16ToF32, f16ToF32, fromF32 } from '../tensor/convert.js';
import { DTYPE_INFO, viewData } from '../tensor/dtype.js';
import type { CheckpointReader } from '../io/types.js';
import { chunkElements, makeContext } from '../merge/run.js';
import { fstatSync } from 'node:fs';
import { IoError, PlanError, allocationError } from '../errors.js';
import type { Chunk, MergeMethod, TensorContext, TensorMerger } from '../merge/types.js';
import { jsMatMul, type MatMulBackend } from '../tensor/linalg/backend.js';
import { installNativeKernels, loadNativeKernels } from './native.js';
import type { PlanInput, PlanTensor } from './plan.js';
import { Workspace, WORKSPACE_MAX_BYTES, WORKSPACE_START, workspaceOf, type Bf16Inputs } from '../tensor/wasm/workspace.js';

/** Where merged bytes go: a byte range of one declared output tensor. */
export interface TensorSink {
  writeRange(name: string, byteOffset: number, bytes: Uint8Array): Promise<void>;
  /** Where byte `byteOffset` of tensor `name` lands in its file, when known (output buffers are placed to match). */
  position?(name: string, byteOffset: number): number;
}

/** f32 slots from this index on (reader staging) are ordinary arrays, never workspace views. */
const STAGING_SLOT = 100;
/** bytes kept readable after the last slot: the SIMD kernels may read up to 16 bytes past an input */
const SLOT_PAD_BYTES = 64;

/** u16 values a u16At slot holds beyond its range: room to shift the range to any 4 KiB phase. */
const U16_AT_PAD = 2048;

/**
 * Reused buffers of one lane (grown on demand, never shrunk). The f32 slots below STAGING_SLOT live in a
 * Workspace (the merge-kernel module's memory, one instance per Scratch), so the GTA kernels read the inputs and
 * write the output in place. Slots are laid out back to back, each as large as the largest request it has seen
 * (as the separate arrays were), and re-laid out when one must grow (in a new, larger workspace when the memory is
 * too small: memories are never grown), which moves them: a chunk's slots are reserved together (reserveF32)
 * before any of them is used. Without WebAssembly, or past the workspace size limit, slots are ordinary arrays
 * (the kernels then copy).
 */
export class Scratch {
  private f32: (Float32Array | undefined)[] = [];
  private bytes: ArrayBuffer = new ArrayBuffer(0);
  /** null until first used; undefined when no workspace can be had (ordinary arrays) */
  private ws: Workspace | undefined | null = null;
  /** f32 elements of each workspace slot (multiples of 4) and their byte offsets */
  private caps: number[] = [];
  private offsets: number[] = [];

  /** Make slots [0, slots) hold n elements each without growing later (call before taking a chunk's views). */
  reserveF32(slots: number, n: number): void {
    this.layout(new Array<number>(slots).fill(n));
  }

  /** Make slot i hold sizes[i] f32 elements, for every i, without growing later (a chunk's slots together). */
  reserve(sizes: readonly number[]): void {
    this.layout(sizes);
  }

  /** Slot i as n 2-byte values (its f32 capacity ceil(n / 2)): the stored bits of a BF16/F16 input. */
  u16Buffer(i: number, n: number): Uint16Array {
    const f = this.f32Buffer(i, (n + 1) >> 1);
    return new Uint16Array(f.buffer, f.byteOffset, n);
  }

  /**
   * Slot i as n 2-byte values whose first byte sits `at` bytes past a 4 KiB boundary of the workspace (even `at`;
   * modulo 4096), when the slot is in the workspace: a range bound for file position `at` is then written directly
   * from here (src/io/direct.ts). Otherwise as u16Buffer.
   */
  u16At(i: number, n: number, at: number): Uint16Array {
    const f = this.u16Buffer(i, n + U16_AT_PAD);
    if (workspaceOf(f.buffer) === undefined || at % 2 !== 0) return f.subarray(0, n);
    const shift = (((at - f.byteOffset) % 4096) + 4096) % 4096;
    return f.subarray(shift / 2, shift / 2 + n);
  }

  /** Make slot i hold a u16At range of n values without growing later. */
  reserveU16At(i: number, n: number): void {
    this.layout([(n + U16_AT_PAD + 1) >> 1], i);
  }

  f32Buffer(i: number, n: number): Float32Array {
    if (i < STAGING_SLOT && this.layout([n], i)) {
      this.f32[i] = undefined;
      return this.ws!.f32(this.offsets[i]!, n);
    }
    let b = this.f32[i];
    if (!b || b.length < n) {
      // exact size: growing by a factor could overshoot the memory budget
      b = new Float32Array(n);
      this.f32[i] = b;
    }
    return b.subarray(0, n);
  }

  /** Ensure slot first + j of the workspace holds sizes[j] elements, for every j (first = 0 unless given); false if none. */
  private layout(sizes: readonly number[], first = 0): boolean {
    if (this.ws === undefined) return false;
    let grow = false;
    for (let j = 0; j < sizes.length; j++) grow ||= !(this.caps[first + j]! >= ((sizes[j]! + 3) & ~3));
    if (!grow) return true;
    const caps = this.caps.slice();
    for (let i = 0; i < first + sizes.length; i++) caps[i] = Math.max(caps[i] ?? 0, i >= first ? (sizes[i - first]! + 3) & ~3 : 0);
    const offsets: number[] = [];
    let at = WORKSPACE_START;
    for (const c of caps) {
      offsets.push(at);
      at += c * 4;
    }
    if (this.ws === null || this.ws.byteLength < at + SLOT_PAD_BYTES) {
      // exact size: growing by a factor could overshoot the memory budget (the old workspace is garbage now)
      this.ws = Workspace.create(at + SLOT_PAD_BYTES);
      if (this.ws === undefined) return false; // too large, or no WebAssembly: ordinary arrays from now on
      loadNativeKernels()?.adviseHuge(this.ws.buffer); // huge pages before the first touch, when the addon is built
    }
    this.caps = caps;
    this.offsets = offsets;
    return true;
  }

  byteBuffer(n: number): ArrayBuffer {
    if (this.bytes.byteLength < n) this.bytes = new ArrayBuffer(n);
    return this.bytes;
  }
}

export interface RunTensorContext {
  method: MergeMethod;
  readers: ReadonlyMap<number, CheckpointReader>;
  sink: TensorSink;
  seed: number;
  /** bytes of working memory this worker may use */
  budgetBytes: number;
  scratch: Scratch;
  modelStats?: unknown;
  /** matrix products of methods that declare `linalg` (default jsMatMul) */
  linalg?: MatMulBackend;
  /** a method's warnings about a tensor's result (TensorContext.warn) */
  warn?: (message: string) => void;
  /** a model's recipe reference by plan model id, for messages (TensorContext.inputName) */
  modelRef?: (modelId: number) => string;
}

function rowLengthOf(shape: readonly number[]): number {
  return shape.length <= 1 ? 1 : shape.slice(1).reduce((a, b) => a * b, 1);
}

function rowCountOf(shape: readonly number[]): number {
  return shape.length === 0 ? 1 : shape[0]!;
}

/** Read rows [r0, r1) of an input as f32 into `into` (length (r1-r0)*outRowLength), cutting to a block if needed. */
export async function readInputRows(reader: CheckpointReader, input: PlanInput, r0: number, r1: number, into: Float32Array, scratch: Scratch, slot: number): Promise<void> {
  if (!input.block) {
    await reader.readF32(input.tensor, { rowStart: r0, rowEnd: r1, into });
    return;
  }
  const fullCols = rowLengthOf(input.shape);
  const cols = input.block[1];
  if (cols === fullCols) {
    await reader.readF32(input.tensor, { rowStart: r0, rowEnd: r1, into });
    return;
  }
  const tmp = scratch.f32Buffer(100 + slot, (r1 - r0) * fullCols);
  await reader.readF32(input.tensor, { rowStart: r0, rowEnd: r1, into: tmp });
  for (let r = 0; r < r1 - r0; r++) into.set(tmp.subarray(r * fullCols, r * fullCols + cols), r * cols);
}

/**
 * Encode f32 values to the output dtype in a reused byte buffer and write them. BF16 values that live in a workspace
 * are encoded in place there (`values` is then overwritten: callers do not read it again).
 */
async function writeF32(ctx: RunTensorContext, t: PlanTensor, elemOffset: number, values: Float32Array): Promise<number> {
  const bytesPer = DTYPE_INFO[t.dtype].bytes;
  let bytes: Uint8Array;
  const bf16 = t.dtype === 'BF16' ? workspaceOf(values.buffer)?.narrowBf16InPlace(values) : undefined;
  if (bf16 !== undefined) {
    bytes = new Uint8Array(bf16.buffer, bf16.byteOffset, bf16.byteLength);
  } else if (t.dtype === 'F32') {
    bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  } else {
    const buf = ctx.scratch.byteBuffer(values.length * bytesPer);
    fromF32(t.dtype, values, viewData(t.dtype, buf, 0, values.length));
    bytes = new Uint8Array(buf, 0, values.length * bytesPer);
  }
  await ctx.sink.writeRange(t.name, elemOffset * bytesPer, bytes);
  return bytes.byteLength;
}

/** Copy a tensor (possibly converting dtype or cutting a block), streamed in row chunks. */
async function copyTensor(ctx: RunTensorContext, t: PlanTensor): Promise<number> {
  const input = t.inputs[0]!;
  const reader = ctx.readers.get(input.model)!;
  const rows = rowCountOf(t.shape);
  const rowLen = rowLengthOf(t.shape);
  const rowsPerChunk = Math.max(1, Math.floor(ctx.budgetBytes / Math.max(1, rowLen * 12)));
  let written = 0;
  if (input.dtype === t.dtype && !input.block) {
    for (let r0 = 0; r0 < rows || (rows === 0 && r0 === 0); r0 += rowsPerChunk) {
      const r1 = Math.min(rows, r0 + rowsPerChunk);
      const n = (r1 - r0) * rowLen * DTYPE_INFO[t.dtype].bytes;
      const buf = new Uint8Array(ctx.scratch.byteBuffer(n), 0, n);
      const bytes = await reader.readBytes(input.tensor, { rowStart: r0, rowEnd: r1, into: buf });
      await ctx.sink.writeRange(t.name, r0 * rowLen * DTYPE_INFO[t.dtype].bytes, bytes);
      written += bytes.byteLength;
      if (rows === 0) break;
    }
    return written;
  }
  for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
    const r1 = Math.min(rows, r0 + rowsPerChunk);
    const f = ctx.scratch.f32Buffer(0, (r1 - r0) * rowLen);
    await readInputRows(reader, input, r0, r1, f, ctx.scratch, 0);
    written += await writeF32(ctx, t, r0 * rowLen, f);
  }
  return written;
}

/** Largest piece a BF16/F16 input is widened into (larger pieces, e.g. whole-tensor methods, read f32 chunks). */
const MAX_WIDEN_PIECE = 4 * (1 << 14);

/** Largest single read of an input's stored bits (larger ranges are read in parts, concurrently). */
const RAW_READ_BYTES = 4 << 20;

/** A tensor's inputs, base first. */
function inputsOf(t: PlanTensor): PlanInput[] {
  return [...(t.base ? [t.base] : []), ...t.inputs];
}

/** Whether an input stays in its stored 2-byte form in I/O chunks (widened per piece); cut blocks read as f32. */
function keepsRaw(input: PlanInput, pieceStep: number): boolean {
  return input.block === undefined && (input.dtype === 'BF16' || input.dtype === 'F16') && pieceStep <= MAX_WIDEN_PIECE;
}

/**
 * Working bytes per element of an I/O chunk: the inputs (2 bytes each for BF16/F16 kept in stored form, 4 for
 * inputs read as f32) and the output in f32 and in its dtype. The method's scratch and the f32 piece buffers of
 * the kept inputs live per piece (pieceBytes). The plan's memory estimate uses the same numbers.
 */
export function workingBytesPerElement(t: PlanTensor, pieceStep = COMPUTE_CHUNK_ELEMENTS): number {
  const inputs = inputsOf(t);
  const raw = inputs.filter((i) => keepsRaw(i, pieceStep)).length;
  return (inputs.length - raw) * 4 + raw * 2 + 4 + DTYPE_INFO[t.dtype].bytes;
}

/**
 * Working bytes of one piece of `elements` elements (at most the piece step): the method's scratch (a merger sees
 * one piece at a time and sizes its buffers to it) and one f32 piece buffer per input kept in stored form.
 */
export function pieceBytes(t: PlanTensor, method: MergeMethod, elements: number, pieceStep = COMPUTE_CHUNK_ELEMENTS): number {
  const raw = inputsOf(t).filter((i) => keepsRaw(i, pieceStep)).length;
  return elements * (raw * 4 + (method.scratchBytesPerElement ?? 8));
}

/**
 * Largest I/O chunk (elements) under a byte budget, at least `floor`: workingBytesPerElement per element plus one
 * piece's pieceBytes (min(pieceStep, chunk) elements).
 */
function maxChunkElements(t: PlanTensor, method: MergeMethod, pieceStep: number, budgetBytes: number, floor: number): number {
  const perElement = workingBytesPerElement(t, pieceStep);
  const perPieceElement = pieceBytes(t, method, 1, pieceStep);
  const small = Math.floor(budgetBytes / (perElement + perPieceElement)); // chunks of at most one piece
  const n = small <= pieceStep ? small : Math.floor((budgetBytes - pieceBytes(t, method, pieceStep, pieceStep)) / perElement);
  return Math.max(floor, n);
}

/** An I/O chunk of a tensor's inputs: elements [offset, offset + length), served to the method in pieces. */
export interface InputChunk {
  readonly offset: number;
  readonly length: number;
  /** every input's stored BF16 bits over the chunk (base first), when every input is BF16 kept as stored */
  readonly bf16?: readonly Uint16Array[];
  /** the chunk in pieces of at most the piece step (views, or f32 piece buffers reused by the next piece) */
  pieces(): Generator<Chunk>;
}

/**
 * The chunks of a tensor's inputs (base first), `rowsPerChunk` rows at a time, as a re-iterable sequence: a tensor
 * that fits in one chunk is read once and served from memory on every pass; larger ones are re-read per pass.
 * BF16/F16 inputs are kept as stored (2 bytes an element) and widened exactly to f32, piece by piece, into small
 * piece buffers in the same workspace; other inputs are read as f32 and served as views. When every input (base
 * included) is BF16 in the workspace, each piece also carries the stored bits (Bf16Inputs) and is widened only when
 * its f32 views are read: the GTA kernels read the bits themselves, so TIES never widens.
 */
export function inputChunks(ctx: Pick<RunTensorContext, 'readers' | 'scratch'>, t: PlanTensor, rowsPerChunk: number, pieceStep: number): () => AsyncGenerator<InputChunk> {
  const inputs = inputsOf(t);
  const raw = inputs.map((i) => keepsRaw(i, pieceStep));
  const rawCount = raw.filter((r) => r).length;
  const rowLen = rowLengthOf(t.shape);
  const rows = rowCountOf(t.shape);
  const hasBase = t.base !== undefined;
  const load = async (r0: number, r1: number): Promise<InputChunk> => {
    const n = (r1 - r0) * rowLen;
    const step = Math.max(1, Math.min(pieceStep, n));
    // every slot of the chunk (output 0, inputs 1.., piece buffers after them) at once: no later request may grow
    // the workspace
    const sizes = [n, ...raw.map((r) => (r ? (n + 1) >> 1 : n))];
    for (let j = 0; j < rawCount; j++) sizes.push(step);
    ctx.scratch.reserve(sizes);
    const f32s: (Float32Array | undefined)[] = [];
    const u16s: (Uint16Array | undefined)[] = [];
    const pieceBufs: (Float32Array | undefined)[] = [];
    // the stored bits are read straight into their slots, in parts of at most RAW_READ_BYTES all issued at once
    // (the reads overlap each other and the f32 reads)
    const rawReads: Promise<Uint8Array>[] = [];
    const partRows = Math.max(1, Math.floor(RAW_READ_BYTES / Math.max(1, rowLen * 2)));
    let j = 0;
    try {
      for (let i = 0; i < inputs.length; i++) {
        const input = inputs[i]!;
        const reader = ctx.readers.get(input.model)!;
        if (raw[i]) {
          const bits = ctx.scratch.u16Buffer(1 + i, n);
          for (let a = r0; a < r1; a += partRows) {
            const b = Math.min(r1, a + partRows);
            const into = new Uint8Array(bits.buffer, bits.byteOffset + (a - r0) * rowLen * 2, (b - a) * rowLen * 2);
            const read = reader.readBytes(input.tensor, { rowStart: a, rowEnd: b, into });
            read.catch(() => undefined); // observed below, after the f32 reads
            rawReads.push(read);
          }
          u16s.push(bits);
          f32s.push(undefined);
          pieceBufs.push(ctx.scratch.f32Buffer(1 + inputs.length + j++, step));
        } else {
          const buf = ctx.scratch.f32Buffer(1 + i, n);
          await readInputRows(reader, input, r0, r1, buf, ctx.scratch, i);
          f32s.push(buf);
          u16s.push(undefined);
          pieceBufs.push(undefined);
        }
      }
    } catch (e) {
      await Promise.allSettled(rawReads); // no read may still write into the slots once this chunk has failed
      throw e;
    }
    await Promise.all(rawReads);
    const offset = r0 * rowLen;
    // every input BF16 bits in one workspace: pieces also carry the bits (Bf16Inputs) and widen only when read
    const bits = u16s[0]?.buffer;
    const lazy = hasBase && n > 0 && workspaceOf(bits!) !== undefined && inputs.every((input, i) => input.dtype === 'BF16' && u16s[i]?.buffer === bits);
    const widen = (o: number, len: number): Float32Array[] => {
      const arrays: Float32Array[] = [];
      for (let i = 0; i < inputs.length; i++) {
        const f = f32s[i];
        if (f !== undefined) {
          arrays.push(len === n ? f : f.subarray(o, o + len));
        } else {
          const dst = pieceBufs[i]!.subarray(0, len);
          const src = u16s[i]!.subarray(o, o + len);
          if (inputs[i]!.dtype === 'BF16') bf16ToF32(src, dst);
          else f16ToF32(src, dst);
          arrays.push(dst);
        }
      }
      return arrays;
    };
    const at = (o: number, len: number): Chunk => {
      if (!lazy) {
        const arrays = widen(o, len);
        return { offset: offset + o, length: len, base: hasBase ? arrays[0] : undefined, models: hasBase ? arrays.slice(1) : arrays };
      }
      let arrays: Float32Array[] | undefined;
      let models: Float32Array[] | undefined;
      const piece: Chunk & Bf16Inputs = {
        offset: offset + o,
        length: len,
        get base(): Float32Array {
          return (arrays ??= widen(o, len))[0]!;
        },
        get models(): Float32Array[] {
          return (models ??= (arrays ??= widen(o, len)).slice(1));
        },
        bf16: u16s.map((u) => u!.subarray(o, o + len)),
      };
      return piece;
    };
    const allBf16 = inputs.length > 0 && inputs.every((input, i) => input.dtype === 'BF16' && u16s[i] !== undefined);
    return {
      offset,
      length: n,
      ...(allBf16 ? { bf16: u16s.map((u) => u!) } : {}),
      *pieces(): Generator<Chunk> {
        if (n === 0) {
          yield at(0, 0);
          return;
        }
        for (let o = 0; o < n; o += step) yield at(o, Math.min(step, n - o));
      },
    };
  };
  let cached: InputChunk | undefined;
  return async function* (): AsyncGenerator<InputChunk> {
    if (rowsPerChunk >= rows) {
      cached ??= await load(0, rows);
      yield cached;
      return;
    }
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) yield await load(r0, Math.min(rows, r0 + rowsPerChunk));
  };
}

/** Rows per chunk for a tensor under a byte budget (at least one row), for pieces of COMPUTE_CHUNK_ELEMENTS. */
export function rowsPerChunkFor(t: PlanTensor, method: MergeMethod, budgetBytes: number): number {
  const rowLen = rowLengthOf(t.shape);
  return Math.max(1, Math.floor(maxChunkElements(t, method, COMPUTE_CHUNK_ELEMENTS, budgetBytes, 0) / rowLen));
}

/**
 * The whole-model statistics pre-pass a method may declare (e.g. TIES trim_scope: model): every merged tensor's
 * chunks, once per pass, on this thread. A collector with `observeTensor` (KnOTS) gets each tensor whole instead, with
 * the tensor context the merge gives it (`options.seed` keys its random streams, `options.linalg` runs its products;
 * default jsMatMul), one tensor's inputs in memory at a time. Returns the collector's result (undefined when none is
 * needed).
 */
export async function runModelPrepass(
  method: MergeMethod,
  tensors: readonly PlanTensor[],
  readers: ReadonlyMap<number, CheckpointReader>,
  budgetBytes: number,
  options: { seed?: number; linalg?: MatMulBackend } = {},
): Promise<unknown> {
  const merged = tensors.filter((t) => t.op === 'merge');
  const first = merged[0];
  if (!method.modelStats || !first) return undefined;
  const collector = method.modelStats(first.params, first.modelParams);
  if (!collector) return undefined;
  const full = first.inputs.length;
  for (const t of merged) {
    if (t.inputs.length !== full) {
      throw new PlanError('TENSOR_NOT_FOUND', `tensor '${t.name}' lacks an input model; a whole-model pre-pass needs every model to have every merged tensor`, {
        where: { tensor: t.name },
      });
    }
  }
  const scratch = new Scratch();
  for (let p = 0; collector.beginPass(p); p++) {
    for (const t of merged) {
      if (collector.observeTensor) {
        const ctx = tensorContext(method, t, options.seed ?? 0, undefined, options.linalg);
        const numel = Math.max(1, ctx.numel);
        for await (const c of inputChunks({ readers, scratch }, t, rowCountOf(t.shape), numel)()) {
          for (const piece of c.pieces()) await collector.observeTensor(p, ctx, piece);
        }
        continue;
      }
      for await (const c of inputChunks({ readers, scratch }, t, rowsPerChunkFor(t, method, budgetBytes), COMPUTE_CHUNK_ELEMENTS)()) {
        for (const piece of c.pieces()) collector.observe(p, t.name, piece);
      }
    }
  }
  return collector.result();
}

/** The context a method sees for plan tensor t (linalg methods get `linalg`, default jsMatMul). */
function tensorContext(
  method: MergeMethod,
  t: PlanTensor,
  seed: number,
  modelStats: unknown,
  linalg: MatMulBackend | undefined,
  warn?: (message: string) => void,
  modelRef?: (modelId: number) => string,
): TensorContext {
  return makeContext(method, {
    ...(warn !== undefined ? { warn } : {}),
    ...(modelRef !== undefined
      ? { inputName: (i: 'base' | number) => (i === 'base' ? `the base '${t.base ? modelRef(t.base.model) : '?'}'` : `model '${modelRef(t.inputs[i]!.model)}'`) }
      : {}),
    name: t.name,
    shape: t.shape,
    hasBase: t.base !== undefined,
    params: t.params,
    modelParams: t.modelParams,
    seed,
    ...(modelStats !== undefined ? { modelStats } : {}),
    ...(method.linalg ? { linalg: linalg ?? jsMatMul } : {}),
  });
}

/**
 * The tensor through the merger's wholeBf16 writer (every input BF16, or every one F16, whole, base first; a BF16 or
 * F16 output: `formats`, see TensorMerger.wholeBf16). Inputs are given as ranges of their files where the readers say
 * where they lie (the native kernel maps them once for all of the tensor's calls): the output goes out in one range
 * when it fits half the budget, else in ranges of at most WHOLE_OUTPUT_ELEMENTS and an eighth of the budget; the
 * mapped pages count as working memory, or, when they do not fit beside the output, are given back behind the passes
 * (`release`).
 * Otherwise, when the tensor is held in memory anyway (`resident`) and its inputs are BF16, they are read into the
 * workspace and merged in one call. Returns the bytes written, or undefined when neither applies or the merger
 * declines (nothing written; the passes then run).
 */
async function mergeWholeBf16(
  ctx: RunTensorContext,
  t: PlanTensor,
  wholeBf16: NonNullable<TensorMerger['wholeBf16']>,
  resident: boolean,
  computeStep: number,
  formats: number,
): Promise<number | undefined> {
  const inputs = inputsOf(t);
  const n = rowLengthOf(t.shape) * rowCountOf(t.shape);
  const located = mapInputs() ? inputs.map((i) => ctx.readers.get(i.model)!.locate?.(i.tensor)) : [];
  if (located.length > 0 && located.every((l) => l !== undefined && l.position % 2 === 0 && l.byteLength === 2 * n)) {
    const step = wholeOutputStep(n, ctx.budgetBytes);
    // the inputs stay mapped across the ranges (see tensorCalls): given back behind the passes when they do not fit
    const release = (2 * inputs.length + 2) * n > ctx.budgetBytes;
    const writer = wholeBf16(
      located.map((l) => ({ fd: l!.fd, position: l!.position })),
      n,
      release,
      formats,
    );
    if (writer === undefined) return undefined;
    try {
      for (let o = 0; o < n; o += step) {
        const bits = ctx.scratch.u16At(0, Math.min(step, n - o), ctx.sink.position?.(t.name, 2 * o) ?? 0);
        try {
          writer.write(o, bits);
        } catch (e) {
          if ((e as { code?: unknown }).code !== 'WK_NATIVE_IO') throw e;
          // the input that no longer holds the tensor's bytes (truncated meanwhile), else every input (a disk error)
          const sizeOf = (fd: number): number => {
            try {
              return fstatSync(fd).size;
            } catch {
              return -1;
            }
          };
          const short = located.map((l) => ({ ...l!, size: sizeOf(l!.fd) })).find((l) => l.size < l.position + 2 * n);
          if (short !== undefined) {
            throw new IoError('IO_ERROR', `reading tensor '${t.name}' failed: ${short.file} is now ${short.size} bytes, shorter than the tensor's end at byte ${short.position + 2 * n} (truncated while merging?)`, { where: { file: short.file, tensor: t.name }, cause: e });
          }
          const files = [...new Set(located.map((l) => l!.file))].join(', ');
          throw new IoError('IO_ERROR', `reading tensor '${t.name}' from ${files} failed: ${(e as Error).message}`, { where: { file: located[0]!.file, tensor: t.name }, cause: e });
        }
        await ctx.sink.writeRange(t.name, 2 * o, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
      }
    } finally {
      writer.close?.(); // the inputs kept mapped between the ranges, when a range failed
    }
    return 2 * n;
  }
  // read into the workspace (WEIGHTKIT_MMAP=0, or no file ranges): BF16 inputs only
  if (!resident || (formats & 1) !== 0 || !inputs.every((i) => keepsRaw(i, computeStep))) return undefined;
  for await (const c of inputChunks(ctx, t, rowCountOf(t.shape), computeStep)()) {
    if (c.bf16 === undefined) return undefined;
    const writer = wholeBf16(c.bf16, n, false, formats);
    if (writer === undefined) return undefined;
    const out = ctx.scratch.f32Buffer(0, c.length);
    const bits = new Uint16Array(out.buffer, out.byteOffset, c.length);
    writer.write(0, bits);
    await ctx.sink.writeRange(t.name, 0, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
    return bits.byteLength;
  }
  return undefined;
}

/** Largest output range of a mapped whole-tensor merge too big to emit in one go: 8 MiB of BF16. */
const WHOLE_OUTPUT_ELEMENTS = 1 << 22;

/**
 * Output elements a mapped whole-tensor merge of n elements (mergeWholeBf16) emits at a time under a lane's budget:
 * all of them when they take at most half the budget.
 */
export function wholeOutputStep(n: number, budgetBytes: number): number {
  return 2 * n <= budgetBytes / 2 ? n : Math.min(n, WHOLE_OUTPUT_ELEMENTS, Math.max(1 << 14, Math.floor(budgetBytes / 8)));
}

/** The largest output range a mapped whole-tensor merge of any of these tensors emits at once (wholeOutputStep). */
export function largestOutputStep(tensors: readonly PlanTensor[], budgetBytes: number): number {
  let step = 0;
  for (const t of tensors) if (t.op === 'merge') step = Math.max(step, wholeOutputStep(t.shape.reduce((a, b) => a * b, 1), budgetBytes));
  return step;
}

/**
 * A lane's Scratch whose output slot is reserved at once for `outputElements` (largestOutputStep of the plan), so
 * that the lane makes one workspace instead of a larger one whenever a tensor needs more than the last (a tensor too
 * big for the budget emits smaller ranges than a whole one just below it). A new workspace's pages are all touched
 * afresh, which is the costly part here: on this VM a freshly faulted huge page runs at ~0.6 GB/s (the host backs it
 * on first touch) against ~24 GB/s for a reused one; the 1.1B ties merge made 7-8 workspaces of 12-26 MB for its 6
 * lanes and took 1.58 s, against 1.48 s with one per lane (mean of 5 interleaved). Reserving only takes address
 * space: pages are touched where used.
 */
export function laneScratch(outputElements: number): Scratch {
  const s = new Scratch();
  // never past a workspace's limit: a refused workspace would leave the lane on ordinary arrays for good
  if (outputElements > 0 && 2 * (outputElements + U16_AT_PAD + 2) + WORKSPACE_START + SLOT_PAD_BYTES <= WORKSPACE_MAX_BYTES) s.reserveU16At(0, outputElements);
  return s;
}

/** Whether inputs may be mapped from their files (WEIGHTKIT_MMAP=0: always read). */
function mapInputs(): boolean {
  return process.env['WEIGHTKIT_MMAP'] !== '0';
}

/** Run one plan tensor through the method and the sink. Returns the bytes written. */
export async function runTensor(ctx: RunTensorContext, t: PlanTensor): Promise<number> {
  // a merge into F16 counts the ±inf it writes (values beyond ±65504 overflow there; convert says the same)
  let infs = 0;
  const counted: RunTensorContext =
    t.op === 'merge' && t.dtype === 'F16' && ctx.warn !== undefined
      ? {
          ...ctx,
          sink: {
            ...(ctx.sink.position !== undefined ? { position: ctx.sink.position.bind(ctx.sink) } : {}),
            writeRange: (name, byteOffset, bytes) => {
              infs += f16Infs(bytes);
              return ctx.sink.writeRange(name, byteOffset, bytes);
            },
          },
        }
      : ctx;
  try {
    const n = await runTensorInner(counted, t);
    if (infs > 0) ctx.warn!(`tensor '${t.name}': ${infs} value(s) of the F16 output are ±inf (beyond ±65504, or infinite inputs)`);
    return n;
  } catch (e) {
    const file = ctx.readers.get((t.base ?? t.inputs[0])?.model ?? -1)?.path;
    throw allocationError(e, { tensor: t.name, ...(file !== undefined ? { file } : {}) }) ?? e;
  }
}

/** ±inf among the F16 values of `bytes` (little-endian, 2-byte aligned ranges). */
function f16Infs(bytes: Uint8Array): number {
  let n = 0;
  for (let i = 1; i < bytes.length; i += 2) if ((bytes[i]! & 0x7f) === 0x7c && bytes[i - 1] === 0) n++;
  return n;
}

async function runTensorInner(ctx: RunTensorContext, t: PlanTensor): Promise<number> {
  if (t.op === 'copy') return copyTensor(ctx, t);
  installNativeKernels(); // this thread's merges use the native kernels when built (same bits), else WebAssembly
  const { method } = ctx;
  const mctx = tensorContext(method, t, ctx.seed, ctx.modelStats, ctx.linalg, ctx.warn, ctx.modelRef);
  const merger: TensorMerger = method.create(mctx);
  const numel = mctx.numel;
  const rowLen = mctx.rowLength;
  const rows = rowCountOf(t.shape);
  // I/O chunks are as large as the budget allows; the method sees cache-sized pieces of them
  const computeStep = chunkElements(merger, numel, rowLen, COMPUTE_CHUNK_ELEMENTS);
  const maxElems = maxChunkElements(t, method, computeStep, ctx.budgetBytes, rowLen);
  let step = chunkElements(merger, numel, rowLen, maxElems);
  if (step % rowLen !== 0) step = Math.max(1, Math.floor(step / rowLen)) * rowLen; // reads are row-aligned
  let rowsPerChunk = Math.max(1, step / rowLen);
  // a merger with statistics passes reads its chunks again per pass, unless the whole tensor is one chunk (then
  // extra passes are free: say so before the first one); one that streams once needs no more than a few MiB per
  // chunk, and smaller chunks keep the memory (and its first-touch faults) small
  merger.setResident?.(rowsPerChunk >= rows);
  // 2-byte floats in and out: BF16 or F16 inputs (all the same), a BF16 or F16 output
  const half = inputsOf(t)[0]?.dtype;
  if (
    merger.wholeBf16 &&
    (t.dtype === 'BF16' || t.dtype === 'F16') &&
    (half === 'BF16' || half === 'F16') &&
    numel > 0 &&
    inputsOf(t).every((i) => i.dtype === half && i.block === undefined)
  ) {
    const formats = (half === 'F16' ? 1 : 0) | (t.dtype === 'F16' ? 2 : 0);
    const written = await mergeWholeBf16(ctx, t, merger.wholeBf16.bind(merger), rowsPerChunk >= rows, computeStep, formats);
    if (written !== undefined) return written;
  }

  const passes = merger.beginPass !== undefined && merger.observe !== undefined && merger.beginPass(0);
  if (!passes && !merger.compute && merger.chunking !== 'tensor') {
    rowsPerChunk = Math.min(rowsPerChunk, Math.max(1, Math.floor(chunkElements(merger, numel, rowLen, SINGLE_PASS_CHUNK_ELEMENTS) / rowLen)));
  }
  const chunks = inputChunks(ctx, t, rowsPerChunk, computeStep);
  if (passes) {
    let p = 0;
    do {
      for await (const c of chunks()) for (const piece of c.pieces()) merger.observe!(p, piece);
    } while (merger.beginPass!(++p));
  }
  if (merger.compute) {
    // chunking 'tensor': one chunk in one piece (the whole tensor); served from memory again by emit below
    if (merger.chunking !== 'tensor') throw new PlanError('USAGE', `${method.name}: compute() needs chunking 'tensor' (tensor '${t.name}')`, { where: { tensor: t.name } });
    for await (const c of chunks()) for (const piece of c.pieces()) await merger.compute(piece);
  }
  let written = 0;
  for await (const c of chunks()) {
    const out = ctx.scratch.f32Buffer(0, c.length);
    const ws = t.dtype === 'BF16' && merger.emitBf16 ? workspaceOf(out.buffer) : undefined;
    if (ws !== undefined) {
      // BF16 output bits written over the chunk's f32 buffer from its start, piece by piece: a piece's bits never
      // reach past its own f32 values, so pieces emitted as f32 (emitBf16 declined) are rounded in place after
      const bits = new Uint16Array(out.buffer, out.byteOffset, c.length);
      for (const piece of c.pieces()) {
        const o = piece.offset - c.offset;
        if (merger.emitBf16!(piece, bits.subarray(o, o + piece.length))) continue;
        const f = out.subarray(o, o + piece.length);
        merger.emit(piece, f);
        ws.narrowBf16To(f, bits.byteOffset + 2 * o);
      }
      await ctx.sink.writeRange(t.name, c.offset * 2, new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength));
      written += bits.byteLength;
      continue;
    }
    for (const piece of c.pieces()) {
      const o = piece.offset - c.offset;
      merger.emit(piece, out.subarray(o, o + piece.length));
    }
    written += await writeF32(ctx, t, c.offset, out);
  }
  return written;
}

/** Elements a method processes at a time: its scratch and the inputs' pieces stay in the CPU caches. */
export const COMPUTE_CHUNK_ELEMENTS = 1 << 14;

/** Largest I/O chunk of a merger that reads its inputs once (no statistics passes): 8 MiB per BF16 input. */
export const SINGLE_PASS_CHUNK_ELEMENTS = 1 << 22;
