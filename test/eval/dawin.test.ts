import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dawin, dawinCoefficients, fitBetaMixture, lerpReader, logGamma, temperedEntropies } from '../../src/eval/dawin.js';
import { evaluate } from '../../src/eval/evaluate.js';
import { openCheckpointPath } from '../../src/io/open.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { evalTempDir, makeData, mlpWeights, removeEvalTempDirs, writeDataset, writeGraph, writeWeights } from './helpers.js';

afterAll(removeEvalTempDirs);

function gamma(rng: SeededRandom, a: number): number {
  // Marsaglia-Tsang (a >= 1)
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const x = rng.normal();
    const v = (1 + c * x) ** 3;
    if (v <= 0) continue;
    const u = rng.next();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

function betaSample(rng: SeededRandom, a: number, b: number): number {
  const x = gamma(rng, a);
  return x / (x + gamma(rng, b));
}

describe('DaWin coefficients', () => {
  it('entropy of softmax(z / T)', () => {
    const h = temperedEntropies([0, 0, 0, 0, Math.log(3), 0], 3, 1);
    expect(h[0]).toBeCloseTo(Math.log(3), 12);
    // p = (3/5, 1/5, 1/5)
    expect(h[1]).toBeCloseTo(-(0.6 * Math.log(0.6) + 0.4 * Math.log(0.2)), 12);
    // T = 2 halves the logits: p = (sqrt3, 1, 1) / (sqrt3 + 2)
    const s = Math.sqrt(3) + 2;
    expect(temperedEntropies([Math.log(3), 0, 0], 3, 2)[0]).toBeCloseTo(-((Math.sqrt(3) / s) * Math.log(Math.sqrt(3) / s) + (2 / s) * Math.log(1 / s)), 12);
  });

  it('the formula on hand-computed entropies, with and without the offset adjustment', () => {
    const hf = Float64Array.from([1, 3]);
    const ht = Float64Array.from([2, 2]);
    const plain = dawinCoefficients(hf, ht, { offsetAdjustment: false });
    expect(plain.lambda[0]).toBeCloseTo(Math.exp(-2) / (Math.exp(-1) + Math.exp(-2)), 14);
    expect(plain.lambda[1]).toBeCloseTo(Math.exp(-2) / (Math.exp(-3) + Math.exp(-2)), 14);
    expect(plain.offset).toBeUndefined();
    // mean H_from 2, std 1 -> cv 0.5; H_to cv 0 -> b = 0.25; w = (2 + 2) / 2 = 2
    const adj = dawinCoefficients(hf, ht);
    expect(adj.offset).toEqual({ b: 0.25, w: 2 });
    expect(adj.lambda[0]).toBeCloseTo((Math.exp(-2) + 0.125) / (Math.exp(-1) + Math.exp(-2) + 0.25), 14);
    expect(adj.lambda[1]).toBeCloseTo((Math.exp(-2) + 0.125) / (Math.exp(-3) + Math.exp(-2) + 0.25), 14);
  });
});

describe('Beta mixture EM', () => {
  it('log Gamma', () => {
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
  });

  it('recovers known components from synthetic data, deterministically for a seed', () => {
    const rng = new SeededRandom(42);
    const truth = [
      { w: 0.3, a: 4, b: 16 },
      { w: 0.5, a: 30, b: 30 },
      { w: 0.2, a: 18, b: 3 },
    ];
    const xs: number[] = [];
    const labels: number[] = [];
    for (const [j, t] of truth.entries()) for (let i = 0; i < Math.round(t.w * 3000); i++) {
      xs.push(betaSample(rng, t.a, t.b));
      labels.push(j);
    }
    const m = fitBetaMixture(xs, { k: 3, seed: 1 });
    expect(m.components).toHaveLength(3);
    for (const [j, t] of truth.entries()) {
      expect(m.components[j]!.weight).toBeCloseTo(t.w, 1);
      expect(Math.abs(m.components[j]!.mean - t.a / (t.a + t.b))).toBeLessThan(0.02);
    }
    let agree = 0;
    for (let i = 0; i < xs.length; i++) if (m.assignments[i] === labels[i]) agree++;
    expect(agree / xs.length).toBeGreaterThan(0.93);
    expect(fitBetaMixture(xs, { k: 3, seed: 1 })).toEqual(m);
  });
});

describe('dawin', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await evalTempDir();
    await writeGraph(dir, 'mlp.onnx', mlpWeights(1));
    await writeWeights(join(dir, 'from.safetensors'), mlpWeights(1));
    await writeWeights(join(dir, 'to.safetensors'), mlpWeights(9));
    // half the labels from each endpoint's own model
    const a = makeData(80, 31, mlpWeights(1));
    const b = makeData(80, 32, mlpWeights(9));
    const x = new Float32Array([...a.x, ...b.x]);
    const y = new Int32Array([...a.y, ...b.y]);
    await writeDataset(join(dir, 'test.safetensors'), x, y);
    const v = makeData(60, 33, mlpWeights(9));
    await writeDataset(join(dir, 'val.safetensors'), v.x, v.y);
  });

  it('lerpReader interpolates float tensors', async () => {
    const f = await openCheckpointPath(join(dir, 'from.safetensors'));
    const t = await openCheckpointPath(join(dir, 'to.safetensors'));
    const r = lerpReader(f, t, 0.25);
    const w = await r.readF32('W1');
    expect(w[3]).toBeCloseTo(0.75 * mlpWeights(1).W1[3]! + 0.25 * mlpWeights(9).W1[3]!, 6);
    expect((await r.read('b2')).dtype).toBe('F32');
    await f.close();
    await t.close();
  });

  it('per-sample coefficients, K components, static comparison chosen on validation', async () => {
    const model = join(dir, 'mlp.onnx');
    const r = await dawin({ model, from: join(dir, 'from.safetensors'), to: join(dir, 'to.safetensors'), data: join(dir, 'test.safetensors'), validation: join(dir, 'val.safetensors'), k: 2, alphas: [0, 0.5, 1], seed: 3 });
    expect(r.count).toBe(160);
    expect(r.k).toBe(2);
    expect(r.coefficients).toHaveLength(160);
    expect(r.perComponent.reduce((s, c) => s + c.count, 0)).toBe(160);
    expect(r.accuracy).toBeCloseTo(r.perComponent.reduce((s, c) => s + c.correct, 0) / 160, 12);
    const fromAcc = (await evaluate({ model, weights: join(dir, 'from.safetensors'), data: join(dir, 'test.safetensors') })).accuracy;
    expect(r.endpoints.from).toBe(fromAcc);
    expect(r.staticBest.selectedOn).toBe('validation');
    expect(r.staticBest.alpha).toBe(1); // validation labels come from the `to` model
    expect(r.staticBest.validationAccuracy).toBe(1);
    expect(r.staticBest.accuracy).toBe(r.endpoints.to);
    expect(r.staticCurve.map((c) => c.alpha)).toEqual([0, 0.5, 1]);
    expect(r.perComponent[0]!.alpha).toBeLessThan(r.perComponent[1]!.alpha);
    const again = await dawin({ model, from: join(dir, 'from.safetensors'), to: join(dir, 'to.safetensors'), data: join(dir, 'test.safetensors'), validation: join(dir, 'val.safetensors'), k: 2, alphas: [0, 0.5, 1], seed: 3 });
    expect(again.perComponent).toEqual(r.perComponent);
  });
});
