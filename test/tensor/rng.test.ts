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
});
