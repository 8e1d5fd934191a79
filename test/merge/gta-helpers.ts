// Shared helpers for the merge-method tests: method lookup, small runners, seeded quantised data.
import { GTA_METHODS } from '../../src/merge/methods/gta.js';
import { mergeTensors, type MergeTensorsOptions } from '../../src/merge/run.js';
import type { MergeMethod } from '../../src/merge/types.js';
import type { ParamValue } from '../../src/recipe/spec.js';
import { SeededRandom } from '../../src/tensor/rng.js';

export function method(name: string): MergeMethod {
  const m = GTA_METHODS.find((x) => x.name === name);
  if (!m) throw new Error(`no method ${name}`);
  return m;
}

export const f32 = (a: readonly number[]): Float32Array => Float32Array.from(a);

/** Run a method with a base; `weights` become per-model `weight` (merged with `modelParams`). */
export function run(
  name: string,
  base: readonly number[] | Float32Array | undefined,
  models: readonly (readonly number[] | Float32Array)[],
  opts: MergeTensorsOptions & { weights?: readonly number[]; every?: Record<string, ParamValue> } = {},
): Float32Array {
  const { weights, every, ...rest } = opts;
  const modelParams = models.map((_, i) => ({
    ...(weights ? { weight: weights[i]! } : {}),
    ...(every ?? {}),
    ...(opts.modelParams?.[i] ?? {}),
  }));
  return mergeTensors(
    method(name),
    { ...(base ? { base: base instanceof Float32Array ? base : f32(base) } : {}), models: models.map((m) => (m instanceof Float32Array ? m : f32(m))) },
    { ...rest, modelParams },
  );
}

/** Values k/64 with k in [-256, 256]: differences and small sums are exact in f32, and ties are common. */
export function quantised(r: SeededRandom, n: number, levels = 256): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (r.int(2 * levels + 1) - levels) / 64;
  return out;
}

/** Bit patterns, so -0/+0 and NaN payloads compare exactly. */
export function bits(x: Float32Array): Uint32Array {
  return new Uint32Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
}
