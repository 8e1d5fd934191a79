// Inputs that are not regular files (a FIFO, a device) are refused at once, never waited on: opening a FIFO for
// reading would block until some process writes to it.

import { execFileSync } from 'node:child_process';
import { mkdir, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpointPath } from '../../src/io/open.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../plan/helpers.js';

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('special files', () => {
  it('a FIFO as a .safetensors file, as a folder\'s model.safetensors or as an .onnx file is CKPT_UNKNOWN_FORMAT at once', async () => {
    const dir = await tempDir('weightkit-special-');
    execFileSync('mkfifo', [join(dir, 'f.safetensors')]);
    await mkdir(join(dir, 'folder'));
    execFileSync('mkfifo', [join(dir, 'folder', 'model.safetensors')]);
    execFileSync('mkfifo', [join(dir, 'g.onnx')]);
    await symlink('/dev/zero', join(dir, 'zero.safetensors'));
    for (const p of ['f.safetensors', 'folder', 'g.onnx', 'zero.safetensors']) expect(await code(openCheckpointPath(join(dir, p))), p).toBe('CKPT_UNKNOWN_FORMAT');
    const r = await runCli('inspect', join(dir, 'f.safetensors'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('found a folder or special file');
    // a recipe that is a FIFO is not read either
    execFileSync('mkfifo', [join(dir, 'recipe.yaml')]);
    const v = await runCli('validate', join(dir, 'recipe.yaml'));
    expect(v.code).toBe(2);
    expect(v.stderr).toContain('is not a regular file');
  }, 20_000);
});

describe('folder layouts', () => {
  it('a folder with both model.safetensors and an index opens model.safetensors, as transformers does', async () => {
    const dir = await tempDir('weightkit-both-');
    const { writeSafetensors } = await import('../../src/io/safetensors/writer.js');
    const { makeTensor } = await import('../../src/tensor/tensor.js');
    await writeSafetensors(join(dir, 'model.safetensors'), { single: makeTensor('F32', [1], new Float32Array([1])) });
    await writeSafetensors(join(dir, 'model-00001-of-00001.safetensors'), { sharded: makeTensor('F32', [1], new Float32Array([2])) });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: { sharded: 'model-00001-of-00001.safetensors' } }));
    const r = await openCheckpointPath(dir);
    expect(r.tensors().map((t) => t.name)).toEqual(['single']);
    await r.close();
  });
});

describe('ONNX external data numbers', () => {
  it('an offset too large for the file system is said to be too large, not malformed', async () => {
    const { parseExternalData } = await import('../../src/io/onnx/external.js');
    const err = (v: string): string => {
      try {
        parseExternalData([{ key: 'location', value: 'w.bin' }, { key: 'offset', value: v }], 'm.onnx', 'w');
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    };
    expect(err('4611686018427387904')).toBe("external_data 'offset' is too large: 4611686018427387904");
    expect(err('abc')).toBe("external_data 'offset' must be a non-negative decimal integer, got 'abc'");
    expect(err('-1')).toContain('must be a non-negative decimal integer');
  });
});

describe('narrowing to F16', () => {
  it('convert says which tensors had finite values beyond the F16 range (they become ±inf)', async () => {
    const dir = await tempDir('weightkit-f16-');
    const { writeSafetensors } = await import('../../src/io/safetensors/writer.js');
    const { makeTensor } = await import('../../src/tensor/tensor.js');
    const src = join(dir, 'in.safetensors');
    await writeSafetensors(src, {
      big: makeTensor('F32', [5], new Float32Array([1e6, 70000, -7e4, 1, Infinity])),
      ok: makeTensor('F32', [2], new Float32Array([65504, -1])),
    });
    const r = await runCli('convert', src, '--out', join(dir, 'out.safetensors'), '--dtype', 'f16');
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("warning: tensor 'big': 3 finite value(s) beyond the F16 range (±65504) became ±inf");
    expect(r.stderr).not.toContain("tensor 'ok'");
    const { convertCheckpoint } = await import('../../src/io/convert.js');
    const res = await convertCheckpoint({ input: src, out: join(dir, 'folder'), dtype: 'F16' });
    expect(res.warnings).toEqual(["tensor 'big': 3 finite value(s) beyond the F16 range (±65504) became ±inf"]);
  });
});
