// The streaming engine of the vector commands: for every output tensor ("job"), read the same row range of each
// input (as f32, or as stored bits when the job asks for raw values), let the job compute its outputs for those
// rows, encode them and write byte ranges to one or more sinks. Row chunks are sized to a memory budget; a job with
// statistics passes sees every chunk once per pass before emitting (the tensor is read once when it fits, re-read
// per pass otherwise). Buffers are reused across jobs; nothing holds a whole checkpoint.

import { UsageError, allocationError } from '../errors.js';
import { fromF32 } from '../tensor/convert.js';
import { DTYPE_INFO, isFloatDType, viewData, type DType, type TensorData } from '../tensor/dtype.js';
import type { CheckpointReader } from '../io/types.js';

export interface JobInput {
  reader: CheckpointReader;
  tensor: string;
  /** hand the job the stored values (Uint16Array bits for BF16/F16 ...) instead of f32 */
  raw?: boolean;
}

export interface JobOutput {
  /** index into StreamOptions.sinks */
  sink: number;
  dtype: DType;
  /** tensor name in the sink (default: the job's name) */
  tensor?: string;
  /** the job writes storage values of `dtype` itself (always so for non-float dtypes) */
  raw?: boolean;
  /**
   * a packed output (e.g. the kept entries of a sparse vector): emit returns how many elements of this output it
   * produced for the chunk, and they are written after the previous chunks' (its buffer holds chunk.numel)
   */
  append?: boolean;
}

export interface ChunkView {
  /** rows [r0, r1) of the tensor */
  r0: number;
  r1: number;
  /** elements per row */
  rowLength: number;
  /** elements in this chunk: (r1 - r0) * rowLength */
  numel: number;
  /** element offset of the chunk in the tensor: r0 * rowLength */
  offset: number;
}

/** Inputs of one chunk: f32 values (zeros for an absent input) or stored values when the input is raw. */
export type ChunkInputs = ReadonlyArray<Float32Array | TensorData>;

export interface StreamJob {
  /** output tensor name (the same in every sink it goes to) */
  name: string;
  shape: readonly number[];
  /** one per input; undefined = absent (the job sees zeros) */
  inputs: ReadonlyArray<JobInput | undefined>;
  outputs: readonly JobOutput[];
  /** copy input 0's stored bytes unchanged to every output (whose dtype must equal the input's) */
  copy?: boolean;
  /** statistics passes before emit */
  passes?: number;
  observe?(pass: number, ins: ChunkInputs, chunk: ChunkView): void;
  /**
   * fill `outs` (f32 for float outputs, storage values for raw ones), each `chunk.numel` long; return the produced
   * lengths of `append` outputs (indexed like `outputs`)
   */
  emit?(ins: ChunkInputs, outs: Array<Float32Array | TensorData>, chunk: ChunkView): void | readonly number[];
  /** bytes per element of working memory the job's emit uses besides the engine's buffers (chunk sizing) */
  scratchBytesPerElement?: number;
  /** called before the job's first read (e.g. to load side data) */
  prepare?(): Promise<void>;
  /** called after each emitted chunk was written (e.g. to flush side records) */
  afterChunk?(chunk: ChunkView): Promise<void>;
}

export interface RangeSink {
  writeRange(name: string, byteOffset: number, data: Uint8Array | TensorData): Promise<void>;
}

export interface StreamProgress {
  tensor: string;
  index: number;
  count: number;
  bytesRead: number;
  bytesWritten: number;
}

