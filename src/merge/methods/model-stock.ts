// model_stock (mergekit `model_stock`): interpolate between the base and the average of the fine-tuned models with
// t from the mean pairwise cosine of their deltas, per tensor (one f64 Gram statistics pass, elementwise emit) or
// per last-axis vector (filter_wise: inside whole-row chunks). Every chunking gives identical bits. Pure.

import { NATIVE_STOCK, nativeKernels } from '../../tensor/native-kernels.js';
import type { Bf16Input, Chunk, MergeMethod, TensorContext, TensorMerger, WholeBf16Writer } from '../types.js';
import { EMPTY_MERGER, accumulateGram, assertWholeVectors, copyMerger, lastAxisLength, nativeGramWhole, tensorError, warnNotFinite } from './geo-util.js';

/**
 * t = N·c/(1+(N−1)·c) with c the mean over pairs i<j of ⟨d_i,d_j⟩/max(‖d_i‖‖d_j‖, 1e-6) clamped to [−1, 1], from
 * the upper triangle of the Gram matrix of the deltas (row-major n x n).
 */
export function modelStockT(gram: Float64Array, n: number): { t: number; cos: number } {
  let sum = 0;
  let pairs = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const normProduct = Math.sqrt(gram[i * n + i]!) * Math.sqrt(gram[j * n + j]!);
      sum += Math.min(1, Math.max(-1, gram[i * n + j]! / Math.max(normProduct, 1e-6)));
      pairs++;
    }
  }
  const cos = sum / pairs;
  return { t: (n * cos) / (1 + (n - 1) * cos), cos };
}

/** out[k] = t·mean_i(x_i[k]) + (1−t)·base[k] over [start, end), in f64, rounded once. */
function stockInto(out: Float32Array, base: Float32Array, xs: readonly Float32Array[], t: number, start: number, end: number): void {
  const n = xs.length;
  const u = 1 - t;
  for (let k = start; k < end; k++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += xs[i]![k]!;
    out[k] = t * (s / n) + u * base[k]!;
  }
}

/** |1 + (N−1)·c| below this makes t explode (|t| ≳ 10^6): refused instead of writing a meaningless tensor */
const DENOMINATOR_MIN = 1e-6;

function checkT(ctx: TensorContext, n: number, cos: number, where: string): void {
  if (Math.abs(1 + (n - 1) * cos) < DENOMINATOR_MIN) {
    throw tensorError(
      ctx,
      `model_stock: the mean pairwise cosine of the deltas${where} is ${cos}, so t = N·c/(1+(N−1)·c) divides by (almost) zero (the fine-tuned models pull in opposite directions)`,
    );
  }
}

function createModelStock(ctx: TensorContext): TensorMerger {
  if (ctx.numel === 0) return EMPTY_MERGER;
  if (ctx.hasBase && ctx.modelCount === 0) return copyMerger('base'); // mergekit: only the base present
  const n = ctx.modelCount;
  if (!ctx.hasBase || n < 2) {
    throw tensorError(ctx, `model_stock needs the base plus at least 2 other models (got ${ctx.hasBase ? 'a base and ' : 'no base and '}${n})`);
  }
  const gram = new Float64Array(n * n);
  const len = lastAxisLength(ctx.shape);
  if (ctx.params['filter_wise'] === true && len !== ctx.numel) {
    return {
      chunking: 'rows',
      emit(chunk: Chunk, out: Float32Array): void {
        assertWholeVectors(ctx, chunk, len);
        for (let s = 0; s < chunk.length; s += len) {
          gram.fill(0);
          accumulateGram(gram, chunk.models, chunk.base, s, s + len);
          const { t, cos } = modelStockT(gram, n);
          checkT(ctx, n, cos, ` in row ${(chunk.offset + s) / len}`);
          stockInto(out, chunk.base!, chunk.models, t, s, s + len);
        }
      },
    };
  }
  let t = NaN;
  let cos = NaN;
  let ready = false;
  /** BF16 tensors on the native kernel: the Gram sums (the same order), t here, then the result */
  const wholeBf16 = (inputs: readonly Bf16Input[], numel: number, release: boolean, formats: number): WholeBf16Writer | undefined =>
    inputs.length !== n + 1
      ? undefined
      : nativeGramWhole(NATIVE_STOCK, inputs, numel, release, formats, (a) => {
          gram.set(a.subarray(80, 80 + n * n));
          ({ t, cos } = modelStockT(gram, n));
          checkT(ctx, n, cos, '');
          // a NaN t (NaN or infinite weights): the JS path, whose NaN payloads the kernel does not reproduce
          if (!Number.isFinite(t)) return false;
          ready = true;
          a[76] = t;
          a[77] = 1 - t; // stockInto's u
          return true;
        });
  return {
    chunking: 'elements',
    ...(nativeKernels() !== undefined && n <= 8 ? { wholeBf16 } : {}),
    beginPass(pass: number): boolean {
      if (pass === 0) {
        gram.fill(0);
        ready = false;
        return true;
      }
      ({ t, cos } = modelStockT(gram, n));
      checkT(ctx, n, cos, '');
      if (!Number.isFinite(t)) warnNotFinite(ctx, "model_stock's interpolation ratio t");
      ready = true;
      return false;
    },
    observe(_pass, chunk: Chunk): void {
      accumulateGram(gram, chunk.models, chunk.base, 0, chunk.length);
    },
    emit(chunk: Chunk, out: Float32Array): void {
      if (!ready) throw tensorError(ctx, 'model_stock: emit before the statistics pass');
      stockInto(out, chunk.base!, chunk.models, t, 0, chunk.length);
    },
    report: () => ({ t, cos }),
  };
}

export const MODEL_STOCK: MergeMethod = {
  name: 'model_stock',
  base: 'required',
  minModels: 2,
  params: [
    {
      name: 'filter_wise',
      type: 'boolean',
      default: false,
      description: 'compute t per vector along the last axis (each row) instead of per tensor',
    },
  ],
  modelParams: [],
  summary: 'Average of the fine-tuned models pulled towards the base by t, derived from the angle between their deltas.',
  formula:
    'd_i = X_i − B (flattened, or per last-axis vector with filter_wise; a 1-D tensor is one vector); c = mean over ' +
    'pairs i<j of ⟨d_i,d_j⟩/max(‖d_i‖‖d_j‖, 1e-6), each clamped to [−1, 1]; with N fine-tuned models ' +
    't = N·c/(1+(N−1)·c); result = t·mean_i(X_i) + (1−t)·B. Orthogonal deltas give t = 0 (the base), identical ' +
    'deltas t = 1 (their average). No user weights.',
  reference: 'Jang, Yun, Han, "Model Stock: All we need is just a few fine-tuned models", ECCV 2024 (arXiv 2403.19522); mergekit merge_methods/model_stock.py.',
  differences:
    'Cosines from f64 Gram entries, result in f64 rounded once to f32 (mergekit: input dtype). A mean cosine within ' +
    '1e-6 of −1/(N−1) (|1+(N−1)c| < 1e-6, which makes t infinite or |t| ≳ 10^6) is an error naming the tensor (and ' +
    'row) instead of a NaN/inf or exploded tensor. ' +
    'filter_wise uses mergekit\'s last axis (dim −1), which is the whole row for 2-D weights.',
  create: createModelStock,
};
