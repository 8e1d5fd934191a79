import { describe, expect, it } from 'vitest';
import { jsMatMul } from '../../../src/tensor/linalg/backend.js';
import { fromArray, orthonormalityError } from '../../../src/tensor/linalg/matrix.js';
import { minimaxQuintic, polarExact, polarNewtonSchulz, quinticSchedule } from '../../../src/tensor/linalg/newton-schulz.js';
import { polarFactor } from '../../../src/tensor/linalg/polar.js';
import { jacobiSvd, symmetricEigen } from '../../../src/tensor/linalg/svd.js';
import { gaussian, maxAbsDiff, randomOrthonormal, refMatMul, withSpectrum } from './helpers.js';

/** Reference polar factor U·Vᵀ from the exact Jacobi SVD. */
function refPolar(a: Float32Array, m: number, r: number): Float64Array {
  const { u, v } = jacobiSvd(fromArray(a, m, r));
  return refMatMul(u.data, v.data, m, Math.min(m, r), r, false, true);
}

function expectPolarProperties(a: Float32Array, p: Float32Array, m: number, r: number, tol: number): void {
  expect(orthonormalityError(p, m, r)).toBeLessThan(tol);
  const pta = refMatMul(p, a, r, m, r, true, false); // PᵀA: symmetric PSD
  let asym = 0;
  let scale = 0;
  for (let i = 0; i < r; i++) for (let j = 0; j < r; j++) {
    asym = Math.max(asym, Math.abs(pta[i * r + j]! - pta[j * r + i]!));
    scale = Math.max(scale, Math.abs(pta[i * r + j]!));
  }
  expect(asym).toBeLessThan(tol * Math.max(1, scale));
  const { values } = symmetricEigen({ rows: r, cols: r, data: pta.map((_, idx) => 0.5 * (pta[idx]! + pta[(idx % r) * r + Math.floor(idx / r)]!)) });
  expect(values[r - 1]).toBeGreaterThan(-tol * Math.max(1, scale));
}

describe('polarFactor', () => {
  it('tall Gaussian: orthonormal columns, PᵀA symmetric PSD, equals U·Vᵀ of the exact SVD', async () => {
    const a = Float32Array.from(gaussian(60, 20, 1).data);
    const { p, singularValues } = await polarFactor(a, 60, 20, jsMatMul);
    expectPolarProperties(a, p, 60, 20, 1e-4);
    expect(maxAbsDiff(p, refPolar(a, 60, 20))).toBeLessThan(1e-4);
    expect(singularValues[0]).toBeCloseTo(jacobiSvd(fromArray(a, 60, 20)).s[0]!, 3);
  });

  it('TSV-M shape: concatenated blocks of orthonormal columns', async () => {
    const blocks = [0, 1, 2, 3].map((t) => randomOrthonormal(64, 16, 100 + t));
    const cat = new Float32Array(64 * 64);
    for (let t = 0; t < 4; t++) for (let i = 0; i < 64; i++) for (let j = 0; j < 16; j++) cat[i * 64 + t * 16 + j] = blocks[t]!.data[i * 16 + j]!;
    const { p } = await polarFactor(cat, 64, 64, jsMatMul);
    expectPolarProperties(cat, p, 64, 64, 2e-4);
    expect(maxAbsDiff(p, refPolar(cat, 64, 64))).toBeLessThan(2e-3);
  });

  it('an orthonormal input is its own polar factor', async () => {
    const q = Float32Array.from(randomOrthonormal(40, 10, 3).data);
    const { p, singularValues } = await polarFactor(q, 40, 10, jsMatMul);
    expect(maxAbsDiff(p, q)).toBeLessThan(1e-5);
    for (const s of singularValues) expect(s).toBeCloseTo(1, 5);
  });

  it('rank-deficient input: still orthonormal columns, PᵀA symmetric PSD', async () => {
    const a = Float32Array.from(withSpectrum(30, 8, [2, 1, 0.5], 4).data);
    const { p } = await polarFactor(a, 30, 8, jsMatMul);
    expectPolarProperties(a, p, 30, 8, 1e-4);
  });

  it('wide input: orthonormal rows; 1xN, Nx1, 0-size', async () => {
    const a = Float32Array.from(gaussian(5, 12, 8).data);
    const { p } = await polarFactor(a, 5, 12, jsMatMul);
    expect(orthonormalityError(Array.from({ length: 60 }, (_, i) => p[(i % 5) * 12 + Math.floor(i / 5)]!), 12, 5)).toBeLessThan(1e-5);
    expect(maxAbsDiff(p, refPolar(a, 5, 12))).toBeLessThan(1e-4);
    const col = await polarFactor(Float32Array.from([3, -4]), 2, 1, jsMatMul);
    expect(col.p[0]).toBeCloseTo(0.6, 6);
    expect(col.p[1]).toBeCloseTo(-0.8, 6);
    const row = await polarFactor(Float32Array.from([-2]), 1, 1, jsMatMul);
    expect([...row.p]).toEqual([-1]);
    expect((await polarFactor(new Float32Array(0), 0, 0, jsMatMul)).p.length).toBe(0);
    await expect(polarFactor(new Float32Array(3), 2, 2, jsMatMul)).rejects.toThrow(/a \(m x r\)/);
  });
});

