import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/tensor/rng.js';
import { MagnitudeSelector, applyMagnitudeMaskInto, topKMagnitude } from '../../src/tensor/select.js';

function keptBySort(x: Float32Array, k: number): Set<number> {
  // oracle: stable sort by |x| descending, ties by index
  const idx = [...x.keys()].sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b);
  return new Set(idx.slice(0, Math.max(0, Math.min(k, x.length))));
}

function keptByThreshold(x: Float32Array, k: number, chunk = x.length): Set<number> {
  const t = topKMagnitude(x, k);
  const out = new Float32Array(x.length);
  const state = { tiesLeft: t.ties };
  for (let s = 0; s < x.length; s += chunk) {
    applyMagnitudeMaskInto(x.subarray(s, s + chunk), t, state, out.subarray(s, s + chunk));
  }
  const kept = new Set<number>(); // inputs have no zeros, so a kept element is a non-zero output
  for (let i = 0; i < x.length; i++) if (out[i] !== 0) kept.add(i);
  return kept;
}

describe('top-k magnitude selection', () => {
  it('matches a sort on random data, for many k, with exact-k and index-ordered ties', () => {
    const r = new SeededRandom(7);
    const x = new Float32Array(5000);
    // few distinct magnitudes so ties are common; no zeros so "kept" is observable
    for (let i = 0; i < x.length; i++) x[i] = (r.int(40) + 1) * (r.next() < 0.5 ? -0.125 : 0.125);
    for (const k of [1, 2, 17, 123, 2500, 4999]) {
      const got = keptByThreshold(x, k);
      expect(got.size).toBe(k);
      expect([...got].sort((a, b) => a - b)).toEqual([...keptBySort(x, k)].sort((a, b) => a - b));
    }
  });

  it('is independent of chunking', () => {
    const r = new SeededRandom(3);
    const x = Float32Array.from({ length: 4096 }, () => Math.round(r.normal() * 8) / 8 || 0.5);
    const whole = keptByThreshold(x, 1000);
    for (const chunk of [1, 7, 64, 1000]) expect(keptByThreshold(x, 1000, chunk)).toEqual(whole);
  });

  it('handles k <= 0, k >= n, NaN and continuous values', () => {
    const x = new Float32Array([3, -1, NaN, 2, -5, 0.5]);
    expect(topKMagnitude(x, 0).none).toBe(true);
    expect(topKMagnitude(x, 6).all).toBe(true);
    const t = topKMagnitude(x, 2);
    const out = new Float32Array(6);
    applyMagnitudeMaskInto(x, t, { tiesLeft: t.ties }, out);
    expect(Array.from(out)).toEqual([3, 0, 0, 0, -5, 0]);
  });

  it('streams across several arrays (global top-k)', () => {
    const a = new Float32Array([1, 9, 3]);
    const b = new Float32Array([8, 2, 7]);
    const s = new MagnitudeSelector();
    s.addHigh(a);
    s.addHigh(b);
    if (s.resolveHigh(3)) {
      s.addLow(a);
      s.addLow(b);
    }
    const t = s.threshold();
    const st = { tiesLeft: t.ties };
    const oa = new Float32Array(3);
    const ob = new Float32Array(3);
    applyMagnitudeMaskInto(a, t, st, oa);
    applyMagnitudeMaskInto(b, t, st, ob);
    expect([...oa, ...ob]).toEqual([0, 9, 0, 8, 0, 7]);
  });
});

describe('magnitudeMaskInto', () => {
  it('marks exactly the elements applyMagnitudeMaskInto keeps, across chunks and ties; NaN never', async () => {
    const { magnitudeMaskInto } = await import('../../src/tensor/select.js');
    const x = Float32Array.from([0.5, -2, 2, 0, NaN, -0.5, 2, 1, -2, 0.25]);
    for (const k of [0, 1, 3, 4, 6, 9, 10, 20]) {
      const t = topKMagnitude(x, k);
      const vals = new Float32Array(x.length);
      applyMagnitudeMaskInto(x, t, { tiesLeft: t.ties }, vals);
      const mask = new Uint8Array(x.length);
      const state = { ties: t.ties };
      let kept = 0;
      for (const [a, b] of [[0, 3], [3, 4], [4, 10]] as const) kept += magnitudeMaskInto(x.subarray(a, b), b - a, t, state, mask.subarray(a, b));
      const want = Array.from(x, (v, i) => +(!Number.isNaN(v) && (t.all || vals[i] !== 0)));
      expect(Array.from(mask)).toEqual(want);
      expect(kept).toBe(want.reduce((s, m) => s + m, 0));
      if (k <= 9 && !t.all) expect(kept).toBe(k);
    }
  });
});

