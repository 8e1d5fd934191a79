// Streaming execution of one plan tensor: read the inputs' rows as f32 (whole tensor when it fits the budget, row
// chunks otherwise, re-read once per statistics pass), run the method's passes, encode to the output dtype and
// write byte ranges. Bytes are identical at any chunk size and thread count.

import { fromF32 } from '../tensor/convert.js';
import { DTYPE_INFO, viewData } from '../tensor/dtype.js';
import type { CheckpointReader } from '../io/types.js';
import { chunkElements, makeContext } from '../merge/run.js';
import { PlanError } from '../errors.js';
import type { Chunk, MergeMethod, TensorMerger } from '../merge/types.js';
import type { PlanInput, PlanTensor } from './plan.js';
import { Workspace, WORKSPACE_START } from '../tensor/wasm/workspace.js';

/** Where merged bytes go: a byte range of one declared output tensor. */
export interface TensorSink {
  writeRange(name: string, byteOffset: number, bytes: Uint8Array): Promise<void>;
}

/** f32 slots from this index on (reader staging) are ordinary arrays, never workspace views. */
const STAGING_SLOT = 100;
/** bytes kept readable after the last slot: the SIMD kernels may read up to 16 bytes past an input */
const SLOT_PAD_BYTES = 64;

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
    this.layout(slots, n);
  }

  f32Buffer(i: number, n: number): Float32Array {
    if (i < STAGING_SLOT && this.layout(i + 1, n, i)) {
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

  /** Ensure slots [first, slots) of the workspace hold n elements (first = 0 unless given); false if none. */
  private layout(slots: number, n: number, first = 0): boolean {
    if (this.ws === undefined) return false;
    const want = (n + 3) & ~3;
    let grow = false;
    for (let i = first; i < slots; i++) grow ||= !(this.caps[i]! >= want);
    if (!grow) return true;
    const caps = this.caps.slice();
    for (let i = 0; i < slots; i++) caps[i] = Math.max(caps[i] ?? 0, i >= first ? want : 0);
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

/** Encode f32 values to the output dtype in a reused byte buffer and write them. */
async function writeF32(ctx: RunTensorContext, t: PlanTensor, elemOffset: number, values: Float32Array): Promise<number> {
  const bytesPer = DTYPE_INFO[t.dtype].bytes;
  let bytes: Uint8Array;
  if (t.dtype === 'F32') {
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

/**
 * The chunks of a tensor's inputs (base first), `rowsPerChunk` rows at a time, as a re-iterable sequence: a tensor
 * that fits in one chunk is read once and served from memory on every pass; larger ones are re-read per pass.
 */
export function inputChunks(ctx: Pick<RunTensorContext, 'readers' | 'scratch'>, t: PlanTensor, rowsPerChunk: number): () => AsyncGenerator<Chunk> {
  const inputs: PlanInput[] = [...(t.base ? [t.base] : []), ...t.inputs];
  const rowLen = rowLengthOf(t.shape);
  const rows = rowCountOf(t.shape);
  const load = async (r0: number, r1: number): Promise<Chunk> => {
    const n = (r1 - r0) * rowLen;
    // every slot of the chunk (output 0, inputs 1..) at once: no later request may grow the workspace
    ctx.scratch.reserveF32(inputs.length + 1, n);
    const arrays: Float32Array[] = [];
    for (let i = 0; i < inputs.length; i++) {
      const buf = ctx.scratch.f32Buffer(1 + i, n);
      await readInputRows(ctx.readers.get(inputs[i]!.model)!, inputs[i]!, r0, r1, buf, ctx.scratch, i);
      arrays.push(buf);
    }
    return { offset: r0 * rowLen, length: n, base: t.base ? arrays[0] : undefined, models: t.base ? arrays.slice(1) : arrays };
  };
  let cached: Chunk | undefined;
  return async function* (): AsyncGenerator<Chunk> {
    if (rowsPerChunk >= rows) {
      cached ??= await load(0, rows);
      yield cached;
      return;
    }
    for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) yield await load(r0, Math.min(rows, r0 + rowsPerChunk));
  };
}

/** Rows per chunk for a tensor under a byte budget (at least one row). */
export function rowsPerChunkFor(t: PlanTensor, method: MergeMethod, budgetBytes: number): number {
  const rowLen = rowLengthOf(t.shape);
  const bpe = (t.inputs.length + (t.base ? 1 : 0)) * 4 + 4 + DTYPE_INFO[t.dtype].bytes + (method.scratchBytesPerElement ?? 8);
  return Math.max(1, Math.floor(budgetBytes / (bpe * rowLen)));
}

/**
 * The whole-model statistics pre-pass a method may declare (e.g. TIES trim_scope: model): every merged tensor's
 * chunks, once per pass, on this thread. Returns the collector's result (undefined when none is needed).
 */
export async function runModelPrepass(
  method: MergeMethod,
  tensors: readonly PlanTensor[],
  readers: ReadonlyMap<number, CheckpointReader>,
  budgetBytes: number,
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
      for await (const c of inputChunks({ readers, scratch }, t, rowsPerChunkFor(t, method, budgetBytes))()) {
        for (const piece of splitChunk(c, COMPUTE_CHUNK_ELEMENTS)) collector.observe(p, t.name, piece);
      }
    }
  }
  return collector.result();
}

/** Run one plan tensor through the method and the sink. Returns the bytes written. */
export async function runTensor(ctx: RunTensorContext, t: PlanTensor): Promise<number> {
  if (t.op === 'copy') return copyTensor(ctx, t);
  const { method } = ctx;
  const mctx = makeContext(method, {
    name: t.name,
    shape: t.shape,
    hasBase: t.base !== undefined,
    params: t.params,
    modelParams: t.modelParams,
    seed: ctx.seed,
    ...(ctx.modelStats !== undefined ? { modelStats: ctx.modelStats } : {}),
  });
  const merger: TensorMerger = method.create(mctx);
  const numel = mctx.numel;
  const rowLen = mctx.rowLength;
  const rows = rowCountOf(t.shape);
  const bpe = (t.inputs.length + (t.base ? 1 : 0)) * 4 + 4 + DTYPE_INFO[t.dtype].bytes + (method.scratchBytesPerElement ?? 8);
  const maxElems = Math.max(rowLen, Math.floor(ctx.budgetBytes / bpe));
  let step = chunkElements(merger, numel, rowLen, maxElems);
  if (step % rowLen !== 0) step = Math.max(1, Math.floor(step / rowLen)) * rowLen; // reads are row-aligned
  const rowsPerChunk = Math.max(1, step / rowLen);

  const chunks = inputChunks(ctx, t, rowsPerChunk);
  // I/O chunks are as large as the budget allows; the method sees cache-sized pieces of them
  const computeStep = chunkElements(merger, numel, rowLen, COMPUTE_CHUNK_ELEMENTS);

  if (merger.beginPass && merger.observe) {
    for (let p = 0; merger.beginPass(p); p++) {
      for await (const c of chunks()) for (const piece of splitChunk(c, computeStep)) merger.observe(p, piece);
    }
  }
  let written = 0;
  for await (const c of chunks()) {
    const out = ctx.scratch.f32Buffer(0, c.length);
    for (const piece of splitChunk(c, computeStep)) {
      const o = piece.offset - c.offset;
      merger.emit(piece, out.subarray(o, o + piece.length));
    }
    written += await writeF32(ctx, t, c.offset, out);
  }
  return written;
}

/** Elements a method processes at a time: its scratch and the inputs' pieces stay in the CPU caches. */
export const COMPUTE_CHUNK_ELEMENTS = 1 << 14;

/** Views of a chunk in pieces of at most `step` elements (step respects the method's chunking rule). */
export function* splitChunk(c: Chunk, step: number): Generator<Chunk> {
  if (c.length <= step) {
    yield c;
    return;
  }
  for (let o = 0; o < c.length; o += step) {
    const len = Math.min(step, c.length - o);
    yield { offset: c.offset + o, length: len, base: c.base?.subarray(o, o + len), models: c.models.map((m) => m.subarray(o, o + len)) };
  }
}
