// `vector extract`: V = F - B for every float tensor both checkpoints hold, streamed row chunk by row chunk into a
// vector file (safetensors + `weightkit_vector` metadata with the base's fingerprint). Optional magnitude
// sparsification (exact top-k per tensor, stored as indices + values) or N-level quantisation (codes + range),
// with the storage ratio and the reconstruction error reported.

import { UsageError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import { openCheckpointSink } from '../io/sink.js';
import type { CheckpointReader, TensorDecl, TensorInfo } from '../io/types.js';
import { DTYPE_INFO, type DType } from '../tensor/dtype.js';
import { applyMagnitudeMaskInto, MagnitudeSelector, type MagnitudeThreshold } from '../tensor/select.js';
import { WEIGHTKIT_VERSION } from '../version.js';
import {
  encodeVectorMeta,
  fingerprintCheckpoint,
  QUANT_CODE_SUFFIX,
  SPARSE_INDEX_SUFFIX,
  SPARSE_VALUE_SUFFIX,
  VECTOR_FORMAT_VERSION,
  type TensorEncoding,
  type VectorKind,
  type VectorMeta,
} from './format.js';
import { pairTensors, requireShared } from './pairing.js';
import { differenceOf, quantJob, totalQuantError, type QuantizeSpec, type QuantStats } from './quantize.js';
import { runStream, type JobInput, type StreamJob, type StreamProgress } from './stream.js';

export const VECTOR_DTYPES: readonly DType[] = ['F32', 'BF16', 'F16'];

export interface ExtractOptions {
  base: string;
  finetuned: string;
  /** a `.safetensors` file */
  out: string;
  kind?: VectorKind;
  label?: string;
  /** storage dtype of the values (default F32: exact differences of BF16/F16 models) */
  dtype?: DType;
  /** keep tensors present on one side only out of the vector instead of failing */
  allowMissing?: boolean;
  /** keep only the round(density * numel) largest-magnitude entries of each tensor, stored sparse */
  density?: number;
  quantize?: QuantizeSpec;
  overwrite?: boolean;
  budgetBytes?: number;
  signal?: AbortSignal;
  onProgress?: (p: StreamProgress) => void;
}

export interface ExtractResult {
  out: string;
  tensors: number;
  /** non-float tensors left out (kept from the base when the vector is applied) */
  skipped: string[];
  /** tensors on one side only, left out (allowMissing) */
  missing: string[];
  /** bytes of the vector's tensor data, and of the same tensors stored dense in F32 */
  storedBytes: number;
  denseF32Bytes: number;
  /** quantisation: relative L2 error over the whole vector and the largest absolute error */
  quantization?: { relL2: number; maxAbs: number };
  fingerprint: string;
}

export function checkVectorDtype(dtype: DType | undefined): DType {
  const d = dtype ?? 'F32';
  if (!VECTOR_DTYPES.includes(d)) throw new UsageError('USAGE', `vector dtype must be one of f32, bf16, f16 (got ${d})`);
  return d;
}

/** The inputs of a difference job: the fine-tuned tensor, then the base's. */
function pairInputs(t: TensorInfo, ft: CheckpointReader, base: CheckpointReader): JobInput[] {
  return [
    { reader: ft, tensor: t.name },
    { reader: base, tensor: t.name },
  ];
}

function diffInto(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! - b[i]!;
}

/** A job emitting f32(a) - f32(b) for one shared tensor, dense. */
function denseDiffJob(t: TensorInfo, ft: CheckpointReader, base: CheckpointReader, dtype: DType): StreamJob {
  return {
    name: t.name,
    shape: t.shape,
    inputs: pairInputs(t, ft, base),
    outputs: [{ sink: 0, dtype }],
    emit(ins, outs, c) {
      diffInto(ins[0] as Float32Array, ins[1] as Float32Array, outs[0] as Float32Array, c.numel);
    },
  };
}

/** A job keeping the k largest |f - b| of one tensor: pass 0 (and 1 if needed) selects, emit packs indices + values. */
function sparseDiffJob(t: TensorInfo, ft: CheckpointReader, base: CheckpointReader, dtype: DType, k: number): StreamJob {
  const sel = new MagnitudeSelector();
  let th: MagnitudeThreshold | undefined;
  let lowNeeded = false;
  let d = new Float32Array(0);
  const diff = (f: Float32Array, b: Float32Array, n: number): Float32Array => {
    if (d.length < n) d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = f[i]! - b[i]!;
    return d.subarray(0, n);
  };
  const state = { tiesLeft: 0 };
  return {
    name: t.name,
    shape: t.shape,
    inputs: pairInputs(t, ft, base),
    outputs: [
      { sink: 0, dtype: 'U32', tensor: t.name + SPARSE_INDEX_SUFFIX, append: true },
      { sink: 0, dtype, tensor: t.name + SPARSE_VALUE_SUFFIX, append: true },
    ],
    passes: 2,
    observe(pass, ins, c) {
      const x = diff(ins[0] as Float32Array, ins[1] as Float32Array, c.numel);
      if (pass === 0) {
        sel.addHigh(x);
        if (c.r1 >= (t.shape[0] ?? 1)) {
          lowNeeded = sel.resolveHigh(k);
          if (!lowNeeded) th = sel.threshold();
        }
      } else if (lowNeeded) {
        sel.addLow(x);
        if (c.r1 >= (t.shape[0] ?? 1)) th = sel.threshold();
      }
      if (th !== undefined && c.r0 === 0 && pass === 1) state.tiesLeft = th.ties;
    },
    emit(ins, outs, c) {
      const x = diff(ins[0] as Float32Array, ins[1] as Float32Array, c.numel);
      if (c.r0 === 0) state.tiesLeft = th!.ties;
      applyMagnitudeMaskInto(x, th!, state, x);
      const idx = outs[0] as Uint32Array;
      const val = outs[1] as Float32Array;
      let m = 0;
      for (let i = 0; i < c.numel; i++) {
        const v = x[i]!;
        if (v !== 0 || (th!.all && !Number.isNaN(v))) {
          // KEEP_ALL keeps zeros too, so the count is exactly k
          idx[m] = c.offset + i;
          val[m] = v;
          m++;
        }
      }
      return [m, m];
    },
  };
}

/** Extract the vector F - B into `out` (a .safetensors file). */
export async function extractVector(options: ExtractOptions): Promise<ExtractResult> {
  const dtype = checkVectorDtype(options.dtype);
  if (!options.out.endsWith('.safetensors')) {
    throw new UsageError('USAGE', `a vector is one .safetensors file; --out ${options.out} does not end in .safetensors`);
  }
  if (options.density !== undefined && !(options.density >= 0 && options.density <= 1)) {
    throw new UsageError('USAGE', `--density must be in [0, 1] (got ${options.density})`);
  }
  if (options.density !== undefined && options.quantize !== undefined) {
    throw new UsageError('USAGE', '--density and --quantize cannot be combined; choose one storage scheme');
  }
  const base = await openCheckpointPath(options.base);
  try {
    const ft = await openCheckpointPath(options.finetuned);
    try {
      const pairing = pairTensors(base, ft, { allowMissing: options.allowMissing, canAllowMissing: true, roles: ['base', 'fine-tuned model'] });
      requireShared(pairing.shared, 'the base and the fine-tuned model', options.finetuned);
      const fingerprint = await fingerprintCheckpoint(base);
      const decls: TensorDecl[] = [];
      const jobs: StreamJob[] = [];
      const encodings: Record<string, TensorEncoding> = {};
      const quantStats: QuantStats[] = [];
      const ranges: Array<{ name: string; range: () => Float64Array }> = [];
      let storedBytes = 0;
      let denseF32Bytes = 0;
      for (const t of pairing.shared) {
        denseF32Bytes += t.numel * 4;
        if (options.density !== undefined) {
          const k = Math.round(options.density * t.numel);
          if (t.numel > 0xffffffff) throw new UsageError('USAGE', `tensor '${t.name}' has too many elements to store sparse`);
          decls.push({ name: t.name + SPARSE_INDEX_SUFFIX, dtype: 'U32', shape: [k] });
          decls.push({ name: t.name + SPARSE_VALUE_SUFFIX, dtype, shape: [k] });
          encodings[t.name] = { enc: 'sparse', shape: [...t.shape], density: options.density, nnz: k };
          storedBytes += k * (4 + DTYPE_INFO[dtype].bytes);
          jobs.push(sparseDiffJob(t, ft, base, dtype, k));
        } else if (options.quantize !== undefined) {
          const q = quantJob(t, pairInputs(t, ft, base), differenceOf(), options.quantize, encodings, quantStats);
          decls.push(q.decl, q.rangeDecl);
          storedBytes += t.numel * DTYPE_INFO[q.decl.dtype].bytes + 16;
          jobs.push(q.job);
          ranges.push({ name: q.rangeDecl.name, range: q.range });
        } else {
          decls.push({ name: t.name, dtype, shape: t.shape });
          storedBytes += t.numel * DTYPE_INFO[dtype].bytes;
          jobs.push(denseDiffJob(t, ft, base, dtype));
        }
      }
      const meta: VectorMeta = {
        version: VECTOR_FORMAT_VERSION,
        kind: options.kind ?? 'task',
        baseFingerprint: fingerprint,
        base: options.base,
        finetuned: options.finetuned,
        ...(options.label !== undefined ? { label: options.label } : {}),
        ...(pairing.skipped.length > 0 ? { skipped: pairing.skipped } : {}),
        ...(Object.keys(encodings).length > 0 ? { encodings } : {}),
      };
      const sink = await openCheckpointSink(options.out, decls, {
        metadata: { ...encodeVectorMeta(meta), weightkit_version: WEIGHTKIT_VERSION },
        overwrite: options.overwrite,
        inputs: [options.base, options.finetuned],
      });
      try {
        await runStream(jobs, { sinks: [sink], budgetBytes: options.budgetBytes, signal: options.signal, onProgress: options.onProgress });
        // quantiser ranges are known once their tensor's job ran
        for (const r of ranges) await sink.write(r.name, r.range());
        await sink.close();
      } catch (e) {
        await sink.abort();
        throw e;
      }
      const result: ExtractResult = {
        out: options.out,
        tensors: pairing.shared.length,
        skipped: pairing.skipped,
        missing: pairing.missing,
        storedBytes,
        denseF32Bytes,
        fingerprint,
      };
      const quantization = totalQuantError(quantStats);
      if (quantization !== undefined) result.quantization = quantization;
      return result;
    } finally {
      await ft.close();
    }
  } finally {
    await base.close();
  }
}
