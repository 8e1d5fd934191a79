import { describe, expect, it } from 'vitest';
import {
  MetricsAccumulator,
  argmaxRow,
  classificationMetrics,
  compareWithReference,
  predictionEntropies,
} from '../../src/eval/metrics.js';

const LN2 = Math.log(2);

describe('classification metrics (hand-computed)', () => {
  it('uniform logits: CE = entropy = ln C, ties predict the first class', () => {
    const m = classificationMetrics([0, 0, 5, 5], [0, 1], 2, { topK: 1 });
    expect(m.meanCrossEntropy).toBeCloseTo(LN2, 12);
    expect(m.meanEntropy).toBeCloseTo(LN2, 12);
    expect(Array.from(m.predictions)).toEqual([0, 0]);
    expect(m.accuracy).toBe(0.5);
  });

  it('p = (3/4, 1/4): CE of each label and the entropy', () => {
    const l = [Math.log(3), 0];
    const m = classificationMetrics([...l, ...l], [0, 1], 2);
    const ce0 = -Math.log(0.75);
    const ce1 = -Math.log(0.25);
    expect(m.meanCrossEntropy).toBeCloseTo((ce0 + ce1) / 2, 12);
    const h = -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25));
    expect(m.meanEntropy).toBeCloseTo(h, 12);
    expect(predictionEntropies(l, 2)[0]).toBeCloseTo(h, 12);
    expect(m.accuracy).toBe(0.5);
  });

  it('is numerically stable for huge logits (no Infinity/NaN)', () => {
    const m = classificationMetrics([1000, 0, -1000, 0, 1e30, 3], [1, 0, 0], 2);
    expect(m.meanCrossEntropy).toBeCloseTo(2000 / 3, 9); // 1000, 1000, ~0
    expect(Number.isFinite(m.meanEntropy)).toBe(true);
  });

  it('cross-entropy of a confident wrong answer is the logit gap', () => {
    const m = classificationMetrics([1000, 0], [1], 2);
    expect(m.meanCrossEntropy).toBe(1000);
    expect(m.meanEntropy).toBeGreaterThanOrEqual(0);
    expect(m.meanEntropy).toBeLessThan(1e-300 + 1e-10);
    const n = classificationMetrics([-1000, 0], [0], 2);
    expect(n.meanCrossEntropy).toBe(1000);
  });

  it('top-k counts the label among the k largest (ties broken by index, like argmax)', () => {
    const m = classificationMetrics([3, 2, 1], [2], 3, { topK: 2 });
    expect(m.topKAccuracy).toBe(0);
    expect(classificationMetrics([3, 2, 1], [2], 3, { topK: 3 }).topKAccuracy).toBe(1);
    expect(classificationMetrics([3, 2, 1], [1], 3, { topK: 2 }).topKAccuracy).toBe(1);
    const tie = classificationMetrics([1, 1, 0], [1], 3, { topK: 1 });
    expect(tie.topKAccuracy).toBe(0);
    expect(tie.accuracy).toBe(0);
    expect(classificationMetrics([1, 1, 0], [1], 3, { topK: 2 }).topKAccuracy).toBe(1);
    expect(classificationMetrics([1, 1, 0], [1], 3, { topK: 9 }).topK).toBe(3);
  });

  it('per-class accuracy, NaN for a class without examples', () => {
    // rows: pred 0,0,1,2 ; labels 0,1,1,2
    const logits = [5, 0, 0, 5, 0, 0, 0, 0, 5, 0, 0, 5];
    const m = classificationMetrics(logits, [0, 1, 1, 2], 3);
    expect(Array.from(m.predictions)).toEqual([0, 0, 2, 2]);
    expect(m.perClass.map((c) => [c.count, c.correct])).toEqual([
      [1, 1],
      [2, 0],
      [1, 1],
    ]);
    expect(m.perClass[1]!.accuracy).toBe(0);
    expect(m.accuracy).toBe(0.5);
    const empty = classificationMetrics([1, 0, 0], [0], 3);
    expect(empty.perClass[2]!.accuracy).toBeNaN();
    expect(empty.perClass[0]!.accuracy).toBe(1);
  });

  it('batched accumulation equals one call', () => {
    const logits = Array.from({ length: 30 }, (_, i) => Math.sin(i * 1.7) * 3);
    const labels = [0, 1, 2, 0, 1, 2, 2, 1, 0, 0];
    const one = classificationMetrics(logits, labels, 3, { topK: 2 });
    const acc = new MetricsAccumulator(3, 2);
    acc.add(logits.slice(0, 9), labels.slice(0, 3));
    acc.add(logits.slice(9), labels.slice(3));
    const b = acc.finish();
    expect(b.accuracy).toBe(one.accuracy);
    expect(b.topKAccuracy).toBe(one.topKAccuracy);
    expect(b.meanCrossEntropy).toBeCloseTo(one.meanCrossEntropy, 14);
    expect(Array.from(b.predictions)).toEqual(Array.from(one.predictions));
  });

  it('refuses labels outside [0, C) and mismatched logits', () => {
    expect(() => classificationMetrics([0, 1], [2], 2)).toThrow(RangeError);
    expect(() => classificationMetrics([0, 1, 2], [0], 2)).toThrow(RangeError);
  });

  it('argmax ignores NaN unless the whole row is NaN', () => {
    expect(argmaxRow([NaN, 1, 2], 0, 3)).toBe(2);
    expect(argmaxRow([NaN, NaN], 0, 2)).toBe(0);
  });
});

describe('comparison with a reference model', () => {
  it('negative flip rate, positive flips, agreement (hand-computed)', () => {
    const c = compareWithReference([0, 1, 2, 0], [0, 1, 1, 1], [0, 2, 1, 1]);
    expect(c.negativeFlips).toBe(2); // rows 2 and 3: reference right, model wrong
    expect(c.negativeFlipRate).toBe(0.5);
    expect(c.positiveFlips).toBe(0);
    expect(c.agreement).toBe(0.5);
    expect(c.referenceAccuracy).toBe(0.75);
    const p = compareWithReference([2, 1], [0, 0], [2, 1]);
    expect(p.positiveFlips).toBe(2);
    expect(p.negativeFlipRate).toBe(0);
    expect(() => compareWithReference([0], [0, 1], [0, 1])).toThrow(RangeError);
  });
});
