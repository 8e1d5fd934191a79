// Property tests (fast-check, seed 42): write -> read round trips for random dtypes, shapes, names and metadata
// (single file and sharded); and hostile input: random bytes, random JSON headers, and byte flips / truncations of
// valid files produce only WeightkitErrors, quickly, and every accepted layout bounds all allocations by the file size.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { WeightkitError } from '../../../src/errors.js';
import { openCheckpointPath } from '../../../src/io/open.js';
import { parseSafetensorsHeader, type SafetensorsHeader } from '../../../src/io/safetensors/header.js';
import { openSafetensors } from '../../../src/io/safetensors/reader.js';
import { openShardedWriter } from '../../../src/io/safetensors/sharded-writer.js';
import { openSafetensorsWriter, planSafetensors } from '../../../src/io/safetensors/writer.js';
import { DTYPES, DTYPE_INFO, type DType } from '../../../src/tensor/dtype.js';
import { checkedByteLength } from '../../../src/tensor/tensor.js';
import { concat, tempDir, u64le } from './helpers.js';

interface Spec {
  name: string;
  dtype: DType;
  shape: number[];
  seed: number;
}

const nameArb = fc
  .oneof(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }), fc.string({ unit: 'binary', minLength: 1, maxLength: 6 }), fc.constantFrom('__proto__', 'model.layers.0.mlp.up_proj.weight', 'constructor'))
  .filter((n) => n !== '__metadata__');
const specArb: fc.Arbitrary<Spec> = fc.record({
  name: nameArb,
  dtype: fc.constantFrom(...DTYPES),
  shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});
const specsArb = fc.uniqueArray(specArb, { selector: (s) => s.name, maxLength: 8 });
const metaArb = fc.option(fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 6 }), fc.string({ unit: 'grapheme', maxLength: 6 }), { maxKeys: 4 }), { nil: undefined });

