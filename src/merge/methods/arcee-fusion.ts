// arcee_fusion (mergekit `arcee_fusion`): keep the other model's delta only where its importance |δ|·KL(row) is an
// outlier (≥ median + 1.5·IQR). Row KLs come from whole-row chunks (or streaming softmax passes for a single-vector
// tensor); the quantiles are exact, by a two-pass radix histogram over the scores' f32 bits. Chunking-independent.

import type { Chunk, MergeMethod, TensorContext, TensorMerger } from '../types.js';
import { EMPTY_MERGER, QuantileSelector, assertWholeVectors, copyMerger, lastAxisLength, tensorError } from './geo-util.js';

/** added to both softmax probabilities, as in mergekit */
const PROB_EPS = 1e-8;

/** KL(softmax(x) + 1e-8 ‖ softmax(b) + 1e-8) over elements [s, e), in f64 (two-pass stable softmax). */
export function rowKl(x: Float32Array, b: Float32Array, s: number, e: number): number {
  let mx = -Infinity;
  let mb = -Infinity;
  for (let k = s; k < e; k++) {
    if (x[k]! > mx) mx = x[k]!;
    if (b[k]! > mb) mb = b[k]!;
  }
  let sx = 0;
  let sb = 0;
  for (let k = s; k < e; k++) {
    sx += Math.exp(x[k]! - mx);
    sb += Math.exp(b[k]! - mb);
  }
  let kl = 0;
  for (let k = s; k < e; k++) {
    const p = Math.exp(x[k]! - mx) / sx + PROB_EPS;
    const q = Math.exp(b[k]! - mb) / sb + PROB_EPS;
    kl += p * Math.log(p / q);
  }
  return kl;
}

