// Every hostile safetensors fixture must fail with exactly its expected code and `where`, through the public open
// path and (for single files) through the pure header validator; and the committed corpus must equal what
// scripts/make-hostile.ts generates.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

import { WeightkitError } from '../../../src/errors.js';
import { openCheckpointPath } from '../../../src/io/open.js';
import { parseSafetensorsHeader } from '../../../src/io/safetensors/header.js';
import { hostileFiles } from '../../../scripts/make-hostile.js';
import { HOSTILE_DIR, SAFETENSORS_HOSTILE_CASES, caseWhereFile, casePath } from '../../fixtures/hostile/cases.js';

async function openError(path: string): Promise<WeightkitError> {
  try {
    const r = await openCheckpointPath(path);
    await r.close();
  } catch (e) {
    expect(e).toBeInstanceOf(WeightkitError);
    return e as WeightkitError;
  }
  throw new Error(`${path} opened without error`);
}

describe('hostile safetensors corpus', () => {
  it('has one case per generated file or folder, and the committed bytes match the generator', () => {
    const generated = hostileFiles();
    const tops = new Set([...generated.keys()].map((k) => k.split('/')[0]!));
    expect(new Set(SAFETENSORS_HOSTILE_CASES.map((c) => c.path))).toEqual(tops);
    for (const [rel, bytes] of generated) {
      expect(new Uint8Array(readFileSync(join(HOSTILE_DIR, rel))), rel).toEqual(bytes);
    }
  });

  it.each(SAFETENSORS_HOSTILE_CASES.map((c) => [c.path, c] as const))('%s', async (_name, c) => {
    const e = await openError(casePath(c));
    expect({ code: e.code, file: e.where.file, tensor: e.where.tensor }).toEqual({
      code: c.code,
      file: caseWhereFile(c),
      tensor: c.tensor,
    });
  });

  it.each(SAFETENSORS_HOSTILE_CASES.filter((c) => c.path.endsWith('.safetensors')).map((c) => [c.path, c] as const))(
    'pure validator: %s',
    (_name, c) => {
      const bytes = new Uint8Array(readFileSync(casePath(c)));
      let err: unknown;
      try {
        parseSafetensorsHeader(bytes, bytes.length, 'x.safetensors');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(WeightkitError);
      expect({ code: (err as WeightkitError).code, tensor: (err as WeightkitError).where.tensor }).toEqual({ code: c.code, tensor: c.tensor });
    },
  );
});
