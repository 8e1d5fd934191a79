// Plan-time parameter checks shared by methods (MethodSpec.checkParams).

import type { ParamProblem, TensorParams } from '../../recipe/spec.js';

/**
 * With trim_scope: model, model i's density must be one value over the whole model (the pre-pass trims its whole
 * task vector at one density): the problem if this tensor's value differs from the first seen (MethodSpec.checkParams).
 */
export function oneDensityPerModel(t: TensorParams, i: number, d: number, state: Map<string, unknown>): ParamProblem | undefined {
  const key = `trim_scope density ${t.models[i]}`;
  const first = state.get(key) as { d: number; tensor: string } | undefined;
  if (first === undefined) state.set(key, { d, tensor: t.tensor });
  else if (first.d !== d) {
    return { param: 'density', model: i, code: 'RECIPE_PARAM_SCOPE', message: `with trim_scope: model a model's density must be one value for the whole model (${d} here, ${first.d} for tensor '${first.tensor}')` };
  }
  return undefined;
}
