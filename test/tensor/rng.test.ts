import { describe, expect, it } from 'vitest';
import { SeededRandom, fillUniform, randomUnit, streamKey } from '../../src/tensor/rng.js';

describe('seeded randomness', () => {
  it('counter-based streams are chunk independent and key sensitive', () => {
    const k = streamKey(42, 'model.layers.0.mlp.up_proj.weight', 1);
    const whole = new Float64Array(1000);
    fillUniform(k, 0, whole);
    const parts = new Float64Array(1000);
    fillUniform(k, 0, parts.subarray(0, 333));
    fillUniform(k, 333, parts.subarray(333));
    expect(parts).toEqual(whole);
    expect(randomUnit(k, 500)).toBe(whole[500]);
    const other = new Float64Array(1000);
    fillUniform(streamKey(42, 'model.layers.0.mlp.up_proj.weight', 2), 0, other);
    expect(other).not.toEqual(whole);
    fillUniform(streamKey(43, 'model.layers.0.mlp.up_proj.weight', 1), 0, other);
    expect(other).not.toEqual(whole);
  });

  it('is roughly uniform', () => {
    const a = new Float64Array(100000);
    fillUniform(streamKey(1, 't', 0), 0, a);
    let mean = 0;
    const bins = new Array(10).fill(0);
    for (const v of a) {
      mean += v;
      bins[Math.floor(v * 10)]++;
    }
    mean /= a.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
    for (const b of bins) expect(Math.abs(b - 10000)).toBeLessThan(500);
  });

  it('SeededRandom is reproducible', () => {
    const a = new SeededRandom(5);
    const b = new SeededRandom(5);
    const xs = Array.from({ length: 10 }, () => a.next());
    expect(Array.from({ length: 10 }, () => b.next())).toEqual(xs);
    expect(new SeededRandom(6).next()).not.toBe(xs[0]);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
  });

  it('fillNormal is reproducible, standard normal (mean 0, variance 1, both halves of each pair used) and handles odd lengths', () => {
    const a = new Float64Array(200001);
    new SeededRandom(9).fillNormal(a);
    const b = new Float64Array(200001);
    new SeededRandom(9).fillNormal(b);
    expect(b).toEqual(a);
    let mean = 0;
    let sq = 0;
    let evenOdd = 0;
    for (let i = 0; i < a.length; i++) {
      mean += a[i]!;
      sq += a[i]! * a[i]!;
      if (i + 1 < a.length && i % 2 === 0) evenOdd += a[i]! * a[i + 1]!;
    }
    mean /= a.length;
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(sq / a.length - 1)).toBeLessThan(0.02);
    expect(Math.abs(evenOdd / (a.length / 2))).toBeLessThan(0.02); // the cos and sin halves are uncorrelated
    expect(a[a.length - 1]).not.toBe(0);
    const f = new Float32Array(3);
    new SeededRandom(9).fillNormal(f);
    expect(Array.from(f)).toEqual(Array.from(a.subarray(0, 3), (x) => Math.fround(x)));
  });
});
