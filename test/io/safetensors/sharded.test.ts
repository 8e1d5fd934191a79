// Sharded folders: the HF-layout fixture (hand-built, independent of the writer) reads exactly; the sharded writer
// assigns shards by size in name order, names and indexes them like transformers, and round-trips through the
// sharded reader. Temp files never leak.

import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

import { openCheckpointPath } from '../../../src/io/open.js';
import { openShardedSafetensors, parseShardIndex } from '../../../src/io/safetensors/sharded.js';
import { formatShardIndex, openShardedWriter, planShards, shardFileName } from '../../../src/io/safetensors/sharded-writer.js';
import { openSafetensorsWriter } from '../../../src/io/safetensors/writer.js';
import type { TensorDecl } from '../../../src/io/types.js';
import { HF_SHARDS, fixtureValue, hfShardedFiles, hfTensorSpecs } from '../../../scripts/make-fixtures.js';
import { brief, errorOf, listDir, tempDir } from './helpers.js';

const HF_DIR = fileURLToPath(new URL('../../fixtures/hf-sharded/', import.meta.url)).replace(/\/$/, '');

describe('HF sharded fixture', () => {
  it('locate() gives each tensor\'s shard file, descriptor and byte range (the bytes readBytes returns)', async () => {
    await using r = await openCheckpointPath(HF_DIR);
    for (const t of r.tensors()) {
      const l = r.locate!(t.name)!;
      expect(l.file).toBe(t.file);
      expect(l.byteLength).toBe(t.byteLength);
      const bytes = Buffer.alloc(l.byteLength);
      const fh = await open(l.file, 'r');
      await fh.read(bytes, 0, l.byteLength, l.position);
      await fh.close();
      expect(bytes.equals(Buffer.from(await r.readBytes(t.name))), t.name).toBe(true);
      expect(l.fd).toBeGreaterThan(2);
    }
    expect(brief(await errorOf(async () => r.locate!('missing')))).toMatchObject({ code: 'TENSOR_NOT_FOUND' });
  });

  it('committed files equal the generator output and stay tiny', async () => {
    let total = 0;
    for (const [name, bytes] of hfShardedFiles()) {
      const onDisk = new Uint8Array(await readFile(join(HF_DIR, name)));
      expect(onDisk, name).toEqual(bytes);
      total += bytes.length;
    }
    expect(total).toBeLessThan(50_000);
  });

  it('reads every tensor with exact values through openCheckpointPath(folder)', async () => {
    await using r = await openCheckpointPath(HF_DIR);
    expect(r.format).toBe('safetensors-sharded');
    expect(r.path).toBe(HF_DIR);
    const specs = hfTensorSpecs();
    expect(r.tensors().map((t) => t.name)).toEqual(specs.map((s) => s.name).sort());
    expect(r.shards().map((s) => [s.file, s.tensorCount])).toEqual([
      [join(HF_DIR, HF_SHARDS[1]), 11],
      [join(HF_DIR, HF_SHARDS[0]), 10],
    ]);
    expect(r.metadata()).toEqual({ format: 'pt' });
    for (const [k, s] of specs.entries()) {
      const info = r.info(s.name);
      expect(info.dtype).toBe('BF16');
      expect(info.shape).toEqual(s.shape);
      const expected = Float32Array.from({ length: info.numel }, (_, i) => fixtureValue(k, i));
      expect(await r.readF32(s.name), s.name).toEqual(expected);
      if (s.shape.length === 2) {
        const rows = await r.readF32(s.name, { rowStart: 1, rowEnd: 3 });
        expect(rows).toEqual(expected.slice(s.shape[1]!, 3 * s.shape[1]!));
      }
    }
    expect(brief(await errorOf(() => r.read('model.layers.9.mlp.up_proj.weight')))).toEqual({
      code: 'TENSOR_NOT_FOUND',
      file: HF_DIR,
      tensor: 'model.layers.9.mlp.up_proj.weight',
    });
  });

  it('the writer formats an index byte-identical to the hand-formatted HF index', async () => {
    const text = await readFile(join(HF_DIR, 'model.safetensors.index.json'), 'utf8');
    const idx = parseShardIndex(new TextEncoder().encode(text), 'index');
    expect(formatShardIndex(idx.totalSize!, [], idx.weightMap.map(([a, b]) => [a, b]))).toBe(text);
  });

  it('index formatting escapes non-ASCII like Python json.dumps', () => {
    expect(formatShardIndex(3, [['note', 'é']], [['😀', 'a.safetensors']])).toBe(
      '{\n  "metadata": {\n    "note": "\\u00e9",\n    "total_size": 3\n  },\n  "weight_map": {\n    "\\ud83d\\ude00": "a.safetensors"\n  }\n}\n',
    );
  });
});

