// Executor I/O: the BF16 output path (src/plan/execute.ts runTensor): mergers with emitBf16 write a chunk's bits over
// the chunk's own f32 buffer, piece by piece; pieces they decline are emitted as f32 and rounded in place. Whatever
// mix of the two a merger chooses, the bytes equal rounding every piece's f32 output (the path without emitBf16).
// Also the I/O chunk sizes: single-pass mergers read small chunks, mergers with statistics passes whole tensors once.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openCheckpointPath } from '../../src/io/open.js';
import type { CheckpointReader } from '../../src/io/types.js';
import type { Chunk, MergeMethod, TensorContext, TensorMerger } from '../../src/merge/types.js';
import { SINGLE_PASS_CHUNK_ELEMENTS, Scratch, runTensor } from '../../src/plan/execute.js';
import { buildPlan } from '../../src/plan/merge.js';
import { fromF32 } from '../../src/tensor/convert.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { writeFile } from 'node:fs/promises';
import { tempDir, writeModel } from './helpers.js';

const NAME = 'model.layers.0.mlp.up_proj.weight';
const SHAPE = [37, 1901]; // 70337 elements: five pieces, the last one short

/** out = f32(sin(base) * 3 + x): values whose BF16 rounding is not trivial, NaN included */
function f32Of(chunk: Chunk, out: Float32Array): void {
  for (let i = 0; i < chunk.length; i++) out[i] = Math.sin(chunk.base![i]!) * 3 + chunk.models[0]![i]!;
}

function method(accept: (piece: number) => boolean | undefined): MergeMethod {
  return {
    name: 'fake',
    summary: 'test',
    base: 'required',
    params: [],
    modelParams: [],
    reference: 'test',
    create(_ctx: TensorContext): TensorMerger {
      let piece = 0;
      const m: TensorMerger = {
        chunking: 'elements',
        emit: f32Of,
      };
      if (accept(0) !== undefined) {
        m.emitBf16 = (chunk: Chunk, bits: Uint16Array): boolean => {
          if (!accept(piece++)) return false;
          const f = new Float32Array(chunk.length);
          f32Of(chunk, f);
          bits.set(fromF32('BF16', f) as Uint16Array);
          return true;
        };
      }
      return m;
    },
  } as unknown as MergeMethod;
}

describe('executor BF16 output through emitBf16', () => {
  it('gives the bytes of rounding f32 outputs, whatever pieces the merger declines', async () => {
    const root = await tempDir('weightkit-emitbf16-');
    const r = new SeededRandom(3);
    for (const [i, m] of ['base', 'a'].entries()) {
      const v = Float32Array.from({ length: SHAPE[0]! * SHAPE[1]! }, () => r.normal() * (i + 1));
      v[7] = NaN;
      await writeModel(join(root, m), new Map([[NAME, v]]), { dtype: 'BF16', shapes: { [NAME]: SHAPE }, config: false, tokenizer: false });
    }
    const recipe = join(root, 'r.yaml');
    await writeFile(recipe, 'merge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1}}\ndtype: bfloat16\n');
    const [plan] = await buildPlan(recipe, { out: join(root, 'out') });
    const t = plan!.tensors.find((x) => x.name === NAME)!;
    const readers = new Map<number, CheckpointReader>();
    for (const m of plan!.models) readers.set(m.id, await openCheckpointPath(m.path));
    const run = async (accept: (p: number) => boolean | undefined, budgetBytes: number): Promise<Uint8Array> => {
      const bytes = new Uint8Array(t.byteLength);
      const sink = { writeRange: async (_n: string, off: number, b: Uint8Array): Promise<void> => void bytes.set(b, off) };
      await runTensor({ method: method(accept), readers, sink, seed: 0, budgetBytes, scratch: new Scratch() }, t);
      return bytes;
    };
    for (const budget of [1 << 26, 300_000]) {
      // budget 300 KB: several I/O chunks, each with its own pieces
      const reference = await run(() => undefined, budget); // no emitBf16: f32 pieces rounded at the end
      expect(await run(() => true, budget)).toEqual(reference);
      expect(await run(() => false, budget)).toEqual(reference);
      expect(await run((p) => p % 2 === 1, budget)).toEqual(reference);
      expect(await run((p) => p % 3 === 0, budget)).toEqual(reference);
    }
    for (const rd of readers.values()) await rd.close();
  });
});

describe('executor I/O chunks', () => {
  it('a single-pass merger reads at most SINGLE_PASS_CHUNK_ELEMENTS per chunk; one with statistics passes reads the tensor whole, once', async () => {
    const root = await tempDir('weightkit-chunks-');
    const name = 'model.layers.0.mlp.down_proj.weight';
    const shape = [2500, 2000]; // 5M elements, above SINGLE_PASS_CHUNK_ELEMENTS
    for (const [i, m] of ['base', 'a'].entries()) {
      const v = Float32Array.from({ length: 5_000_000 }, (_, j) => ((j * 7 + i) % 13) / 8);
      await writeModel(join(root, m), new Map([[name, v]]), { dtype: 'F32', shapes: { [name]: shape }, config: false, tokenizer: false });
    }
    const recipe = join(root, 'r.yaml');
    await writeFile(recipe, 'merge_method: ties\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1, density: 0.5}}\ndtype: float32\n');
    const [plan] = await buildPlan(recipe, { out: join(root, 'out') });
    const t = plan!.tensors.find((x) => x.name === name)!;
    /** rows of the largest single read, and rows read in all (F32 inputs are read a chunk at a time) */
    const reads = async (m: MergeMethod): Promise<{ largest: number; total: number }> => {
      let largest = 0;
      let total = 0;
      const readers = new Map<number, CheckpointReader>();
      for (const pm of plan!.models) {
        const r = await openCheckpointPath(pm.path);
        const readF32 = r.readF32.bind(r);
        r.readF32 = (n, o) => {
          const rows = (o?.rowEnd ?? shape[0]!) - (o?.rowStart ?? 0);
          largest = Math.max(largest, rows);
          total += rows;
          return readF32(n, o);
        };
        readers.set(pm.id, r);
      }
      const sink = { writeRange: async (): Promise<void> => undefined };
      await runTensor({ method: m, readers, sink, seed: 0, budgetBytes: 1 << 28, scratch: new Scratch() }, t);
      for (const r of readers.values()) await r.close();
      return { largest, total };
    };
    const single = await reads(method(() => undefined));
    expect(single.largest * shape[1]!).toBeLessThanOrEqual(SINGLE_PASS_CHUNK_ELEMENTS);
    expect(single.total).toBe(2 * shape[0]!);
    const { getMethod } = await import('../../src/merge/registry.js');
    expect(await reads(getMethod('ties'))).toEqual({ largest: shape[0]!, total: 2 * shape[0]! });
  });
});
