// Vector benchmark: a ~1B-parameter Llama-shaped bf16 base and one fine-tune in the OS temp dir; `weightkit vector
// extract` (f32 vector, the default) and `weightkit vector apply` (with its undo record) run as child processes
// (wall clock, peak RSS) against the I/O floor of the same bytes measured in the same run (plain 16 MiB-chunk reads
// of the inputs + a plain write of the output's size, warm cache).

import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childError, cliCommand, ioFloor, llamaConfig, runNode, sync } from './child.js';
import { plainRead, writeLlamaFile } from './io.js';
import { LLAMA_1B, type LlamaShape } from './llama.js';
import type { BenchResult } from './types.js';

async function sizeOf(path: string): Promise<number> {
  const s = await stat(path);
  if (!s.isDirectory()) return s.size;
  let n = 0;
  for (const f of await readdir(path)) if (f.endsWith('.safetensors')) n += (await stat(join(path, f))).size;
  return n;
}

export async function benchVectors(opts: { shape?: LlamaShape; rounds?: number } = {}): Promise<BenchResult[]> {
  const shape = opts.shape ?? LLAMA_1B;
  const rounds = opts.rounds ?? 3;
  const results: BenchResult[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'weightkit-bench-vectors-'));
  try {
    const base = join(dir, 'base');
    const ft = join(dir, 'ft');
    for (const [m, seed, delta] of [[base, 0, 0], [ft, 101, 0.002]] as const) {
      await mkdir(m);
      await writeFile(join(m, 'config.json'), llamaConfig(shape));
      await writeLlamaFile(join(m, 'model.safetensors'), shape, 1, seed, delta);
    }
    const modelBytes = await sizeOf(base);
    const cli = await cliCommand(dir);
    const vec = join(dir, 'v.safetensors');
    const out = join(dir, 'applied');
    const steps: Array<{ name: string; args: string[]; inputs: () => Promise<string[]>; output: string }> = [
      {
        name: 'extract (f32 vector)',
        args: ['vector', 'extract', '--base', base, '--finetuned', ft, '--out', vec, '--quiet', '--overwrite'],
        inputs: async () => [join(base, 'model.safetensors'), join(ft, 'model.safetensors')],
        output: vec,
      },
      {
        name: 'apply (scale 1, undo record)',
        args: ['vector', 'apply', '--base', base, '--vector', vec, '--out', out, '--quiet', '--overwrite'],
        inputs: async () => [join(base, 'model.safetensors'), vec],
        output: out,
      },
    ];
    results.push({ name: 'vectors: base + fine-tune', value: (2 * modelBytes) / 1e9, unit: 'GB', note: 'bf16, ~1.1 G params each' });
    for (const s of steps) {
      const run = await runNode([...cli.args, ...s.args], dir);
      if (run.code !== 0) {
        results.push({ name: `vectors: ${s.name}: FAILED`, value: run.code ?? -1, unit: 'exit', note: childError(run.stderr) });
        break;
      }
      // measure again warm, then the floor of the same bytes
      const inputs = await s.inputs();
      const outBytes = await sizeOf(s.output);
      for (const f of inputs) await plainRead(f);
      sync();
      const again = await runNode([...cli.args, ...s.args], dir);
      const seconds = Math.min(run.seconds, again.seconds);
      const floors: number[] = [];
      for (let r = 0; r < rounds; r++) {
        sync();
        floors.push(await ioFloor(inputs, join(dir, 'floor.bin'), outBytes));
      }
      const floor = Math.min(...floors);
      let inBytes = 0;
      for (const f of inputs) inBytes += (await stat(f)).size;
      results.push(
        { name: `vectors: ${s.name}`, value: seconds, unit: 's', note: `best of 2 runs; ${((inBytes + outBytes) / 1e9).toFixed(2)} GB moved; ${cli.note}` },
        { name: `vectors: I/O floor for ${s.name}`, value: floor, unit: 's', note: `rounds: ${floors.map((x) => x.toFixed(2)).join(', ')}` },
        { name: `vectors: time / I/O floor, ${s.name}`, value: seconds / floor, unit: 'x', note: '' },
        { name: `vectors: peak RSS, ${s.name}`, value: Math.max(run.maxRssBytes, again.maxRssBytes) / 1e9, unit: 'GB', note: run.rssSource },
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}
