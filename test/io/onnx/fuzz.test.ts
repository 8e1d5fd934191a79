import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { WeightkitError } from '../../../src/errors.js';
import { patchOnnx } from '../../../src/io/onnx/patch.js';
import { openOnnx } from '../../../src/io/onnx/reader.js';
import { buildMlp } from './build-model.js';

const dir = mkdtempSync(path.join(tmpdir(), 'wk-onnx-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const mutation = (len: number) =>
  fc.oneof(
    fc.record({
      kind: fc.constant('flip' as const),
      edits: fc.array(fc.tuple(fc.nat({ max: len - 1 }), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat({ max: len - 1 }) }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat({ max: len }),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }),
    }),
  );

type Mutation =
  | { kind: 'flip'; edits: [number, number][] }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array };

function mutate(src: Uint8Array, m: Mutation): Uint8Array {
  if (m.kind === 'truncate') return src.slice(0, m.at);
  if (m.kind === 'insert') {
    const out = new Uint8Array(src.length + m.bytes.length);
    out.set(src.subarray(0, m.at), 0);
    out.set(m.bytes, m.at);
    out.set(src.subarray(m.at), m.at + m.bytes.length);
    return out;
  }
  const out = src.slice();
  for (const [i, b] of m.edits) out[i] = b;
  return out;
}

/** Open, read every tensor (whole and by rows) and patch; anything thrown must be a WeightkitError. */
async function exercise(file: string, out: string): Promise<void> {
  try {
    const r = await openOnnx(file);
    try {
      for (const t of r.tensors()) {
        await r.read(t.name);
        await r.readF32(t.name);
        if (t.shape.length > 0 && t.shape[0]! > 0) await r.readBytes(t.name, { rowStart: t.shape[0]! - 1 });
      }
      r.graphInputs();
      r.graphOutputs();
      r.metadata();
    } finally {
      await r.close();
    }
    await patchOnnx({ model: file, out, replacements: new Map(), external: 'auto', externalThresholdBytes: 64 });
  } catch (e) {
    if (!(e instanceof WeightkitError)) throw e;
  }
}

describe('fuzz: mutated models only ever produce WeightkitError', () => {
  for (const storage of ['raw', 'typed', 'external'] as const) {
    it(`${storage} MLP`, async () => {
      const built = buildMlp({ storage, dtype: storage === 'typed' ? 'F16' : 'F32', externalName: 'fz.bin' });
      if (built.external !== undefined) writeFileSync(path.join(dir, 'fz.bin'), built.external);
      const file = path.join(dir, `fz-${storage}.onnx`);
      const out = path.join(dir, `fz-${storage}.out.onnx`);
      const started = Date.now();
      await fc.assert(
        fc.asyncProperty(mutation(built.bytes.length), async (m) => {
          writeFileSync(file, mutate(built.bytes, m as Mutation));
          await exercise(file, out);
        }),
        { seed: 20261126, numRuns: 250 },
      );
      expect(Date.now() - started).toBeLessThan(30_000);
    });
  }
});
