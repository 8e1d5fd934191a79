import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpointPath } from '../../src/io/open.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { makeTensor } from '../../src/tensor/tensor.js';
import { fromF32, toF32 } from '../../src/tensor/convert.js';
import { extractVector } from '../../src/vectors/extract.js';
import { fingerprintCheckpoint } from '../../src/vectors/format.js';
import { openVector } from '../../src/vectors/reader.js';
import { parseQuantizeSpec } from '../../src/vectors/quantize.js';
import { tempDir, tinyValues, TINY_SHAPES, writeModel } from '../plan/helpers.js';

async function family(dtype: 'F32' | 'BF16' | 'F16' = 'F32') {
  const dir = await tempDir();
  const base = join(dir, 'base');
  const ft = join(dir, 'ft');
  await writeModel(base, tinyValues(0), { dtype });
  await writeModel(ft, tinyValues(1, 0.1), { dtype });
  return { dir, base, ft };
}

async function readAll(path: string, name: string): Promise<Float32Array> {
  const r = await openCheckpointPath(path);
  try {
    return await r.readF32(name);
  } finally {
    await r.close();
  }
}

describe('vector extract', () => {
  it('stores F - B exactly in f32 with metadata and the base fingerprint', async () => {
    const { dir, base, ft } = await family('BF16');
    const out = join(dir, 'v.safetensors');
    const res = await extractVector({ base, finetuned: ft, out, kind: 'time', label: '2016', budgetBytes: 64 });
    expect(res.tensors).toBe(Object.keys(TINY_SHAPES).length);
    const v = await openVector(out);
    try {
      expect(v.meta.kind).toBe('time');
      expect(v.meta.label).toBe('2016');
      const b = await openCheckpointPath(base);
      expect(v.meta.baseFingerprint).toBe(await fingerprintCheckpoint(b));
      await b.close();
      for (const name of Object.keys(TINY_SHAPES)) {
        const d = await v.readF32(name);
        const fb = await readAll(base, name);
        const ff = await readAll(ft, name);
        for (let i = 0; i < d.length; i++) expect(d[i]).toBe(Math.fround(ff[i]! - fb[i]!));
        // f32 differences of bf16 values reproduce the fine-tuned value exactly when added back and rounded
        const back = fromF32('BF16', Float32Array.from(d, (x, i) => x + fb[i]!)) as Uint16Array;
        expect(Array.from(toF32('BF16', back))).toEqual(Array.from(ff));
      }
    } finally {
      await v.close();
    }
  });

  it('keeps exactly round(density * n) entries per tensor, the largest, and reads row ranges', async () => {
    const { dir, base, ft } = await family();
    const dense = join(dir, 'd.safetensors');
    const sparse = join(dir, 's.safetensors');
    await extractVector({ base, finetuned: ft, out: dense });
    const res = await extractVector({ base, finetuned: ft, out: sparse, density: 0.25, budgetBytes: 40 });
    expect(res.storedBytes).toBeLessThan(res.denseF32Bytes);
    const d = await openVector(dense);
    const s = await openVector(sparse);
    for (const name of Object.keys(TINY_SHAPES)) {
      const full = await d.readF32(name);
      const sp = await s.readF32(name);
      const k = Math.round(0.25 * full.length);
      expect(sp.filter((x) => x !== 0).length).toBe(k);
      const kth = Array.from(full, Math.abs).sort((a, b) => b - a)[k - 1] ?? Infinity;
      for (let i = 0; i < full.length; i++) {
        if (sp[i] !== 0) expect(sp[i]).toBe(full[i]);
        else expect(Math.abs(full[i]!)).toBeLessThanOrEqual(kth);
      }
      const shape = TINY_SHAPES[name]!;
      if (shape.length === 2 && shape[0]! > 2) {
        const rows = await s.readF32(name, { rowStart: 1, rowEnd: 3 });
        expect(Array.from(rows)).toEqual(Array.from(sp.subarray(shape[1]!, 3 * shape[1]!)));
      }
    }
    await d.close();
    await s.close();
  });

  it.each(['linear:16', 'log:33'])('quantises with %s within the codec bound and reports the error', async (q) => {
    const { dir, base, ft } = await family();
    const dense = join(dir, 'd.safetensors');
    const out = join(dir, 'q.safetensors');
    await extractVector({ base, finetuned: ft, out: dense });
    const res = await extractVector({ base, finetuned: ft, out, quantize: parseQuantizeSpec(q), budgetBytes: 50 });
    expect(res.quantization!.relL2).toBeGreaterThan(0);
    expect(res.quantization!.relL2).toBeLessThan(q.startsWith('linear') ? 0.1 : 0.2);
    expect(res.storedBytes).toBeLessThan(res.denseF32Bytes / 2); // 1-byte codes + a 16-byte range per tensor
    const d = await openVector(dense);
    const v = await openVector(out);
    let err = 0;
    let ref = 0;
    for (const name of Object.keys(TINY_SHAPES)) {
      const a = await d.readF32(name);
      const b = await v.readF32(name);
      for (let i = 0; i < a.length; i++) {
        err += (a[i]! - b[i]!) ** 2;
        ref += a[i]! ** 2;
      }
    }
    expect(Math.sqrt(err / ref)).toBeCloseTo(res.quantization!.relL2, 5);
    await d.close();
    await v.close();
  });

  it('a NaN met by quantisation is VECTOR_NOT_FINITE naming the tensor and its element (chunked reads included)', async () => {
    const dir = await tempDir();
    const base = join(dir, 'base');
    const ft = join(dir, 'ft');
    await writeModel(base, tinyValues(0));
    const bad = tinyValues(1);
    bad.get('model.layers.1.mlp.up_proj.weight')![17] = NaN; // [6, 4]: row 4 of a 1-row chunk
    await writeModel(ft, bad);
    for (const q of ['linear:16', 'log:16']) {
      const out = join(dir, `${q.replace(':', '-')}.safetensors`);
      const e = await extractVector({ base, finetuned: ft, out, quantize: parseQuantizeSpec(q), budgetBytes: 50 }).catch((x: unknown) => x);
      expect(e, q).toMatchObject({ code: 'VECTOR_NOT_FINITE', where: { tensor: 'model.layers.1.mlp.up_proj.weight' } });
      expect((e as Error).message).toContain("tensor 'model.layers.1.mlp.up_proj.weight': element 17 is NaN");
      expect(existsSync(out)).toBe(false);
    }
  });

  it('skips integer tensors, refuses one-sided tensors unless allowed, and names the tensor', async () => {
    const dir = await tempDir();
    const mk = async (p: string, extra: boolean, v: number) => {
      const t: Record<string, ReturnType<typeof makeTensor>> = {
        w: makeTensor('F32', [2], Float32Array.of(v, 2)),
        ids: makeTensor('I64', [2], BigInt64Array.of(0n, 1n)),
      };
      if (extra) t['extra'] = makeTensor('F32', [1], Float32Array.of(1));
      await writeSafetensors(p, t);
    };
    await mk(join(dir, 'b.safetensors'), false, 1);
    await mk(join(dir, 'f.safetensors'), true, 3);
    const args = { base: join(dir, 'b.safetensors'), finetuned: join(dir, 'f.safetensors'), out: join(dir, 'v.safetensors') };
    await expect(extractVector(args)).rejects.toMatchObject({ code: 'TENSOR_NOT_FOUND', where: { tensor: 'extra' } });
    const res = await extractVector({ ...args, allowMissing: true });
    expect(res.skipped).toEqual(['ids']);
    expect(res.missing).toEqual(['extra']);
    const v = await openVector(args.out);
    expect(Array.from(await v.readF32('w'))).toEqual([2, 0]);
    expect(v.meta.skipped).toEqual(['ids']);
    await v.close();
  });

  it('rejects bad options and non-vector files with typed errors', async () => {
    const { dir, base, ft } = await family();
    await expect(extractVector({ base, finetuned: ft, out: join(dir, 'x') })).rejects.toMatchObject({ code: 'USAGE' });
    await expect(extractVector({ base, finetuned: ft, out: join(dir, 'x.safetensors'), density: 1.5 })).rejects.toMatchObject({ code: 'USAGE' });
    expect(() => parseQuantizeSpec('cubic:4')).toThrow(expect.objectContaining({ code: 'USAGE' }));
    expect(() => parseQuantizeSpec('log:2')).toThrow(expect.objectContaining({ code: 'USAGE' }));
    await expect(openVector(join(base, 'model.safetensors'))).rejects.toMatchObject({ code: 'VECTOR_INVALID' });
    const bad = join(dir, 'bad.safetensors');
    await writeSafetensors(bad, { w: makeTensor('F32', [1], Float32Array.of(1)) }, { metadata: { weightkit_vector: '{"version":1,"kind":"task"}' } });
    await expect(openVector(bad)).rejects.toMatchObject({ code: 'VECTOR_INVALID' });
    await writeFile(join(dir, 'note.txt'), 'x');
  });
});
