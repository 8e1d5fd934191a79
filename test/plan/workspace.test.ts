// The executor's workspaces (src/tensor/wasm/workspace.ts, Scratch in src/plan/execute.ts): a workspace has the
// size asked for, bf16 widening into one is exact and writes exactly n values, bf16 narrowing in place rounds as
// convert.ts and writes exactly n values, and the GTA kernels that read
// inputs in place and write outputs at any offset give the bits of the copying path without touching neighbours.
import { describe, expect, it } from 'vitest';
import { Scratch } from '../../src/plan/execute.js';
import { bf16ToF32, bf16ToF32Js, f32ToBf16Js } from '../../src/tensor/convert.js';
import { Workspace, WORKSPACE_START, workspaceOf } from '../../src/tensor/wasm/workspace.js';
import { mergeWasm, mergeWasmFor, OUT_PTR } from '../../src/merge/methods/gta-kernels.js';
import { xorshift32 } from '../helpers/rng.js';

const rng = xorshift32;

const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

/** bf16-like f32 values with NaN, inf and -0 */
function values(seed: number, n: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  const u = new Uint32Array(a.buffer);
  for (let i = 0; i < n; i++) u[i] = (r() & 0x3fff0000) | ((r() & 1) << 31);
  a[1] = NaN;
  a[5] = Infinity;
  a[6] = -0;
  return a;
}

describe('workspace', () => {
  it('has the size asked for (whole pages), is registered by its buffer, and is refused past its limit', () => {
    const ws = Workspace.create(WORKSPACE_START)!;
    expect(ws.byteLength).toBe(WORKSPACE_START);
    expect(workspaceOf(ws.buffer)).toBe(ws);
    const big = Workspace.create(WORKSPACE_START + 100_000)!;
    expect(big.byteLength).toBe(WORKSPACE_START + 2 * 65536);
    expect(workspaceOf(big.buffer)).toBe(big);
    expect(Workspace.create(2 ** 33)).toBeUndefined();
    expect(workspaceOf(new ArrayBuffer(8))).toBeUndefined();
  });

  it('widens bf16 in place, exactly n values, bit-identical to the JS loop', () => {
    for (const n of [4096, 4103, 65536, 65537 + 9]) {
      const r = rng(n);
      const src = new Uint16Array(n);
      for (let i = 0; i < n; i++) src[i] = r() & 0xffff;
      const ws = Workspace.create(WORKSPACE_START + 4 * (n + 16))!;
      const around = ws.f32(WORKSPACE_START, n + 16);
      around.fill(7);
      const dst = ws.f32(WORKSPACE_START + 32, n);
      expect(bf16ToF32(src, dst)).toBe(dst);
      expect(bits(dst)).toEqual(bits(bf16ToF32Js(src)));
      expect(Array.from(around.subarray(0, 8))).toEqual(new Array(8).fill(7));
      expect(Array.from(around.subarray(n + 8))).toEqual(new Array(8).fill(7));
    }
    expect(Workspace.create(WORKSPACE_START)!.widenBf16(new Uint16Array(8), new Float32Array(8), 8)).toBe(false);
  });

  it('narrows f32 to bf16 in place, exactly n values, bit-identical to the JS loop (rounding ties, NaN payloads, inf, denormals)', () => {
    for (const n of [0, 1, 7, 8, 4103, 16384 + 5]) {
      const r = rng(n + 1);
      const src = new Float32Array(n);
      const u = new Uint32Array(src.buffer);
      for (let i = 0; i < n; i++) {
        const k = r() % 8;
        if (k === 0) u[i] = (r() & 0xffff0000) | 0x8000; // exactly halfway: ties to even
        else if (k === 1) u[i] = 0x7f800000 | (r() & 0x807fffff) | 1; // NaN, any payload and sign
        else if (k === 2) u[i] = r() & 0x807fffff; // denormals and zeros
        else if (k === 3) u[i] = (r() & 0x80000000) | 0x7f7fffff; // rounds up to inf
        else u[i] = r();
      }
      if (n > 3) src[3] = -Infinity;
      const want = f32ToBf16Js(src);
      const ws = Workspace.create(WORKSPACE_START + 4 * (n + 16))!;
      const around = new Uint32Array(ws.buffer, WORKSPACE_START, n + 16);
      around.fill(0x12345678);
      const values = ws.f32(WORKSPACE_START + 32, n);
      values.set(src);
      const got = ws.narrowBf16InPlace(values)!;
      expect(got.byteOffset).toBe(values.byteOffset);
      expect(Array.from(got)).toEqual(Array.from(want));
      expect(Array.from(around.subarray(0, 8))).toEqual(new Array(8).fill(0x12345678));
      expect(Array.from(around.subarray(n + 8))).toEqual(new Array(8).fill(0x12345678));
    }
    expect(Workspace.create(WORKSPACE_START)!.narrowBf16InPlace(new Float32Array(8))).toBeUndefined();
  });
});

