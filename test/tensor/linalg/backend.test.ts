import { describe, expect, it } from 'vitest';
import { gramMatrix, gramMatrixInto, jsMatMul, ScratchF32, symmetricGramF64, transposeF32 } from '../../../src/tensor/linalg/backend.js';
import { orthonormalizeColumns } from '../../../src/tensor/linalg/qr.js';
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

describe('reused outputs and scratch (same bits as fresh arrays)', () => {
  it('jsMatMul writes into options.out, also a view with an offset, and returns it', async () => {
    const a = Float32Array.from(gaussian(7, 13, 1).data);
    const b = Float32Array.from(gaussian(13, 5, 2).data);
    const fresh = await jsMatMul.matmul(a, b, 7, 13, 5);
    const buf = new Float32Array(7 * 5 + 6).fill(9);
    const out = buf.subarray(3, 3 + 7 * 5);
    expect(await jsMatMul.matmul(a, b, 7, 13, 5, { out })).toBe(out);
    expect(out).toEqual(fresh);
    expect([buf[2], buf[3 + 35]]).toEqual([9, 9]);
    const zero = new Float32Array(6).fill(1);
    expect([...(await jsMatMul.matmul(new Float32Array(0), new Float32Array(0), 2, 0, 3, { out: zero }))]).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('rejects an out of the wrong length or overlapping an operand, naming out', async () => {
    const a = new Float32Array(6);
    await expect(jsMatMul.matmul(a, a, 2, 3, 2, { out: new Float32Array(3) })).rejects.toThrow(/out \(m x n\)/);
    const shared = new Float32Array(16);
    await expect(jsMatMul.matmul(shared.subarray(0, 6), a, 2, 3, 2, { out: shared.subarray(4, 8) })).rejects.toThrow(/out: expected memory disjoint/);
    await expect(jsMatMul.matmul(shared.subarray(0, 6), a, 2, 3, 2, { out: shared.subarray(6, 10) })).resolves.toHaveLength(4);
  });

  it('gramMatrixInto and symmetricGramF64 with one scratch across sizes equal the allocating versions', async () => {
    const scratch = new ScratchF32();
    for (const [rows, cols] of [[20, 601], [9, 5], [30, 520]] as const) {
      const x = Float32Array.from(gaussian(rows, cols, rows * cols).data);
      const out = new Float32Array(cols * cols);
      expect(await gramMatrixInto(out, x, rows, cols, jsMatMul, scratch)).toBe(out);
      expect(out).toEqual(await gramMatrix(x, rows, cols, jsMatMul));
      expect(await symmetricGramF64(x, rows, cols, jsMatMul, scratch)).toEqual(await symmetricGramF64(x, rows, cols, jsMatMul));
    }
  });

  it('orthonormalizeColumns into a given array equals the fresh result', async () => {
    const y = Float32Array.from(gaussian(300, 20, 4).data);
    const into = new Float32Array(300 * 20);
    const scratch = new ScratchF32();
    expect(await orthonormalizeColumns(y, 300, 20, jsMatMul, { into, scratch })).toBe(into);
    expect(into).toEqual(await orthonormalizeColumns(y, 300, 20, jsMatMul));
    await expect(orthonormalizeColumns(y, 300, 20, jsMatMul, { into: new Float32Array(5) })).rejects.toThrow(/into/);
  });
});
