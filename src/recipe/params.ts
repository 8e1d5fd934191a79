// Parameter resolution exactly as mergekit does it: scalars, gradients interpolated over a slice's layers
// (t in [0, 1]; pre- and post-layer tensors use t = 0, the first value), {filter, value} lists where the first
// matching entry wins, and precedence source/model -> slice -> top level -> default. Pure.

import type { ParamValue } from './spec.js';
import type { ParamNode, ParamsNode, Pos, ScalarOrGradient } from './types.js';

/** Value of a gradient list at t in [0, 1]: linear between evenly spaced knots; non-numbers step. */
export function evalGradient(values: readonly ParamValue[], t: number): ParamValue {
  const m = values.length;
  if (m === 1) return values[0]!;
  const tt = Math.min(1, Math.max(0, t));
  const s = tt * (m - 1);
  const i = Math.floor(s);
  if (typeof values[0] !== 'number') return values[Math.min(i, m - 1)]!;
  const f = s - i;
  const a = values[i] as number;
  const b = values[Math.min(i + 1, m - 1)] as number;
  return f === 0 ? a : (1 - f) * a + f * b;
}

function evalScalarOrGradient(v: ScalarOrGradient, t: number): ParamValue {
  return v.kind === 'scalar' ? v.value : evalGradient(v.values, t);
}

/** A resolved value and where it came from (for errors pointing at the recipe line). */
export interface ResolvedParam {
  readonly value: ParamValue;
  readonly pos: Pos;
}

/** Evaluate one setting for a tensor name at layer position t; undefined when no condition matches. */
export function evalParam(node: ParamNode, name: string, t: number): ResolvedParam | undefined {
  if (node.kind === 'conditional') {
    for (const c of node.conds) if (c.filter.test(name)) return { value: evalScalarOrGradient(c.value, t), pos: c.value.pos };
    return undefined;
  }
  return { value: evalScalarOrGradient(node, t), pos: node.pos };
}

/** First level (most specific first) that yields a value for `key`. */
export function lookupParam(levels: readonly ParamsNode[], key: string, name: string, t: number): ResolvedParam | undefined {
  for (const level of levels) {
    const entry = level.get(key);
    if (!entry) continue;
    const r = evalParam(entry.node, name, t);
    if (r !== undefined) return r;
  }
  return undefined;
}

/** Layer position of layer j in a slice of L layers: j/(L-1), or 1 for a one-layer slice (as mergekit). */
export function layerT(j: number, layers: number): number {
  return layers <= 1 ? 1 : j / (layers - 1);
}
