// The generalized task arithmetic family against hand-computed values (expected numbers are derived in the
// comments, not by running the implementation), mergekit's edge cases, and identities.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { GTA_FAMILY, GTA_METHODS } from '../../src/merge/methods/gta.js';
import { drive, makeContext, mergeTensors, resolveParams } from '../../src/merge/run.js';
import type { Chunk, MergeMethod } from '../../src/merge/types.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { bits, f32, method, quantised, run } from './gta-helpers.js';

const fr = Math.fround;

function expectUsage(fn: () => unknown, code: string, tensor?: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(UsageError);
  expect((err as UsageError).code).toBe(code);
  if (tensor !== undefined) expect((err as UsageError).where.tensor).toBe(tensor);
}

describe('declarations', () => {
  it('lists every method once with mergekit names', () => {
    const names = GTA_METHODS.map((m) => m.name);
    expect(names).toEqual([
      'task_arithmetic', 'ties', 'dare_linear', 'dare_ties', 'breadcrumbs', 'breadcrumbs_ties', 'della', 'della_linear',
      'sce', 'ram', 'ramplus_tl', 'linear', 'passthrough', 'nearswap', 'negmerge',
    ]);
    for (const m of GTA_METHODS) {
      expect(m.summary.length).toBeGreaterThan(10);
      expect(m.formula.length).toBeGreaterThan(10);
      expect(m.reference.length).toBeGreaterThan(5);
    }
  });

  it('has mergekit defaults for normalize and rescale, and random only for dare/della', () => {
    const def = (m: MergeMethod, p: string) => m.params.find((x) => x.name === p)?.default;
    const table: Record<string, [boolean, boolean]> = {
      task_arithmetic: [false, false], ties: [true, false], dare_linear: [false, true], dare_ties: [false, true],
      breadcrumbs: [false, false], breadcrumbs_ties: [false, false], della: [true, true], della_linear: [false, true],
    };
    for (const m of GTA_FAMILY) {
      expect([def(m, 'normalize'), def(m, 'rescale')]).toEqual(table[m.name]);
      expect(def(m, 'lambda')).toBe(1);
      expect(m.modelParams.find((p) => p.name === 'weight')?.required).toBe(true);
      expect(m.modelParams.find((p) => p.name === 'density')?.default).toBe(1);
      expect(Boolean(m.random)).toBe(m.name.startsWith('dare') || m.name.startsWith('della'));
      expect(m.base).toBe('required');
    }
    expect(method('breadcrumbs').modelParams.find((p) => p.name === 'gamma')?.default).toBe(0.01);
    expect(method('della').modelParams.find((p) => p.name === 'epsilon')?.default).toBe(0.15);
    expect(method('ties').params.find((p) => p.name === 'trim_scope')?.default).toBe('tensor');
    expect(method('ties').params.find((p) => p.name === 'disjoint')?.default).toBeUndefined();
    expect(method('task_arithmetic').params.find((p) => p.name === 'disjoint')).toBeUndefined();
  });
});

describe('task_arithmetic', () => {
  // B = [1,2,3,4]; δ1 = [1,0,2,-4], δ2 = [-1,1,0,0]; w = [1, 0.5]
  // M = δ1 + 0.5·δ2 = [0.5, 0.5, 2, -4]
  const B = [1, 2, 3, 4];
  const X = [[2, 2, 5, 0], [0, 3, 3, 4]];
  it('adds weighted task vectors (normalize false by default)', () => {
    expect([...run('task_arithmetic', B, X, { weights: [1, 0.5] })]).toEqual([1.5, 2.5, 5, 0]);
  });
  it('lambda scales the sum', () => {
    // B + 0.5·M = [1.25, 2.25, 4, 2]
    expect([...run('task_arithmetic', B, X, { weights: [1, 0.5], params: { lambda: 0.5 } })]).toEqual([1.25, 2.25, 4, 2]);
  });
  it('normalize divides by the weight sum', () => {
    // M / 1.5 = [1/3, 1/3, 4/3, -8/3]; B + that
    const got = run('task_arithmetic', B, X, { weights: [1, 0.5], params: { normalize: true } });
    expect([...got]).toEqual([fr(1 + 0.5 / 1.5), fr(2 + 0.5 / 1.5), fr(3 + 2 / 1.5), fr(4 - 4 / 1.5)]);
  });
  it('a weight sum below 1e-8 under normalize divides by 1', () => {
    // w = [1, -1]: M = δ1 − δ2 = [2, -1, 2, -4]; Z = 0 -> 1
    expect([...run('task_arithmetic', B, X, { weights: [1, -1], params: { normalize: true } })]).toEqual([3, 1, 5, 0]);
  });
  it('lambda 0 gives the base', () => {
    expect([...run('task_arithmetic', B, X, { weights: [1, 0.5], params: { lambda: 0 } })]).toEqual(B);
  });
});

