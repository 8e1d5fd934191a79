// sce, ram, ramplus_tl, linear, passthrough, nearswap and negmerge against hand-computed values and identities.
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { mergeTensors } from '../../src/merge/run.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { f32, method, quantised, run } from './gta-helpers.js';

const fr = Math.fround;

describe('sce', () => {
  // base 0; τ1 = [1, 2, 0, -1], τ2 = [3, -2, 0, -1]
  const Z = [0, 0, 0, 0];
  const X = [[1, 2, 0, -1], [3, -2, 0, -1]];
  it('weights by task-vector energy and averages the agreeing entries', () => {
    // mean τ1² = 6/4 = 1.5, mean τ2² = 14/4 = 3.5 -> ω = [0.3, 0.7]
    // e0: sum 4 (+), both agree -> (0.3·1 + 0.7·3)/1 = 2.4; e1: sum 0 elects +, only τ1 -> 0.3·2/0.3 = 2
    // e2: nobody -> 0/max(0, 1e-6) = 0; e3: sum -2, both -> -1
    const got = run('sce', Z, X);
    expect(got[0]).toBeCloseTo(2.4, 6);
    expect(got[1]).toBeCloseTo(2, 6);
    expect(got[2]).toBe(0);
    expect(got[3]).toBeCloseTo(-1, 6);
  });
  it('select_topk keeps the highest-variance positions for every model', () => {
    // variances: e0 mean 2 -> ((1-2)² + (3-2)²)/2 = 1; e1 mean 0 -> 4; e2 0; e3 0
    // count_nonzero 2, k = floor(2·0.5) = 1 -> keep e1 only: τ1 = [0, 2, 0, 0], τ2 = [0, -2, 0, 0]
    // ω = [0.5, 0.5]; e1 sum 0 elects + -> τ1 only -> 2
    expect([...run('sce', Z, X, { params: { select_topk: 0.5 } })]).toEqual([0, 2, 0, 0]);
  });
  it('select_topk <= 0 keeps nothing', () => {
    expect([...run('sce', [1, 2, 3, 4], X, { params: { select_topk: 0 } })]).toEqual([1, 2, 3, 4]);
  });
  it('all-zero task vectors fall back to uniform weights and return the base', () => {
    expect([...run('sce', [1, 2], [[1, 2], [1, 2]])]).toEqual([1, 2]);
  });
  it('identical inputs give that input', () => {
    const r = new SeededRandom(2);
    const B = quantised(r, 50);
    const X1 = quantised(r, 50);
    const got = run('sce', B, [X1, X1, X1]);
    for (let i = 0; i < 50; i++) expect(got[i]).toBeCloseTo(X1[i]!, 5);
  });
});

describe('ram and ramplus_tl', () => {
  // base 0; τ1 = [1, 0, 2, 1e-6], τ2 = [3, 0, 0, 0]; ε = 1e-5
  const Z = [0, 0, 0, 0];
  const X = [[1, 0, 2, 1e-6], [3, 0, 0, 0]];
  it('ram: unique entries as is, shared entries averaged, inactive entries keep the base', () => {
    // e0: both active -> (1 + 3)/2 = 2; e1: none; e2: unique -> 2; e3: |1e-6| <= ε inactive -> 0
    expect([...run('ram', Z, X)]).toEqual([2, 0, 2, 0]);
  });
  it('ramplus_tl boosts unique entries by 1 + r·clamp(shared/unique, 0, alpha)', () => {
    // model 1: shared 1 (e0), unique 1 (e2) -> ρ = 1 -> clamp 0.2 -> λ1 = 1 + 0.1·0.2 = 1.02
    // model 2: shared 1, unique 0 -> ρ = 1/1e-5 -> λ2 = 1.02 but no unique entries
    expect([...run('ramplus_tl', Z, X)]).toEqual([2, 0, fr(2 * 1.02), 0]);
    // r = 0.5, alpha 0.5: λ1 = 1 + 0.5·0.5 = 1.25 -> e2 = 2.5
    expect([...run('ramplus_tl', Z, X, { params: { r: 0.5, alpha: 0.5 } })]).toEqual([2, 0, 2.5, 0]);
  });
  it('identical inputs give that input (ram)', () => {
    // every entry is shared by all 3 models -> 3τ/3 = τ
    expect([...run('ram', [0, 1], [[2, 3], [2, 3], [2, 3]])]).toEqual([2, 3]);
  });
});

