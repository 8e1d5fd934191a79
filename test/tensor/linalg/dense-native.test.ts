// The native dense kernels (native/dense.cc): product, inverse, polar factor (scaled Newton) and tridiagonalisation,
// against f64 references, at one and two threads (same bits), with the polar factor's fallbacks. Skipped where the
// addon is not built (test/plan/native-kernels.test.ts fails where it could be built and is not).

import { describe, expect, it } from 'vitest';
import { loadNativeKernels } from '../../../src/plan/native.js';
import { denseKernelsOf } from '../../../src/tensor/native-kernels.js';
import { jsMatMul, type MatMulBackend } from '../../../src/tensor/linalg/backend.js';
import { polarExact, polarNewtonSchulz } from '../../../src/tensor/linalg/newton-schulz.js';
import { symmetricEigenF32 } from '../../../src/tensor/linalg/eigen.js';
import { tred2Reduce } from '../../../src/tensor/linalg/svd.js';
import { SeededRandom } from '../../../src/tensor/rng.js';
import { gaussian, randomOrthonormal, refMatMul, withSpectrum } from './helpers.js';

const k = loadNativeKernels();

function f32(rows: number, cols: number, seed: number): Float32Array {
  return Float32Array.from(gaussian(rows, cols, seed).data);
}

function maxRelDiff(x: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    d = Math.max(d, Math.abs(x[i]! - ref[i]!));
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return m > 0 ? d / m : d;
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** max |A·B − I| for square f32 A, B (f64 reference product). */
function identityError(a: Float32Array, b: Float32Array, n: number): number {
  const p = refMatMul(a, b, n, n, n);
  let e = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) e = Math.max(e, Math.abs(p[i * n + j]! - (i === j ? 1 : 0)));
  return e;
}