describe('sharded reader edge cases', () => {
  it('ignores shard tensors the index does not list, and merges index string metadata', async () => {
    const dir = await tempDir();
    const w = await openSafetensorsWriter(join(dir, 's1.safetensors'), [
      { name: 'a', dtype: 'U8', shape: [1] },
      { name: 'extra', dtype: 'U8', shape: [1] },
    ], { metadata: { format: 'pt' } });
    await w.write('a', Uint8Array.of(1));
    await w.write('extra', Uint8Array.of(2));
    await w.close();
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 1, note: 'x' }, weight_map: { a: 's1.safetensors' } }));
    await using r = await openShardedSafetensors(dir);
    expect(r.tensors().map((t) => t.name)).toEqual(['a']);
    expect(r.has('extra')).toBe(false);
    expect(r.metadata()).toEqual({ format: 'pt', note: 'x' });
  });

  it('a folder with model.safetensors only opens it as a single file, path = the folder', async () => {
    const dir = await tempDir();
    const w = await openSafetensorsWriter(join(dir, 'model.safetensors'), [{ name: 'a', dtype: 'U8', shape: [1] }]);
    await w.write('a', Uint8Array.of(1));
    await w.close();
    await using r = await openShardedSafetensors(dir);
    expect(r.format).toBe('safetensors');
    expect(r.path).toBe(dir);
    expect(r.info('a').file).toBe(join(dir, 'model.safetensors'));
  });

  it('missing and empty folders', async () => {
    const dir = await tempDir();
    expect(brief(await errorOf(() => openShardedSafetensors(join(dir, 'nope'))))).toEqual({ code: 'CKPT_NOT_FOUND', file: join(dir, 'nope') });
    expect(brief(await errorOf(() => openShardedSafetensors(dir)))).toEqual({ code: 'CKPT_UNKNOWN_FORMAT', file: dir });
  });

  it('an empty weight_map is an empty checkpoint', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'model.safetensors.index.json'), '{"metadata": {}, "weight_map": {}}');
    await using r = await openShardedSafetensors(dir);
    expect(r.tensors()).toEqual([]);
    expect(r.shards()).toEqual([]);
  });
});

