// Encodings for stored task vectors: uniform (linear) and sign + log-magnitude quantisation, and exact top-k
// sparsification. Guarantees: deterministic output, an error bound per codec (linear: |v - v'| <= step/2; log:
// |v'/v - 1| <= 2^(logStep/2) - 1, zeros exact), exact-k sparsity with ties broken by index, and range decodes that
// equal slices of the full decode. Pure: no node: imports, no I/O.
//
// Linear (as in Robust Weight Signatures): step = (max - min) / (levels - 1), code = round((v - min) / step),
// v' = f32(min + code * step) computed in f64. All-equal input: every code 0, v' = min exactly.
//
// Log: code 0 is an exact zero. With m = floor((levels - 1) / 2) magnitude levels per sign, codes 1..m are positive
// and m+1..2m negative; magnitude level j (0..m-1) is 2^(lo + j * (hi - lo) / (m - 1)) (m == 1: 2^lo), where lo and
// hi are the min and max of log2|v| over the non-zero values; a value takes the level nearest in log2 space. -0 is a
// zero and decodes to +0.
//
// Decoders trust the codes (a file parser validates them); they check only the range and the output length.

import { UsageError, VectorError } from '../errors.js';
import { topKMagnitude } from './select.js';

export type Codes = Uint8Array | Uint16Array;

export interface LinearQuantized {
  codes: Codes;
  min: number;
  max: number;
  levels: number;
}

export interface LogQuantized {
  codes: Codes;
  lo: number;
  hi: number;
  levels: number;
}

export interface SparseVector {
  numel: number;
  /** ascending element indices of the kept entries */
  indices: Uint32Array;
  values: Float32Array;
}

export interface QuantizationError {
  /** ||o - r|| / ||o|| (0 when ||o|| = 0) */
  relL2: number;
  maxAbs: number;
}

const MAX_LEVELS = 65536;
const MAX_U32_NUMEL = 0xffffffff;
const ABS = 0x7fffffff;

// ---------------------------------------------------------------------------------------------------------------
// checks

/** Index of the first NaN or ±Infinity, or -1. v - v is 0 for every finite v and NaN otherwise. */
export function firstNonFinite(values: ArrayLike<number>): number {
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v - v !== 0) return i;
  }
  return -1;
}

function assertFinite(values: Float32Array, what: string): void {
  const i = firstNonFinite(values);
  if (i >= 0) {
    throw new VectorError('VECTOR_NOT_FINITE', `${what}: element ${i} is ${values[i]}, expected a finite number`);
  }
}

export function assertLevels(levels: number, minLevels: number, what: string): void {
  if (!Number.isInteger(levels) || levels < minLevels || levels > MAX_LEVELS) {
    throw new UsageError('USAGE', `${what}: levels must be an integer in [${minLevels}, ${MAX_LEVELS}], got ${levels}`);
  }
}

function assertRange(start: number, end: number, length: number, into: Float32Array, what: string): void {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end || end > length) {
    throw new UsageError('USAGE', `${what}: range must satisfy 0 <= start <= end <= ${length}, got [${start}, ${end})`);
  }
  if (into.length < end - start) {
    throw new UsageError('USAGE', `${what}: output must hold ${end - start} elements, got ${into.length}`);
  }
}

export function makeCodes(levels: number, n: number): Codes {
  return levels <= 256 ? new Uint8Array(n) : new Uint16Array(n);
}

// ---------------------------------------------------------------------------------------------------------------
// linear

/** Widen `r` to cover min/max of `values` (streaming range for linear quantisation; start from {min: Infinity, max: -Infinity}). */
export function updateLinearRange(values: Float32Array, r: { min: number; max: number }): void {
  assertFinite(values, 'quantizeLinear');
  let min = r.min;
  let max = r.max;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  r.min = min;
  r.max = max;
}

