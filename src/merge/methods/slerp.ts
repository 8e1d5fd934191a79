// slerp (mergekit `slerp`): spherical linear interpolation between the base and exactly one other model over the
// whole flattened tensor. One statistics pass accumulates ⟨v0,v0⟩, ⟨v1,v1⟩, ⟨v0,v1⟩ in f64 in element order; the
// emit is elementwise, so every chunking gives identical bits. Pure: no I/O, no node: imports.

import { NATIVE_SLERP, nativeKernels } from '../../tensor/native-kernels.js';
import type { Bf16Input, MergeMethod, TensorContext, TensorMerger, WholeBf16Writer } from '../types.js';
import { EMPTY_MERGER, accumulateGram, copyMerger, linearInto, nativeGramWhole, tensorError, warnNotFinite } from './geo-util.js';

/** mergekit's colinearity threshold on the cosine. */
const DOT_THRESHOLD = 0.9995;
/** vectors with norm <= this are left unnormalised */
const NORM_EPS = 1e-8;

/**
 * Coefficients (s0, s1) of result = s0·v0 + s1·v1 from the Gram entries, exactly as mergekit's numpy `slerp`:
 * unit vectors (norm <= 1e-8 left as is), dot = ⟨û0,û1⟩, lerp when |dot| > 0.9995, else
 * s0 = sin(θ − tθ)/sin θ and s1 = sin(tθ)/sin θ with θ = arccos(dot). `lerp` tells which branch was taken.
 */
export function slerpCoefficients(t: number, g00: number, g11: number, g01: number): { s0: number; s1: number; dot: number; lerp: boolean } {
  const n0 = Math.sqrt(g00);
  const n1 = Math.sqrt(g11);
  const dot = g01 / (n0 > NORM_EPS ? n0 : 1) / (n1 > NORM_EPS ? n1 : 1);
  if (Math.abs(dot) > DOT_THRESHOLD) return { s0: 1 - t, s1: t, dot, lerp: true };
  const theta0 = Math.acos(dot);
  const sinTheta0 = Math.sin(theta0);
  const thetaT = theta0 * t;
  return { s0: Math.sin(theta0 - thetaT) / sinTheta0, s1: Math.sin(thetaT) / sinTheta0, dot, lerp: false };
}

function createSlerp(ctx: TensorContext): TensorMerger {
  if (ctx.numel === 0) return EMPTY_MERGER;
  // mergekit: a lone input tensor (optional weight present in one model only) is returned as is
  if (ctx.hasBase && ctx.modelCount === 0) return copyMerger('base');
  if (!ctx.hasBase && ctx.modelCount === 1) return copyMerger(0);
  if (!ctx.hasBase || ctx.modelCount !== 1) {
    throw tensorError(ctx, `slerp needs the base and exactly one other model (got ${ctx.hasBase ? 'a base and ' : 'no base and '}${ctx.modelCount} other(s))`);
  }
  const t = ctx.params['t'] as number;
  const gram = new Float64Array(4); // [g00 g01; g10 g11] upper triangle over (v0 = base, v1 = model)
  const coef = new Float64Array(1);
  let s0 = NaN;
  let cos = NaN;
  let lerp = false;
  let ready = false;
  /** BF16 tensors on the native kernel: the Gram sums (the same order), the coefficients here, then the result */
  const wholeBf16 = (inputs: readonly Bf16Input[], numel: number, release: boolean, formats: number): WholeBf16Writer | undefined =>
    inputs.length !== 2
      ? undefined
      : nativeGramWhole(NATIVE_SLERP, inputs, numel, release, formats, (a) => {
          const c = slerpCoefficients(t, a[80]!, a[82]!, a[81]!);
          // NaN coefficients (NaN or infinite inputs): the JS path, whose NaN payloads the kernel does not reproduce
          if (!Number.isFinite(c.s0) || !Number.isFinite(c.s1)) return false;
          s0 = c.s0;
          coef[0] = c.s1;
          cos = c.dot;
          lerp = c.lerp;
          ready = true;
          a[79] = c.s0;
          a[10] = c.s1;
          return true;
        });
  return {
    chunking: 'elements',
    ...(nativeKernels() !== undefined ? { wholeBf16 } : {}),
    beginPass(pass: number): boolean {
      if (pass === 0) {
        gram.fill(0);
        ready = false;
        return true;
      }
      const c = slerpCoefficients(t, gram[0]!, gram[3]!, gram[1]!);
      if (!Number.isFinite(c.s0) || !Number.isFinite(c.s1)) warnNotFinite(ctx, "slerp's angle");
      s0 = c.s0;
      coef[0] = c.s1;
      cos = c.dot;
      lerp = c.lerp;
      ready = true;
      return false;
    },
    observe(_pass, chunk): void {
      accumulateGram(gram, [chunk.base!, chunk.models[0]!], undefined, 0, chunk.length);
    },
    emit(chunk, out): void {
      if (!ready) throw tensorError(ctx, 'slerp: emit before the statistics pass');
      linearInto(out, chunk.base!, s0, chunk.models, coef, 0, chunk.length);
    },
    report: () => ({ t, cos, lerp: lerp ? 1 : 0, s0, s1: coef[0]! }),
  };
}

export const SLERP: MergeMethod = {
  name: 'slerp',
  base: 'required',
  minModels: 1,
  maxModels: 1,
  params: [
    {
      name: 't',
      type: 'number',
      required: true,
      description: 'interpolation factor: 0 gives the base, 1 the other model (values outside [0, 1] extrapolate)',
    },
  ],
  modelParams: [],
  summary: 'Spherical linear interpolation between the base and one other model, over the whole flattened tensor.',
  formula:
    'With v0 = base and v1 = the other model, both flattened: û_k = v_k/‖v_k‖ (a vector with ‖v_k‖ ≤ 1e-8 is left ' +
    'unnormalised), c = ⟨û0,û1⟩; if |c| > 0.9995 the result is the lerp (1−t)·v0 + t·v1, otherwise θ = arccos c and ' +
    'the result is sin((1−t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1. The coefficients multiply the original (unnormalised) ' +
    'tensors, so norms are not interpolated separately; t = 0 gives the base and t = 1 the other model exactly.',
  reference:
    'Shoemake, "Animating rotation with quaternion curves", SIGGRAPH 1985; mergekit merge_methods/slerp.py (arcee-ai/mergekit).',
  differences:
    'Norms and the dot product are accumulated in f64 and the result is computed in f64 and rounded once to f32 ' +
    '(mergekit uses fp32 numpy throughout); the result is not cast back to the base dtype here (the executor ' +
    'converts to the output dtype).',
  create: createSlerp,
};
