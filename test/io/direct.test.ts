// Direct (O_DIRECT) output writes (src/io/direct.ts): whatever the alignment of a range, concurrent or not, the file
// holds exactly the bytes written; WEIGHTKIT_DIRECT_IO=0 turns them off; merges give the same bytes either way, on the
// calling thread and in the worker pool. On this machine's temp file system (ext4) direct writes must really be used.
import { statfsSync } from 'node:fs';
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BlockAssembler, DirectWriter } from '../../src/io/direct.js';
import { merge } from '../../src/plan/merge.js';
import { Scratch, laneScratch, largestOutputStep, wholeOutputStep } from '../../src/plan/execute.js';
import type { PlanTensor } from '../../src/plan/plan.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { Workspace } from '../../src/tensor/wasm/workspace.js';
import { tempDir, writeModel } from '../plan/helpers.js';

const EXT4 = 0xef53;

afterEach(() => {
  delete process.env['WEIGHTKIT_DIRECT_IO'];
});

/** Write the given [position, length] ranges of `data` into a fresh file (concurrently), return the file's bytes. */
async function writeRanges(file: string, data: Uint8Array, ranges: readonly [number, number][], direct: boolean): Promise<Uint8Array> {
  await writeFile(file, new Uint8Array(0));
  const fh = await open(file, 'r+');
  const dw = direct ? await DirectWriter.open(file) : undefined;
  if (direct && process.platform === 'linux' && statfsSync(tmpdir()).type === EXT4) expect(dw).toBeDefined();
  try {
    await Promise.all(ranges.map(([p, n]) => (dw ? dw.write(fh, data.subarray(p, p + n), p) : fh.write(data, p, n, p))));
  } finally {
    await dw?.close();
    await fh.close();
  }
  return new Uint8Array(await readFile(file));
}

/** A base and two fine-tunes of seeded normal values under root, and a ties recipe over them in `dtype`; the recipe's path. */
async function tiesFamily(root: string, shapes: Record<string, number[]>, dtype: 'F32' | 'BF16', seed: number): Promise<string> {
  for (const [i, m] of ['base', 'a', 'b'].entries()) {
    const r = new SeededRandom(seed + i);
    const v = new Map(Object.entries(shapes).map(([k, s]) => [k, Float32Array.from({ length: s.reduce((x, y) => x * y, 1) }, () => r.normal())]));
    await writeModel(join(root, m), v, { dtype, shapes, config: false, tokenizer: false });
  }
  const recipe = join(root, 'r.yaml');
  const models = '  - {model: a, parameters: {weight: 1, density: 0.5}}\n  - {model: b, parameters: {weight: 0.5, density: 0.7}}\n';
  await writeFile(recipe, `merge_method: ties\nbase_model: base\nmodels:\n${models}dtype: ${dtype === 'F32' ? 'float32' : 'bfloat16'}\n`);
  return recipe;
}

