import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpointPath } from '../../src/io/open.js';
import { openSafetensorsWriter } from '../../src/io/safetensors/writer.js';
import { applyVectorPath, applyVectors, decodeIndexGaps, encodeIndexGaps, removeVectors, undoPathFor } from '../../src/vectors/apply.js';
import { extractVector } from '../../src/vectors/extract.js';
import { openVector } from '../../src/vectors/reader.js';
import { MLP_NAMES, mlpWeights, writeMlp } from '../io/onnx/build-model.js';
import { tempDir, tinyValues, TINY_SHAPES, writeModel } from '../plan/helpers.js';

type D = 'F32' | 'BF16' | 'F16';

async function family(dtype: D) {
  const dir = await tempDir();
  const base = join(dir, 'base');
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  await writeModel(base, tinyValues(0), { dtype });
  // a large delta so that rounding after adding loses low bits of the base
  await writeModel(a, tinyValues(1, 3), { dtype });
  await writeModel(b, tinyValues(2, 0.05), { dtype });
  const va = join(dir, 'a.safetensors');
  const vb = join(dir, 'b.safetensors');
  await extractVector({ base, finetuned: a, out: va });
  await extractVector({ base, finetuned: b, out: vb });
  return { dir, base, a, b, va, vb };
}

async function tensorBytes(path: string): Promise<Map<string, Buffer>> {
  const r = await openCheckpointPath(path);
  const out = new Map<string, Buffer>();
  for (const t of r.tensors()) out.set(t.name, Buffer.from(await r.readBytes(t.name)));
  await r.close();
  return out;
}

async function f32(path: string, name: string): Promise<Float32Array> {
  const r = await openCheckpointPath(path);
  const v = await r.readF32(name);
  await r.close();
  return v;
}