describe('windowed high pass (setWindow: buckets counted only around the threshold)', () => {
  /** a selector fed like the native window kernel: by bucket inside [lo, hi], counted outside */
  function windowed(x: Float32Array, lo: number, hi: number): MagnitudeSelector {
    const s = new MagnitudeSelector();
    s.setWindow(lo, hi);
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const counts = new Uint32Array(32768);
    let above = 0;
    let below = 0;
    for (let i = 0; i < x.length; i++) {
      const a = u[i]! & 0x7fffffff;
      if (a > 0x7f800000) continue; // NaN: in no count
      const b = a >>> 16;
      if (b > hi) above++;
      else if (b < lo) below++;
      else counts[b]!++;
    }
    s.addMagnitudeCounts(counts);
    s.addOutsideCounts(above, below);
    return s;
  }

  const r = new SeededRandom(11);
  const x = Float32Array.from({ length: 20000 }, () => r.normal() * (r.next() < 0.1 ? 10 : 1));
  x[5] = NaN;
  const bucket = (v: number): number => (new Uint32Array(Float32Array.of(Math.abs(v)).buffer)[0]! >>> 16);

  it('gives the same threshold as the full histogram when the window holds it', () => {
    for (const k of [1, 100, 7000, 10000, 19990]) {
      const full = new MagnitudeSelector();
      full.addHigh(x);
      const needLow = full.resolveHigh(k);
      if (needLow) full.addLow(x);
      // a window of buckets around the true threshold
      const tb = full.threshold().bits >>> 16;
      const s = windowed(x, Math.max(0, tb - 3), tb + 2);
      expect(s.resolveHigh(k)).toBe(needLow);
      expect(s.windowMissed()).toBe(false);
      if (needLow) s.addLow(x);
      expect(s.threshold()).toEqual(full.threshold());
      expect(s.counted()).toBe(x.length - 1);
    }
  });

  it('says when the threshold lies above or below the window', () => {
    const high = windowed(x, bucket(3), bucket(8));
    high.resolveHigh(20); // the 10x tail reaches ~40: the 20th largest is above the window
    expect(high.windowMissed()).toBe(true);
    const low = windowed(x, bucket(3), bucket(8));
    low.resolveHigh(15000); // the 15000-th largest is near 0.3: below the window
    expect(low.windowMissed()).toBe(true);
    const inside = windowed(x, bucket(0.5), bucket(2));
    inside.resolveHigh(8000);
    expect(inside.windowMissed()).toBe(false);
  });

  it('bucketsAtRanks finds the buckets of given ranks', () => {
    const s = new MagnitudeSelector();
    s.addHigh(x);
    const sorted = [...x].filter((v) => !Number.isNaN(v)).map(Math.abs).sort((a, b) => b - a);
    expect(s.bucketsAtRanks([1, 500, 19999, 25000])).toEqual([bucket(sorted[0]!), bucket(sorted[499]!), bucket(sorted[19998]!), 0]);
    expect(s.counted()).toBe(19999);
  });
});

describe('MagnitudeSelector.reset', () => {
  it('gives a selector that behaves exactly like a new one (counts, window, inexact tracking and result cleared)', () => {
    const r = new SeededRandom(5);
    const x = Float32Array.from({ length: 3000 }, () => Math.round(r.normal() * 64) / 64 || 1);
    const y = Float32Array.from({ length: 3000 }, () => r.normal());
    const used = new MagnitudeSelector();
    used.trackInexact();
    used.setWindow(10, 20); // a window that cannot hold y's threshold: it must not survive the reset
    used.addHigh(x);
    used.resolveHigh(100);
    used.reset();
    for (const k of [1, 700, 2999]) {
      const fresh = new MagnitudeSelector();
      fresh.addHigh(y);
      const s = k === 1 ? used : new MagnitudeSelector();
      if (k !== 1) {
        s.trackInexact();
        s.addHigh(x);
        s.resolveHigh(5);
        s.reset();
      }
      s.addHigh(y);
      const needs = fresh.resolveHigh(k);
      expect(s.resolveHigh(k)).toBe(needs);
      expect(s.windowMissed()).toBe(false);
      if (needs) {
        fresh.addLow(y);
        s.addLow(y);
      }
      expect(s.threshold()).toEqual(fresh.threshold());
    }
  });
});