describe('BlockAssembler', () => {
  it('puts shared blocks together from their parts in any order: whole ones written directly, the last partial one and leftovers buffered', async () => {
    const r = new SeededRandom(5);
    for (const size of [3 * 4096, 5 * 4096 + 123, 4000, 70_001]) {
      const data = Uint8Array.from({ length: size }, () => r.int(256));
      // cut the file at random points into parts, added in a random order; some parts held back (left incomplete)
      const cuts = [0, size, ...Array.from({ length: 12 }, () => r.int(size))].sort((x, y) => x - y);
      const parts = cuts.slice(1).map((c, i) => [cuts[i]!, c] as const).filter(([x, y]) => y > x);
      for (let i = parts.length - 1; i > 0; i--) {
        const j = r.int(i + 1);
        [parts[i], parts[j]] = [parts[j]!, parts[i]!];
      }
      const held = parts.length > 3 ? parts.pop()! : undefined;
      const out = new Uint8Array(size);
      const direct: number[] = [];
      const buffered: number[] = [];
      const blocks = new BlockAssembler(
        size,
        async (bytes, at) => {
          expect(bytes.byteLength).toBe(4096);
          expect(at % 4096).toBe(0);
          direct.push(at);
          out.set(bytes, at);
        },
        async (bytes, at) => {
          buffered.push(at);
          out.set(bytes, at);
        },
      );
      for (const [x, y] of parts) blocks.add(x, data.slice(x, y));
      // every whole block without a held-back byte is out already
      const full = Math.floor(size / 4096);
      const heldBlocks = held ? new Set(Array.from({ length: Math.ceil(held[1] / 4096) - Math.floor(held[0] / 4096) }, (_, k) => Math.floor(held[0] / 4096) + k)) : new Set<number>();
      await Promise.resolve();
      for (let k = 0; k < full; k++) expect(direct.includes(k * 4096), `block ${k}`).toBe(!heldBlocks.has(k));
      if (held) {
        // the held part goes through the page cache at flush, with what its blocks hold of the others
        await blocks.flush();
        out.set(data.subarray(held[0], held[1]), held[0]);
      } else await blocks.flush();
      expect(Buffer.from(out).equals(Buffer.from(data))).toBe(true);
      expect(new Set(direct).size).toBe(direct.length); // each block once
      if (!held && size % 4096 !== 0) expect(buffered).toEqual([full * 4096]); // the last, partial block
    }
  });

  it('a failed block write is the flush\'s error (the other blocks still written)', async () => {
    const written: number[] = [];
    const blocks = new BlockAssembler(
      3 * 4096,
      async (_bytes, at) => {
        if (at === 4096) throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        written.push(at);
      },
      async () => undefined,
    );
    blocks.add(0, new Uint8Array(3 * 4096));
    await expect(blocks.flush()).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(written).toEqual([0, 8192]);
  });

  it('a merge hands every range\'s unaligned edges to the block assembler, which writes the shared blocks directly: the same bytes as buffered writes', async () => {
    const root = await tempDir('weightkit-direct-blocks-');
    // unaligned tensor boundaries, a tensor smaller than a block, one spanning a few blocks
    const recipe = await tiesFamily(root, { 'model.layers.0.mlp.up_proj.weight': [300, 1000], 'model.norm.weight': [1000], 'model.layers.0.q.weight': [7, 1001] }, 'BF16', 40);
    const write = vi.spyOn(DirectWriter.prototype, 'write');
    const block = vi.spyOn(DirectWriter.prototype, 'writeBlock');
    await merge(recipe, { out: join(root, 'out'), threads: 1 });
    const edges = write.mock.calls.filter((c) => c[3] !== undefined).length;
    const blocks = block.mock.calls.length;
    vi.restoreAllMocks();
    for (const threads of [2]) await merge(recipe, { out: join(root, `pool-${threads}`), threads, pool: 'always' });
    process.env['WEIGHTKIT_DIRECT_IO'] = '0';
    await merge(recipe, { out: join(root, 'buffered'), threads: 1 });
    const ref = await readFile(join(root, 'buffered', 'model.safetensors'));
    expect((await readFile(join(root, 'out', 'model.safetensors'))).equals(ref)).toBe(true);
    expect((await readFile(join(root, 'pool-2', 'model.safetensors'))).equals(ref)).toBe(true);
    if (write.mock.calls.length === 0) return; // no direct writes on this file system
    expect(edges).toBe(write.mock.calls.length); // every range hands its edges over
    expect(blocks).toBeGreaterThanOrEqual(2); // the header's last block and the tensors' shared ones, written directly
  });
});