describe.skipIf(k === undefined)('native dense kernels', () => {
  const nk = k!;

  it('gemm: every transpose combination, edge sizes around the 12 x 32 tile and the 256-deep blocks, accumulate; same bits at 1 and 2 threads', () => {
    const shapes: [number, number, number][] = [
      [1, 1, 1],
      [13, 7, 33],
      [12, 256, 32],
      [25, 257, 65],
      [100, 300, 70],
      [300, 40, 500],
      [500, 513, 31],
    ];
    for (const [m, kk, n] of shapes) {
      for (let flags = 0; flags < 8; flags++) {
        const a = f32(m, kk, m + kk);
        const b = f32(kk, n, n + 7);
        const ref = refMatMul(a, b, m, kk, n, (flags & 1) !== 0, (flags & 2) !== 0);
        const c0 = f32(m, n, 99);
        if (flags & 4) for (let i = 0; i < ref.length; i++) ref[i] = ref[i]! + c0[i]!;
        const c1 = Float32Array.from(c0);
        const c2 = Float32Array.from(c0);
        nk.denseGemm(a, b, c1, m, kk, n, flags, 1);
        nk.denseGemm(a, b, c2, m, kk, n, flags, 2);
        expect(maxRelDiff(c1, ref), `${m}x${kk}x${n} flags ${flags}`).toBeLessThan(2e-6);
        expect(sameBits(c1, c2)).toBe(true);
      }
    }
  });

  it('gemm: a large product splits over two threads with the same bits (rows and columns)', () => {
    for (const [m, kk, n] of [
      [600, 300, 700],
      [2000, 64, 40],
    ] as const) {
      const a = f32(m, kk, 1);
      const b = f32(kk, n, 2);
      const c1 = new Float32Array(m * n);
      const c2 = new Float32Array(m * n);
      nk.denseGemm(a, b, c1, m, kk, n, 0, 1);
      nk.denseGemm(a, b, c2, m, kk, n, 0, 2);
      expect(sameBits(c1, c2)).toBe(true);
      expect(maxRelDiff(c1, refMatMul(a, b, m, kk, n))).toBeLessThan(2e-6);
    }
  });

  it('gemm: a C off a cache line (its columns up to the line boundary as a sliver of their own) gives the same bits at every offset', () => {
    // JS arrays start 16 bytes into a line; subarrays shift C by 1..15 floats; the narrow first sliver needs rows a
    // whole number of lines long (n a multiple of 16) and blocks of more than 256 columns (on two threads 528 splits
    // into 288 shifted and 240 not)
    for (const [m, kk, n] of [
      [37, 50, 272],
      [64, 300, 528],
      [30, 20, 300],
    ] as const) {
      for (const flags of [0, 1, 2, 3, 6]) {
        const a = f32(m, kk, 3);
        const b = f32(kk, n, 4);
        const c0 = f32(m, n, 5);
        let first: Float32Array | undefined;
        for (const off of [0, 1, 4, 7, 12, 15]) {
          for (const threads of [1, 2]) {
            const c = new Float32Array(m * n + 16).subarray(off, off + m * n);
            c.set(c0);
            nk.denseGemm(a, b, c, m, kk, n, flags, threads);
            first ??= Float32Array.from(c);
            expect(sameBits(c, first), `${m}x${kk}x${n} flags ${flags} offset ${off} threads ${threads}`).toBe(true);
          }
        }
        const ref = refMatMul(a, b, m, kk, n, (flags & 1) !== 0, (flags & 2) !== 0);
        if (flags & 4) for (let i = 0; i < ref.length; i++) ref[i] = ref[i]! + c0[i]!;
        expect(maxRelDiff(first!, ref)).toBeLessThan(2e-6);
      }
    }
  });

  it('inverse: sizes across the 32-column leaves and 256-column panels, pivoting through a zero diagonal; same bits at 1 and 2 threads', () => {
    for (const n of [1, 2, 31, 33, 64, 255, 257, 300, 530]) {
      const a = f32(n, n, 10 + n);
      // a zero diagonal: no step can go without a row swap
      if (n > 1) for (let i = 0; i < n; i++) a[i * n + i] = 0;
      const inv1 = Float32Array.from(a);
      const inv2 = Float32Array.from(a);
      expect(nk.denseInverse(inv1, n, 1)).toBe(true);
      expect(nk.denseInverse(inv2, n, 2)).toBe(true);
      expect(sameBits(inv1, inv2)).toBe(true);
      // Gaussian matrices of this size have condition numbers in the hundreds to thousands
      expect(identityError(a, inv1, n), `n=${n}`).toBeLessThan(2e-3);
      expect(identityError(inv1, a, n), `n=${n}`).toBeLessThan(2e-3);
    }
    // a permutation matrix: the inverse is its transpose, exactly
    const n = 40;
    const p = new Float32Array(n * n);
    for (let i = 0; i < n; i++) p[i * n + ((i * 7 + 3) % n)] = 1;
    const inv = Float32Array.from(p);
    expect(nk.denseInverse(inv, n, 2)).toBe(true);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) expect(inv[i * n + j]).toBe(p[j * n + i]);
  });

  it('inverse: singular or non-finite input returns false', () => {
    const n = 50;
    const a = f32(n, n, 3);
    for (let j = 0; j < n; j++) a[7 * n + j] = 0; // a zero row
    expect(nk.denseInverse(Float32Array.from(a), n, 2)).toBe(false);
    const b = f32(n, n, 4);
    b[5] = NaN;
    expect(nk.denseInverse(b, n, 2)).toBe(false);
  });

  it('polar: the scaled Newton iteration reaches the exact f64 polar factor from condition numbers up to 1e5', () => {
    for (const [n, kappa] of [
      [64, 10],
      [200, 1e4],
      [300, 1e5],
    ] as const) {
      const s = Array.from({ length: n }, (_, i) => kappa ** (-i / (n - 1)));
      const a = withSpectrum(n, n, s, 5 + n);
      const exact = polarExact(a.data, n, n).p;
      const p1 = Float32Array.from(a.data);
      const p2 = Float32Array.from(a.data);
      const info = Float64Array.of(20, 1e-7, 1e8, 0, 0, 0);
      expect(nk.densePolar(p1, n, 1, info)).toBe(true);
      expect(info[3]).toBeGreaterThan(1);
      expect(info[3]).toBeLessThanOrEqual(10);
      expect(info[5]).toBeGreaterThanOrEqual(kappa * 0.999); // an upper bound on κ
      expect(nk.densePolar(p2, n, 2, Float64Array.of(20, 1e-7, 1e8, 0, 0, 0))).toBe(true);
      expect(sameBits(p1, p2)).toBe(true);
      // f32 rounding amplified by the condition number in the smallest directions
      expect(maxRelDiff(p1, exact), `n=${n} kappa=${kappa}`).toBeLessThan(kappa <= 10 ? 1e-5 : 2e-3);
    }
  });

  it('polar: singular input, or a condition bound above the limit, returns false', () => {
    const n = 40;
    const s = Array.from({ length: n }, (_, i) => (i < n - 1 ? 1 : 0));
    expect(nk.densePolar(Float32Array.from(withSpectrum(n, n, s, 1).data), n, 2, Float64Array.of(20, 1e-7, 1e8, 0, 0, 0))).toBe(false);
    const t = Array.from({ length: n }, (_, i) => 10 ** (-i / (n - 1)));
    const info = Float64Array.of(20, 1e-7, 5, 0, 0, 0);
    expect(nk.densePolar(Float32Array.from(withSpectrum(n, n, t, 2).data), n, 2, info)).toBe(false);
    expect(info[5]).toBeGreaterThan(5);
  });

  it('tridiagonalize: the reduction of tred2Reduce to f64 rounding (blocked in panels of 32 steps: other sums)', () => {
    for (const n of [1, 2, 9, 17, 33, 70, 130, 300]) {
      const rng = new SeededRandom(n);
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = rng.normal();
      const w1 = Float64Array.from(a);
      const w2 = Float64Array.from(a);
      const d1 = new Float64Array(n);
      const d2 = new Float64Array(n);
      const e1 = new Float64Array(n);
      const e2 = new Float64Array(n);
      tred2Reduce(n, w1, d1, e1);
      nk.denseTridiagonalize(w2, n, d2, e2);
      expect(maxRelDiff(w2, w1), `n=${n}`).toBeLessThan(1e-11);
      expect(maxRelDiff(d2, d1), `n=${n}`).toBeLessThan(1e-11);
      expect(maxRelDiff(e2, e1), `n=${n}`).toBeLessThan(1e-11);
    }
  });

  it('symEigen: the top-k eigenpairs of symmetricEigenF32 (JS), with clusters, a split tridiagonal and k = 0 or n; the reduction on two threads gives the same bits', async () => {
    const n = 300; // from 256 rows the reduction's steps split over two threads
    const g = gaussian(n, n, 21).data;
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = g[i * n + j]! + g[j * n + i]!;
    // a repeated eigenvalue (cluster): A + 5·(u uᵀ + w wᵀ) for two orthonormal u, w
    const clustered = Float64Array.from(a);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) clustered[i * n + j] += 50 * ((i === j ? 1 : 0) * (i < 2 ? 1 : 0));
    // block diagonal: the tridiagonal splits into unreduced blocks
    const split = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if ((i < 120) === (j < 120)) split[i * n + j] = a[i * n + j]!;
    for (const [name, m] of [['plain', a], ['clustered', clustered], ['split', split]] as const) {
      const js = await symmetricEigenF32(m, n, jsMatMul);
      for (const k of [0, 7, 40, n]) {
        const values = new Float64Array(n);
        const vectors = new Float32Array(n * k);
        expect(nk.denseSymEigen(Float64Array.from(m), n, k, values, vectors, 2)).toBe(true);
        expect(maxRelDiff(values, js.values), `${name} values`).toBeLessThan(1e-12);
        // eigenvectors of a cluster are defined up to a rotation within it: compare projectors for k past it
        for (let c = 0; c < k; c++) {
          const ref = new Float64Array(n);
          const got = new Float64Array(n);
          for (let i = 0; i < n; i++) {
            ref[i] = js.vectors[i * n + c]!;
            got[i] = vectors[i * k + c]!;
          }
          const isolated = (c === 0 || js.values[c - 1]! - js.values[c]! > 1e-6) && (c + 1 >= n || js.values[c]! - js.values[c + 1]! > 1e-6);
          if (isolated) expect(maxRelDiff(got, ref), `${name} k=${k} vector ${c}`).toBeLessThan(1e-4);
          // A·v = λ·v whatever the cluster
          let res = 0;
          for (let i = 0; i < n; i++) {
            let s = 0;
            for (let j = 0; j < n; j++) s += m[i * n + j]! * got[j]!;
            res = Math.max(res, Math.abs(s - values[c]! * got[i]!));
          }
          expect(res, `${name} k=${k} residual ${c}`).toBeLessThan(1e-4 * Math.abs(values[0]!));
        }
      }
      // the same bits at 1 and 2 threads (from k·n >= 65536, here k = 250, the inverse iteration splits too)
      for (const k of [20, 250]) {
        const v1 = new Float32Array(n * k);
        const v2 = new Float32Array(n * k);
        nk.denseSymEigen(Float64Array.from(m), n, k, new Float64Array(n), v1, 1);
        nk.denseSymEigen(Float64Array.from(m), n, k, new Float64Array(n), v2, 2);
        expect(sameBits(v1, v2), `${name} k=${k}`).toBe(true);
      }
    }
    // a cluster of 6 eigenvalues 1e-8 apart (not exactly repeated: the tridiagonal would split) across the middle of the
    // wanted range, where two threads split the inverse iteration: the split moves past it (same bits, orthonormal)
    const q = randomOrthonormal(n, n, 23).data;
    const lambda = Array.from({ length: n }, (_, i) => (i >= 170 && i < 176 ? 170 + (i - 170) * 1e-8 : i) / n); // top 250: ascending 50..299
    const rep = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) for (let t = 0; t < n; t++) rep[i * n + j] += q[i * n + t]! * lambda[t]! * q[j * n + t]!;
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) rep[i * n + j] = rep[j * n + i] = 0.5 * (rep[i * n + j]! + rep[j * n + i]!);
    const k = 250;
    const r1 = new Float32Array(n * k);
    const r2 = new Float32Array(n * k);
    expect(nk.denseSymEigen(Float64Array.from(rep), n, k, new Float64Array(n), r1, 1)).toBe(true);
    expect(nk.denseSymEigen(Float64Array.from(rep), n, k, new Float64Array(n), r2, 2)).toBe(true);
    expect(sameBits(r1, r2)).toBe(true);
    let worst = 0;
    for (let c = 0; c < k; c++) {
      for (let d = 0; d <= c; d++) {
        let dot = 0;
        for (let i = 0; i < n; i++) dot += r2[i * k + c]! * r2[i * k + d]!;
        worst = Math.max(worst, Math.abs(dot - (c === d ? 1 : 0)));
      }
    }
    expect(worst).toBeLessThan(1e-5);
    const bad = Float64Array.from(a);
    bad[3] = NaN;
    expect(nk.denseSymEigen(bad, n, 3, new Float64Array(n), new Float32Array(n * 3), 2)).toBe(false);
  });

  it('refuse arguments that do not fit (short arrays, wrong types) with WK_NATIVE naming the kernel, sync and async', () => {
    const a = new Float32Array(10);
    const info = new Float64Array(6);
    const bad: [string, () => unknown][] = [
      ['denseGemm', () => nk.denseGemm(a, a, a, 4, 4, 4, 0, 1)],
      ['denseGemmAsync', () => nk.denseGemmAsync(a, a, a, 4, 4, 4, 0, 1)],
      ['denseInverse', () => nk.denseInverse(a, 4, 1)],
      ['densePolar', () => nk.densePolar(a, 4, 1, info)],
      ['densePolarAsync', () => nk.densePolarAsync(a, 3, 1, new Float64Array(2))],
      ['denseTridiagonalize', () => nk.denseTridiagonalize(new Float64Array(4), 3, new Float64Array(3), new Float64Array(3))],
      ['denseSymEigen', () => nk.denseSymEigen(new Float64Array(9), 3, 4, new Float64Array(3), new Float32Array(12), 1)],
      ['denseSymEigenAsync', () => nk.denseSymEigenAsync(new Float64Array(9), 3, 1, new Float64Array(3), new Float32Array(2), 1)],
      ['denseSymEigenAsync', () => nk.denseSymEigenAsync(new Float32Array(9) as unknown as Float64Array, 3, 1, new Float64Array(3), a, 1)],
    ];
    for (const [name, call] of bad) {
      let thrown: unknown;
      try {
        call();
      } catch (e) {
        thrown = e;
      }
      expect(thrown, name).toMatchObject({ code: 'WK_NATIVE', message: `${name}: arguments out of range` });
    }
  });

  it('the ORT backend carries them unless told not to', async () => {
    const { createOrtMatMul } = await import('../../../src/eval/ort-matmul.js');
    const on = await createOrtMatMul({ threads: 2 });
    const off = await createOrtMatMul({ threads: 1, native: false });
    try {
      expect(on.dense?.threads).toBe(2);
      expect(off.dense).toBeUndefined();
    } finally {
      await on.dispose();
      await off.dispose();
    }
  });

  describe('through a backend that carries them', () => {
    const backend: MatMulBackend = { name: 'js+native', matmul: jsMatMul.matmul, dense: denseKernelsOf(nk, 2) };

    it('polarNewtonSchulz takes Newton for square, tall and wide inputs (the product iterations for dependent columns), with the same factor', async () => {
      const n = 120;
      const s = Array.from({ length: n }, (_, i) => 1000 ** (-i / (n - 1)));
      const a = Float32Array.from(withSpectrum(n, n, s, 9).data);
      const exact = polarExact(a, n, n).p;
      const viaNewton = await polarNewtonSchulz(a, n, n, backend);
      expect(viaNewton.method).toBe('newton');
      const viaProducts = await polarNewtonSchulz(a, n, n, backend, { newton: false });
      expect(viaProducts.method).toBe('newton-schulz');
      expect(maxRelDiff(viaNewton.p, exact)).toBeLessThan(1e-4);
      expect(maxRelDiff(viaProducts.p, exact)).toBeLessThan(1e-4);
      // tall and wide: through an orthonormal basis, then Newton on the square R = QᵀA
      for (const [rows, cols] of [
        [n + 1, n],
        [3 * n, n],
        [n, n + 7],
      ] as const) {
        const x = Float32Array.from(withSpectrum(rows, cols, s, rows + cols).data);
        const r = await polarNewtonSchulz(x, rows, cols, backend);
        expect(r.method, `${rows}x${cols}`).toBe('newton');
        expect(maxRelDiff(r.p, polarExact(x, rows, cols).p), `${rows}x${cols}`).toBeLessThan(1e-4);
      }
      // dependent columns: the product iterations run (as without the native kernels), not a completed basis
      const low = Array.from({ length: n }, (_, i) => (i < n - 10 ? 1 : 0));
      const dep = Float32Array.from(withSpectrum(n + 20, n, low, 3).data);
      const r = await polarNewtonSchulz(dep, n + 20, n, backend);
      expect(r.method).toBe('newton-schulz');
      expect(sameBits(r.p, (await polarNewtonSchulz(dep, n + 20, n, backend, { newton: false })).p)).toBe(true);
    });

    it('polarNewtonSchulz falls back to the product iterations for a singular square input, also one it may overwrite', async () => {
      const n = 60;
      const s = Array.from({ length: n }, (_, i) => (i < 50 ? 1 - i / 100 : 0));
      const a = Float32Array.from(withSpectrum(n, n, s, 4).data);
      const r = await polarNewtonSchulz(a, n, n, backend);
      expect(r.method).toBe('newton-schulz');
      // the declined input is left intact for the fallback: the same factor as from an untouched copy
      const mine = Float32Array.from(a);
      const inPlace = await polarNewtonSchulz(mine, n, n, backend, { overwrite: true });
      expect(inPlace.method).toBe('newton-schulz');
      expect(sameBits(inPlace.p, r.p)).toBe(true);
    });

    it('the async kernels give the bits of the synchronous ones (on one thread or two)', async () => {
      const n = 280;
      const kk = 30;
      const g = gaussian(n, n, 8).data;
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = g[i * n + j]! + g[j * n + i]!;
      const v1 = new Float32Array(n * kk);
      const v2 = new Float32Array(n * kk);
      const e1 = new Float64Array(n);
      const e2 = new Float64Array(n);
      expect(nk.denseSymEigen(Float64Array.from(a), n, kk, e1, v1, 2)).toBe(true);
      expect(await nk.denseSymEigenAsync(Float64Array.from(a), n, kk, e2, v2, 1)).toBe(true);
      expect(sameBits(v1, v2)).toBe(true);
      expect(e2).toEqual(e1);
      const x = f32(n, n, 12);
      const p1 = Float32Array.from(x);
      const p2 = Float32Array.from(x);
      const i1 = Float64Array.of(20, 1e-5, 1e8, 0, 0, 0);
      const i2 = Float64Array.of(20, 1e-5, 1e8, 0, 0, 0);
      expect(nk.densePolar(p1, n, 2, i1)).toBe(true);
      expect(await nk.densePolarAsync(p2, n, 1, i2)).toBe(true);
      expect(sameBits(p1, p2)).toBe(true);
      expect(i2[3]).toBe(i1[3]);
      // a narrow product reads A in place (no packing): the bits of the packed path, either way round
      for (const cols of [40, 300]) {
        const bm = f32(n, cols, 13);
        const c1 = new Float32Array(n * cols);
        const c2 = new Float32Array(n * cols);
        nk.denseGemm(x, bm, c1, n, n, cols, 0, 2);
        await nk.denseGemmAsync(x, bm, c2, n, n, cols, 0, 1);
        expect(sameBits(c1, c2)).toBe(true);
        expect(maxRelDiff(c1, refMatMul(x, bm, n, n, cols))).toBeLessThan(2e-6);
      }
    });

    it('symmetricEigenF32 with the native reduction: the same eigenpairs as without', async () => {
      const n = 90;
      const g = gaussian(n, n, 3).data;
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = g[i * n + j]! + g[j * n + i]!;
      const js = await symmetricEigenF32(a, n, jsMatMul);
      const nat = await symmetricEigenF32(a, n, backend);
      expect(maxRelDiff(nat.values, js.values)).toBeLessThan(1e-12);
      expect(maxRelDiff(nat.vectors, js.vectors)).toBeLessThan(1e-5);
    });
  });
});
