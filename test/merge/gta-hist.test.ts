// The SIMD module's high-bits histogram (MergeWasm.histHigh / deltaHistHigh, hist_high / delta_hist_high in
// merge-kernels.wat) must give a MagnitudeSelector exactly the counts of the JS pass (addHighArithmeticBits /
// addHighDelta), whatever the data (NaN, inf, -0, denormals), the chunking, and how many selectors share the
// module's histogram slots; with the inexact deltas of BF16 inputs counted apart, the thresholds of the two-pass
// selection, with or without its low pass.

import { describe, it, expect } from 'vitest';
import { mergeWasm, mergeWasmFor, WASM_MAX_CHUNK } from '../../src/merge/methods/gta-kernels.js';
import { MagnitudeSelector } from '../../src/tensor/select.js';
import { Workspace, WORKSPACE_START } from '../../src/tensor/wasm/workspace.js';
import { uniform01 } from '../helpers/rng.js';

const rng = uniform01;

/** values of every kind: bf16-like small numbers, wide exponents, denormals, ±0, ±inf, NaN */
function data(seed: number, n: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  const u = new Uint32Array(a.buffer);
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.5) a[i] = (r() - 0.5) * 0.02;
    else if (k < 0.7) u[i] = (r() * 4294967296) >>> 0; // any bits (NaNs of any kind included)
    else if (k < 0.8) u[i] = ((r() * 0x7fffff) | 0) | (r() < 0.5 ? 0x80000000 : 0); // denormals
    else if (k < 0.85) a[i] = r() < 0.5 ? 0 : -0;
    else if (k < 0.9) a[i] = r() < 0.5 ? Infinity : -Infinity;
    else if (k < 0.93) a[i] = NaN;
    else a[i] = a[Math.max(0, i - 1 - ((r() * 4) | 0))]!; // repeats
  }
  return a;
}

const countsOf = (s: MagnitudeSelector): Float64Array => (s as unknown as { hi: Float64Array }).hi;

