import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import type { ParamValue } from '../../src/recipe/spec.js';
import { ARCEE_FUSION, GEOMETRIC_METHODS, KARCHER, MODEL_STOCK, MULTISLERP, NUSLERP, SLERP } from '../../src/merge/methods/geometric.js';
import { makeContext, mergeTensors, resolveParams } from '../../src/merge/run.js';
import type { MergeMethod } from '../../src/merge/types.js';
import { SeededRandom } from '../../src/tensor/rng.js';

function randn(r: SeededRandom, n: number, scale = 1): Float32Array {
  return Float32Array.from({ length: n }, () => r.normal() * scale);
}

const bits = (x: Float32Array): Uint32Array => new Uint32Array(x.buffer, x.byteOffset, x.length);

interface Case {
  label: string;
  method: MergeMethod;
  shape: number[];
  models: number;
  base: boolean;
  params?: Record<string, ParamValue>;
  modelParams?: Record<string, ParamValue>[];
  chunking: 'elements' | 'rows';
}

const W3 = [{ weight: 0.2 }, { weight: 0.5 }, { weight: 0.3 }];
const CASES: Case[] = [
  { label: 'slerp', method: SLERP, shape: [7, 13], models: 1, base: true, params: { t: 0.35 }, chunking: 'elements' },
  { label: 'slerp near-colinear (lerp branch)', method: SLERP, shape: [91], models: 1, base: true, params: { t: 0.6 }, chunking: 'elements' },
  { label: 'nuslerp flattened', method: NUSLERP, shape: [7, 13], models: 2, base: false, modelParams: [{ weight: 1 }, { weight: 2 }], chunking: 'elements' },
  { label: 'nuslerp flattened + base', method: NUSLERP, shape: [7, 13], models: 2, base: true, modelParams: [{ weight: 1 }, { weight: 2 }], chunking: 'elements' },
  {
    label: 'nuslerp rows (last axis)',
    method: NUSLERP,
    shape: [3, 4, 5],
    models: 2,
    base: true,
    params: { nuslerp_flatten: false },
    modelParams: [{ weight: 1 }, { weight: 3 }],
    chunking: 'rows',
  },
  {
    label: 'nuslerp columns (axis 0)',
    method: NUSLERP,
    shape: [7, 13],
    models: 2,
    base: false,
    params: { nuslerp_flatten: false, nuslerp_row_wise: true },
    modelParams: [{ weight: 1 }, { weight: 3 }],
    chunking: 'elements',
  },
  { label: 'multislerp', method: MULTISLERP, shape: [7, 13], models: 3, base: false, modelParams: W3, chunking: 'elements' },
  { label: 'multislerp + base', method: MULTISLERP, shape: [7, 13], models: 3, base: true, modelParams: W3, chunking: 'elements' },
  { label: 'karcher', method: KARCHER, shape: [7, 13], models: 4, base: false, chunking: 'elements' },
  { label: 'model_stock', method: MODEL_STOCK, shape: [7, 13], models: 3, base: true, chunking: 'elements' },
  { label: 'model_stock filter_wise', method: MODEL_STOCK, shape: [7, 13], models: 3, base: true, params: { filter_wise: true }, chunking: 'rows' },
  { label: 'arcee_fusion rows', method: ARCEE_FUSION, shape: [7, 13], models: 1, base: true, chunking: 'rows' },
  { label: 'arcee_fusion rank 3', method: ARCEE_FUSION, shape: [3, 4, 5], models: 1, base: true, chunking: 'rows' },
  { label: 'arcee_fusion one vector', method: ARCEE_FUSION, shape: [91], models: 1, base: true, chunking: 'elements' },
];

function inputsFor(c: Case, seed: number): { base?: Float32Array; models: Float32Array[] } {
  const r = new SeededRandom(seed);
  const n = c.shape.reduce((a, b) => a * b, 1);
  const base = randn(r, n);
  const common = randn(r, n, 0.3);
  const nearColinear = c.label.includes('colinear');
  const models = Array.from({ length: c.models }, () =>
    nearColinear
      ? Float32Array.from(base, (v) => v * 1.01 + r.normal() * 1e-3)
      : Float32Array.from(randn(r, n, 0.2), (v, k) => base[k]! + common[k]! + v * (r.next() < 0.1 ? 10 : 1)),
  );
  return c.base ? { base, models } : { models: [base, ...models].slice(0, c.models) };
}

