import { describe, expect, it } from 'vitest';
import { gramMatrix, jsMatMul, transposeF32 } from '../../../src/tensor/linalg/backend.js';
import { gaussian, maxAbsDiff, refMatMul } from './helpers.js';

const SHAPES: [number, number, number][] = [
  [0, 0, 0],
  [0, 3, 2],
  [3, 0, 2],
  [3, 2, 0],
  [1, 1, 1],
  [1, 7, 1],
  [5, 1, 6],
  [7, 13, 5],
  [33, 300, 261],
  [260, 9, 3],
];

describe('jsMatMul', () => {
  for (const [m, k, n] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`${m}x${k} · ${k}x${n} transA=${transA} transB=${transB}`, async () => {
          const a = Float32Array.from(gaussian(transA ? k : m, transA ? m : k, m * 31 + k).data);
          const b = Float32Array.from(gaussian(transB ? n : k, transB ? k : n, n * 17 + 5).data);
          const c = await jsMatMul.matmul(a, b, m, k, n, { transA, transB });
          expect(c.length).toBe(m * n);
          const ref = refMatMul(a, b, m, k, n, transA, transB);
          expect(maxAbsDiff(c, ref)).toBeLessThan(1e-5 * Math.max(1, Math.sqrt(k)));
        });
      }
    }
  }

  it('k = 0 gives zeros', async () => {
    const c = await jsMatMul.matmul(new Float32Array(0), new Float32Array(0), 2, 0, 3);
    expect([...c]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('rejects operands of the wrong length, quoting the parameter', async () => {
    await expect(jsMatMul.matmul(new Float32Array(5), new Float32Array(6), 2, 3, 2)).rejects.toThrow(/a \(m x k\): expected 2x3 = 6 elements, got 5/);
    await expect(jsMatMul.matmul(new Float32Array(6), new Float32Array(6), 2, 3, -1)).rejects.toThrow(RangeError);
  });

  it('transposeF32 round-trips', () => {
    const a = Float32Array.from(gaussian(37, 70, 3).data);
    expect(transposeF32(transposeF32(a, 37, 70), 70, 37)).toEqual(a);
  });
});

describe('gramMatrix', () => {
  for (const [rows, cols] of [[0, 0], [4, 0], [0, 3], [9, 5], [20, 511], [20, 512], [7, 601]] as const) {
    it(`${rows}x${cols}: XᵀX to f32 rounding (split into halves from 512 columns)`, async () => {
      const x = Float32Array.from(gaussian(rows, cols, rows + cols).data);
      const g = await gramMatrix(x, rows, cols, jsMatMul);
      expect(g.length).toBe(cols * cols);
      expect(maxAbsDiff(g, refMatMul(x, x, cols, rows, cols, true, false))).toBeLessThan(1e-4 * Math.max(1, rows));
      if (cols >= 512) {
        let asymmetric = 0; // the off-diagonal blocks are mirrored exactly
        const c1 = cols >> 1;
        for (let i = c1; i < cols; i++) for (let j = 0; j < c1; j++) if (g[i * cols + j] !== g[j * cols + i]) asymmetric++;
        expect(asymmetric).toBe(0);
      }
    });
  }

  it('rejects a wrong length, naming x', async () => {
    await expect(gramMatrix(new Float32Array(5), 2, 3, jsMatMul)).rejects.toThrow(/x \(rows x cols\)/);
  });
});