describe('DirectWriter', () => {
  it('writes any ranges (unaligned edges, aligned middles, past the bounce buffers) to exactly their bytes', async () => {
    const dir = await tempDir('weightkit-direct-');
    const n = 40 << 20;
    const data = new Uint8Array(n);
    new SeededRandom(1).fillNormal(new Float32Array(data.buffer));
    // back-to-back ranges of varied sizes and alignments: tiny, just under and over the 1 MiB direct threshold, 20 MiB
    const sizes = [7, 4096, (1 << 20) - 5, (1 << 20) + 4095, 3 << 20, 20 << 20, 123_457];
    const ranges: [number, number][] = [];
    let at = 0;
    for (let i = 0; at < n; i++) {
      const len = Math.min(sizes[i % sizes.length]!, n - at);
      ranges.push([at, len]);
      at += len;
    }
    const got = await writeRanges(join(dir, 'd.bin'), data, ranges, true);
    expect(got.length).toBe(n);
    expect(Buffer.from(got).equals(Buffer.from(data))).toBe(true);
    process.env['WEIGHTKIT_DIRECT_IO'] = '0';
    expect(await DirectWriter.open(join(dir, 'd.bin'))).toBeUndefined();
  });

  it('where O_DIRECT is refused or unavailable the writes stay buffered and correct (tmpfs)', async () => {
    if (process.platform !== 'linux') return;
    const file = join('/dev/shm', `weightkit-direct-${process.pid}.bin`);
    const data = Uint8Array.from({ length: 5 << 20 }, (_, i) => (i * 31) & 255);
    const got = await writeRanges(file, data, [[0, 3], [3, (5 << 20) - 3]], false);
    expect(Buffer.from(got).equals(Buffer.from(data))).toBe(true);
    const dw = await DirectWriter.open(file); // tmpfs may or may not take O_DIRECT: either way no throw
    await dw?.close();
    await import('node:fs/promises').then((f) => f.rm(file, { force: true }));
  });

  it('merges give the same bytes with direct writes on and off, on one thread and in the pool', async () => {
    const root = await tempDir('weightkit-direct-merge-');
    const shapes = { 'model.layers.0.mlp.up_proj.weight': [1100, 1024], 'model.layers.0.mlp.down_proj.weight': [1024, 1100], 'model.norm.weight': [1024] };
    const recipe = await tiesFamily(root, shapes, 'F32', 10);
    const run = async (tag: string, threads: number): Promise<Buffer> => {
      const out = join(root, `out-${tag}`);
      await merge(recipe, { out, threads, ...(threads > 1 ? { pool: 'always' as const } : {}) });
      return readFile(join(out, 'model.safetensors'));
    };
    const direct1 = await run('direct-1', 1);
    const direct2 = await run('direct-2', 2);
    process.env['WEIGHTKIT_DIRECT_IO'] = '0';
    const buffered = await run('buffered', 1);
    expect(direct1.equals(buffered)).toBe(true);
    expect(direct2.equals(buffered)).toBe(true);
    // a multi-document recipe's intermediate stage is read again at once: written through the page cache only
    delete process.env['WEIGHTKIT_DIRECT_IO'];
    const multi = join(root, 'multi.yaml');
    await writeFile(multi, `name: first\n${(await readFile(recipe, 'utf8'))}---\nmerge_method: linear\nmodels:\n  - {model: first, parameters: {weight: 1}}\n  - {model: a, parameters: {weight: 1}}\ndtype: float32\n`);
    const spy = vi.spyOn(DirectWriter, 'open');
    const inter = join(root, 'stages');
    await merge(multi, { out: join(root, 'out-multi'), threads: 1, intermediateDir: inter });
    const paths = spy.mock.calls.map((c) => c[0]);
    expect(paths.some((p) => p.startsWith(inter))).toBe(false);
    expect(paths.some((p) => p.includes('out-multi'))).toBe(true);
    spy.mockRestore();
  });
});