/** Codes of `values` for a linear quantiser over [min, max] (values must lie in that range). */
export function encodeLinearInto(values: Float32Array, min: number, max: number, levels: number, codes: Codes): void {
  const n = values.length;
  if (!(max > min)) {
    codes.fill(0, 0, n);
    return;
  }
  const step = (max - min) / (levels - 1);
  const top = levels - 1;
  for (let i = 0; i < n; i++) {
    const c = Math.round((values[i]! - min) / step);
    codes[i] = c > top ? top : c < 0 ? 0 : c; // f64 rounding could only overshoot at max
  }
}

/** Uniform `levels`-level quantisation between min(values) and max(values). levels: integer in [2, 65536]. */
export function quantizeLinear(values: Float32Array, levels: number): LinearQuantized {
  assertLevels(levels, 2, 'quantizeLinear');
  const n = values.length;
  const codes = makeCodes(levels, n);
  const r = { min: Infinity, max: -Infinity };
  updateLinearRange(values, r);
  if (n === 0) return { codes, min: 0, max: 0, levels };
  encodeLinearInto(values, r.min, r.max, levels, codes);
  return { codes, min: r.min, max: r.max, levels };
}

/** Decode codes [start, end) into into[0 .. end - start). */
export function dequantizeLinearInto(q: LinearQuantized, start: number, end: number, into: Float32Array): void {
  assertLevels(q.levels, 2, 'dequantizeLinearInto');
  assertRange(start, end, q.codes.length, into, 'dequantizeLinearInto');
  const codes = q.codes;
  const min = q.min;
  const step = (q.max - q.min) / (q.levels - 1);
  for (let i = start; i < end; i++) into[i - start] = min + codes[i]! * step;
}

// ---------------------------------------------------------------------------------------------------------------
// log

function magnitudeLevels(levels: number): number {
  return Math.floor((levels - 1) / 2);
}

function logStep(lo: number, hi: number, m: number): number {
  return m === 1 ? 0 : (hi - lo) / (m - 1);
}

/** Widen `r` to cover min/max of log2|v| over the non-zero `values` (start from {lo: Infinity, hi: -Infinity}). */
export function updateLogRange(values: Float32Array, r: { lo: number; hi: number }): void {
  assertFinite(values, 'quantizeLog');
  let lo = r.lo;
  let hi = r.hi;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v !== 0) {
      const l = Math.log2(Math.abs(v));
      if (l < lo) lo = l;
      if (l > hi) hi = l;
    }
  }
  r.lo = lo;
  r.hi = hi;
}

/** Codes of `values` for a log quantiser with log2-magnitude range [lo, hi] (lo > hi: every value is zero). */
export function encodeLogInto(values: Float32Array, lo: number, hi: number, levels: number, codes: Codes): void {
  const n = values.length;
  codes.fill(0, 0, n);
  if (lo > hi) return;
  const m = magnitudeLevels(levels);
  const step = logStep(lo, hi, m);
  const top = m - 1;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (v === 0) continue; // code 0
    let j = 0;
    if (step > 0) {
      j = Math.round((Math.log2(Math.abs(v)) - lo) / step);
      if (j > top) j = top;
      else if (j < 0) j = 0;
    }
    codes[i] = v > 0 ? 1 + j : 1 + m + j;
  }
}

/** Sign + log-magnitude quantisation (scheme in the file header). levels: integer in [3, 65536]. */
export function quantizeLog(values: Float32Array, levels: number): LogQuantized {
  assertLevels(levels, 3, 'quantizeLog');
  const codes = makeCodes(levels, values.length);
  const r = { lo: Infinity, hi: -Infinity };
  updateLogRange(values, r);
  if (r.lo > r.hi) return { codes, lo: 0, hi: 0, levels }; // empty or all zeros: every code 0
  encodeLogInto(values, r.lo, r.hi, levels, codes);
  return { codes, lo: r.lo, hi: r.hi, levels };
}