/**
 * Run the chunk protocol by hand over an arbitrary partition (uneven chunk lengths, in order). Returns the output
 * and the merger's report (its f64 statistics: a chunking-dependent summation order would show there even when the
 * f32 output happens to round the same).
 */
function runPartition(c: Case, inputs: { base?: Float32Array; models: Float32Array[] }, cuts: number[]): { out: Float32Array; report: Record<string, number> | undefined } {
  const n = c.shape.reduce((a, b) => a * b, 1);
  const params = resolveParams(c.method.params, c.params ?? {}, c.label);
  const modelParams = inputs.models.map((_, i) => resolveParams(c.method.modelParams, c.modelParams?.[i] ?? {}, c.label));
  const ctx = makeContext(c.method, { name: 'w', shape: c.shape, hasBase: inputs.base !== undefined, params, modelParams, seed: 0 });
  const m = c.method.create(ctx);
  expect(m.chunking).toBe(c.chunking);
  const bounds = [0, ...cuts, n];
  const chunkAt = (o: number, e: number) => ({
    offset: o,
    length: e - o,
    base: inputs.base?.subarray(o, e),
    models: inputs.models.map((x) => x.subarray(o, e)),
  });
  if (m.beginPass && m.observe) {
    for (let p = 0; m.beginPass(p); p++) for (let i = 0; i + 1 < bounds.length; i++) m.observe(p, chunkAt(bounds[i]!, bounds[i + 1]!));
  }
  const out = new Float32Array(n);
  for (let i = 0; i + 1 < bounds.length; i++) m.emit(chunkAt(bounds[i]!, bounds[i + 1]!), out.subarray(bounds[i]!, bounds[i + 1]!));
  return { out, report: m.report?.() };
}

/** Random increasing cut points; multiples of `unit` only. */
function randomCuts(r: SeededRandom, n: number, unit: number): number[] {
  const cuts: number[] = [];
  for (let o = unit * (1 + r.int(3)); o < n; o += unit * (1 + r.int(4))) cuts.push(o);
  return cuts;
}