/** the first bin where two selectors' resolved high-pass counts differ, -1 if none (as [bin, a, b]) */
function firstDiff(a: MagnitudeSelector, b: MagnitudeSelector): [number, number, number] {
  const x = countsOf(a);
  const y = countsOf(b);
  expect(x.length).toBe(y.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return [i, x[i]!, y[i]!];
  return [-1, 0, 0];
}
const SAME: [number, number, number] = [-1, 0, 0];

describe('wasm high-bits histogram', () => {
  it('gives the counts and thresholds of the JS pass over f32(x - b) on random data', () => {
    const w = mergeWasm()!;
    for (const [n, chunk] of [[1, 1], [7, 3], [1000, 1000], [40000, WASM_MAX_CHUNK], [33333, 4097]] as const) {
      const x = data(n, n);
      const b = data(n + 1, n);
      for (const k of [0, 1, n >> 3, n >> 1, n - 1, n]) {
        const js = new MagnitudeSelector();
        const wa = new MagnitudeSelector();
        const wf = new MagnitudeSelector(); // the fused delta + histogram
        const d = new Float32Array(chunk);
        for (let o = 0; o < n; o += chunk) {
          const len = Math.min(chunk, n - o);
          js.addHighDelta(x.subarray(o, o + len), b.subarray(o, o + len), d, len);
          w.model(0).set(x.subarray(o, o + len));
          w.model(1).set(x.subarray(o, o + len));
          w.base.set(b.subarray(o, o + len));
          w.deltaHistHigh(wf, len, w.modelPtr(1));
          w.deltaAll(0, len);
          expect(Array.from(w.modelU(0).subarray(0, len))).toEqual(Array.from(new Uint32Array(d.buffer, 0, len)));
          w.histHigh(wa, 0, len);
        }
        const needJs = js.resolveHigh(k);
        const needWa = wa.resolveHigh(k);
        expect(wf.resolveHigh(k)).toBe(needJs);
        expect(firstDiff(wa, js)).toEqual(SAME);
        expect(firstDiff(wf, js)).toEqual(SAME);
        expect(needWa).toBe(needJs);
        if (needJs) {
          js.addLow(new Float32Array(n).map((_, i) => x[i]! - b[i]!));
          wa.addLow(new Float32Array(n).map((_, i) => x[i]! - b[i]!));
          wf.addLow(new Float32Array(n).map((_, i) => x[i]! - b[i]!));
        }
        expect(wa.threshold()).toEqual(js.threshold());
        expect(wf.threshold()).toEqual(js.threshold());
      }
    }
  });

  it('keeps each selector its own counts when more selectors than slots share the module', () => {
    const w = mergeWasm()!;
    const m = 13; // more than the module's 8 slots: the least recently used ones are handed over
    const n = 5000;
    const chunk = 1234;
    const xs = Array.from({ length: m }, (_, i) => data(100 + i, n));
    const js = xs.map(() => new MagnitudeSelector());
    const wa = xs.map(() => new MagnitudeSelector());
    const r = rng(7);
    for (let o = 0; o < n; o += chunk) {
      const len = Math.min(chunk, n - o);
      for (let i = 0; i < m; i++) {
        // arithmetic values (quiet NaNs): x - 0
        const v = xs[i]!.subarray(o, o + len).map((t) => t - 0);
        js[i]!.addHighArithmeticBits(new Uint32Array(v.buffer), len);
        if (r() < 0.3) {
          // some chunks through the JS pass of the same selector
          wa[i]!.addHighArithmeticBits(new Uint32Array(v.buffer), len);
          continue;
        }
        w.model(0).set(v);
        w.histHigh(wa[i]!, 0, len);
      }
    }
    for (let i = 0; i < m; i++) {
      expect(wa[i]!.resolveHigh(n >> 1)).toBe(js[i]!.resolveHigh(n >> 1));
      expect(firstDiff(wa[i]!, js[i]!)).toEqual(SAME);
    }
    // every slot was handed back: a fresh selector starts from zero
    const s = new MagnitudeSelector();
    w.model(0).fill(0.5, 0, 4);
    w.histHigh(s, 0, 4);
    s.resolveHigh(1);
    expect(countsOf(s).reduce((a, c) => a + c, 0)).toBe(4);
  });

  it('counts inputs that live in a workspace in place, its slots clear of the workspace bytes', () => {
    const n = 3001;
    const ws = Workspace.create(WORKSPACE_START + 4 * (n + 16))!;
    const a = ws.f32(WORKSPACE_START, n);
    a.set(data(42, n));
    const before = Array.from(new Uint32Array(a.buffer, a.byteOffset, n));
    const b = data(43, n);
    const w = mergeWasmFor(a)!;
    expect(w).not.toBe(mergeWasm());
    const bp = w.place(b, n, w.base);
    const js = new MagnitudeSelector();
    js.addHighDelta(a, b, new Float32Array(n), n);
    js.resolveHigh(n >> 1);
    const sels = Array.from({ length: 8 }, () => new MagnitudeSelector()); // every slot in use
    for (const s of sels) w.deltaHistHigh(s, n, a.byteOffset, bp);
    expect(Array.from(new Uint32Array(a.buffer, a.byteOffset, n))).toEqual(before);
    for (const s of sels) {
      s.resolveHigh(n >> 1);
      expect(firstDiff(s, js)).toEqual(SAME);
    }
  });

  it('BF16 inputs with inexact deltas counted apart: the thresholds of the two-pass JS selection, mostly without a low pass', () => {
    const n = 20003;
    const ws = Workspace.create(WORKSPACE_START + 2 * 2 * (n + 16))!;
    const xb = new Uint16Array(ws.buffer, WORKSPACE_START, n);
    const bb = new Uint16Array(ws.buffer, WORKSPACE_START + 2 * (n + 16), n);
    const r = rng(11);
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    const bf16 = (v: number): number => {
      f[0] = v;
      return u[0]! >>> 16;
    };
    for (let i = 0; i < n; i++) {
      const b = (r() - 0.5) * 0.04;
      bb[i] = bf16(b);
      const k = r();
      // mostly small deltas (exact: same exponent), some across exponents or signs (inexact), NaN, inf, ±0 and repeats
      if (k < 0.7) xb[i] = bf16(b + (r() - 0.5) * 0.004);
      else if (k < 0.85) xb[i] = bf16(-b * (r() + 0.5));
      else if (k < 0.9) xb[i] = bf16(b * 7.3);
      else if (k < 0.92) xb[i] = r() < 0.5 ? 0x7fc0 : 0xff80; // NaN, -inf
      else if (k < 0.94) xb[i] = bb[i]!; // delta +0
      else xb[i] = xb[Math.max(0, i - 1 - ((r() * 4) | 0))]!;
    }
    const xf = new Float32Array(n);
    const bf = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      u[0] = xb[i]! << 16;
      xf[i] = f[0]!;
      u[0] = bb[i]! << 16;
      bf[i] = f[0]!;
    }
    const w = mergeWasmFor(xb)!;
    const d = new Float32Array(n);
    let skipped = 0;
    let lowPasses = 0;
    for (const k of [0, 1, 7, 100, 2500, 5000, 9000, 10001, 12345, 15000, 17777, 19000, 20003, 25000, ...Array.from({ length: 40 }, (_, j) => 300 + j * 487)]) {
      const js = new MagnitudeSelector();
      for (let o = 0; o < n; o += 4096) {
        const len = Math.min(4096, n - o);
        js.addHighDelta(xf.subarray(o, o + len), bf.subarray(o, o + len), d, len);
      }
      const jsLow = js.resolveHigh(k);
      if (jsLow) js.addLowDelta(xf, bf, d, n);
      const sel = new MagnitudeSelector();
      sel.trackInexact();
      for (let o = 0; o < n; o += 4096) w.deltaHistInexact(sel, Math.min(4096, n - o), xb.byteOffset + 2 * o, bb.byteOffset + 2 * o);
      const low = sel.resolveHigh(k);
      expect(firstDiff(sel, js)).toEqual(SAME);
      if (low) {
        lowPasses++;
        for (let o = 0; o < n; o += 4096) {
          const len = Math.min(4096, n - o);
          sel.addLowList(w.outU, w.deltaBinList(0, len, sel.lowBin(), xb.byteOffset + 2 * o, bb.byteOffset + 2 * o, 1));
        }
      } else if (jsLow) skipped++;
      expect(sel.threshold()).toEqual(js.threshold());
    }
    expect(skipped).toBeGreaterThan(10);
    expect(lowPasses).toBeGreaterThan(0);
  });
});
