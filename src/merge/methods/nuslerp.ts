// nuslerp (mergekit `nuslerp`): slerp of two models (or of their deltas from a base) with t from their weights, over
// the flattened tensor, each last-axis vector or each axis-0 vector. Flattened/column modes: one f64 statistics pass;
// row mode: inside whole-row chunks. Identical bits at any chunking. Pure: no node: imports.

import type { Chunk, MergeMethod, TensorContext, TensorMerger } from '../types.js';
import { EMPTY_MERGER, assertWholeVectors, copyMerger, deltaInto, lastAxisLength, linearInto, tensorError } from './geo-util.js';

/** norms are clamped to at least this before normalising */
const NORM_CLAMP = 1e-7;
/** |sin θ| below this counts as colinear (lerp) */
const SIN_EPS = 1e-8;

/** t = w2/(w1+w2), or 0.5 when |w1+w2| < 1e-6 (mergekit). */
export function nuslerpT(w1: number, w2: number): number {
  const s = w1 + w2;
  return Math.abs(s) < 1e-6 ? 0.5 : w2 / s;
}

/**
 * Coefficients of result = c0·v0 + c1·v1 from the Gram entries: û = v/max(‖v‖, 1e-7), θ = arccos(clamp(⟨û0,û1⟩)),
 * (sin((1−t)θ), sin(tθ))/sin θ, or the lerp (1−t, t) where |sin θ| < 1e-8. Written into coef[at], coef[at+1].
 */
export function nuslerpCoefficientsInto(t: number, g00: number, g11: number, g01: number, coef: Float64Array, at: number): void {
  const n0 = Math.max(Math.sqrt(g00), NORM_CLAMP);
  const n1 = Math.max(Math.sqrt(g11), NORM_CLAMP);
  const cos = g01 / (n0 * n1);
  const theta = Math.acos(Math.min(1, Math.max(-1, cos)));
  const sinTheta = Math.sin(theta);
  if (Math.abs(sinTheta) < SIN_EPS) {
    coef[at] = 1 - t;
    coef[at + 1] = t;
  } else {
    coef[at] = Math.sin((1 - t) * theta) / sinTheta;
    coef[at + 1] = Math.sin(t * theta) / sinTheta;
  }
}

/**
 * Flattened (period 1) or column-wise (period = row length) mode: element k belongs to vector k mod period.
 * One statistics pass fills 3 accumulators per vector, then the emit is elementwise.
 */
function periodicMerger(ctx: TensorContext, t: number, period: number): TensorMerger {
  const acc = new Float64Array(3 * period); // per vector: g00, g11, g01 (of deltas when there is a base)
  const coef = new Float64Array(2 * period);
  const pair = new Float64Array(2);
  let ready = false;
  return {
    chunking: 'elements',
    beginPass(pass: number): boolean {
      if (pass === 0) {
        acc.fill(0);
        ready = false;
        return true;
      }
      for (let v = 0; v < period; v++) nuslerpCoefficientsInto(t, acc[3 * v]!, acc[3 * v + 1]!, acc[3 * v + 2]!, coef, 2 * v);
      ready = true;
      return false;
    },
    observe(_pass, chunk: Chunk): void {
      const x0 = chunk.models[0]!;
      const x1 = chunk.models[1]!;
      const b = chunk.base;
      const n = chunk.length;
      if (period === 1) {
        let g00 = acc[0]!;
        let g11 = acc[1]!;
        let g01 = acc[2]!;
        if (b) {
          for (let k = 0; k < n; k++) {
            const d0 = x0[k]! - b[k]!;
            const d1 = x1[k]! - b[k]!;
            g00 += d0 * d0;
            g11 += d1 * d1;
            g01 += d0 * d1;
          }
        } else {
          for (let k = 0; k < n; k++) {
            const a0 = x0[k]!;
            const a1 = x1[k]!;
            g00 += a0 * a0;
            g11 += a1 * a1;
            g01 += a0 * a1;
          }
        }
        acc[0] = g00;
        acc[1] = g11;
        acc[2] = g01;
        return;
      }
      let col = chunk.offset % period;
      for (let k = 0; k < n; k++) {
        const bk = b ? b[k]! : 0;
        const d0 = x0[k]! - bk;
        const d1 = x1[k]! - bk;
        const o = 3 * col;
        acc[o] = acc[o]! + d0 * d0;
        acc[o + 1] = acc[o + 1]! + d1 * d1;
        acc[o + 2] = acc[o + 2]! + d0 * d1;
        if (++col === period) col = 0;
      }
    },
    emit(chunk: Chunk, out: Float32Array): void {
      if (!ready) throw tensorError(ctx, 'nuslerp: emit before the statistics pass');
      const n = chunk.length;
      if (period === 1) {
        pair[0] = coef[0]!;
        pair[1] = coef[1]!;
        if (chunk.base) deltaInto(out, chunk.base, chunk.models, pair, 0, n);
        else linearInto(out, undefined, 0, chunk.models, pair, 0, n);
        return;
      }
      const x0 = chunk.models[0]!;
      const x1 = chunk.models[1]!;
      const b = chunk.base;
      let col = chunk.offset % period;
      for (let k = 0; k < n; k++) {
        const c0 = coef[2 * col]!;
        const c1 = coef[2 * col + 1]!;
        if (b) {
          const bk = b[k]!;
          out[k] = bk + (c0 * (x0[k]! - bk) + c1 * (x1[k]! - bk));
        } else {
          out[k] = c0 * x0[k]! + c1 * x1[k]!;
        }
        if (++col === period) col = 0;
      }
    },
    report: (): Record<string, number> => (period === 1 ? { t, c0: coef[0]!, c1: coef[1]! } : { t, vectors: period }),
  };
}