describe('vector apply / remove', () => {
  it.each(['BF16', 'F16'] as const)('%s: extract then apply at scale 1 reproduces the fine-tuned model exactly', async (dtype) => {
    const { dir, base, a, va } = await family(dtype);
    const out = join(dir, 'applied');
    const res = await applyVectors({ base, vectors: [{ path: va, scale: 1 }], out, budgetBytes: 48 });
    expect(res.patched).toBe(Object.keys(TINY_SHAPES).length);
    // f32 differences of 16-bit values are exact, so base + (ft - base) rounds back to ft
    expect(await tensorBytes(out)).toEqual(await tensorBytes(a));
    // companions come from the base folder
    expect(await readdir(out)).toContain('config.json');
  });

  it('F32: extract then apply at scale 1 is within one ulp of the fine-tuned model', async () => {
    const { dir, base, a, va } = await family('F32');
    const out = join(dir, 'applied');
    await applyVectors({ base, vectors: [{ path: va, scale: 1 }], out });
    let differing = 0;
    for (const name of Object.keys(TINY_SHAPES)) {
      const want = await f32(a, name);
      const got = await f32(out, name);
      const bv = await f32(base, name);
      for (let i = 0; i < want.length; i++) {
        // one ulp at the larger of the magnitudes involved (f32(f - b) rounds at that scale)
        const m = Math.max(Math.abs(want[i]!), Math.abs(bv[i]!));
        const ulp = 2 ** (Math.floor(Math.log2(m)) - 23);
        expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(ulp);
        if (got[i] !== want[i]) differing++;
      }
    }
    expect(differing).toBeLessThan(50);
  });

  it.each(['BF16', 'F16', 'F32'] as const)('%s: apply then remove restores the base byte for byte', async (dtype) => {
    const { dir, base, va, vb } = await family(dtype);
    const out = join(dir, 'applied');
    const terms = [
      { path: va, scale: 0.7 },
      { path: vb, scale: -1.3 },
    ];
    const res = await applyVectors({ base, vectors: terms, out, budgetBytes: 40 });
    expect(res.undo!.path).toBe(join(out, 'weightkit-undo.safetensors'));
    if (dtype !== 'F32') expect(res.undo!.entries).toBeGreaterThan(0); // rounding really lost bits
    // the values are base + sum s_k v_k rounded once
    const name = 'model.layers.1.mlp.up_proj.weight';
    const bv = await f32(base, name);
    const av = await f32(va, name);
    const bbv = await f32(vb, name);
    const got = await f32(out, name);
    if (dtype === 'F32') for (let i = 0; i < bv.length; i++) expect(got[i]).toBe(Math.fround(bv[i]! + Math.fround(0.7 * av[i]! + -1.3 * bbv[i]!)));
    // plain subtraction would not restore the base...
    const plain = join(dir, 'plain.safetensors');
    const p = await removeVectors({ model: join(out, 'model.safetensors'), vectors: terms, out: plain });
    expect(p.exact).toBe(false);
    expect(p.warnings.join(' ')).toMatch(/no undo record/);
    if (dtype !== 'F32') expect(await tensorBytes(plain)).not.toEqual(await tensorBytes(base));
    // ...the undo record does
    const restored = join(dir, 'restored');
    const r = await removeVectors({ model: out, vectors: terms, out: restored, exact: true, budgetBytes: 40 });
    expect(r.exact).toBe(true);
    expect(await tensorBytes(restored)).toEqual(await tensorBytes(base));
    // 16-bit dtypes store their bit differences (mod 2^16) as U16, F32 as I32; records of the older all-I32 layout
    // still restore exactly
    const undoPath = join(out, 'weightkit-undo.safetensors');
    const undo = await openCheckpointPath(undoPath);
    const bitsTensors = undo.tensors().filter((t) => t.name.endsWith('.__undo_bits'));
    const meta = undo.metadata();
    const old = new Map<string, { dtype: 'U32' | 'I32'; data: Uint8Array }>();
    let gapBytes = 0;
    let records = 0;
    for (const t of undo.tensors()) {
      const data = (await undo.read(t.name)).data as Uint8Array | Uint16Array | Int32Array;
      if (t.name.endsWith('.__undo_gaps')) {
        // the older layout: indices as U32
        const tensor = t.name.slice(0, -'.__undo_gaps'.length);
        const n = undo.tensors().find((x) => x.name === `${tensor}.__undo_bits`)!.shape[0]!;
        const idx = decodeIndexGaps(data as Uint8Array, n, 1 << 30)!;
        expect(Array.from(idx).every((v, i) => i === 0 || v > idx[i - 1]!)).toBe(true);
        old.set(`${tensor}.__undo_indices`, { dtype: 'U32', data: new Uint8Array(idx.buffer) });
        gapBytes += data.length;
        records += n;
        continue;
      }
      old.set(t.name, t.dtype === 'U16' ? { dtype: 'I32', data: new Uint8Array(Int32Array.from(data).buffer) } : { dtype: t.dtype as 'U32' | 'I32', data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    }
    await undo.close();
    expect(new Set(bitsTensors.map((t) => t.dtype))).toEqual(new Set([dtype === 'F32' ? 'I32' : 'U16']));
    // indices are stored as varint gaps: under 2 bytes per record here (4 as U32)
    if (records > 0) expect(gapBytes / records).toBeLessThan(2);
    if (dtype !== 'F32') {
      const w = await openSafetensorsWriter(undoPath, [...old].map(([name, v]) => ({ name, dtype: v.dtype, shape: [v.data.byteLength / 4] })), { metadata: meta });
      for (const [name, v] of old) await w.write(name, v.data);
      await w.close();
      const again = join(dir, 'restored-old-layout');
      expect((await removeVectors({ model: out, vectors: terms, out: again, exact: true })).exact).toBe(true);
      expect(await tensorBytes(again)).toEqual(await tensorBytes(base));
    }
  });

  it('single-file outputs keep the undo record beside the file', async () => {
    const { dir, base, va } = await family('BF16');
    const out = join(dir, 'applied.safetensors');
    const res = await applyVectors({ base, vectors: [{ path: va, scale: 2.5 }], out });
    expect(res.undo!.path).toBe(await undoPathFor(out));
    expect(res.files).toContain(res.undo!.path);
    const restored = join(dir, 'restored.safetensors');
    const r = await removeVectors({ model: out, vectors: [{ path: va, scale: 2.5 }], out: restored, exact: true });
    expect(r.exact).toBe(true);
    expect(await tensorBytes(restored)).toEqual(await tensorBytes(base));
    // a different scale does not match the record
    await expect(removeVectors({ model: out, vectors: [{ path: va, scale: 2 }], out: join(dir, 'x.safetensors'), exact: true })).rejects.toMatchObject({
      code: 'VECTOR_UNDO_MISMATCH',
    });
    const loose = await removeVectors({ model: out, vectors: [{ path: va, scale: 2 }], out: join(dir, 'y.safetensors') });
    expect(loose.exact).toBe(false);
  });

  it('refuses a vector made on another base unless forced', async () => {
    const { dir, base, b, va } = await family('F32');
    await expect(applyVectors({ base: b, vectors: [{ path: va, scale: 1 }], out: join(dir, 'o') })).rejects.toMatchObject({
      code: 'VECTOR_BASE_MISMATCH',
      where: { file: va },
    });
    const res = await applyVectors({ base: b, vectors: [{ path: va, scale: 1 }], out: join(dir, 'o'), force: true });
    expect(res.warnings.join(' ')).toMatch(/another base/);
    expect(base).toBeDefined();
  });

  it('writes a whole coefficient path in one pass, equal to separate applies', async () => {
    const { dir, base, va, vb } = await family('BF16');
    const alphas = [0, 0.3, 1];
    const res = await applyVectorPath({
      base,
      vectors: [va, vb],
      points: alphas.map((a) => ({ out: join(dir, `p-${a}`), scales: [a, 1 - a] })),
      budgetBytes: 64,
    });
    expect(res.outputs).toHaveLength(3);
    for (const a of alphas) {
      const single = join(dir, `s-${a}`);
      await applyVectors({ base, vectors: [{ path: va, scale: a }, { path: vb, scale: 1 - a }], out: single, undo: false });
      expect(await tensorBytes(join(dir, `p-${a}`))).toEqual(await tensorBytes(single));
    }
  });

  it('an interrupted apply or extract stops with INTERRUPTED and leaves nothing behind', async () => {
    const { dir, base, a, va } = await family('BF16');
    const stop = new AbortController();
    stop.abort();
    const before = new Set(await readdir(dir));
    await expect(applyVectors({ base, vectors: [{ path: va, scale: 1 }], out: join(dir, 'o'), signal: stop.signal })).rejects.toMatchObject({ code: 'INTERRUPTED' });
    await expect(applyVectors({ base, vectors: [{ path: va, scale: 1 }], out: join(dir, 'o.safetensors'), signal: stop.signal })).rejects.toMatchObject({ code: 'INTERRUPTED' });
    await expect(extractVector({ base, finetuned: a, out: join(dir, 'v2.safetensors'), signal: stop.signal })).rejects.toMatchObject({ code: 'INTERRUPTED' });
    expect(new Set(await readdir(dir))).toEqual(before);
  });

  it('patches an ONNX base into an .onnx output (and back exactly); a non-ONNX base cannot give an .onnx output', async () => {
    const dir = await tempDir();
    const base = writeMlp(dir, 'base.onnx', { weights: mlpWeights(1) });
    const ft = writeMlp(dir, 'ft.onnx', { weights: mlpWeights(2) });
    const v = join(dir, 'v.safetensors');
    await extractVector({ base, finetuned: ft, out: v });
    const out = join(dir, 'patched.onnx');
    const res = await applyVectors({ base, vectors: [{ path: v, scale: 0.5 }], out });
    expect(res.undo!.path).toBe(`${out}.weightkit-undo.safetensors`);
    const want = mlpWeights(1);
    const got = await openCheckpointPath(out);
    const vr = await openVector(v);
    for (const name of MLP_NAMES) {
      const w = await got.readF32(name);
      const d = await vr.readF32(name);
      for (let i = 0; i < w.length; i++) expect(w[i]).toBe(Math.fround(want[name][i]! + Math.fround(0.5 * d[i]!)));
    }
    await got.close();
    await vr.close();
    const back = join(dir, 'back.onnx');
    const r = await removeVectors({ model: out, vectors: [{ path: v, scale: 0.5 }], out: back, exact: true });
    expect(r.exact).toBe(true);
    expect(await tensorBytes(back)).toEqual(await tensorBytes(base));
    const { base: stBase, va } = await family('F32');
    await expect(applyVectors({ base: stBase, vectors: [{ path: va, scale: 1 }], out: join(dir, 'x.onnx') })).rejects.toMatchObject({
      code: 'USAGE',
      where: { file: join(dir, 'x.onnx') },
    });
    expect((await readdir(dir)).filter((f) => f.includes('.tmp'))).toEqual([]);
  });

  it('never modifies its inputs and leaves nothing behind on failure', async () => {
    const { dir, base, va } = await family('BF16');
    const before = await readFile(join(base, 'model.safetensors'));
    await expect(applyVectors({ base, vectors: [{ path: va, scale: NaN }], out: join(dir, 'o') })).rejects.toMatchObject({ code: 'USAGE' });
    await expect(applyVectors({ base, vectors: [{ path: join(dir, 'nope.safetensors'), scale: 1 }], out: join(dir, 'o') })).rejects.toMatchObject({
      code: 'CKPT_NOT_FOUND',
    });
    await expect(applyVectors({ base, vectors: [{ path: va, scale: 1 }], out: base })).rejects.toMatchObject({ code: 'OUT_INVALID' });
    expect(await readFile(join(base, 'model.safetensors'))).toEqual(before);
    expect((await readdir(dir)).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});

describe('undo record indices as varint gaps', () => {
  it('round-trip any ascending indices, across segments, and refuse corrupt streams', () => {
    const idx = Uint32Array.from([0, 1, 2, 130, 131, 20000, 2 ** 31, 2 ** 32 - 2]);
    const whole = encodeIndexGaps(idx, -1);
    expect(decodeIndexGaps(whole, idx.length, 2 ** 32 - 1)).toEqual(idx);
    expect(whole.length).toBe(1 + 1 + 1 + 1 + 1 + 3 + 5 + 5); // gaps − 1: 0, 0, 0, 127, 0, 19868, ~2^31, ~2^31
    // two segments continue from the first one's last index
    const a = encodeIndexGaps(idx.subarray(0, 4), -1);
    const b = encodeIndexGaps(idx.subarray(4), idx[3]!);
    const joined = new Uint8Array(a.length + b.length);
    joined.set(a);
    joined.set(b, a.length);
    expect(joined).toEqual(whole);
    expect(decodeIndexGaps(whole, idx.length, 2 ** 32 - 2)).toBeUndefined(); // an index past the tensor
    expect(decodeIndexGaps(whole, idx.length + 1, 2 ** 32 - 1)).toBeUndefined(); // too few bytes
    expect(decodeIndexGaps(whole, idx.length - 1, 2 ** 32 - 1)).toBeUndefined(); // bytes left over
    expect(decodeIndexGaps(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), 1, 2 ** 32)).toBeUndefined(); // runaway varint
  });

  it('a corrupt gap stream is VECTOR_INVALID naming the undo file and tensor', async () => {
    const { dir, base, va } = await family('BF16');
    const out = join(dir, 'applied');
    await applyVectors({ base, vectors: [{ path: va, scale: 0.3 }], out });
    const undoPath = join(out, 'weightkit-undo.safetensors');
    const undo = await openCheckpointPath(undoPath);
    const meta = undo.metadata();
    const tensors: { name: string; dtype: 'U8' | 'U16' | 'I32'; data: Uint8Array }[] = [];
    for (const t of undo.tensors()) {
      const d = (await undo.read(t.name)).data;
      const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice();
      if (t.name.endsWith('.__undo_gaps')) bytes[bytes.length - 1] = 0x80; // the last varint never ends
      tensors.push({ name: t.name, dtype: t.dtype as 'U8' | 'U16' | 'I32', data: bytes });
    }
    await undo.close();
    const w = await openSafetensorsWriter(undoPath, tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [t.data.length / (t.dtype === 'U8' ? 1 : t.dtype === 'U16' ? 2 : 4)] })), { metadata: meta });
    for (const t of tensors) await w.write(t.name, t.data);
    await w.close();
    const e = await removeVectors({ model: out, vectors: [{ path: va, scale: 0.3 }], out: join(dir, 'back'), exact: true }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'VECTOR_INVALID' });
    expect((e as Error).message).toMatch(/weightkit-undo\.safetensors: the indices of tensor '.+' are corrupt/);
  });
});