describe('geometric methods: chunked == unchunked, bit-exact', () => {
  for (const c of CASES) {
    it(c.label, () => {
      const n = c.shape.reduce((a, b) => a * b, 1);
      const rowLength = c.shape.length <= 1 ? 1 : n / c.shape[0]!;
      for (const seed of [1, 2, 3]) {
        const inputs = inputsFor(c, seed);
        const opts = { params: c.params ?? {}, ...(c.modelParams ? { modelParams: c.modelParams } : {}), shape: c.shape };
        const whole = mergeTensors(c.method, inputs, opts);
        expect(whole.some((v) => !Number.isFinite(v))).toBe(false);
        // fixed sizes through the runner (it rounds 'rows' mergers down to whole rows)
        for (const size of [1, 2, 5, rowLength - 1, rowLength, rowLength + 1, 2 * rowLength + 3, n - 1]) {
          if (size < 1) continue;
          expect(bits(mergeTensors(c.method, inputs, { ...opts, chunkElements: size }))).toEqual(bits(whole));
        }
        // uneven partitions through the raw protocol
        const r = new SeededRandom(seed * 97);
        const unit = c.chunking === 'rows' ? rowLength : 1;
        const ref = runPartition(c, inputs, []);
        expect(bits(ref.out)).toEqual(bits(whole));
        for (const cuts of [[...Array(n - 1).keys()].map((k) => k + 1).filter((k) => k % unit === 0), ...[0, 1, 2, 3].map(() => randomCuts(r, n, unit))]) {
          const got = runPartition(c, inputs, cuts);
          expect(bits(got.out)).toEqual(bits(whole));
          expect(got.report).toEqual(ref.report);
        }
      }
    });
  }

  it('re-running the statistics passes on the same merger gives the same result (state reset in beginPass)', () => {
    for (const c of CASES) {
      const inputs = inputsFor(c, 9);
      const n = c.shape.reduce((a, b) => a * b, 1);
      const params = resolveParams(c.method.params, c.params ?? {}, c.label);
      const modelParams = inputs.models.map((_, i) => resolveParams(c.method.modelParams, c.modelParams?.[i] ?? {}, c.label));
      const ctx = makeContext(c.method, { name: 'w', shape: c.shape, hasBase: inputs.base !== undefined, params, modelParams, seed: 0 });
      const m = c.method.create(ctx);
      const chunk = { offset: 0, length: n, base: inputs.base, models: inputs.models };
      const once = (): Float32Array => {
        if (m.beginPass && m.observe) for (let p = 0; m.beginPass(p); p++) m.observe(p, chunk);
        const out = new Float32Array(n);
        m.emit(chunk, out);
        return out;
      };
      expect(bits(once())).toEqual(bits(once()));
    }
  });

  it('every method handles an empty tensor', () => {
    for (const c of CASES) {
      const models = Array.from({ length: c.models }, () => new Float32Array(0));
      const inputs = c.base ? { base: new Float32Array(0), models } : { models };
      const out = mergeTensors(c.method, inputs, { params: c.params ?? {}, ...(c.modelParams ? { modelParams: c.modelParams } : {}), shape: [0, 4] });
      expect(out.length).toBe(0);
    }
  });

  it('GEOMETRIC_METHODS lists every method once, with mergekit names and documentation', () => {
    expect(GEOMETRIC_METHODS.map((m) => m.name)).toEqual(['slerp', 'nuslerp', 'multislerp', 'karcher', 'model_stock', 'arcee_fusion']);
    for (const m of GEOMETRIC_METHODS) {
      expect(m.summary.length).toBeGreaterThan(20);
      expect(m.formula.length).toBeGreaterThan(100);
      expect(m.reference).toMatch(/mergekit/);
      expect(m.differences?.length ?? 0).toBeGreaterThan(20);
    }
  });

  it('a lone input is returned as is (mergekit: an optional weight present in one model only)', () => {
    const x = Float32Array.from([1.5, -2, 3]);
    const lone = (method: MergeMethod, hasBase: boolean, params: Record<string, ParamValue> = {}): Float32Array => {
      const p = resolveParams(method.params, params, method.name);
      const modelParams = hasBase ? [] : [resolveParams(method.modelParams, method.modelParams.length ? { weight: 1 } : {}, method.name)];
      const m = method.create(makeContext(method, { name: 'w', shape: [3], hasBase, params: p, modelParams, seed: 0 }));
      const chunk = { offset: 0, length: 3, base: hasBase ? x : undefined, models: hasBase ? [] : [x] };
      if (m.beginPass && m.observe) for (let q = 0; m.beginPass(q); q++) m.observe(q, chunk);
      const out = new Float32Array(3);
      m.emit(chunk, out);
      return out;
    };
    expect(lone(SLERP, true, { t: 0.5 })).toEqual(x);
    expect(lone(NUSLERP, false)).toEqual(x);
    expect(lone(MULTISLERP, false)).toEqual(x);
    expect(lone(KARCHER, false)).toEqual(x);
    expect(lone(MODEL_STOCK, true)).toEqual(x);
    expect(lone(ARCEE_FUSION, true)).toEqual(x);
  });

  it('a row-chunked merger refuses a chunk that splits a vector, naming the tensor', () => {
    const method = NUSLERP;
    const params = resolveParams(method.params, { nuslerp_flatten: false }, 'nuslerp');
    const modelParams = [{ weight: 1 }, { weight: 1 }];
    const m = method.create(makeContext(method, { name: 'w.rows', shape: [2, 4], hasBase: false, params, modelParams, seed: 0 }));
    expect(m.chunking).toBe('rows');
    const part = new Float32Array(6);
    try {
      m.emit({ offset: 0, length: 6, base: undefined, models: [part, part] }, new Float32Array(6));
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      expect((e as UsageError).where.tensor).toBe('w.rows');
    }
  });

  it('identical inputs give that input, for every method (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: CASES.length - 1 }), fc.integer(), (ci, seed) => {
        const c = CASES[ci]!;
        const n = c.shape.reduce((a, b) => a * b, 1);
        const x = randn(new SeededRandom(seed), n);
        const models = Array.from({ length: c.models }, () => x);
        const inputs = c.base ? { base: x, models } : { models };
        const out = mergeTensors(c.method, inputs, { params: c.params ?? {}, ...(c.modelParams ? { modelParams: c.modelParams } : {}), shape: c.shape });
        let scale = 0;
        for (const v of x) scale = Math.max(scale, Math.abs(v));
        for (let k = 0; k < n; k++) expect(Math.abs(out[k]! - x[k]!)).toBeLessThanOrEqual(1e-6 * scale);
      }),
      { numRuns: 60 },
    );
  });
});