describe('executor Scratch slots', () => {
  it('live in a workspace; a reserved chunk keeps its views while its slots are taken', () => {
    const s = new Scratch();
    s.reserveF32(4, 1000);
    const views = [0, 1, 2, 3].map((i) => s.f32Buffer(i, 1000));
    views.forEach((v, i) => v.fill(i + 1));
    for (let i = 3; i >= 0; i--) expect(s.f32Buffer(i, 999).buffer).toBe(views[0]!.buffer);
    views.forEach((v, i) => expect(v[999]).toBe(i + 1)); // not detached, not overlapping
    expect(workspaceOf(views[0]!.buffer)).toBeDefined();
    // a larger chunk re-lays the slots out, in a larger workspace (earlier views are dead by then, not detached)
    s.reserveF32(5, 500_000);
    const big = s.f32Buffer(4, 500_000);
    expect(big.length).toBe(500_000);
    expect(big.buffer).not.toBe(views[0]!.buffer);
    expect(views[0]!.length).toBe(1000);
    expect(s.f32Buffer(100, 10).buffer).not.toBe(big.buffer); // reader staging stays on the JS heap
  });
});

describe('GTA kernels on workspace arrays', () => {
  for (const n of [1, 3, 6, 1001, 16384]) {
    it(`read inputs in place and write exactly n outputs at any offset (n=${n})`, () => {
      // reference: the shared instance, everything copied through its regions
      const ref = mergeWasm()!;
      const base = values(1, n);
      const xs = [2, 3, 4].map((k) => values(k, n));
      const sc = [1, 0.75, -0.5];
      const want = (consensus: boolean, raw: boolean): number[] => {
        ref.base.set(base);
        for (let i = 0; i < 3; i++) {
          ref.model(i).set(xs[i]!);
          ref.setParams(i, sc[i]!, 1);
          if (!raw) ref.deltaMag(i, n, 0x3c000000, 2);
        }
        if (consensus) ref.tiesOut(3, n, true, 0.9);
        else ref.sumOut(3, n, 1.5, 0.9, raw);
        return bits(ref.out.subarray(0, n));
      };
      // the same in a workspace: base, inputs and output are slots
      const s = new Scratch();
      s.reserveF32(5, n);
      const out = s.f32Buffer(0, n);
      const ins = [base, ...xs].map((a, i) => {
        const v = s.f32Buffer(1 + i, n);
        v.set(a);
        return v;
      });
      const w = mergeWasmFor(out)!;
      expect(w).not.toBe(ref);
      expect(w.holds(ins[0]!)).toBe(true);
      const next = new Float32Array(out.buffer, out.byteOffset + 4 * n, 4);
      for (const [consensus, raw] of [[true, false], [false, false], [false, true]] as const) {
        out.fill(5);
        const saved = Array.from(next);
        const bp = w.place(ins[0]!, n, w.base);
        const ptrs: number[] = [];
        for (let i = 0; i < 3; i++) {
          const xp = w.place(ins[1 + i]!, n, w.model(i));
          expect(xp).toBe(ins[1 + i]!.byteOffset);
          ptrs.push(xp);
          w.setParams(i, sc[i]!, 1);
          if (!raw) w.deltaMag(i, n, 0x3c000000, 2, xp, bp);
        }
        if (consensus) w.tiesOut(3, n, true, 0.9, bp, out.byteOffset);
        else w.sumOut(3, n, 1.5, 0.9, raw, bp, out.byteOffset, raw ? ptrs : undefined);
        expect(bits(out)).toEqual(want(consensus, raw));
        expect(Array.from(next)).toEqual(saved); // the next slot is untouched
        ins.forEach((v, i) => expect(bits(v)).toEqual(bits([base, ...xs][i]!))); // inputs are read only
      }
      expect(OUT_PTR).toBe(65536);
    });
  }
});