describe('quintic polar steps', () => {
  const p = (q: { a: number; b: number; c: number }, x: number): number => q.a * x + q.b * x ** 3 + q.c * x ** 5;

  it('minimaxQuintic equioscillates: |1 − p| ≤ E on [lo, hi], reaching E at both ends', () => {
    for (const [lo, hi] of [[1e-3, 1.2625], [0.3, 1.5], [0.9, 1.1]] as const) {
      const q = minimaxQuintic(lo, hi);
      let worst = 0;
      for (let i = 0; i <= 4000; i++) worst = Math.max(worst, Math.abs(1 - p(q, lo + ((hi - lo) * i) / 4000)));
      expect(worst).toBeLessThanOrEqual(q.e * (1 + 1e-9));
      expect(Math.abs(1 - p(q, lo))).toBeCloseTo(q.e, 9);
      expect(Math.abs(1 - p(q, hi))).toBeCloseTo(q.e, 9);
    }
  });

  it('quinticSchedule maps every σ in [ℓ, 1.25] to within 1e-3 of 1, and grows every smaller σ', () => {
    const steps = quinticSchedule(1e-4, 1.25);
    expect(steps.length).toBeLessThanOrEqual(9);
    for (let i = 0; i <= 2000; i++) {
      let s = 1e-4 * (1.25 / 1e-4) ** (i / 2000);
      for (const q of steps) s = p(q, s);
      expect(Math.abs(1 - s)).toBeLessThan(1e-3);
    }
    for (const q of steps) expect(q.a).toBeGreaterThan(1);
  });

  it('polarNewtonSchulz degree 5 and degree 3 both match the exact polar factor', async () => {
    const blocks = [0, 1, 2, 3].map((t) => randomOrthonormal(64, 16, 100 + t));
    const cat = new Float32Array(64 * 64);
    for (let t = 0; t < 4; t++) for (let i = 0; i < 64; i++) for (let j = 0; j < 16; j++) cat[i * 64 + t * 16 + j] = blocks[t]!.data[i * 16 + j]!;
    const illConditioned = Float32Array.from(withSpectrum(40, 12, [1, 0.5, 0.1, 1e-2, 1e-3, 1e-4, 3e-5, 1, 1, 0.7, 0.2, 0.05], 9).data);
    for (const [name, a, m, c] of [['gaussian 50x20', Float32Array.from(gaussian(50, 20, 5).data), 50, 20], ['wide 12x30', Float32Array.from(gaussian(12, 30, 6).data), 12, 30], ['U_cat 64x64', cat, 64, 64], ['cond 3e4', illConditioned, 40, 12]] as const) {
      const ref = polarExact(a, m, c).p;
      const five = await polarNewtonSchulz(a, m, c, jsMatMul);
      const three = await polarNewtonSchulz(a, m, c, jsMatMul, { degree: 3 });
      expect(maxAbsDiff(five.p, ref), name).toBeLessThan(name === 'U_cat 64x64' ? 2e-3 : 1e-4);
      expect(maxAbsDiff(three.p, ref), name).toBeLessThan(name === 'U_cat 64x64' ? 2e-3 : 1e-4);
      expect(five.iterations, name).toBeLessThanOrEqual(three.iterations);
    }
  });
});
