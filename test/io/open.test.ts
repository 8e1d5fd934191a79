// openCheckpointPath: format detection by path (file, HF folder, single-file folder, index path) and its two
// own errors. ONNX dispatch is not exercised here (it belongs to the ONNX suite).

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { openCheckpointPath } from '../../src/io/open.js';
import { writeSafetensors } from '../../src/io/safetensors/writer.js';
import { makeTensor } from '../../src/tensor/tensor.js';
import { brief, errorOf, tempDir } from './safetensors/helpers.js';

async function st(path: string, name = 'a'): Promise<void> {
  await writeSafetensors(path, { [name]: makeTensor('U8', [2], Uint8Array.of(1, 2)) });
}

describe('openCheckpointPath', () => {
  it('opens a .safetensors file of any name', async () => {
    const dir = await tempDir();
    await st(join(dir, 'weights.SafeTensors'));
    await using r = await openCheckpointPath(join(dir, 'weights.SafeTensors'));
    expect(r.format).toBe('safetensors');
    expect(r.path).toBe(join(dir, 'weights.SafeTensors'));
  });

  it('opens a folder with model.safetensors, or with exactly one *.safetensors', async () => {
    const dir = await tempDir();
    await st(join(dir, 'model.safetensors'));
    await st(join(dir, 'other.safetensors'), 'b');
    {
      await using r = await openCheckpointPath(dir);
      expect(r.tensors().map((t) => t.name)).toEqual(['a']);
      expect(r.path).toBe(dir);
    }
    const dir2 = await tempDir();
    await st(join(dir2, 'adapter.safetensors'), 'x');
    await writeFile(join(dir2, 'config.json'), '{}');
    await mkdir(join(dir2, 'sub.safetensors')); // a folder named like a file does not count
    await using r2 = await openCheckpointPath(dir2);
    expect(r2.tensors().map((t) => t.name)).toEqual(['x']);
    expect(r2.shards()[0]!.file).toBe(join(dir2, 'adapter.safetensors'));
  });

  it('opens a folder with an index, also when given the index path', async () => {
    const dir = await tempDir();
    await st(join(dir, 's.safetensors'));
    await writeFile(join(dir, 'model.safetensors.index.json'), '{"metadata": {"total_size": 2}, "weight_map": {"a": "s.safetensors"}}');
    for (const p of [dir, join(dir, 'model.safetensors.index.json')]) {
      await using r = await openCheckpointPath(p);
      expect(r.format).toBe('safetensors-sharded');
      expect(Array.from(await r.readF32('a'))).toEqual([1, 2]);
    }
  });

  it('CKPT_NOT_FOUND for a missing path, CKPT_UNKNOWN_FORMAT for anything unrecognised or ambiguous', async () => {
    const dir = await tempDir();
    const missing = join(dir, 'nope.safetensors');
    expect(brief(await errorOf(() => openCheckpointPath(missing)))).toEqual({ code: 'CKPT_NOT_FOUND', file: missing });
    expect(brief(await errorOf(() => openCheckpointPath(join(dir, 'no', 'such', 'dir'))))).toMatchObject({ code: 'CKPT_NOT_FOUND' });
    await writeFile(join(dir, 'model.bin'), 'pickle');
    expect(brief(await errorOf(() => openCheckpointPath(join(dir, 'model.bin'))))).toEqual({ code: 'CKPT_UNKNOWN_FORMAT', file: join(dir, 'model.bin') });
    expect(brief(await errorOf(() => openCheckpointPath(dir)))).toEqual({ code: 'CKPT_UNKNOWN_FORMAT', file: dir });
    await st(join(dir, 'a.safetensors'));
    await st(join(dir, 'b.safetensors'));
    expect(brief(await errorOf(() => openCheckpointPath(dir)))).toEqual({ code: 'CKPT_UNKNOWN_FORMAT', file: dir });
  });
});
