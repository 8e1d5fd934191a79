// Vector benchmark: a ~1B-parameter Llama-shaped bf16 base and one fine-tune in the OS temp dir; `weightkit vector
// extract` (f32 vector, the default) and `weightkit vector apply` (with its undo record) run as child processes
// (wall clock, peak RSS) against the I/O floor of the same bytes, interleaved with the runs (plain 16 MiB-chunk
// reads of the inputs + a plain write of the output's size, warm cache; medians).

import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childError, cliCommand, ioFloor, llamaConfig, pairedRuns, runNode } from './child.js';
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
      const first = await runNode([...cli.args, ...s.args], dir);
      if (first.code !== 0) {
        results.push({ name: `vectors: ${s.name}: FAILED`, value: first.code ?? -1, unit: 'exit', note: childError(first.stderr) });
        break;
      }
      const inputs = await s.inputs();
      const outBytes = await sizeOf(s.output);
      let inBytes = 0;
      for (const f of inputs) inBytes += (await stat(f)).size;
      for (const f of inputs) await plainRead(f);
      let rss = first.maxRssBytes;
      let failed = '';
      const keep = s.output === vec; // the vector is the next step's input: runs overwrite it in place
      const p = await pairedRuns(
        rounds,
        async () => {
          await rm(join(dir, 'floor.bin'), { force: true });
          if (!keep) await rm(s.output, { recursive: true, force: true });
        },
        () => ioFloor(inputs, join(dir, 'floor.bin'), outBytes),
        async () => {
          const run = await runNode([...cli.args, ...s.args], dir);
          if (run.code !== 0) failed = childError(run.stderr);
          rss = Math.max(rss, run.maxRssBytes);
          return run.seconds;
        },
      );
      if (failed) {
        results.push({ name: `vectors: ${s.name}: FAILED`, value: -1, unit: 'exit', note: failed });
        break;
      }
      const moved = ((inBytes + outBytes) / 1e9).toFixed(2);
      results.push(
        { name: `vectors: ${s.name}`, value: p.toolMedian, unit: 's', note: `median of ${rounds} (${p.tool.map((x) => x.toFixed(2)).join(', ')}); ${moved} GB moved; ${cli.note}` },
        { name: `vectors: I/O floor for ${s.name}`, value: p.floorMedian, unit: 's', note: `median of ${rounds} (${p.floor.map((x) => x.toFixed(2)).join(', ')}), interleaved with the runs` },
        { name: `vectors: time / I/O floor, ${s.name}`, value: p.bestRatio, unit: 'x', note: `median time over the fastest floor round (${p.fastestFloor.toFixed(2)} s); median of per-round ratios ${p.ratio.toFixed(2)}` },
        { name: `vectors: peak RSS, ${s.name}`, value: rss / 1e9, unit: 'GB', note: first.rssSource },
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}
