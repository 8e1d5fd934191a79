// Quantised vector storage (Robust Weight Signatures' N-level schemes): a streaming job per tensor that finds the
// quantiser's range in a statistics pass, then writes the codes (U8 up to 256 levels, U16 above) and the range
// (F64 [2]), measuring the reconstruction error on the way.

import { UsageError, VectorError } from '../errors.js';
import type { TensorDecl, TensorInfo } from '../io/types.js';
import {
  dequantizeLinearInto,
  dequantizeLogInto,
  encodeLinearInto,
  encodeLogInto,
  firstNonFinite,
  updateLinearRange,
  updateLogRange,
  type Codes,
} from '../tensor/vector-codecs.js';
import { QUANT_CODE_SUFFIX, QUANT_RANGE_SUFFIX, type TensorEncoding } from './format.js';
import type { ChunkInputs, StreamJob } from './stream.js';

export interface QuantizeSpec {
  scheme: 'linear' | 'log';
  levels: number;
}

export const DEFAULT_QUANT_LEVELS = 256;

/** Parse `linear`, `linear:N`, `log`, `log:N`. */
export function parseQuantizeSpec(text: string): QuantizeSpec {
  const m = /^(linear|log)(?::(\d+))?$/.exec(text.trim());
  if (!m) throw new UsageError('USAGE', `--quantize must be linear[:N] or log[:N] (got '${text}')`);
  const scheme = m[1] as 'linear' | 'log';
  const levels = m[2] === undefined ? DEFAULT_QUANT_LEVELS : Number(m[2]);
  const min = scheme === 'log' ? 3 : 2;
  if (!(levels >= min && levels <= 65536)) {
    throw new UsageError('USAGE', `--quantize ${scheme}:N needs N in [${min}, 65536] (got ${m[2]})`);
  }
  return { scheme, levels };
}

/** Squared error and reference energy of one tensor, for the whole-vector relative error. */
export interface QuantStats {
  tensor: string;
  errSq: number;
  refSq: number;
  maxAbs: number;
}

/** Values of a chunk: f32(ins[0]) - f32(ins[1]), in a buffer of the returned function's own. */
export function differenceOf(): (ins: ChunkInputs, n: number) => Float32Array {
  let d = new Float32Array(0);
  return (ins, n) => {
    const x = ins[0] as Float32Array;
    const y = ins[1] as Float32Array;
    if (d.length < n) d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = x[i]! - y[i]!;
    return d.subarray(0, n);
  };
}

/** Relative L2 error over all quantised tensors and the largest absolute error; undefined when none was quantised. */
export function totalQuantError(stats: readonly QuantStats[]): { relL2: number; maxAbs: number } | undefined {
  if (stats.length === 0) return undefined;
  let err = 0;
  let ref = 0;
  let maxAbs = 0;
  for (const s of stats) {
    err += s.errSq;
    ref += s.refSq;
    maxAbs = Math.max(maxAbs, s.maxAbs);
  }
  return { relL2: ref > 0 ? Math.sqrt(err / ref) : 0, maxAbs };
}

/**
 * The job quantising one tensor whose chunk values `values(ins, n)` computes from the job's `inputs` (e.g.
 * differenceOf() over [fine-tuned, base]). Adds its encoding to `encodings` and its error to `stats` (filled when
 * the job has run); `range()` is the quantiser's range once the job ran, to be written as the range tensor.
 */
export function quantJob(
  t: TensorInfo,
  inputs: StreamJob['inputs'],
  values: (ins: ChunkInputs, n: number) => Float32Array,
  spec: QuantizeSpec,
  encodings: Record<string, TensorEncoding>,
  stats: QuantStats[],
): { decl: TensorDecl; rangeDecl: TensorDecl; job: StreamJob; range: () => Float64Array } {
  const codeDtype = spec.levels <= 256 ? 'U8' : 'U16';
  const decl: TensorDecl = { name: t.name + QUANT_CODE_SUFFIX, dtype: codeDtype, shape: t.shape };
  const rangeDecl: TensorDecl = { name: t.name + QUANT_RANGE_SUFFIX, dtype: 'F64', shape: [2] };
  encodings[t.name] = { enc: spec.scheme, shape: [...t.shape], levels: spec.levels };
  const lin = { min: Infinity, max: -Infinity };
  const log = { lo: Infinity, hi: -Infinity };
  const st: QuantStats = { tensor: t.name, errSq: 0, refSq: 0, maxAbs: 0 };
  stats.push(st);
  let back = new Float32Array(0);
  const rows = t.shape.length === 0 ? 1 : t.shape[0]!;
  let rangeWritten = false;
  const job: StreamJob = {
    name: t.name,
    shape: t.shape,
    inputs,
    outputs: [{ sink: 0, dtype: codeDtype, tensor: decl.name }],
    passes: 1,
    observe(_pass, ins, c) {
      const v = values(ins, c.numel);
      try {
        if (spec.scheme === 'linear') updateLinearRange(v, lin);
        else updateLogRange(v, log);
      } catch (e) {
        // name the tensor and the element in it (the codec only knows the chunk)
        if (!(e instanceof VectorError && e.code === 'VECTOR_NOT_FINITE')) throw e;
        const i = firstNonFinite(v);
        throw new VectorError('VECTOR_NOT_FINITE', `tensor '${t.name}': element ${c.offset + i} is ${v[i]}; ${spec.scheme} quantisation needs finite values`, { where: { tensor: t.name } });
      }
    },
    emit(ins, outs, c) {
      const v = values(ins, c.numel);
      const codes = outs[0] as Codes;
      if (back.length < c.numel) back = new Float32Array(c.numel);
      const r = back.subarray(0, c.numel);
      if (spec.scheme === 'linear') {
        encodeLinearInto(v, lin.min, lin.max, spec.levels, codes);
        dequantizeLinearInto({ codes, min: lin.min, max: lin.max, levels: spec.levels }, 0, c.numel, r);
      } else {
        encodeLogInto(v, log.lo, log.hi, spec.levels, codes);
        dequantizeLogInto({ codes, lo: log.lo, hi: log.hi, levels: spec.levels }, 0, c.numel, r);
      }
      for (let i = 0; i < c.numel; i++) {
        const e = Math.abs(v[i]! - r[i]!);
        st.errSq += e * e;
        st.refSq += v[i]! * v[i]!;
        if (e > st.maxAbs) st.maxAbs = e;
      }
      if (c.r1 >= rows) rangeWritten = true;
    },
  };
  const range = (): Float64Array => {
    if (!rangeWritten && t.numel > 0) throw new Error(`quantisation range of ${t.name} requested before its job ran`);
    if (spec.scheme === 'linear') return Float64Array.of(t.numel === 0 ? 0 : lin.min, t.numel === 0 ? 0 : lin.max);
    return log.lo > log.hi ? Float64Array.of(0, 0) : Float64Array.of(log.lo, log.hi);
  };
  return { decl, rangeDecl, job, range };
}