describe('sharded writer', () => {
  const decl = (name: string, n: number): TensorDecl => ({ name, dtype: 'U8', shape: [n] });

  it('plans shards in name order, a new shard when the next tensor would exceed, big tensors alone', () => {
    const plan = planShards([decl('d', 10), decl('a', 4), decl('c', 3), decl('b', 4), decl('e', 0), decl('f', 2)], 8);
    expect(plan.map((s) => [s.file, s.tensors.map((t) => t.name), s.byteLength])).toEqual([
      [shardFileName(0, 4), ['a', 'b'], 8],
      [shardFileName(1, 4), ['c'], 3],
      [shardFileName(2, 4), ['d'], 10],
      [shardFileName(3, 4), ['e', 'f'], 2],
    ]);
    expect(shardFileName(0, 4)).toBe('model-00001-of-00004.safetensors');
    expect(planShards([decl('a', 100)], 8).map((s) => s.file)).toEqual(['model.safetensors']);
    expect(planShards([], 8).map((s) => s.file)).toEqual(['model.safetensors']);
    expect(brief((() => { try { planShards([decl('a', 1)], 0); } catch (e) { return e as never; } throw new Error('no error'); })())).toMatchObject({ code: 'OUT_INVALID' });
  });

  it('writes shards in any order, renames at close, and reads back through the folder', async () => {
    const dir = join(await tempDir(), 'out'); // created by the writer
    const decls = Array.from({ length: 9 }, (_, i) => ({ name: `layer.${i}.w`, dtype: 'F32' as const, shape: [i + 1, 2] }));
    const w = await openShardedWriter(dir, decls, { shardSize: 40, metadata: { source: 'test' } });
    expect(w.files.map((f) => f.slice(dir.length + 1))).toEqual([...w.shards.map((s) => s.file), 'model.safetensors.index.json']);
    expect(w.shards.length).toBeGreaterThan(2);
    await Promise.all([...decls].reverse().map((d) => w.write(d.name, new Float32Array((d.shape[0]! * 2)).fill(d.shape[0]!))));
    expect((await listDir(dir)).every((f) => f.endsWith('.tmp'))).toBe(true);
    await w.close();
    expect(await listDir(dir)).toEqual(w.files.map((f) => f.slice(dir.length + 1)).sort());
    const index = JSON.parse(await readFile(join(dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.metadata).toEqual({ total_size: w.totalSize, source: 'test' });
    expect(w.totalSize).toBe(decls.reduce((a, d) => a + d.shape[0]! * 8, 0));
    expect(Object.keys(index.weight_map)).toEqual(decls.map((d) => d.name).sort());
    await using r = await openCheckpointPath(dir);
    expect(r.format).toBe('safetensors-sharded');
    expect(r.metadata()).toEqual({ format: 'pt', source: 'test' });
    for (const d of decls) expect(Array.from(await r.readF32(d.name))).toEqual(new Array(d.shape[0]! * 2).fill(d.shape[0]!));
  });

  it('one shard is model.safetensors without an index', async () => {
    const dir = await tempDir();
    const w = await openShardedWriter(dir, [decl('a', 2)], { metadata: { format: 'flax' } });
    await w.write('a', Uint8Array.of(1, 2));
    await w.close();
    expect(await listDir(dir)).toEqual(['model.safetensors']);
    await using r = await openCheckpointPath(dir);
    expect(r.metadata()).toEqual({ format: 'flax' });
  });

  it('abort removes only its own temp files; misuse has its own codes', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'keep.txt'), 'mine');
    const w = await openShardedWriter(dir, [decl('a', 2), decl('b', 2), decl('c', 2)], { shardSize: 2 });
    await w.write('a', Uint8Array.of(1, 2));
    await w.write('c', Uint8Array.of(1, 2));
    expect(brief(await errorOf(() => w.write('a', Uint8Array.of(1, 2))))).toMatchObject({ code: 'OUT_WRITTEN_TWICE', tensor: 'a' });
    expect(brief(await errorOf(() => w.write('zz', Uint8Array.of(1))))).toEqual({ code: 'TENSOR_NOT_FOUND', file: dir, tensor: 'zz' });
    expect(brief(await errorOf(() => w.close()))).toEqual({ code: 'OUT_INCOMPLETE', file: join(dir, shardFileName(1, 3)), tensor: 'b' });
    await w.abort();
    expect(await listDir(dir)).toEqual(['keep.txt']);
    expect((await errorOf(() => w.write('b', Uint8Array.of(1, 2)))).code).toBe('OUT_INVALID');
  });
});