function createArceeFusion(ctx: TensorContext): TensorMerger {
  if (ctx.numel === 0) return EMPTY_MERGER;
  if (ctx.hasBase && ctx.modelCount === 0) return copyMerger('base'); // mergekit: a lone input is returned as is
  if (!ctx.hasBase && ctx.modelCount === 1) return copyMerger(0);
  if (!ctx.hasBase || ctx.modelCount !== 1) {
    throw tensorError(ctx, `arcee_fusion needs the base and exactly one other model (got ${ctx.hasBase ? 'a base and ' : 'no base and '}${ctx.modelCount} other(s))`);
  }
  const numel = ctx.numel;
  const len = lastAxisLength(ctx.shape);
  // one vector (0-d/1-D tensors): softmax statistics need their own streaming passes; otherwise whole-row chunks
  const single = len === numel;
  const klPasses = single ? 2 : 0;
  const kl = new Float64Array(numel / len);
  const selector = new QuantileSelector([0.25, 0.5, 0.75].map((q) => Math.floor(q * (numel - 1))));
  let scores = new Float32Array(0);
  let scoreBits = new Uint32Array(0);
  // single-vector streaming softmax state (online max/sum, then the KL sum)
  let mx = -Infinity;
  let sx = 0;
  let mb = -Infinity;
  let sb = 0;
  let klSum = 0;
  let q1 = NaN;
  let median = NaN;
  let q3 = NaN;
  let threshold = NaN;
  let ready = false;
  let kept = 0;

  /** scores[k] = f32(|x−b|·KL(row of k)) for the chunk; returns the f32 scores. */
  const scoreChunk = (chunk: Chunk): Float32Array => {
    const n = chunk.length;
    if (scores.length < n) {
      scores = new Float32Array(n);
      scoreBits = new Uint32Array(scores.buffer);
    }
    const x = chunk.models[0]!;
    const b = chunk.base!;
    let row = Math.floor(chunk.offset / len);
    let pos = chunk.offset - row * len;
    let w = kl[row]!;
    for (let k = 0; k < n; k++) {
      scores[k] = Math.abs(x[k]! - b[k]!) * w;
      if (++pos === len && k + 1 < n) {
        pos = 0;
        w = kl[++row]!;
      }
    }
    return scores;
  };

  return {
    chunking: single ? 'elements' : 'rows',
    beginPass(pass: number): boolean {
      if (pass === 0) {
        selector.reset();
        mx = -Infinity;
        sx = 0;
        mb = -Infinity;
        sb = 0;
        klSum = 0;
        ready = false;
        return true;
      }
      if (single && pass === 1) return true; // KL pass
      if (single && pass === 2) {
        kl[0] = klSum;
        return true; // high-bits pass
      }
      if (pass === klPasses + 1) {
        selector.resolveHigh();
        return true; // low-bits pass
      }
      [q1, median, q3] = selector.values() as [number, number, number];
      // f32 arithmetic, as torch does on the f32 quantile values
      threshold = Math.fround(median + Math.fround(1.5 * Math.fround(q3 - q1)));
      ready = true;
      kept = 0;
      return false;
    },
    observe(pass: number, chunk: Chunk): void {
      const x = chunk.models[0]!;
      const b = chunk.base!;
      const n = chunk.length;
      if (single && pass === 0) {
        for (let k = 0; k < n; k++) {
          const xk = x[k]!;
          if (xk > mx) {
            sx = sx * Math.exp(mx - xk) + 1;
            mx = xk;
          } else sx += Math.exp(xk - mx);
          const bk = b[k]!;
          if (bk > mb) {
            sb = sb * Math.exp(mb - bk) + 1;
            mb = bk;
          } else sb += Math.exp(bk - mb);
        }
        return;
      }
      if (single && pass === 1) {
        let s = klSum;
        for (let k = 0; k < n; k++) {
          const p = Math.exp(x[k]! - mx) / sx + PROB_EPS;
          const q = Math.exp(b[k]! - mb) / sb + PROB_EPS;
          s += p * Math.log(p / q);
        }
        klSum = s;
        return;
      }
      if (pass === klPasses) {
        if (!single) {
          assertWholeVectors(ctx, chunk, len);
          const first = chunk.offset / len;
          for (let s = 0, r = first; s < n; s += len, r++) kl[r] = rowKl(x, b, s, s + len);
        }
        scoreChunk(chunk);
        selector.addHigh(scoreBits, n);
        return;
      }
      scoreChunk(chunk);
      selector.addLow(scoreBits, n);
    },
    emit(chunk: Chunk, out: Float32Array): void {
      if (!ready) throw tensorError(ctx, 'arcee_fusion: emit before the statistics passes');
      const s = scoreChunk(chunk);
      const x = chunk.models[0]!;
      const b = chunk.base!;
      const tau = threshold;
      let c = 0;
      for (let k = 0; k < chunk.length; k++) {
        if (s[k]! >= tau) {
          out[k] = x[k]!;
          c++;
        } else out[k] = b[k]!;
      }
      kept += c;
    },
    report: () => ({ q1, median, q3, threshold, kept, numel }),
  };
}

export const ARCEE_FUSION: MergeMethod = {
  name: 'arcee_fusion',
  base: 'required',
  minModels: 1,
  maxModels: 1,
  params: [],
  modelParams: [],
  scratchBytesPerElement: 4,
  summary: 'Keep the other model\'s changes only where their KL-weighted importance is an outlier (≥ median + 1.5·IQR).',
  formula:
    'δ = X − B. Treating each vector along the last axis (a row; a 1-D tensor is one vector) as logits, ' +
    'p = softmax(X) + 1e-8 and q = softmax(B) + 1e-8, KL_row = Σ p·log(p/q). Importance s = |δ|·KL_row (broadcast ' +
    'over the row). With Q1, median and Q3 the values at sorted index floor(q·(N−1)) of all N scores, ' +
    'τ = median + 1.5·(Q3 − Q1), and the result is B + [s ≥ τ]·δ (X where kept, B elsewhere). No parameters.',
  reference: 'Arcee AI, "Arcee Fusion" (arcee.ai, used for Arcee-Supernova); mergekit merge_methods/arcee_fusion.py.',
  differences:
    'Quantiles are exact over all N scores (a streaming two-pass radix histogram over the f32 bits of the scores), ' +
    'where mergekit sorts a random sample of 10^6 scores when N > 10^6, so this is deterministic and needs no seed. ' +
    'Softmax and KL are computed in f64 and each score is rounded once to f32 (mergekit: input dtype). Kept entries are ' +
    'X exactly (mergekit computes B + (X − B) in the input dtype, which can be off by an ulp).',
  create: createArceeFusion,
};