describe('DirectWriter from page-aligned memory', () => {
  it('writes a range whose middle sits on a page boundary of a workspace from where it is (no bounce buffer), exactly', async () => {
    const dir = await tempDir('weightkit-direct-inplace-');
    const file = join(dir, 'p.bin');
    const n = 24 << 20;
    const ws = Workspace.create(n + (1 << 20))!;
    expect(ws).toBeDefined();
    const all = new Uint8Array(ws.buffer);
    new SeededRandom(3).fillNormal(new Float32Array(ws.buffer, 0, (n + (1 << 20)) / 4));
    await writeFile(file, new Uint8Array(0));
    const fh = await open(file, 'r+');
    const dw = await DirectWriter.open(file);
    if (dw === undefined) {
      await fh.close();
      return; // no direct writes on this file system
    }
    const take = vi.spyOn(dw as unknown as { take: () => Promise<Uint8Array> }, 'take');
    // file positions 4096 k + r written from memory offsets with the same r: aligned middles, unaligned edges
    const ranges: [number, number][] = [
      [0, 3 << 20],
      [3 << 20, (5 << 20) + 1234],
      [(8 << 20) + 1234, (7 << 20) - 1234 + 10],
      [(15 << 20) + 10, n - (15 << 20) - 10],
    ];
    await Promise.all(ranges.map(([p, len]) => dw.write(fh, all.subarray(p + 8192, p + 8192 + len), p)));
    expect(take).not.toHaveBeenCalled();
    // a middle off the page phase goes through the bounce buffers
    await dw.write(fh, all.subarray(8192 + 2, 8192 + 2 + (2 << 20)), 0);
    expect(take).toHaveBeenCalledTimes(1);
    await dw.write(fh, all.subarray(8192, 8192 + (2 << 20)), 0);
    await dw.close();
    await fh.close();
    expect(Buffer.from(await readFile(file)).equals(Buffer.from(all.subarray(8192, 8192 + n)))).toBe(true);
  });

  it('Scratch.u16At places a workspace view at the asked phase of a page', () => {
    const s = new Scratch();
    for (const at of [0, 2, 24, 4094, 4096 + 38, 123_456]) {
      const v = s.u16At(0, 5000, at);
      expect(v.length).toBe(5000);
      expect((v.byteOffset - at) % 4096).toBe(0);
    }
  });

  it('a BF16 merge of whole tensors writes every large output range without a bounce buffer', async () => {
    const root = await tempDir('weightkit-direct-bf16-');
    const recipe = await tiesFamily(root, { 'model.layers.0.mlp.up_proj.weight': [1100, 1024], 'model.norm.weight': [1000] }, 'BF16', 20);
    const take = vi.spyOn(DirectWriter.prototype as unknown as { take: () => Promise<Uint8Array> }, 'take');
    const write = vi.spyOn(DirectWriter.prototype, 'write');
    await merge(recipe, { out: join(root, 'out'), threads: 1 });
    const direct = write.mock.calls.length;
    const bounced = take.mock.calls.length;
    take.mockRestore();
    write.mockRestore();
    process.env['WEIGHTKIT_DIRECT_IO'] = '0';
    await merge(recipe, { out: join(root, 'out-buffered'), threads: 1 });
    expect((await readFile(join(root, 'out', 'model.safetensors'))).equals(await readFile(join(root, 'out-buffered', 'model.safetensors')))).toBe(true);
    if (direct === 0) return; // no direct writes on this file system
    expect(bounced).toBe(0);
  });
});

describe('lane workspaces', () => {
  it('largestOutputStep: a whole tensor just under the budget can need more than a larger tensor emitted in ranges', () => {
    const t = (name: string, shape: number[]): PlanTensor => ({ name, shape, dtype: 'BF16', op: 'merge', inputs: [], params: {}, modelParams: [], t: 0, byteLength: 0 }) as unknown as PlanTensor;
    const budget = 1 << 20;
    expect(wholeOutputStep(300_000, budget)).toBe(budget / 8); // too big: ranges
    expect(wholeOutputStep(200_000, budget)).toBe(200_000); // whole
    expect(largestOutputStep([t('a', [300, 1000]), t('b', [200, 1000]), t('c', [10])], budget)).toBe(200_000);
    const s = laneScratch(200_000);
    const buffer = s.u16At(0, 10, 0).buffer;
    for (const [n, at] of [[200_000, 4094], [budget / 8, 2], [199_999, 123_456]] as const) {
      const v = s.u16At(0, n, at);
      expect(v.buffer).toBe(buffer); // never a new workspace
      expect((v.byteOffset - at) % 4096).toBe(0);
    }
  });

  it('a merge makes one workspace per lane, sized for its largest output range at once', async () => {
    const root = await tempDir('weightkit-lanes-');
    // each lane takes a tensor emitted in ranges (too big for its budget), then a smaller one emitted whole in more
    const shapes: Record<string, number[]> = {};
    for (const l of [0, 1, 2]) {
      shapes[`model.layers.${l}.a.weight`] = [300, 1000];
      shapes[`model.layers.${l}.b.weight`] = [200, 1000];
    }
    const recipe = await tiesFamily(root, shapes, 'BF16', 31);
    const budget = 3 << 20; // lanes of 1 MiB: 300K elements in ranges of 128K, 200K whole
    const create = vi.spyOn(Workspace, 'create');
    await merge(recipe, { out: join(root, 'out'), threads: 1, memoryBudget: budget });
    const made = create.mock.calls.map((c) => c[0]);
    create.mockRestore();
    await merge(recipe, { out: join(root, 'ref'), threads: 1 });
    expect((await readFile(join(root, 'out', 'model.safetensors'))).equals(await readFile(join(root, 'ref', 'model.safetensors')))).toBe(true);
    expect(made.filter((b) => b > 200_000 * 2).length).toBe(3);
    // the pool's workers are told the same size for their lanes
    const post = vi.spyOn(Worker.prototype, 'postMessage');
    await merge(recipe, { out: join(root, 'pooled'), threads: 2, pool: 'always', memoryBudget: 2 * budget });
    const inits = post.mock.calls
      .map((c) => c[0] as { type: string; outputElements?: number; models: { path: string; known?: { file: string; header: { entries: unknown[] } }[] }[] })
      .filter((m) => m.type === 'init');
    post.mockRestore();
    expect(inits.length).toBe(2);
    for (const m of inits) expect(m.outputElements).toBe(200_000);
    // and each model's parsed header, so that they open its file without parsing it again
    for (const m of inits) {
      expect(m.models.length).toBe(3);
      for (const model of m.models) expect(model.known?.map((h) => [h.file, h.header.entries.length])).toEqual([[join(model.path, 'model.safetensors'), 6]]);
    }
    expect((await readFile(join(root, 'pooled', 'model.safetensors'))).equals(await readFile(join(root, 'ref', 'model.safetensors')))).toBe(true);
  });
});

