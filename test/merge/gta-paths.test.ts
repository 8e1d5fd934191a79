// The GTA engine has two implementations of each pass: the SIMD module (chunks of at most WASM_MAX_CHUNK
// elements) and the JS kernels (larger chunks, or no WebAssembly SIMD). A tensor merged as one big chunk takes the
// JS path, the same tensor in small chunks the wasm path: both must give the same bits, NaN/inf/-0 included.
import { describe, expect, it } from 'vitest';
import { WASM_MAX_CHUNK } from '../../src/merge/methods/gta-kernels.js';
import type { ParamValue } from '../../src/recipe/spec.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { bits, quantised, run } from './gta-helpers.js';

const W = [1, 0.5, -0.25];
const CASES: Record<string, { every?: Record<string, ParamValue>; params?: Record<string, ParamValue> }> = {
  task_arithmetic: { params: { normalize: true, lambda: 0.7 } },
  task_arithmetic_plain: {},
  ties: { every: { density: 0.3 } },
  ties_sum: { every: { density: 0.5 }, params: { disjoint: 'sum', rescale: true } },
  dare_linear: { every: { density: 0.4 } },
  dare_ties: { every: { density: 0.4 } },
  breadcrumbs: { every: { density: 0.5, gamma: 0.1 } },
  breadcrumbs_ties: { every: { density: 0.6, gamma: 0.05 } },
  della: { every: { density: 0.5, epsilon: 0.2 } },
  della_linear: { every: { density: 0.4, epsilon: 0.3 } },
};

function inputs(seed: number, n: number, special: boolean): { base: Float32Array; models: Float32Array[] } {
  const r = new SeededRandom(seed);
  const base = quantised(r, n, 64);
  const models = Array.from({ length: 3 }, (_, m) => {
    const x = quantised(r, n, 64);
    for (let i = 0; i < n; i++) {
      if (r.next() < 0.15) x[i] = base[i]!;
      else if (r.next() < 0.2) x[i] = base[i]! + (r.next() < 0.5 ? 0.25 : -0.25);
    }
    if (special) {
      x[10 + m] = NaN;
      x[100 + m] = Infinity;
      x[1000] = -Infinity;
      x[5000 + m] = -0;
    }
    return x;
  });
  return { base, models };
}

function merge(name: string, special: boolean, chunkElements: number): Float32Array {
  const c = CASES[name]!;
  const shape = [24, 1000]; // DELLA ranks 1000-element rows
  const { base, models } = inputs(7, 24000, special);
  return run(name.replace(/_plain$|_sum$/, ''), base, models, {
    weights: W,
    ...(c.every ? { every: c.every } : {}),
    ...(c.params ? { params: c.params } : {}),
    shape,
    seed: 3,
    name: 'layers.0.mlp.weight',
    chunkElements,
  });
}

describe('GTA: JS kernels (one big chunk) == SIMD module (small chunks), bit for bit', () => {
  for (const name of Object.keys(CASES)) {
    for (const special of [false, true]) {
      it(`${name}${special ? ' with NaN/inf/-0' : ''}`, () => {
        expect(24000).toBeGreaterThan(WASM_MAX_CHUNK);
        expect(bits(merge(name, special, 6000))).toEqual(bits(merge(name, special, 24000)));
      });
    }
  }
});