/** Row mode: vectors along the last axis, each held whole by a 'rows' chunk; no statistics pass. */
function rowMerger(ctx: TensorContext, t: number, len: number): TensorMerger {
  const pair = new Float64Array(2);
  return {
    chunking: 'rows',
    emit(chunk: Chunk, out: Float32Array): void {
      assertWholeVectors(ctx, chunk, len);
      const x0 = chunk.models[0]!;
      const x1 = chunk.models[1]!;
      const b = chunk.base;
      for (let s = 0; s < chunk.length; s += len) {
        const e = s + len;
        let g00 = 0;
        let g11 = 0;
        let g01 = 0;
        for (let k = s; k < e; k++) {
          const bk = b ? b[k]! : 0;
          const d0 = x0[k]! - bk;
          const d1 = x1[k]! - bk;
          g00 += d0 * d0;
          g11 += d1 * d1;
          g01 += d0 * d1;
        }
        nuslerpCoefficientsInto(t, g00, g11, g01, pair, 0);
        if (b) deltaInto(out, b, chunk.models, pair, s, e);
        else linearInto(out, undefined, 0, chunk.models, pair, s, e);
      }
    },
    report: () => ({ t, vectors: ctx.numel / len }),
  };
}

function createNuslerp(ctx: TensorContext): TensorMerger {
  if (ctx.numel === 0) return EMPTY_MERGER;
  // mergekit: a lone input tensor is returned as is
  if (ctx.modelCount === 0 && ctx.hasBase) return copyMerger('base');
  if (ctx.modelCount === 1 && !ctx.hasBase) return copyMerger(0);
  if (ctx.modelCount !== 2) {
    throw tensorError(ctx, `nuslerp merges exactly two models (plus an optional base as a third); got ${ctx.modelCount}`);
  }
  const t = nuslerpT(ctx.modelParams[0]!['weight'] as number, ctx.modelParams[1]!['weight'] as number);
  const flatten = ctx.params['nuslerp_flatten'] !== false;
  const rowWise = ctx.params['nuslerp_row_wise'] === true;
  if (flatten) return periodicMerger(ctx, t, 1);
  if (rowWise) return periodicMerger(ctx, t, ctx.rowLength); // axis 0: one vector per position in a row
  const len = lastAxisLength(ctx.shape);
  return len === ctx.numel ? periodicMerger(ctx, t, 1) : rowMerger(ctx, t, len);
}

export const NUSLERP: MergeMethod = {
  name: 'nuslerp',
  base: 'optional',
  minModels: 2,
  maxModels: 2,
  params: [
    {
      name: 'nuslerp_flatten',
      type: 'boolean',
      default: true,
      description: 'slerp the whole flattened tensor as one vector (false: one slerp per row or column)',
    },
    {
      name: 'nuslerp_row_wise',
      type: 'boolean',
      default: false,
      description: 'with nuslerp_flatten false: true slerps vectors along axis 0 (columns), false along the last axis (rows)',
    },
  ],
  modelParams: [{ name: 'weight', type: 'number', required: true, description: 'relative weight; t = w2/(w1+w2)' }],
  summary: 'Slerp of two models (or of their deltas from a base) with t from the model weights; flattened, per row or per column.',
  formula:
    't = w2/(w1+w2) (0.5 if |w1+w2| < 1e-6). With a base B, v_k = X_k − B and the result is B + slerp(v0, v1); without ' +
    'one, v_k = X_k. For each vector (the flattened tensor; or, with nuslerp_flatten false, each vector along the last ' +
    'axis, or along axis 0 when nuslerp_row_wise is true): û_k = v_k/max(‖v_k‖, 1e-7), θ = arccos(clamp(⟨û0,û1⟩, −1, 1)), ' +
    'result = (sin((1−t)θ)·v0 + sin(tθ)·v1)/sin θ, or the lerp (1−t)·v0 + t·v1 where |sin θ| < 1e-8. There is no ' +
    '0.9995 threshold, and swapping the two models (with their weights) gives the same result.',
  reference: 'mergekit merge_methods/nuslerp.py (arcee-ai/mergekit), after Shoemake, SIGGRAPH 1985.',
  differences:
    'Computed in f64 (Gram entries and coefficients) with one rounding to f32, where mergekit computes in the input ' +
    'dtype (possibly bf16). The row/column choice follows mergekit\'s code (row_wise false = last axis), not its docs.',
  create: createNuslerp,
};
