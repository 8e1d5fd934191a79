// Chunked == unchunked, bit for bit, for every method over random data (chunk sizes 1, row-splitting sizes and
// whole rows), and seeded determinism for the random methods (same seed same bytes, other seed other bytes).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { GTA_METHODS } from '../../src/merge/methods/gta.js';
import { makeContext, resolveParams } from '../../src/merge/run.js';
import type { Chunk } from '../../src/merge/types.js';
import type { ParamValue } from '../../src/recipe/spec.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { bits, method, quantised, run } from './gta-helpers.js';

interface Case {
  readonly base: boolean;
  readonly models: number;
  readonly params?: Record<string, ParamValue>;
  readonly every?: Record<string, ParamValue>;
  readonly weights?: readonly number[];
}

const W3 = [1, 0.5, -0.25];
const CASES: Record<string, Case> = {
  task_arithmetic: { base: true, models: 3, weights: W3, params: { normalize: true, lambda: 0.7 } },
  ties: { base: true, models: 3, weights: W3, every: { density: 0.3 }, params: { rescale: true } },
  dare_linear: { base: true, models: 3, weights: W3, every: { density: 0.4 } },
  dare_ties: { base: true, models: 3, weights: W3, every: { density: 0.4 } },
  breadcrumbs: { base: true, models: 3, weights: W3, every: { density: 0.5, gamma: 0.1 }, params: { rescale: true } },
  breadcrumbs_ties: { base: true, models: 3, weights: W3, every: { density: 0.6, gamma: 0.05 } },
  della: { base: true, models: 3, weights: W3, every: { density: 0.5, epsilon: 0.2 } },
  della_linear: { base: true, models: 3, weights: W3, every: { density: 0.4, epsilon: 0.3 } },
  sce: { base: true, models: 3, params: { select_topk: 0.4 } },
  ram: { base: true, models: 3 },
  ramplus_tl: { base: true, models: 3, params: { r: 0.3, alpha: 0.9 } },
  linear: { base: false, models: 3, weights: [0.2, 0.3, 0.5] },
  passthrough: { base: false, models: 1, every: { scale: 0.3 } },
  nearswap: { base: true, models: 1, params: { t: 0.5 } },
  negmerge: { base: true, models: 3, params: { lambda: 0.8 } },
};

/** Inputs where some elements equal the base (zero deltas) and magnitudes tie often. */
function inputs(seed: number, n: number, c: Case): { base: Float32Array | undefined; models: Float32Array[] } {
  const r = new SeededRandom(seed);
  const base = quantised(r, n, 64);
  const models = Array.from({ length: c.models }, () => {
    const x = quantised(r, n, 64);
    for (let i = 0; i < n; i++) {
      if (r.next() < 0.15) x[i] = base[i]!;
      else if (r.next() < 0.2) x[i] = base[i]! + (r.next() < 0.5 ? 0.25 : -0.25);
    }
    return x;
  });
  return { base: c.base ? base : undefined, models };
}

function merge(name: string, seed: number, shape: number[], chunkElements?: number, mseed = 0): Float32Array {
  const c = CASES[name]!;
  const n = shape.reduce((a, b) => a * b, 1);
  const { base, models } = inputs(seed, n, c);
  return run(name, base, models, {
    ...(c.weights ? { weights: c.weights } : {}),
    ...(c.every ? { every: c.every } : {}),
    ...(c.params ? { params: c.params } : {}),
    shape,
    seed: mseed,
    name: 'layers.0.mlp.weight',
    ...(chunkElements !== undefined ? { chunkElements } : {}),
  });
}

describe('chunked == unchunked, bit for bit', () => {
  it('covers every method', () => {
    expect(Object.keys(CASES).sort()).toEqual(GTA_METHODS.map((m) => m.name).sort());
  });
  for (const name of Object.keys(CASES)) {
    it(name, () => {
      for (const shape of [[13, 11], [5, 4, 6], [97]]) {
        const whole = bits(merge(name, 1, shape));
        for (const chunk of [1, 7, 11, 30, 64]) {
          expect(bits(merge(name, 1, shape, chunk)), `${name} ${shape.join('x')} chunk ${chunk}`).toEqual(whole);
        }
      }
    });
  }
  it('property: ties and breadcrumbs_ties at random chunk sizes over random data', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 120 }), fc.integer({ min: 1, max: 40 }), (seed, n, chunk) => {
        for (const name of ['ties', 'breadcrumbs_ties', 'sce']) {
          expect(bits(merge(name, seed, [n], chunk))).toEqual(bits(merge(name, seed, [n])));
        }
      }),
      { numRuns: 60 },
    );
  });
});