export interface StreamOptions {
  sinks: readonly RangeSink[];
  /** bytes of chunk buffers (default 256 MiB); a single row larger than this is still processed */
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface StreamResult {
  bytesRead: number;
  bytesWritten: number;
}

export const DEFAULT_STREAM_BUDGET = 256 * 1024 * 1024;
/** jobs in flight at once */
export const STREAM_LANES = 2;

function rowLengthOf(shape: readonly number[]): number {
  let n = 1;
  for (let i = 1; i < shape.length; i++) n *= shape[i]!;
  return n;
}

function rowCountOf(shape: readonly number[]): number {
  return shape.length === 0 ? 1 : shape[0]!;
}

/** Grown-on-demand aligned buffers, one per slot. */
class Buffers {
  private slots: ArrayBuffer[] = [];
  get(slot: number, bytes: number): ArrayBuffer {
    let b = this.slots[slot];
    if (b === undefined || b.byteLength < bytes) {
      b = new ArrayBuffer(Math.max(8, bytes));
      this.slots[slot] = b;
    }
    return b;
  }
}

export function interrupted(): UsageError {
  return new UsageError('INTERRUPTED', 'interrupted; nothing was written (the partial output was removed)');
}

/** Run every job (LANES at a time, so one job's reads overlap another's compute and writes). Rejects with the
 * first read/compute/write error; the caller aborts its sinks. Output bytes do not depend on the order jobs finish. */
export async function runStream(jobs: readonly StreamJob[], options: StreamOptions): Promise<StreamResult> {
  const lanes = Math.max(1, Math.min(STREAM_LANES, jobs.length));
  const budget = Math.max(1, Math.floor((options.budgetBytes ?? DEFAULT_STREAM_BUDGET) / lanes));
  const count = { bytesRead: 0, bytesWritten: 0 };
  const state = { next: 0, done: 0, failed: false };
  const lane = async (): Promise<void> => {
    const bufs = { inp: new Buffers(), out: new Buffers(), enc: new Buffers() };
    while (!state.failed) {
      if (options.signal?.aborted) throw interrupted();
      const j = state.next++;
      if (j >= jobs.length) return;
      const job = jobs[j]!;
      try {
        await runJob(job, bufs, budget, count, state, options);
      } catch (e) {
        const file = job.inputs.find((x) => x !== undefined)?.reader.path;
        throw allocationError(e, { tensor: job.name, ...(file !== undefined ? { file } : {}) }) ?? e;
      }
      state.done++;
      options.onProgress?.({ tensor: job.name, index: state.done, count: jobs.length, bytesRead: count.bytesRead, bytesWritten: count.bytesWritten });
    }
  };
  const results = await Promise.allSettled(Array.from({ length: lanes }, () => lane().catch((e: unknown) => {
    state.failed = true;
    throw e;
  })));
  // the first real error (a lane stopped by another's failure reports INTERRUPTED)
  const errors = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  const real = errors.find((e) => (e as { code?: string }).code !== 'INTERRUPTED') ?? errors[0];
  if (real !== undefined) throw real;
  return { ...count };
}

interface LaneBuffers {
  inp: Buffers;
  out: Buffers;
  enc: Buffers;
}

async function runJob(
  job: StreamJob,
  bufs: LaneBuffers,
  budget: number,
  count: { bytesRead: number; bytesWritten: number },
  state: { failed: boolean },
  options: StreamOptions,
): Promise<void> {
  const rows = rowCountOf(job.shape);
  const rowLength = rowLengthOf(job.shape);
  await job.prepare?.();
  if (job.copy) {
    // row chunks of stored bytes: a copied tensor is never held whole
    const src = job.inputs[0]!;
    const info = src.reader.info(src.tensor);
    const rowBytes = rowLength * DTYPE_INFO[info.dtype].bytes;
    const chunkRows = rowBytes === 0 ? Math.max(1, rows) : Math.max(1, Math.min(rows, Math.floor(budget / rowBytes)));
    for (let r0 = 0; r0 < rows || (rows === 0 && r0 === 0); r0 += chunkRows) {
      if (options.signal?.aborted || state.failed) throw interrupted();
      const r1 = Math.min(rows, r0 + chunkRows);
      const n = (r1 - r0) * rowBytes;
      const bytes = await src.reader.readBytes(src.tensor, { rowStart: r0, rowEnd: r1, into: new Uint8Array(bufs.inp.get(0, n), 0, n) });
      count.bytesRead += bytes.byteLength;
      for (const o of job.outputs) {
        await options.sinks[o.sink]!.writeRange(o.tensor ?? job.name, r0 * rowBytes, bytes);
        count.bytesWritten += bytes.byteLength;
      }
      if (rows === 0) break;
    }
  } else {
    const inDtypes = job.inputs.map((i) => (i === undefined ? undefined : i.reader.info(i.tensor).dtype));
    const inElemBytes = job.inputs.map((i, k) => (i?.raw ? DTYPE_INFO[inDtypes[k]!].bytes : 4));
    const outRaw = job.outputs.map((o) => o.raw === true || !isFloatDType(o.dtype));
    let perRow = 0;
    for (const b of inElemBytes) perRow += b;
    job.outputs.forEach((o, k) => (perRow += DTYPE_INFO[o.dtype].bytes + (outRaw[k] || o.dtype === 'F32' ? 0 : 4)));
    perRow += job.scratchBytesPerElement ?? 0;
    perRow *= Math.max(1, rowLength);
    const chunkRows = Math.max(1, Math.min(rows, Math.floor(budget / Math.max(1, perRow))));
    const passes = job.passes ?? 0;
    const whole = chunkRows >= rows;
    const read = async (r0: number, r1: number): Promise<Float32Array[] | TensorData[]> => {
      const n = (r1 - r0) * rowLength;
      const ins = await Promise.all(
        job.inputs.map(async (inp, k) => {
          if (inp === undefined) return new Float32Array(bufs.inp.get(k, n * 4), 0, n).fill(0);
          if (inp.raw) {
            const dt = inDtypes[k]!;
            const buf = bufs.inp.get(k, n * DTYPE_INFO[dt].bytes);
            await inp.reader.readBytes(inp.tensor, { rowStart: r0, rowEnd: r1, into: new Uint8Array(buf, 0, n * DTYPE_INFO[dt].bytes) });
            count.bytesRead += n * DTYPE_INFO[dt].bytes;
            return viewData(dt, buf, 0, n);
          }
          const f = new Float32Array(bufs.inp.get(k, n * 4), 0, n);
          await inp.reader.readF32(inp.tensor, { rowStart: r0, rowEnd: r1, into: f });
          count.bytesRead += n * DTYPE_INFO[inDtypes[k]!].bytes;
          return f;
        }),
      );
      return ins as Float32Array[];
    };
    const chunkOf = (r0: number, r1: number): ChunkView => ({ r0, r1, rowLength, numel: (r1 - r0) * rowLength, offset: r0 * rowLength });
    let held: ChunkInputs | undefined;
    for (let pass = 0; pass < passes; pass++) {
      for (let r0 = 0; r0 < rows || (rows === 0 && r0 === 0); r0 += chunkRows) {
        if (options.signal?.aborted || state.failed) throw interrupted();
        const r1 = Math.min(rows, r0 + chunkRows);
        const ins = whole && held !== undefined ? held : await read(r0, r1);
        if (whole) held = ins;
        job.observe?.(pass, ins, chunkOf(r0, r1));
        if (rows === 0) break;
      }
    }
    const appended = job.outputs.map(() => 0);
    for (let r0 = 0; r0 < rows || (rows === 0 && r0 === 0); r0 += chunkRows) {
      if (options.signal?.aborted || state.failed) throw interrupted();
      const r1 = Math.min(rows, r0 + chunkRows);
      const chunk = chunkOf(r0, r1);
      const ins = whole && held !== undefined ? held : await read(r0, r1);
      const n = chunk.numel;
      const outs = job.outputs.map((o, k) => {
        const bytes = DTYPE_INFO[o.dtype].bytes;
        return outRaw[k] ? viewData(o.dtype, bufs.out.get(k, n * bytes), 0, n) : new Float32Array(bufs.out.get(k, n * 4), 0, n);
      });
      const lengths = job.emit!(ins, outs, chunk);
      await Promise.all(
        job.outputs.map(async (o, k) => {
          const bytes = DTYPE_INFO[o.dtype].bytes;
          const len = o.append ? lengths![k]! : n;
          const at = o.append ? appended[k]! : chunk.offset;
          if (o.append) appended[k] = at + len;
          const values = outs[k]!.subarray(0, len) as Float32Array | TensorData;
          let data: TensorData;
          if (outRaw[k] || o.dtype === 'F32') data = values;
          else data = fromF32(o.dtype, values as Float32Array, viewData(o.dtype, bufs.enc.get(k, len * bytes), 0, len));
          await options.sinks[o.sink]!.writeRange(o.tensor ?? job.name, at * bytes, data);
          count.bytesWritten += len * bytes;
        }),
      );
      await job.afterChunk?.(chunk);
      if (rows === 0) break;
    }
  }
}