/** Decode codes [start, end) into into[0 .. end - start). */
export function dequantizeLogInto(q: LogQuantized, start: number, end: number, into: Float32Array): void {
  assertLevels(q.levels, 3, 'dequantizeLogInto');
  assertRange(start, end, q.codes.length, into, 'dequantizeLogInto');
  const codes = q.codes;
  const m = magnitudeLevels(q.levels);
  const lo = q.lo;
  const step = logStep(q.lo, q.hi, m);
  for (let i = start; i < end; i++) {
    const c = codes[i]!;
    if (c === 0) into[i - start] = 0;
    else if (c <= m) into[i - start] = 2 ** (lo + (c - 1) * step);
    else into[i - start] = -(2 ** (lo + (c - 1 - m) * step));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// error measure

/** Relative L2 error and max absolute error of a restored vector, accumulated in f64. */
export function quantizationError(original: Float32Array, restored: Float32Array): QuantizationError {
  if (original.length !== restored.length) {
    throw new UsageError(
      'USAGE',
      `quantizationError: restored must have the original's length ${original.length}, got ${restored.length}`,
    );
  }
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  const n = original.length;
  for (let i = 0; i < n; i++) {
    const o = original[i]!;
    const d = o - restored[i]!;
    num += d * d;
    den += o * o;
    const a = Math.abs(d);
    if (a > maxAbs) maxAbs = a;
  }
  return { relL2: den === 0 ? 0 : Math.sqrt(num) / Math.sqrt(den), maxAbs };
}

// ---------------------------------------------------------------------------------------------------------------
// sparse

/**
 * Keep exactly k = round(density * numel) largest-magnitude entries (ties: lowest index first), by the radix
 * threshold of select.ts; indices ascending. density in [0, 1].
 */
export function sparsifyTopK(values: Float32Array, density: number): SparseVector {
  if (!(density >= 0 && density <= 1)) {
    throw new UsageError('USAGE', `sparsifyTopK: density must be a number in [0, 1], got ${density}`);
  }
  const numel = values.length;
  if (numel > MAX_U32_NUMEL) {
    throw new UsageError('USAGE', `sparsifyTopK: numel must be at most ${MAX_U32_NUMEL} (u32 indices), got ${numel}`);
  }
  assertFinite(values, 'sparsifyTopK');
  const k = Math.min(numel, Math.round(density * numel));
  const indices = new Uint32Array(k);
  const kept = new Float32Array(k);
  if (k === 0) return { numel, indices, values: kept };
  const t = topKMagnitude(values, k);
  if (t.all) {
    for (let i = 0; i < numel; i++) indices[i] = i;
    kept.set(values);
    return { numel, indices, values: kept };
  }
  // the keep rule of applyMagnitudeMaskInto, collecting positions instead of masking
  const u = new Uint32Array(values.buffer, values.byteOffset, numel);
  const bits = t.bits;
  let ties = t.ties;
  let p = 0;
  for (let i = 0; i < numel && p < k; i++) {
    const a = u[i]! & ABS;
    if (a > bits || (a === bits && ties-- > 0)) {
      indices[p] = i;
      kept[p] = values[i]!;
      p++;
    }
  }
  if (p !== k) throw new Error(`sparsifyTopK: kept ${p} entries, expected ${k}`);
  return { numel, indices, values: kept };
}

/** First position p with indices[p] >= target (indices ascending). */
function lowerBound(indices: Uint32Array, target: number): number {
  let a = 0;
  let b = indices.length;
  while (a < b) {
    const mid = (a + b) >>> 1;
    if (indices[mid]! < target) a = mid + 1;
    else b = mid;
  }
  return a;
}

/** Dense elements [start, end) (zeros where nothing is stored) into into[0 .. end - start); O(log nnz + range). */
export function densifyRangeInto(s: SparseVector, start: number, end: number, into: Float32Array): void {
  assertRange(start, end, s.numel, into, 'densifyRangeInto');
  into.fill(0, 0, end - start);
  const indices = s.indices;
  const vals = s.values;
  const nnz = indices.length;
  for (let p = lowerBound(indices, start); p < nnz; p++) {
    const i = indices[p]!;
    if (i >= end) break;
    into[i - start] = vals[p]!;
  }
}