describe('ties', () => {
  // base 0; δ1 = [3, -1, 0.5, -2, 0], δ2 = [-1, 2, 0.25, -4, 1]; density 0.6 -> k = floor(3) = 3
  // δ1 top-3 by |.|: 3, -2, -1 -> [3, -1, 0, -2, 0]
  // δ2 magnitudes [1, 2, 0.25, 4, 1]: 4, 2, then a tie at 1 between elements 0 and 4 -> element 0 (order) -> [-1, 2, 0, -4, 0]
  // vote sums [2, 1, 0, -6, 0] -> s = [+, +, + (0 elects +1), -, +]
  // e0: only δ1 agrees -> 3/1; e1: only δ2 -> 2/1; e2: none -> 0; e3: both -> -6/2 = -3; e4: 0
  const Z5 = [0, 0, 0, 0, 0];
  const X = [[3, -1, 0.5, -2, 0], [-1, 2, 0.25, -4, 1]];
  const every = { density: 0.6 };
  it('trims, votes and takes the weighted disjoint mean', () => {
    expect([...run('ties', Z5, X, { weights: [1, 1], every })]).toEqual([3, 2, 0, -3, 0]);
  });
  it('normalize false sums the agreeing entries', () => {
    expect([...run('ties', Z5, X, { weights: [1, 1], every, params: { normalize: false } })]).toEqual([3, 2, 0, -6, 0]);
  });
  it('disjoint overrides normalize: sum (dis-sum) and mean', () => {
    expect([...run('ties', Z5, X, { weights: [1, 1], every, params: { disjoint: 'sum' } })]).toEqual([3, 2, 0, -6, 0]);
    expect([...run('ties', Z5, X, { weights: [1, 1], every, params: { normalize: false, disjoint: 'mean' } })]).toEqual([3, 2, 0, -3, 0]);
    // the ViT lineage: dis-sum with lambda 0.3 -> 0.3·[3, 2, 0, -6, 0]
    const vit = run('ties', Z5, X, { weights: [1, 1], every, params: { disjoint: 'sum', lambda: 0.3 } });
    expect([...vit]).toEqual([fr(0.9), fr(0.6), 0, fr(-1.8), 0]);
  });
  it('a vote sum of exactly 0 elects +1', () => {
    // δ1 = [1, 2], δ2 = [-1, -2]: sums 0 -> s = +1 -> only model 1 agrees -> [1, 2]
    expect([...run('ties', [0, 0], [[1, 2], [-1, -2]], { weights: [1, 1] })]).toEqual([1, 2]);
  });
  it('zero deltas are excluded from the vote divisor', () => {
    // δ = [2], [0], [4]: s = +, agreeing {1, 3} -> (2 + 4) / 2 = 3 (not 6/3 = 2)
    expect([...run('ties', [0], [[2], [0], [4]], { weights: [1, 1, 1] })]).toEqual([3]);
  });
  it('a negative weight flips that model\'s vote', () => {
    // δ1 = δ2 = [1], w = [1, -3]: Δ = [1, -3], sum -2 -> s = -1 -> only Δ2 agrees
    // normalize: -3 / -3 = 1; normalize false: -3
    expect([...run('ties', [0], [[1], [1]], { weights: [1, -3] })]).toEqual([1]);
    expect([...run('ties', [0], [[1], [1]], { weights: [1, -3], params: { normalize: false } })]).toEqual([-3]);
  });
  it('weights enter the vote: a small weight loses', () => {
    // δ1 = [2], δ2 = [-1]; w = [0.25, 1]: Δ = [0.5, -1] -> s = -1 -> -1 / 1 = -1 (the unweighted vote would elect +)
    expect([...run('ties', [0], [[2], [-1]], { weights: [0.25, 1] })]).toEqual([-1]);
  });
  it('density·N < 1 keeps nothing instead of failing', () => {
    // N = 5, density 0.1 -> k = 0 -> no delta survives -> base
    expect([...run('ties', [1, 2, 3, 4, 5], X, { weights: [1, 1], every: { density: 0.1 } })]).toEqual([1, 2, 3, 4, 5]);
  });
  it('rescale matches the L1 norm of the untrimmed delta', () => {
    // δ1 = [3, -1, 0.5, -2, 0], k = 3 -> [3, -1, 0, -2, 0]; ‖δ‖₁ = 6.5, ‖trimmed‖₁ = 6 -> × 6.5/6
    const got = run('ties', Z5, [X[0]!], { weights: [1], every, params: { rescale: true } });
    const f = 6.5 / 6;
    expect([...got]).toEqual([fr(3 * f), fr(-1 * f), 0, fr(-2 * f), 0]);
  });
  it('rescale is skipped when a norm is below 1e-7', () => {
    // ‖δ‖₁ = 8e-8 < 1e-7: the trimmed delta is returned unscaled
    const d = [4e-8, 2e-8, 1e-8, 1e-8];
    const got = run('ties', [0, 0, 0, 0], [d], { weights: [1], every: { density: 0.5 }, params: { rescale: true } });
    expect([...got]).toEqual([fr(4e-8), fr(2e-8), 0, 0]);
  });
  it('trim_scope: model through mergeTensors runs the pre-pass over the one tensor (all ties kept)', () => {
    // k = 3 per model. Model 0 keeps 3, -1, -2. Model 1 keeps -4, 2 and BOTH tied 1s (-1 at 0 and 1 at 4), where
    // tensor scope keeps only the first. Weighted disjoint mean: [3, 2, 0, (-2-4)/2, 1].
    const model = run('ties', Z5, X, { weights: [1, 1], every, name: 'w.q', params: { trim_scope: 'model' } });
    expect(Array.from(model)).toEqual([3, 2, 0, -3, 1]);
    const tensor = run('ties', Z5, X, { weights: [1, 1], every, name: 'w.q' });
    expect(Array.from(tensor)).toEqual([3, 2, 0, -3, 0]);
  });
});

