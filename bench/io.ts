// I/O benchmark: a ~2 GB bf16 Llama-shaped checkpoint in the OS temp dir; reading every tensor converted to f32
// through the safetensors reader, against a plain 16 MiB-chunk fs read of the same file in the same run.
// Target: reader within 1.5x of the plain read (warm page cache). The file is deleted afterwards.

import { execFileSync } from 'node:child_process';
import { open, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSafetensors } from '../src/io/safetensors/reader.js';
import { openSafetensorsWriter } from '../src/io/safetensors/writer.js';
import { LLAMA_1B, declBytes, fillBf16, hash32, llamaDecls, type LlamaShape } from './llama.js';
import type { BenchResult } from './types.js';

const CHUNK = 16 * 2 ** 20;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Write a bf16 Llama-shaped checkpoint (seeded), one tensor buffer at a time. */
export async function writeLlamaFile(path: string, shape: LlamaShape, seed: number, deltaSeed = 0, delta = 0): Promise<number> {
  const decls = llamaDecls(shape, 'BF16');
  const w = await openSafetensorsWriter(path, decls, { metadata: { format: 'pt', generator: 'weightkit-bench' } });
  let maxNumel = 0;
  for (const d of decls) maxNumel = Math.max(maxNumel, d.shape.reduce((a, b) => a * b, 1));
  const buf = new Uint16Array(maxNumel);
  for (const d of decls) {
    const n = d.shape.reduce((a, b) => a * b, 1);
    const view = buf.subarray(0, n);
    const scale = d.name.includes('norm') ? 1 : 0.02;
    fillBf16(view, hash32(d.name) ^ seed, scale, hash32(d.name) ^ deltaSeed, delta);
    await w.write(d.name, new Uint8Array(view.buffer, 0, n * 2));
  }
  await w.close();
  return declBytes(decls);
}

export async function plainRead(path: string): Promise<number> {
  const fh = await open(path, 'r');
  const buf = Buffer.allocUnsafe(CHUNK);
  let total = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, total);
      if (bytesRead === 0) break;
      total += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return total;
}

export async function readerReadAllF32(path: string): Promise<number> {
  const r = await openSafetensors(path);
  try {
    let max = 0;
    for (const t of r.tensors()) max = Math.max(max, t.numel);
    const into = new Float32Array(max);
    let elems = 0;
    for (const t of r.tensors()) {
      await r.readF32(t.name, { into: into.subarray(0, t.numel) });
      elems += t.numel;
    }
    return elems;
  } finally {
    await r.close();
  }
}

/** Flush dirty pages and drop the page cache; false when not permitted. */
async function dropCaches(): Promise<boolean> {
  try {
    execFileSync('sync');
    await writeFile('/proc/sys/vm/drop_caches', '3\n');
    return true;
  } catch {
    return false;
  }
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

export async function benchIo(opts: { shape?: LlamaShape; rounds?: number } = {}): Promise<BenchResult[]> {
  const shape = opts.shape ?? LLAMA_1B;
  const rounds = opts.rounds ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'weightkit-bench-io-'));
  try {
    const file = join(dir, 'model.safetensors');
    const tw = await timeIt(() => writeLlamaFile(file, shape, 1));
    const size = (await stat(file)).size;
    await plainRead(file); // warm the page cache
    const plain: number[] = [];
    const reader: number[] = [];
    let elems = 0;
    for (let i = 0; i < rounds; i++) {
      plain.push(await timeIt(() => plainRead(file)));
      reader.push(
        await timeIt(async () => {
          elems = await readerReadAllF32(file);
        }),
      );
    }
    const p = median(plain);
    const r = median(reader);
    // cold cache: drop the page cache before each read (needs root; skipped with a note otherwise)
    const cold: { plain: number; reader: number } | undefined = (await dropCaches())
      ? { plain: await timeIt(() => plainRead(file)), reader: (await dropCaches(), await timeIt(() => readerReadAllF32(file))) }
      : undefined;
    const coldRows: BenchResult[] = cold
      ? [
          { name: 'io: plain fs read (cold cache)', value: size / 1e9 / cold.plain, unit: 'GB/s', note: `${cold.plain.toFixed(3)} s` },
          { name: 'io: reader, all tensors -> f32 (cold cache)', value: size / 1e9 / cold.reader, unit: 'GB/s', note: `${cold.reader.toFixed(3)} s` },
          { name: 'io: reader / plain read time ratio (cold)', value: cold.reader / cold.plain, unit: 'x', note: 'target <= 1.5' },
        ]
      : [{ name: 'io: cold-cache rows skipped', value: 0, unit: '', note: 'cannot drop the page cache (needs root)' }];
    return [
      { name: 'io: checkpoint size', value: size / 1e9, unit: 'GB', note: `${(elems / 1e9).toFixed(2)} G params bf16` },
      { name: 'io: generate + write', value: size / 1e9 / tw, unit: 'GB/s' },
      { name: 'io: plain fs read (16 MiB chunks, warm)', value: size / 1e9 / p, unit: 'GB/s', note: `${p.toFixed(3)} s` },
      { name: 'io: reader, all tensors -> f32 (warm)', value: size / 1e9 / r, unit: 'GB/s', note: `${r.toFixed(3)} s, ${(elems / 1e9 / r).toFixed(2)} G elem/s` },
      { name: 'io: reader / plain read time ratio (warm)', value: r / p, unit: 'x', note: 'target <= 1.5' },
      ...coldRows,
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