/** Make every direct write of dw fail with errno `code`, as a file system that took O_DIRECT at open() may. */
function failDirect(dw: DirectWriter, code: string): void {
  (dw as unknown as { fh: { write: () => Promise<unknown> } }).fh.write = async () => {
    throw Object.assign(new Error(code), { code });
  };
}

/** An empty file, a buffered handle and a DirectWriter on it (undefined where direct writes are not available). */
async function directFile(prefix: string): Promise<{ file: string; fh: FileHandle; dw: DirectWriter } | undefined> {
  const file = join(await tempDir(prefix), 'r.bin');
  await writeFile(file, new Uint8Array(0));
  const fh = await open(file, 'r+');
  const dw = await DirectWriter.open(file);
  if (dw !== undefined) return { file, fh, dw };
  await fh.close();
  return undefined;
}

describe('DirectWriter on a file system that refuses direct writes after open', () => {
  it('falls back to buffered writes (same bytes); other errors still fail', async () => {
    const d = await directFile('weightkit-direct-refused-');
    if (d === undefined) return; // no direct writes here at all
    const { file, fh, dw } = d;
    failDirect(dw, 'EINVAL');
    const data = Uint8Array.from({ length: 6 << 20 }, (_, i) => (i * 7) & 255);
    await dw.write(fh, data.subarray(0, 3 << 20), 0);
    await dw.write(fh, data.subarray(3 << 20), 3 << 20);
    expect(Buffer.from(await readFile(file)).equals(Buffer.from(data))).toBe(true);
    // a full disk is not a refusal: it reaches the caller (here through a fresh writer)
    const dw2 = (await DirectWriter.open(file))!;
    failDirect(dw2, 'ENOSPC');
    await expect(dw2.write(fh, data, 0)).rejects.toMatchObject({ code: 'IO_ERROR' });
    await dw.close();
    await dw2.close();
    await fh.close();
  });

  it('falls back the same way for a middle written from page-aligned memory (no bounce buffer)', async () => {
    const d = await directFile('weightkit-direct-refused-inplace-');
    if (d === undefined) return;
    const { file, fh, dw } = d;
    const all = new Uint8Array(Workspace.create(8 << 20)!.buffer);
    for (let i = 0; i < all.length; i++) all[i] = (i * 13) & 255;
    failDirect(dw, 'EINVAL');
    const take = vi.spyOn(dw as unknown as { take: () => Promise<Uint8Array> }, 'take');
    const src = all.subarray(4096 + 100, 4096 + 100 + (3 << 20));
    await dw.write(fh, src, 100); // middle at file 4096 from memory 8192: in place, refused, buffered
    expect(take).not.toHaveBeenCalled();
    expect(Buffer.from(await readFile(file)).equals(Buffer.concat([Buffer.alloc(100), Buffer.from(src)]))).toBe(true);
    // a full disk in the in-place path reaches the caller, naming the file
    const dw2 = (await DirectWriter.open(file))!;
    failDirect(dw2, 'ENOSPC');
    const err = await dw2.write(fh, src, 100).then(() => undefined, (e: unknown) => e as Error);
    expect(err).toMatchObject({ code: 'IO_ERROR' });
    expect((err as { where?: { file?: string } }).where?.file).toBe(file); // the CLI prints it as --> file
    await dw.close();
    await dw2.close();
    await fh.close();
  });
});