describe('external writers (locate + markWritten)', () => {
  it('bytes written by another handle at locate() are published; misuse has its own codes', async () => {
    const dir = await tempDir();
    const decls = [
      { name: 'a', dtype: 'F32' as const, shape: [3] },
      { name: 'b', dtype: 'BF16' as const, shape: [2, 2] },
      { name: 'c', dtype: 'U8' as const, shape: [5] },
    ];
    const w = await openShardedWriter(dir, decls, { shardSize: 13 }); // [a] [b c]
    expect(w.shards.length).toBe(2);
    const external = async (name: string, bytes: Uint8Array): Promise<void> => {
      const { file, offset } = w.locate(name);
      const fh = await open(file, 'r+');
      await fh.write(bytes, 0, bytes.length, offset);
      await fh.close();
      w.markWritten(name);
    };
    await external('a', new Uint8Array(new Float32Array([1, 2, 3]).buffer));
    await external('c', Uint8Array.of(1, 2, 3, 4, 5));
    await w.writeRange('b', 0, Uint16Array.of(0x3f80, 0x4000));
    expect(brief(await errorOf(() => w.markWritten('b')))).toMatchObject({ code: 'OUT_WRITTEN_TWICE', tensor: 'b' });
    expect(brief(await errorOf(() => w.markWritten('a')))).toMatchObject({ code: 'OUT_WRITTEN_TWICE', tensor: 'a' });
    expect(brief(await errorOf(() => w.locate('zz')))).toEqual({ code: 'TENSOR_NOT_FOUND', file: dir, tensor: 'zz' });
    await w.writeRange('b', 4, Uint16Array.of(0x4040, 0x4080));
    await w.close();
    await using r = await openCheckpointPath(dir);
    expect(Array.from(await r.readF32('a'))).toEqual([1, 2, 3]);
    expect(Array.from(await r.readF32('b'))).toEqual([1, 2, 3, 4]);
    expect(Array.from(await r.readF32('c'))).toEqual([1, 2, 3, 4, 5]);
  });

  it('markWritten takes the bytes another thread left (edges) and writes them; edges outside the tensor are refused', async () => {
    const dir = await tempDir();
    const decls = [
      { name: 'a', dtype: 'U8' as const, shape: [5000] },
      { name: 'b', dtype: 'U8' as const, shape: [3000] },
    ];
    const w = await openShardedWriter(dir, decls);
    const a = w.locate('a');
    const b = w.locate('b');
    // another handle writes each tensor but its first 100 bytes, which it hands in
    const other = await open(a.file, 'r+');
    const bytes = (n: number, k: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * k + 1) & 0xff);
    const [ba, bb] = [bytes(5000, 7), bytes(3000, 11)];
    await other.write(ba, 100, 4900, a.offset + 100);
    await other.write(bb, 100, 2900, b.offset + 100);
    await other.close();
    const outside = [{ position: b.offset - 1, bytes: Uint8Array.of(1) }];
    expect(brief(await errorOf(() => w.markWritten('b', outside)))).toMatchObject({ code: 'OUT_INVALID', tensor: 'b', file: join(dir, 'model.safetensors') });
    w.markWritten('a', [{ position: a.offset, bytes: ba.slice(0, 100) }]);
    w.markWritten('b', [{ position: b.offset, bytes: bb.slice(0, 100) }]);
    await w.close();
    await using r = await openCheckpointPath(dir);
    expect(Buffer.from(await r.readBytes('a')).equals(Buffer.from(ba))).toBe(true);
    expect(Buffer.from(await r.readBytes('b')).equals(Buffer.from(bb))).toBe(true);
  });

  it('markWritten without the bytes is caught at close by the size check', async () => {
    const dir = await tempDir();
    const w = await openSafetensorsWriter(join(dir, 'x.safetensors'), [{ name: 'a', dtype: 'U8', shape: [4] }]);
    w.markWritten('a');
    expect((await errorOf(() => w.close())).code).toBe('IO_ERROR');
    await w.abort();
    expect(await listDir(dir)).toEqual([]);
  });
});
