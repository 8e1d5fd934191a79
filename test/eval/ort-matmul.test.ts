import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOrtMatMul, type OrtMatMul } from '../../src/eval/ort-matmul.js';
import { jsMatMul } from '../../src/tensor/linalg/backend.js';
import { randomizedSvd } from '../../src/tensor/linalg/randomized.js';
import { polarFactor } from '../../src/tensor/linalg/polar.js';
import { gaussian, maxAbsDiff, withSpectrum } from '../tensor/linalg/helpers.js';

let ort: OrtMatMul;
beforeAll(async () => {
  ort = await createOrtMatMul({ threads: 2 });
});
afterAll(async () => {
  await ort.dispose();
});

const SHAPES: [number, number, number][] = [
  [0, 4, 3],
  [3, 0, 2],
  [1, 1, 1],
  [1, 9, 1],
  [6, 1, 5],
  [17, 33, 9],
  [130, 257, 67],
];

describe('createOrtMatMul', () => {
  for (const [m, k, n] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`matches jsMatMul: ${m}x${k} · ${k}x${n} transA=${transA} transB=${transB}`, async () => {
          const a = Float32Array.from(gaussian(transA ? k : m, transA ? m : k, 7 + m).data);
          const b = Float32Array.from(gaussian(transB ? n : k, transB ? k : n, 9 + n).data);
          const got = await ort.matmul(a, b, m, k, n, { transA, transB });
          const ref = await jsMatMul.matmul(a, b, m, k, n, { transA, transB });
          expect(got.length).toBe(m * n);
          expect(maxAbsDiff(got, ref)).toBeLessThan(2e-5 * Math.max(1, Math.sqrt(k)));
        });
      }
    }
  }

  it('writes into options.out (a view with an offset too): same bits as a fresh output', async () => {
    const a = Float32Array.from(gaussian(37, 53, 1).data);
    const b = Float32Array.from(gaussian(29, 53, 2).data);
    const fresh = await ort.matmul(a, b, 37, 53, 29, { transB: true });
    const buf = new Float32Array(37 * 29 + 100).fill(7);
    const out = buf.subarray(50, 50 + 37 * 29);
    expect(await ort.matmul(a, b, 37, 53, 29, { transB: true, out })).toBe(out);
    expect(out).toEqual(fresh);
    expect([buf[49], buf[50 + 37 * 29]]).toEqual([7, 7]);
    await expect(ort.matmul(a, b, 37, 53, 29, { transB: true, out: new Float32Array(5) })).rejects.toThrow(/out \(m x n\)/);
  });

  it('reuses one session across calls and shapes, and can run 1-threaded', async () => {
    const one = await createOrtMatMul({ threads: 1 });
    try {
      expect(one.name).toBe('ort-1t');
      for (const s of [5, 50, 5]) {
        const a = Float32Array.from(gaussian(s, s, s).data);
        const got = await one.matmul(a, a, s, s, s, { transB: true });
        expect(maxAbsDiff(got, await jsMatMul.matmul(a, a, s, s, s, { transB: true }))).toBeLessThan(1e-4);
      }
    } finally {
      await one.dispose();
    }
    await expect(one.matmul(new Float32Array(1), new Float32Array(1), 1, 1, 1)).rejects.toThrow(/after dispose/);
  });

  it('rejects bad arguments', async () => {
    await expect(ort.matmul(new Float32Array(3), new Float32Array(4), 2, 2, 2)).rejects.toThrow(/a \(m x k\)/);
    await expect(createOrtMatMul({ threads: 0 })).rejects.toThrow(/threads/);
  });

  it('randomizedSvd and polarFactor give the same answers on ORT as on JS', async () => {
    const s = Array.from({ length: 80 }, (_, i) => 0.9 ** i);
    const a = Float32Array.from(withSpectrum(150, 120, s, 1).data);
    for (const core of ['jacobi', 'gram'] as const) {
      const viaOrt = await randomizedSvd(a, 150, 120, 20, { backend: ort, seed: 2, core });
      const viaJs = await randomizedSvd(a, 150, 120, 20, { backend: jsMatMul, seed: 2, core });
      expect(maxAbsDiff(viaOrt.s, viaJs.s)).toBeLessThan(1e-4);
      expect(maxAbsDiff(viaOrt.u, viaJs.u)).toBeLessThan(1e-2);
    }
    const g = Float32Array.from(gaussian(150, 120, 3).data); // full rank: the polar factor is unique
    const p1 = await polarFactor(g, 150, 120, ort);
    const p2 = await polarFactor(g, 150, 120, jsMatMul);
    expect(maxAbsDiff(p1.p, p2.p)).toBeLessThan(1e-3);
  });
});