function bytesOf(s: Spec): Uint8Array {
  const out = new Uint8Array(checkedByteLength(s.dtype, s.shape)!);
  let x = s.seed | 1;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A deterministic permutation (write order) from a seed. */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let x = seed | 1;
  for (let i = out.length - 1; i > 0; i--) {
    x = (Math.imul(x, 1103515245) + 12345) | 0;
    const j = (x >>> 8) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** A valid file built in memory from specs (the writer's own layout). */
function validFile(specs: readonly Spec[], metadata?: Record<string, string>): Uint8Array {
  const layout = planSafetensors(specs, metadata === undefined ? {} : { metadata }, 'mem');
  const bySpec = new Map(specs.map((s) => [s.name, s]));
  return concat(layout.headerBytes, ...layout.tensors.map((t) => bytesOf(bySpec.get(t.name)!)));
}

function expectWeightkitError(e: unknown): void {
  if (!(e instanceof WeightkitError)) throw new Error(`not a WeightkitError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
}

/** Every accepted layout covers the data area exactly with in-bounds ranges: allocations are bounded by the file. */
function checkLayoutInvariants(h: SafetensorsHeader, fileByteLength: number): void {
  let sum = 0;
  for (const e of h.entries) {
    expect(e.end).toBeLessThanOrEqual(h.dataByteLength);
    expect(e.byteLength).toBe(e.end - e.begin);
    expect(e.byteLength).toBe(e.numel * DTYPE_INFO[e.dtype].bytes);
    sum += e.byteLength;
  }
  expect(sum).toBe(h.dataByteLength);
  expect(h.dataStart + h.dataByteLength).toBe(fileByteLength);
}

describe('round trips', () => {
  it('single file: any dtypes, shapes (zero-size, scalars), unicode names, metadata, any write order', async () => {
    const dir = await tempDir();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(specsArb, metaArb, fc.integer(), async (specs, metadata, orderSeed) => {
        const path = join(dir, `r${run++}.safetensors`);
        const w = await openSafetensorsWriter(path, specs, metadata === undefined ? {} : { metadata });
        await Promise.all(shuffled(specs, orderSeed).map((s) => w.write(s.name, bytesOf(s))));
        await w.close();
        await using r = await openSafetensors(path, { chunkBytes: 16 });
        expect(r.metadata()).toEqual(metadata ?? {});
        expect(r.tensors().map((t) => t.name).sort()).toEqual(specs.map((s) => s.name).sort());
        for (const s of specs) {
          const t = await r.read(s.name);
          expect(t.dtype).toBe(s.dtype);
          expect(t.shape).toEqual(s.shape);
          expect(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).toEqual(bytesOf(s));
          expect(t.data.byteOffset % DTYPE_INFO[s.dtype].bytes).toBe(0);
          expect(await r.readBytes(s.name)).toEqual(bytesOf(s));
        }
        const bytes = validFile(specs, metadata);
        checkLayoutInvariants(parseSafetensorsHeader(bytes, bytes.length, 'mem'), bytes.length);
      }),
      { seed: 42, numRuns: 120 },
    );
  });

  it('sharded: any shard size, read back through the folder', async () => {
    const dir = await tempDir();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(specsArb, fc.integer({ min: 1, max: 200 }), fc.integer(), async (specs, shardSize, orderSeed) => {
        const out = join(dir, `s${run++}`);
        const w = await openShardedWriter(out, specs, { shardSize });
        await Promise.all(shuffled(specs, orderSeed).map((s) => w.write(s.name, bytesOf(s))));
        await w.close();
        for (const shard of w.shards) {
          const big = shard.tensors.length > 1 && shard.byteLength > shardSize;
          expect(big).toBe(false);
        }
        await using r = await openCheckpointPath(out);
        expect(r.format).toBe(w.shards.length > 1 ? 'safetensors-sharded' : 'safetensors');
        for (const s of specs) expect(await r.readBytes(s.name)).toEqual(bytesOf(s));
      }),
      { seed: 42, numRuns: 60 },
    );
  });
});

describe('ranged writes', () => {
  it('any split of every tensor into ranges, written in any order, gives the same bytes as whole writes', async () => {
    const dir = await tempDir();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(specsArb, fc.array(fc.nat(), { maxLength: 6 }), fc.integer(), fc.integer({ min: 8, max: 64 }), async (specs, cuts, orderSeed, shardSize) => {
        const a = join(dir, `a${run}`);
        const b = join(dir, `b${run++}`);
        const wa = await openShardedWriter(a, specs, { shardSize });
        for (const s of specs) await wa.write(s.name, bytesOf(s));
        await wa.close();
        const wb = await openShardedWriter(b, specs, { shardSize });
        const parts: Array<[string, number, Uint8Array]> = [];
        for (const s of specs) {
          const bytes = bytesOf(s);
          const points = [...new Set([0, bytes.length, ...cuts.map((c) => c % (bytes.length + 1))])].sort((x, y) => x - y);
          if (bytes.length === 0) parts.push([s.name, 0, bytes]);
          for (let i = 0; i + 1 < points.length; i++) parts.push([s.name, points[i]!, bytes.subarray(points[i]!, points[i + 1]!)]);
        }
        await Promise.all(shuffled(parts, orderSeed).map(([n, off, d]) => wb.writeRange(n, off, d)));
        await wb.close();
        const { readFile } = await import('node:fs/promises');
        expect(wb.files.map((f) => f.slice(b.length))).toEqual(wa.files.map((f) => f.slice(a.length)));
        for (let i = 0; i < wa.files.length; i++) {
          expect(new Uint8Array(await readFile(wb.files[i]!))).toEqual(new Uint8Array(await readFile(wa.files[i]!)));
        }
      }),
      { seed: 42, numRuns: 60 },
    );
  });
});

describe('hostile input: only WeightkitError, bounded time and memory', () => {
  const parseOrError = (bytes: Uint8Array): SafetensorsHeader | undefined => {
    try {
      const h = parseSafetensorsHeader(bytes, bytes.length, 'fuzz');
      checkLayoutInvariants(h, bytes.length);
      return h;
    } catch (e) {
      expectWeightkitError(e);
      return undefined;
    }
  };

  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        parseOrError(bytes);
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('random bytes behind a plausible header length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), fc.nat({ max: 64 }), (rest, slack) => {
        parseOrError(concat(u64le(Math.max(0, rest.length - slack)), rest));
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('random JSON headers and near-valid entries', () => {
    const num = fc.oneof(fc.nat({ max: 64 }), fc.integer(), fc.double(), fc.constant(-0), fc.constant(2 ** 53), fc.constant(1e308));
    const junk = fc.oneof(fc.string({ maxLength: 4 }), num, fc.constant(null), fc.boolean());
    const entry = fc.record(
      {
        dtype: fc.oneof(fc.constantFrom(...DTYPES), junk),
        shape: fc.oneof(fc.array(num, { maxLength: 3 }), junk),
        data_offsets: fc.oneof(fc.tuple(num, num), fc.array(num, { maxLength: 3 }), junk),
        extra: junk,
      },
      { requiredKeys: [] },
    );
    const header = fc.oneof(
      fc.json(),
      fc.dictionary(fc.oneof(fc.string({ maxLength: 3 }), fc.constant('__metadata__')), fc.oneof(entry, junk, fc.dictionary(fc.string({ maxLength: 3 }), junk))).map((o) => JSON.stringify(o)),
    );
    fc.assert(
      fc.property(header, fc.nat({ max: 80 }), (text, dataBytes) => {
        const h = new TextEncoder().encode(text);
        parseOrError(concat(u64le(h.length), h, new Uint8Array(dataBytes)));
      }),
      { seed: 42, numRuns: 3000 },
    );
  });

  const mutation = fc.record({
    flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    cut: fc.option(fc.nat(), { nil: undefined }),
    append: fc.uint8Array({ maxLength: 8 }),
  });

  function mutate(bytes: Uint8Array, m: { flips: Array<[number, number]>; cut: number | undefined; append: Uint8Array }): Uint8Array {
    let out = bytes.slice();
    for (const [pos, v] of m.flips) if (out.length > 0) out[pos % out.length] = v;
    if (m.cut !== undefined) out = out.subarray(0, m.cut % (out.length + 1));
    return concat(out, m.append);
  }

  it('byte flips, truncations and extensions of valid files (pure validator)', () => {
    fc.assert(
      fc.property(specsArb, metaArb, mutation, (specs, metadata, m) => {
        parseOrError(mutate(validFile(specs, metadata), m));
      }),
      { seed: 42, numRuns: 2000 },
    );
  });

  it('digit edits inside the header (shapes, offsets) reach the layout checks', () => {
    const codes = new Set<string>();
    fc.assert(
      fc.property(specsArb.filter((s) => s.length > 0), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0x30, max: 0x39 })), { minLength: 1, maxLength: 3 }), (specs, edits) => {
        const bytes = validFile(specs);
        const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
        const digits: number[] = [];
        for (let i = 8; i < 8 + n; i++) if (bytes[i]! >= 0x30 && bytes[i]! <= 0x39) digits.push(i);
        if (digits.length === 0) return;
        for (const [k, v] of edits) bytes[digits[k % digits.length]!] = v;
        try {
          parseOrError(bytes);
          parseSafetensorsHeader(bytes, bytes.length, 'fuzz');
          codes.add('OK');
        } catch (e) {
          codes.add((e as WeightkitError).code);
        }
      }),
      { seed: 42, numRuns: 2000 },
    );
    // the edits must exercise the layout invariants, not only the prefix
    for (const c of ['ST_SIZE_MISMATCH', 'ST_OFFSET_OUT_OF_BOUNDS', 'ST_OVERLAP', 'ST_INVALID_OFFSETS']) expect(codes).toContain(c);
  });

  it('mutated files through open and every read: typed errors only, fast, allocations within the file size', async () => {
    const dir = await tempDir();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(specsArb, mutation, async (specs, m) => {
        const bytes = mutate(validFile(specs), m);
        const path = join(dir, `m${run++}.safetensors`);
        await writeFile(path, bytes);
        const t0 = performance.now();
        try {
          await using r = await openSafetensors(path, { chunkBytes: 8 });
          let allocated = 0;
          for (const t of r.tensors()) {
            const got = await r.read(t.name);
            allocated += got.data.byteLength;
            const f = await r.readF32(t.name, { rowStart: 0 });
            expect(f.length).toBe(t.numel);
            allocated += (await r.readBytes(t.name)).byteLength;
            expect(r.scratchByteLength).toBeLessThanOrEqual(bytes.length);
          }
          expect(allocated).toBeLessThanOrEqual(2 * bytes.length);
        } catch (e) {
          expectWeightkitError(e);
        }
        expect(performance.now() - t0).toBeLessThan(2000);
      }),
      { seed: 42, numRuns: 300 },
    );
  });

  it('a sharded folder with a mutated index or shard fails with typed errors only', async () => {
    const dir = await tempDir();
    const specs: Spec[] = [
      { name: 'a', dtype: 'F32', shape: [2], seed: 1 },
      { name: 'b', dtype: 'BF16', shape: [3], seed: 2 },
    ];
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.boolean(), mutation, async (mutateIndex, m) => {
        const out = join(dir, `x${run++}`);
        const w = await openShardedWriter(out, specs, { shardSize: 8 });
        for (const s of specs) await w.write(s.name, bytesOf(s));
        await w.close();
        const target = mutateIndex ? w.files[w.files.length - 1]! : w.files[0]!;
        const { readFile } = await import('node:fs/promises');
        await writeFile(target, mutate(new Uint8Array(await readFile(target)), m));
        try {
          await using r = await openCheckpointPath(out);
          for (const t of r.tensors()) await r.readF32(t.name);
        } catch (e) {
          expectWeightkitError(e);
        }
      }),
      { seed: 42, numRuns: 200 },
    );
    await mkdir(join(dir, 'unused'), { recursive: true });
  });
});
