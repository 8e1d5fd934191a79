// The single-file reader: exact byte ranges, row ranges, f32 conversion in chunks (equal to unchunked for every
// dtype and chunk size), reused buffers, truncation after open, concurrency, and typed errors with `where`.

import { open, truncate, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { openCheckpointPath } from '../../../src/io/open.js';
import { openSafetensors } from '../../../src/io/safetensors/reader.js';
import { writeSafetensors } from '../../../src/io/safetensors/writer.js';
import { toF32 } from '../../../src/tensor/convert.js';
import { DTYPES, DTYPE_INFO, type DType } from '../../../src/tensor/dtype.js';
import { makeTensor, type Tensor } from '../../../src/tensor/tensor.js';
import { brief, errorOf, tempDir } from './helpers.js';

/** Deterministic data for every dtype: a byte ramp, kept finite for the float types by a zero top bit pattern. */
function sample(dtype: DType, shape: number[]): Tensor {
  const t = makeTensor(dtype, shape);
  const b = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  for (let i = 0; i < b.length; i++) b[i] = (i * 37 + 11) & 0x3f;
  return t;
}

async function fileWithAll(dir: string): Promise<{ path: string; tensors: Record<string, Tensor> }> {
  const tensors: Record<string, Tensor> = {};
  for (const d of DTYPES) tensors[`x.${d}`] = sample(d, [7, 3]);
  tensors['scalar'] = sample('F32', []);
  tensors['empty'] = sample('BF16', [0, 4]);
  tensors['vec'] = sample('F16', [5]);
  const path = join(dir, 'all.safetensors');
  await writeSafetensors(path, tensors, { metadata: { format: 'pt' } });
  return { path, tensors };
}

describe('openSafetensors', () => {
  it('takes a header another reader validated while the file still matches it (size and modification time)', async () => {
    const dir = await tempDir();
    const { path } = await fileWithAll(dir);
    const first = await openSafetensors(path);
    const [known] = first.knownHeaders();
    await first.close();
    expect(known!.file).toBe(path);
    expect(known!.header.entries.length).toBe(first.tensors().length);
    // a header that says less than the file: taken as it is (so not parsed again) while size and time match
    const fewer = { ...known!, header: { ...known!.header, entries: known!.header.entries.filter((e) => e.name === 'vec') } };
    {
      await using r = await openSafetensors(path, { known: new Map([[path, fewer]]) });
      expect(r.tensors().map((t) => t.name)).toEqual(['vec']);
      await using whole = await openSafetensors(path);
      expect((await r.read('vec')).data).toEqual((await whole.read('vec')).data);
    }
    // through a folder (as the merge's workers open a model): the same file, so the same key
    await writeSafetensors(join(dir, 'model.safetensors'), { vec: sample('F16', [5]), more: sample('F32', [2]) });
    const folder = await openCheckpointPath(dir);
    const known2 = folder.knownHeaders!();
    await folder.close();
    expect(known2.map((h) => h.file)).toEqual([join(dir, 'model.safetensors')]);
    const one = { ...known2[0]!, header: { ...known2[0]!.header, entries: known2[0]!.header.entries.filter((e) => e.name === 'more') } };
    {
      await using r = await openCheckpointPath(dir, { known: new Map([[one.file, one]]) });
      expect(r.tensors().map((t) => t.name)).toEqual(['more']);
    }
    // the file touched since: parsed again
    await utimes(path, new Date(), new Date(known!.mtimeMs + 5000));
    {
      await using r = await openSafetensors(path, { known: new Map([[path, fewer]]) });
      expect(r.tensors().length).toBe(known!.header.entries.length);
    }
  });


  it('reads every dtype exactly, aligned, in file order, with info and shards', async () => {
    const dir = await tempDir();
    const { path, tensors } = await fileWithAll(dir);
    await using r = await openSafetensors(path);
    expect(r.format).toBe('safetensors');
    expect(r.path).toBe(path);
    expect(r.metadata()).toEqual({ format: 'pt' });
    expect(r.tensors().map((t) => t.name).sort()).toEqual(Object.keys(tensors).sort());
    // file order, and every tensor's data starts at a multiple of its element size (HF layout)
    expect(r.tensors().map((t) => t.name)).toEqual(r.header.entries.map((e) => e.name));
    for (const e of r.header.entries) expect((r.header.dataStart + e.begin) % DTYPE_INFO[e.dtype].bytes).toBe(0);
    expect(r.shards()).toEqual([{ file: path, byteLength: r.header.dataStart + r.header.dataByteLength, tensorCount: Object.keys(tensors).length }]);
    for (const [name, t] of Object.entries(tensors)) {
      const info = r.info(name);
      expect(info).toMatchObject({ name, dtype: t.dtype, shape: t.shape, file: path });
      const got = await r.read(name);
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(got.data.constructor).toBe(t.data.constructor);
      expect(got.data.byteOffset % DTYPE_INFO[t.dtype].bytes).toBe(0);
      expect(got.data).toEqual(t.data);
      expect(await r.readBytes(name)).toEqual(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
      expect(await r.readF32(name)).toEqual(toF32(t.dtype, t.data, new Float32Array(t.data.length)));
    }
  });

  it('f32 conversion in chunks equals the whole-tensor conversion for every chunk size', async () => {
    const dir = await tempDir();
    const { path, tensors } = await fileWithAll(dir);
    for (const chunkBytes of [8, 9, 24, 40, 64, 1000]) {
      await using r = await openSafetensors(path, { chunkBytes });
      for (const [name, t] of Object.entries(tensors)) {
        expect(await r.readF32(name), `${name} @${chunkBytes}`).toEqual(toF32(t.dtype, t.data, new Float32Array(t.data.length)));
      }
      // two scratch chunks at most, never more than the largest tensor
      expect(r.scratchByteLength).toBeLessThanOrEqual(Math.min(2 * chunkBytes, 7 * 3 * 8));
    }
  });

  it('concurrent reads on one reader are independent', async () => {
    const dir = await tempDir();
    const { path, tensors } = await fileWithAll(dir);
    await using r = await openSafetensors(path, { chunkBytes: 16 });
    const names = Object.keys(tensors);
    const got = await Promise.all([...names, ...names].map((n) => r.readF32(n)));
    got.forEach((g, i) => {
      const t = tensors[names[i % names.length]!]!;
      expect(g).toEqual(toF32(t.dtype, t.data, new Float32Array(t.data.length)));
    });
  });

  it('row ranges read exactly the rows, for every dtype, including scalars and empty ranges', async () => {
    const dir = await tempDir();
    const { path, tensors } = await fileWithAll(dir);
    await using r = await openSafetensors(path, { chunkBytes: 8 });
    for (const d of DTYPES) {
      const t = tensors[`x.${d}`]!;
      for (const [s, e] of [[0, 7], [0, 1], [2, 5], [6, 7], [3, 3], [7, 7]] as const) {
        const part = await r.read(`x.${d}`, { rowStart: s, rowEnd: e });
        expect(part.shape).toEqual([e - s, 3]);
        expect(part.data).toEqual(t.data.slice(s * 3, e * 3));
        const bytes = await r.readBytes(`x.${d}`, { rowStart: s, rowEnd: e });
        expect(bytes.length).toBe((e - s) * 3 * DTYPE_INFO[d].bytes);
        const f = await r.readF32(`x.${d}`, { rowStart: s, rowEnd: e });
        expect(f).toEqual(toF32(d, t.data.slice(s * 3, e * 3) as never, new Float32Array((e - s) * 3)));
      }
    }
    expect((await r.read('scalar', { rowStart: 0, rowEnd: 1 })).shape).toEqual([]);
    expect((await r.read('scalar', { rowStart: 0, rowEnd: 0 })).shape).toEqual([0]);
    expect((await r.read('vec', { rowStart: 1, rowEnd: 3 })).data).toEqual(tensors['vec']!.data.slice(1, 3));
    expect((await r.read('empty')).shape).toEqual([0, 4]);
    for (const range of [{ rowStart: -1 }, { rowEnd: 8 }, { rowStart: 4, rowEnd: 3 }, { rowStart: 0.5 }, { rowEnd: Number.NaN }, { rowStart: 1, rowEnd: 1e300 }]) {
      expect(brief(await errorOf(() => r.read('x.F32', range)))).toEqual({ code: 'TENSOR_ROW_RANGE', file: path, tensor: 'x.F32' });
      expect((await errorOf(() => r.readF32('x.F32', range))).code).toBe('TENSOR_ROW_RANGE');
      expect((await errorOf(() => r.readBytes('x.F32', range))).code).toBe('TENSOR_ROW_RANGE');
    }
    expect((await errorOf(() => r.read('empty', { rowStart: 0, rowEnd: 1 }))).code).toBe('TENSOR_ROW_RANGE');
  });

  it('`into` buffers are reused and returned as views; too small is TENSOR_SHAPE_MISMATCH', async () => {
    const dir = await tempDir();
    const { path, tensors } = await fileWithAll(dir);
    await using r = await openSafetensors(path, { chunkBytes: 16 });
    const intoF = new Float32Array(100).fill(-1);
    const out = await r.readF32('x.BF16', { into: intoF });
    expect(out.buffer).toBe(intoF.buffer);
    expect(out.length).toBe(21);
    expect(intoF[21]).toBe(-1);
    const t = tensors['x.BF16']!;
    expect(out).toEqual(toF32('BF16', t.data, new Float32Array(21)));
    const outF32 = await r.readF32('x.F32', { into: intoF.subarray(50), rowStart: 1, rowEnd: 2 });
    expect(outF32.byteOffset).toBe(200);
    const intoB = new Uint8Array(1000);
    const b = await r.readBytes('x.F64', { into: intoB });
    expect(b.buffer).toBe(intoB.buffer);
    expect(b.length).toBe(21 * 8);
    expect(brief(await errorOf(() => r.readF32('x.F32', { into: new Float32Array(20) })))).toEqual({ code: 'TENSOR_SHAPE_MISMATCH', file: path, tensor: 'x.F32' });
    expect((await errorOf(() => r.readBytes('x.F32', { into: new Uint8Array(83) }))).code).toBe('TENSOR_SHAPE_MISMATCH');
  });

  it('unknown tensors are TENSOR_NOT_FOUND naming file and tensor', async () => {
    const dir = await tempDir();
    const { path } = await fileWithAll(dir);
    await using r = await openSafetensors(path);
    expect(r.has('nope')).toBe(false);
    expect(brief(await errorOf(() => r.info('nope')))).toEqual({ code: 'TENSOR_NOT_FOUND', file: path, tensor: 'nope' });
    for (const call of [() => r.read('nope'), () => r.readBytes('nope'), () => r.readF32('nope')]) {
      expect(brief(await errorOf(call))).toEqual({ code: 'TENSOR_NOT_FOUND', file: path, tensor: 'nope' });
    }
  });

  it('a file truncated after open fails with IO_ERROR, not a hang or partial data', async () => {
    const dir = await tempDir();
    const { path } = await fileWithAll(dir);
    const r = await openSafetensors(path, { chunkBytes: 8 });
    const last = r.tensors()[r.tensors().length - 1]!;
    await truncate(path, r.header.dataStart + r.header.dataByteLength - 3);
    const e = await errorOf(() => r.readF32(last.name));
    expect(e.code).toBe('IO_ERROR');
    expect(e.where.file).toBe(path);
    expect((await errorOf(() => r.read(last.name))).code).toBe('IO_ERROR');
    await r.close();
  });

  it('close is idempotent, reads after close are IO_ERROR, and await using closes', async () => {
    const dir = await tempDir();
    const { path } = await fileWithAll(dir);
    const r = await openSafetensors(path);
    await Promise.all([r.close(), r.close()]);
    await r.close();
    expect(brief(await errorOf(() => r.read('x.F32')))).toEqual({ code: 'IO_ERROR', file: path, tensor: 'x.F32' });
    let escaped: typeof r | undefined;
    {
      await using r2 = await openSafetensors(path);
      escaped = r2;
      expect((await r2.read('x.U8')).shape).toEqual([7, 3]);
    }
    expect((await errorOf(() => escaped!.read('x.U8'))).code).toBe('IO_ERROR');
  });

  it('missing files are CKPT_NOT_FOUND; folders are CKPT_UNKNOWN_FORMAT', async () => {
    const dir = await tempDir();
    expect(brief(await errorOf(() => openSafetensors(join(dir, 'no.safetensors'))))).toEqual({ code: 'CKPT_NOT_FOUND', file: join(dir, 'no.safetensors') });
    expect(brief(await errorOf(() => openSafetensors(dir)))).toEqual({ code: 'CKPT_UNKNOWN_FORMAT', file: dir });
  });

  it('a tensor beyond one typed array (sparse 5 GB file): TENSOR_TOO_LARGE whole, row ranges past 4 GiB work', async () => {
    const dir = await tempDir();
    const path = join(dir, 'big.safetensors');
    const n = 5_000_000_000;
    const header = `{"big":{"dtype":"U8","shape":[${n / 1000},1000],"data_offsets":[0,${n}]}}`;
    const h = new TextEncoder().encode(header + ' '.repeat((8 - (header.length % 8)) % 8));
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(h.length), true);
    const fh = await open(path, 'w');
    await fh.write(prefix, 0, 8, 0);
    await fh.write(h, 0, h.length, 8);
    await fh.write(Uint8Array.of(42), 0, 1, 8 + h.length + n - 1); // the very last byte; the rest stays sparse
    await fh.close();
    await using r = await openSafetensors(path);
    expect(brief(await errorOf(() => r.read('big')))).toEqual({ code: 'TENSOR_TOO_LARGE', file: path, tensor: 'big' });
    expect((await errorOf(() => r.readBytes('big'))).code).toBe('TENSOR_TOO_LARGE');
    expect((await errorOf(() => r.readF32('big'))).code).toBe('TENSOR_TOO_LARGE');
    const last = await r.read('big', { rowStart: n / 1000 - 1 });
    expect(last.shape).toEqual([1, 1000]);
    expect((last.data as Uint8Array)[999]).toBe(42);
    const f = await r.readF32('big', { rowStart: n / 1000 - 2, rowEnd: n / 1000 });
    expect([f[0], f[1999]]).toEqual([0, 42]);
    await truncate(path, 0);
  });

  it('accepts a header padded with trailing whitespace (spaces, tabs, newlines)', async () => {
    const dir = await tempDir();
    const path = join(dir, 'ws.safetensors');
    const text = '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}} \t\r\n  ';
    const hdr = new TextEncoder().encode(text);
    const bytes = new Uint8Array(8 + hdr.length + 2);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(hdr.length), true);
    bytes.set(hdr, 8);
    bytes.set([5, 6], 8 + hdr.length);
    const fh = await open(path, 'w');
    await fh.write(bytes);
    await fh.close();
    await using r = await openSafetensors(path);
    expect(Array.from((await r.read('a')).data as Uint8Array)).toEqual([5, 6]);
  });
});