describe('linear', () => {
  it('normalizes by the weight sum by default', () => {
    // (1·1 + 3·3)/4 = 2.5, (2·1 + 6·3)/4 = 5
    expect([...run('linear', undefined, [[1, 2], [3, 6]], { weights: [1, 3] })]).toEqual([2.5, 5]);
  });
  it('normalize false gives the weighted sum', () => {
    expect([...run('linear', undefined, [[1, 2], [3, 6]], { weights: [1, 3], params: { normalize: false } })]).toEqual([10, 20]);
  });
  it('weights summing to 0 under normalize are a typed error naming the tensor', () => {
    let err: unknown;
    try {
      run('linear', undefined, [[1, 2], [3, 6]], { weights: [0.5, -0.5], name: 'lm_head.weight' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).code).toBe('RECIPE_WEIGHT_SUM_ZERO');
    expect((err as UsageError).where.tensor).toBe('lm_head.weight');
    // without normalize the same weights are fine: 0.5·[1,2] − 0.5·[3,6] = [-1, -2]
    expect([...run('linear', undefined, [[1, 2], [3, 6]], { weights: [0.5, -0.5], params: { normalize: false } })]).toEqual([-1, -2]);
  });
  it('identical inputs give that input; a base is refused (base is an input)', () => {
    expect([...run('linear', undefined, [[0.1, 7], [0.1, 7]], { weights: [0.3, 0.9] })]).toEqual([fr(0.1), 7]);
    expect(method('linear').base).toBe('input');
    expect(() => run('linear', [0, 0], [[1, 1]], { weights: [1] })).toThrow(UsageError);
  });
});

describe('passthrough', () => {
  it('copies, or scales by the per-model scale', () => {
    expect([...run('passthrough', undefined, [[1, -2, 3]])]).toEqual([1, -2, 3]);
    expect([...run('passthrough', undefined, [[1, -2, 3]], { every: { scale: 0.5 } })]).toEqual([0.5, -1, 1.5]);
  });
  it('takes exactly one input', () => {
    expect(() => mergeTensors(method('passthrough'), { models: [f32([1]), f32([2])] })).toThrow(UsageError);
  });
});

describe('nearswap', () => {
  it('takes the other value within t, moves partway beyond', () => {
    // |B − X| = [0.5, 2, 4, 0]; t = 1: w = [1 (2 clamped), 0.5, 0.25, 1 (1/1e-6 clamped)]
    // R = w·X + (1 − w)·B = [0.5, 1, -1, 3]
    expect([...run('nearswap', [0, 0, 0, 3], [[0.5, 2, -4, 3]], { params: { t: 1 } })]).toEqual([0.5, 1, -1, 3]);
  });
  it('needs t', () => {
    expect(() => run('nearswap', [0], [[1]])).toThrow(UsageError);
  });
});

describe('negmerge', () => {
  // base 1; τ1 = [1, -1, 0, 2], τ2 = [2, -0.5, 1, 0], τ3 = [0.5, -2, 0, 1]
  const B = [1, 1, 1, 1];
  const X = [[2, 0, 1, 3], [3, 0.5, 2, 1], [1.5, -1, 1, 2]];
  it('negates the mean where all task vectors agree in sign, keeps the base elsewhere', () => {
    // e0 all +: mean 3.5/3 -> 1 − 3.5/3; e1 all −: mean −3.5/3 -> 1 + 3.5/3; e2, e3 contain a zero -> 1
    expect([...run('negmerge', B, X)]).toEqual([fr(1 - 3.5 / 3), fr(1 + 3.5 / 3), 1, 1]);
    expect([...run('negmerge', B, X, { params: { lambda: 0.5 } })]).toEqual([fr(1 - 0.5 * (3.5 / 3)), fr(1 + 0.5 * (3.5 / 3)), 1, 1]);
  });
  it('one disagreeing sign removes the element; lambda 0 gives the base', () => {
    expect([...run('negmerge', [0, 0], [[1, 1], [1, -1]])]).toEqual([-1, 0]);
    expect([...run('negmerge', B, X, { params: { lambda: 0 } })]).toEqual(B);
  });
});