/** Drive a merger by hand with irregular chunk boundaries (an executor may cut at shard or row-group edges). */
function mergeIrregular(name: string, seed: number, shape: number[], cuts: readonly number[]): Float32Array {
  const c = CASES[name]!;
  const m = method(name);
  const n = shape.reduce((a, b) => a * b, 1);
  const { base, models } = inputs(seed, n, c);
  const params = resolveParams(m.params, c.params ?? {}, name);
  const withWeights = models.map((_, i) =>
    resolveParams(m.modelParams, { ...(c.every ?? {}), ...(c.weights ? { weight: c.weights[i]! } : {}) }, name),
  );
  const ctx = makeContext(m, { name: 'layers.0.mlp.weight', shape, hasBase: base !== undefined, params, modelParams: withWeights, seed: 0 });
  const merger = m.create(ctx);
  const rowLength = ctx.rowLength;
  const unit = merger.chunking === 'elements' ? 1 : merger.chunking === 'rows' ? rowLength : n;
  const bounds: number[] = [0];
  for (let k = 0; bounds[bounds.length - 1]! < n; k++) bounds.push(Math.min(n, bounds[bounds.length - 1]! + cuts[k % cuts.length]! * unit));
  const chunk = (o: number, e: number): Chunk => ({ offset: o, length: e - o, base: base?.subarray(o, e), models: models.map((x) => x.subarray(o, e)) });
  if (merger.beginPass && merger.observe) {
    for (let p = 0; merger.beginPass(p); p++) for (let k = 0; k + 1 < bounds.length; k++) merger.observe(p, chunk(bounds[k]!, bounds[k + 1]!));
  }
  const out = new Float32Array(n);
  for (let k = 0; k + 1 < bounds.length; k++) merger.emit(chunk(bounds[k]!, bounds[k + 1]!), out.subarray(bounds[k]!, bounds[k + 1]!));
  return out;
}

describe('irregular chunk sequences (sizes that shrink and grow) == whole', () => {
  for (const name of Object.keys(CASES)) {
    it(name, () => {
      const whole = bits(merge(name, 5, [12, 10]));
      expect(bits(mergeIrregular(name, 5, [12, 10], [37, 1, 5, 64, 2]))).toEqual(whole);
      expect(bits(mergeIrregular(name, 5, [12, 10], [3, 2, 1]))).toEqual(whole);
    });
  }
});

describe('random methods are seeded', () => {
  for (const name of ['dare_linear', 'dare_ties', 'della', 'della_linear']) {
    it(name, () => {
      const a = bits(merge(name, 3, [16, 16], undefined, 42));
      expect(bits(merge(name, 3, [16, 16], 32, 42))).toEqual(a);
      expect(bits(merge(name, 3, [16, 16], undefined, 43))).not.toEqual(a);
    });
  }
  it('dare_linear and dare_ties draw the same masks for one seed', () => {
    // one model: the vote keeps every surviving entry, so both are B + the same masked, rescaled delta
    const r = new SeededRandom(8);
    const base = quantised(r, 300);
    const x = quantised(r, 300);
    const a = run('dare_linear', base, [x], { weights: [1], every: { density: 0.3 }, seed: 77 });
    const b = run('dare_ties', base, [x], { weights: [1], every: { density: 0.3 }, seed: 77 });
    expect(bits(b)).toEqual(bits(a));
  });
  it('the mask depends on the tensor name and model index, not on the other models', () => {
    // the same δ as model 0 and model 1 draws different masks; model 0's mask is unchanged by a third model
    const r = new SeededRandom(9);
    const n = 200;
    const base = new Float32Array(n);
    const x = quantised(r, n);
    for (let i = 0; i < n; i++) if (x[i] === 0) x[i] = 1;
    const one = run('dare_linear', base, [x, x], { weights: [1, 0], every: { density: 0.5 }, params: { rescale: false }, seed: 1 });
    const two = run('dare_linear', base, [x, x], { weights: [0, 1], every: { density: 0.5 }, params: { rescale: false }, seed: 1 });
    expect(bits(one)).not.toEqual(bits(two));
    const three = run('dare_linear', base, [x, x, x], { weights: [1, 0, 0], every: { density: 0.5 }, params: { rescale: false }, seed: 1 });
    expect(bits(three)).toEqual(bits(one));
    const renamed = run('dare_linear', base, [x, x], { weights: [1, 0], every: { density: 0.5 }, params: { rescale: false }, seed: 1, name: 'other' });
    expect(bits(renamed)).not.toEqual(bits(one));
  });
});
