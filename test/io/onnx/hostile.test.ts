import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { WeightkitError } from '../../../src/errors.js';
import { patchOnnx } from '../../../src/io/onnx/patch.js';
import { openOnnx } from '../../../src/io/onnx/reader.js';
import { ONNX_HOSTILE_CASES } from '../../fixtures/hostile/onnx-cases.js';
import { buildInitializersOnly } from './build-model.js';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fixtures/hostile');
const tmp = mkdtempSync(path.join(tmpdir(), 'wk-onnx-hostile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function rejection(p: Promise<unknown>): Promise<WeightkitError> {
  try {
    const r = await p;
    if (r !== null && typeof r === 'object' && 'close' in r) await (r as { close(): Promise<void> }).close();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightkitError);
    return e as WeightkitError;
  }
  throw new Error('expected a WeightkitError');
}

describe('hostile ONNX fixtures', () => {
  for (const c of ONNX_HOSTILE_CASES) {
    it(`${c.file}: ${c.attack} -> ${c.code}`, async () => {
      const file = path.join(fixtures, c.file);
      const e = await rejection(openOnnx(file));
      expect(e.code).toBe(c.code);
      expect(e.where.file).toBe(path.join(fixtures, c.whereFile ?? c.file));
      if (c.tensor !== undefined) expect(e.where.tensor).toBe(c.tensor);
      // the patcher refuses the same input with the same error and writes nothing
      const e2 = await rejection(patchOnnx({ model: file, out: path.join(tmp, `${c.file}.out.onnx`), replacements: new Map() }));
      expect(e2.code).toBe(c.code);
    });
  }
});

describe('external data through symlinks', () => {
  const f32 = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
  const model = (location: string): Uint8Array =>
    buildInitializersOnly([
      {
        name: 'w',
        dataType: 1,
        dims: [4n],
        dataLocation: 1,
        externalData: [
          { key: 'location', value: location },
          { key: 'length', value: '16' },
        ],
      },
    ]);

  it('a symlinked file pointing out of the model folder is ONNX_EXTERNAL_ESCAPE', async () => {
    const dir = path.join(tmp, 'link-file');
    mkdirSync(path.join(dir, 'model'), { recursive: true });
    writeFileSync(path.join(dir, 'secret.bin'), f32);
    symlinkSync(path.join(dir, 'secret.bin'), path.join(dir, 'model', 'w.bin'));
    const file = path.join(dir, 'model', 'm.onnx');
    writeFileSync(file, model('w.bin'));
    const e = await rejection(openOnnx(file));
    expect(e.code).toBe('ONNX_EXTERNAL_ESCAPE');
    expect(e.where).toMatchObject({ file, tensor: 'w' });
  });

  it('a symlinked folder pointing out of the model folder is ONNX_EXTERNAL_ESCAPE', async () => {
    const dir = path.join(tmp, 'link-dir');
    mkdirSync(path.join(dir, 'model'), { recursive: true });
    mkdirSync(path.join(dir, 'outside'));
    writeFileSync(path.join(dir, 'outside', 'w.bin'), f32);
    symlinkSync(path.join(dir, 'outside'), path.join(dir, 'model', 'data'));
    const file = path.join(dir, 'model', 'm.onnx');
    writeFileSync(file, model('data/w.bin'));
    const e = await rejection(openOnnx(file));
    expect(e.code).toBe('ONNX_EXTERNAL_ESCAPE');
  });

  it('a symlink that stays inside the folder, and a model reached through a symlinked folder, are fine', async () => {
    const dir = path.join(tmp, 'link-ok');
    mkdirSync(path.join(dir, 'model', 'blobs'), { recursive: true });
    writeFileSync(path.join(dir, 'model', 'blobs', 'real.bin'), f32);
    symlinkSync(path.join(dir, 'model', 'blobs', 'real.bin'), path.join(dir, 'model', 'w.bin'));
    writeFileSync(path.join(dir, 'model', 'm.onnx'), model('w.bin'));
    symlinkSync(path.join(dir, 'model'), path.join(dir, 'alias'));
    for (const file of [path.join(dir, 'model', 'm.onnx'), path.join(dir, 'alias', 'm.onnx')]) {
      await using r = await openOnnx(file);
      expect(Array.from(await r.readF32('w'))).toEqual([1, 2, 3, 4]);
    }
  });

  it('a copy of a hostile fixture elsewhere fails the same way (no dependence on the fixtures folder)', async () => {
    const dir = path.join(tmp, 'copy');
    mkdirSync(dir);
    copyFileSync(path.join(fixtures, 'onnx-external-dotdot.onnx'), path.join(dir, 'm.onnx'));
    writeFileSync(path.join(tmp, 'onnx-outside.bin'), f32);
    const e = await rejection(openOnnx(path.join(dir, 'm.onnx')));
    expect(e.code).toBe('ONNX_EXTERNAL_ESCAPE');
  });
});