describe('ties trim_scope: model (whole-model pre-pass)', () => {
  // two tensors, one task vector: A δ = [5, -1, 2, 2], B δ = [0.5, -2, 3, 0, 1, 4] (base 0)
  // magnitudes over all 10: 5, 4, 3, 2, 2, 2, 1, 1, 0.5, 0
  // density 0.3 -> k = 3 -> threshold 3 -> A: [5, 0, 0, 0], B: [0, 0, 3, 0, 0, 4]
  // density 0.4 -> k = 4 -> the 4th largest is 2, ALL ties kept -> A: [5, 0, 2, 2], B: [0, -2, 3, 0, 0, 4]
  const A = f32([5, -1, 2, 2]);
  const Bt = f32([0.5, -2, 3, 0, 1, 4]);
  const ties = method('ties');
  const params = resolveParams(ties.params, { trim_scope: 'model', normalize: false }, 'ties');

  function collect(densities: number[], step: number, order: 'BA' | 'AB' = 'BA'): unknown {
    const mps = densities.map((d) => resolveParams(ties.modelParams, { weight: 1, density: d }, 'm'));
    const c = ties.modelStats!(params, mps)!;
    expect(c).toBeDefined();
    const tensors: [string, Float32Array][] = order === 'BA' ? [['B', Bt], ['A', A]] : [['A', A], ['B', Bt]];
    for (let p = 0; c.beginPass(p); p++) {
      for (const [name, x] of tensors) {
        for (let o = 0; o < x.length; o += step) {
          const len = Math.min(step, x.length - o);
          const chunk: Chunk = { offset: o, length: len, base: new Float32Array(len), models: densities.map(() => x.subarray(o, o + len)) };
          c.observe(p, name, chunk);
        }
      }
    }
    return c.result();
  }

  function mergeWith(stats: unknown, x: Float32Array, density: number, models = 1): Float32Array {
    const mps = Array.from({ length: models }, () => resolveParams(ties.modelParams, { weight: 1, density }, 'm'));
    const ctx = makeContext(ties, { name: 't', shape: [x.length], hasBase: true, params, modelParams: mps, seed: 0, modelStats: stats });
    const m = ties.create(ctx);
    const out = new Float32Array(x.length);
    const base = new Float32Array(x.length);
    drive(m, x.length, 2, (o, len) => ({ offset: o, length: len, base: base.subarray(o, o + len), models: Array.from({ length: models }, () => x.subarray(o, o + len)) }), out);
    return out;
  }

  it('trims each model over all of its tensors, keeping every tie at the threshold', () => {
    for (const step of [1, 3, 10]) {
      const s3 = collect([0.3], step);
      expect([...mergeWith(s3, A, 0.3)]).toEqual([5, 0, 0, 0]);
      expect([...mergeWith(s3, Bt, 0.3)]).toEqual([0, 0, 3, 0, 0, 4]);
      const s4 = collect([0.4], step);
      expect([...mergeWith(s4, A, 0.4)]).toEqual([5, 0, 2, 2]);
      expect([...mergeWith(s4, Bt, 0.4)]).toEqual([0, -2, 3, 0, 0, 4]);
    }
  });

  it('does not depend on tensor order or chunking', () => {
    const ref = collect([0.4, 0.3], 10, 'BA');
    expect(collect([0.4, 0.3], 1, 'AB')).toEqual(ref);
    expect(collect([0.4, 0.3], 3, 'AB')).toEqual(ref);
  });

  it('keeps one threshold per model and rejects a per-tensor density that differs', () => {
    const s = collect([0.3, 0.3], 4);
    // two identical models with density 0.3: both keep [5, 0, 0, 0]; normalize false sums them
    expect([...mergeWith(s, A, 0.3, 2)]).toEqual([10, 0, 0, 0]);
    expectUsage(() => mergeWith(s, A, 0.5, 2), 'RECIPE_PARAM_SCOPE', 't');
  });

  it('density >= 1 keeps everything; density·N < 1 keeps nothing', () => {
    expect([...mergeWith(collect([1], 5), Bt, 1)]).toEqual([...Bt]);
    expect([...mergeWith(collect([0.05], 5), Bt, 0.05)]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('no collector for tensor scope', () => {
    const p = resolveParams(ties.params, {}, 'ties');
    expect(ties.modelStats!(p, [resolveParams(ties.modelParams, { weight: 1 }, 'm')])).toBeUndefined();
  });
});

describe('breadcrumbs', () => {
  // base 0, δ with magnitudes 1..10 (mixed signs), weight 1
  const d = [3, -1, 10, -4, 2, 7, -9, 5, -6, 8];
  const Z = d.map(() => 0);
  const keepMags = (mags: number[]) => d.map((v) => (mags.includes(Math.abs(v)) ? v : 0));
  it('drops the n_top largest and the n_bot smallest', () => {
    // N = 10, density 0.5, gamma 0.1: target 5, n_top 1, n_bot 4 -> keep ascending ranks [4, 9): magnitudes 5..9
    expect([...run('breadcrumbs', Z, [d], { weights: [1], every: { density: 0.5, gamma: 0.1 } })]).toEqual(keepMags([5, 6, 7, 8, 9]));
  });
  it('a small tensor with gamma·N < 1 keeps [n_bot, N) instead of nothing', () => {
    // gamma 0.01: n_top = floor(0.1) = 0, target 5, n_bot 5 -> magnitudes 6..10 (mergekit keeps nothing)
    expect([...run('breadcrumbs', Z, [d], { weights: [1], every: { density: 0.5 } })]).toEqual(keepMags([6, 7, 8, 9, 10]));
  });
  it('n_bot < 0 moves the deficit to n_top', () => {
    // density 0.95, gamma 0.2: target 9, n_top 2, n_bot -1 -> n_top 1, n_bot 0 -> magnitudes 1..9
    expect([...run('breadcrumbs', Z, [d], { weights: [1], every: { density: 0.95, gamma: 0.2 } })]).toEqual(keepMags([1, 2, 3, 4, 5, 6, 7, 8, 9]));
  });
  it('density·N < 1 keeps nothing', () => {
    expect([...run('breadcrumbs', Z, [d], { weights: [1], every: { density: 0.05, gamma: 0 } })]).toEqual(Z);
  });
  it('ties at the cut are decided by element order', () => {
    // magnitudes [2, 2, 2, 2]: density 0.5, gamma 0.25 -> target 2, n_top 1, n_bot 1
    // ascending order with ties by position: the earlier element ranks higher: ranks e3 < e2 < e1 < e0
    // n_top = 1 drops e0, n_bot = 1 drops e3 -> keep e1, e2
    expect([...run('breadcrumbs', [0, 0, 0, 0], [[2, -2, 2, -2]], { weights: [1], every: { density: 0.5, gamma: 0.25 } })]).toEqual([0, -2, 2, 0]);
  });
  it('breadcrumbs_ties votes on the thinned deltas', () => {
    // δ1 = [4, 1, -3, 2], δ2 = [-1, 3, -2, 1]; density 0.5, gamma 0.25 (N = 4: target 2, n_top 1, n_bot 1)
    // δ1 ascending |.|: 1, 2, 3, 4 -> keep 2, 3 -> [0, 0, -3, 2]; δ2: 1 (e0), 1 (e3), 2, 3 -> ties: e3 ranks below e0
    //   -> drop n_bot = e3, drop n_top = 3 -> keep e0 and 2 -> [-1, 0, -2, 0]
    // sums [-1, 0, -5, 2] -> s [-, +, -, +]; normalize false: e0 -1, e1 0, e2 -5, e3 2
    const got = run('breadcrumbs_ties', [0, 0, 0, 0], [[4, 1, -3, 2], [-1, 3, -2, 1]], { weights: [1, 1], every: { density: 0.5, gamma: 0.25 } });
    expect([...got]).toEqual([-1, 0, -5, 2]);
  });
});

describe('dare', () => {
  it('drops about 1 − density and rescales to the original L1 norm', () => {
    // δ = 1 everywhere, N = 4000, density 0.25: K kept -> each kept value 4000/K, their sum exactly ‖δ‖₁ = 4000
    const N = 4000;
    const got = run('dare_linear', new Float32Array(N), [new Float32Array(N).fill(1)], { weights: [1], every: { density: 0.25 }, seed: 5 });
    let kept = 0;
    let sum = 0;
    for (const v of got) if (v !== 0) kept++;
    for (const v of got) sum += v;
    expect(kept / N).toBeGreaterThan(0.2);
    expect(kept / N).toBeLessThan(0.3);
    for (const v of got) if (v !== 0) expect(v).toBe(fr(N / kept));
    expect(Math.abs(sum - N)).toBeLessThan(1e-2);
  });
  it('rescale false keeps the dropped-out values unscaled', () => {
    const got = run('dare_linear', new Float32Array(100), [new Float32Array(100).fill(2)], { weights: [1], every: { density: 0.5 }, params: { rescale: false } });
    for (const v of got) expect(v === 0 || v === 2).toBe(true);
  });
  it('dare_ties sums the agreeing entries (normalize false) after drop and rescale', () => {
    // density 1 keeps all; δ1 = [1, -2], δ2 = [3, 1], w 1: sums [4, -1] -> e0 both: 4; e1 only δ1: -2
    expect([...run('dare_ties', [0, 0], [[1, -2], [3, 1]], { weights: [1, 1] })]).toEqual([4, -2]);
  });
});

describe('della', () => {
  it('checks 0 < density − epsilon and density + epsilon < 1 (mergekit range error)', () => {
    expectUsage(() => run('della', [0, 0], [[1, 2]], { weights: [1], every: { density: 0.1 }, name: 'x.w' }), 'RECIPE_PARAM_RANGE', 'x.w');
    expectUsage(() => run('della', [0, 0], [[1, 2]], { weights: [1], every: { density: 0.9 } }), 'RECIPE_PARAM_RANGE');
  });
  it('density >= 1 returns the delta, density <= 0 returns zeros', () => {
    expect([...run('della_linear', [1, 1], [[2, 4]], { weights: [1], every: { density: 1 } })]).toEqual([2, 4]);
    expect([...run('della_linear', [1, 1], [[2, 4]], { weights: [1], every: { density: 0 } })]).toEqual([1, 1]);
  });
  it('keep probability runs from d − ε (smallest in the row) to d + ε (largest)', () => {
    // rows of 2: ranks 0 and 1 -> p = 0.01 for the smaller, 0.99 for the larger (d 0.5, ε 0.49)
    const rows = 3000;
    const d = new Float32Array(rows * 2);
    for (let r = 0; r < rows; r++) {
      d[2 * r] = r % 2 === 0 ? 1 : 3;
      d[2 * r + 1] = r % 2 === 0 ? -3 : 1;
    }
    const got = run('della_linear', new Float32Array(rows * 2), [d], { weights: [1], shape: [rows, 2], every: { density: 0.5, epsilon: 0.49 }, params: { rescale: false } });
    let big = 0;
    let small = 0;
    for (let r = 0; r < rows; r++) {
      const iBig = r % 2 === 0 ? 2 * r + 1 : 2 * r;
      if (got[iBig] !== 0) big++;
      if (got[iBig ^ 1] !== 0) small++;
    }
    expect(big / rows).toBeGreaterThan(0.97);
    expect(small / rows).toBeLessThan(0.03);
  });
  it('ranks along dim 1 for 3-D tensors, as mergekit', () => {
    // shape [rows, 2, 3]: fiber (k) = elements k and 3 + k of each row; row = [30, 20, 10, 31, 21, 11]
    // in every fiber the second element is larger -> positions 0..2 have p = 0.01 (ranking the flattened row would
    // give position 0 (value 30) rank 4 of 6 and p ≈ 0.79)
    const rows = 2000;
    const d = new Float32Array(rows * 6);
    for (let r = 0; r < rows; r++) d.set([30, 20, 10, 31, 21, 11], r * 6);
    const got = run('della_linear', new Float32Array(d.length), [d], { weights: [1], shape: [rows, 2, 3], every: { density: 0.5, epsilon: 0.49 }, params: { rescale: false } });
    const keptAt = [0, 0, 0, 0, 0, 0];
    for (let i = 0; i < got.length; i++) if (got[i] !== 0) keptAt[i % 6]!++;
    for (let k = 0; k < 3; k++) expect(keptAt[k]! / rows).toBeLessThan(0.03);
    for (let k = 3; k < 6; k++) expect(keptAt[k]! / rows).toBeGreaterThan(0.97);
  });
  it('a one-element row keeps with probability density', () => {
    const n = 4000;
    const got = run('della_linear', new Float32Array(n), [new Float32Array(n).fill(1)], { weights: [1], shape: [n, 1], every: { density: 0.3, epsilon: 0.1 }, params: { rescale: false } });
    let kept = 0;
    for (const v of got) if (v !== 0) kept++;
    expect(kept / n).toBeGreaterThan(0.26);
    expect(kept / n).toBeLessThan(0.34);
  });
});

describe('identities', () => {
  const r = new SeededRandom(11);
  const N = 96;
  const B = quantised(r, N);
  const Xs = [quantised(r, N), quantised(r, N), quantised(r, N)];
  const gtaParams: Record<string, Record<string, number>> = {
    task_arithmetic: {}, ties: { density: 0.5 }, dare_linear: { density: 0.5 }, dare_ties: { density: 0.5 },
    breadcrumbs: { density: 0.5, gamma: 0.1 }, breadcrumbs_ties: { density: 0.5, gamma: 0.1 },
    della: { density: 0.5, epsilon: 0.2 }, della_linear: { density: 0.5, epsilon: 0.2 },
  };
  it('lambda 0 gives the base for every GTA method', () => {
    for (const m of GTA_FAMILY) {
      const got = run(m.name, B, Xs, { weights: [1, 0.5, 2], every: gtaParams[m.name], params: { lambda: 0 }, shape: [8, 12] });
      expect(bits(got), m.name).toEqual(bits(B));
    }
  });
  it('identical inputs give that input for the averaging GTA methods (density 1)', () => {
    const X = Xs[0]!;
    for (const name of ['ties', 'della', 'task_arithmetic', 'breadcrumbs', 'dare_linear']) {
      const got = run(name, B, [X, X, X], { weights: [1, 2, 0.5], every: { density: 1 }, params: { normalize: true } });
      expect([...got], name).toEqual([...X]);
    }
  });
  it('one model with density 1 is task arithmetic, bit for bit', () => {
    const ta = run('task_arithmetic', B, [Xs[1]!], { weights: [1] });
    for (const m of GTA_FAMILY) {
      const got = run(m.name, B, [Xs[1]!], { weights: [1], every: { density: 1 }, shape: [8, 12] });
      expect(bits(got), m.name).toEqual(bits(ta));
    }
  });
  it('no task vectors returns the base', () => {
    const ctx = makeContext(method('ties'), { name: 't', shape: [3], hasBase: true, params: resolveParams(method('ties').params, {}, 't'), modelParams: [], seed: 0 });
    const m = method('ties').create(ctx);
    const out = new Float32Array(3);
    drive(m, 3, 3, (o, len) => ({ offset: o, length: len, base: f32([1, 2, 3]).subarray(o, o + len), models: [] }), out);
    expect([...out]).toEqual([1, 2, 3]);
  });
  it('mergeTensors rejects a missing base', () => {
    expect(() => mergeTensors(method('ties'), { models: [f32([1])] }, { modelParams: [{ weight: 1 }] })).toThrow(UsageError);
  });
});
