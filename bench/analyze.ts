// Analysis benchmark: a ~1B-parameter Llama-shaped bf16 base and three fine-tunes in the OS temp dir; `weightkit
// analyze vectors` (3 statistics passes per tensor: moments/products/histogram, central moments/low histogram,
// top-k masks; tensors that fit the 1 GB budget are read once) runs as a child process (wall clock, peak RSS)
// against the I/O floor of the same run (plain 16 MiB-chunk reads of the four inputs, warm cache; medians).

import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { childError, cliCommand, ioFloor, llamaConfig, pairedRuns, runNode } from './child.js';
import { plainRead, writeLlamaFile } from './io.js';
import { LLAMA_1B, type LlamaShape } from './llama.js';
import type { BenchResult } from './types.js';

export async function benchAnalyze(opts: { shape?: LlamaShape; rounds?: number } = {}): Promise<BenchResult[]> {
  const shape = opts.shape ?? LLAMA_1B;
  const rounds = opts.rounds ?? 3;
  const results: BenchResult[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'weightkit-bench-analyze-'));
  try {
    const models: string[] = [];
    for (const [name, seed, delta] of [['base', 0, 0], ['ft-1', 101, 0.002], ['ft-2', 202, 0.002], ['ft-3', 303, 0.002]] as const) {
      const m = join(dir, name);
      await mkdir(m);
      await writeFile(join(m, 'config.json'), llamaConfig(shape));
      await writeLlamaFile(join(m, 'model.safetensors'), shape, 1, seed, delta);
      models.push(m);
    }
    const files = models.map((m) => join(m, 'model.safetensors'));
    let inBytes = 0;
    for (const f of files) inBytes += (await stat(f)).size;
    const cli = await cliCommand(dir);
    const args = ['analyze', 'vectors', '--base', models[0]!, ...models.slice(1), '--density', '0.1', '--json'];
    results.push({ name: 'analyze: base + 3 fine-tunes', value: inBytes / 1e9, unit: 'GB', note: 'bf16, ~1.1 G params each' });
    const first = await runNode([...cli.args, ...args], dir);
    if (first.code !== 0) {
      results.push({ name: 'analyze: vectors: FAILED', value: first.code ?? -1, unit: 'exit', note: childError(first.stderr) });
      return results;
    }
    for (const f of files) await plainRead(f);
    let rss = first.maxRssBytes;
    let failed = '';
    const p = await pairedRuns(
      rounds,
      async () => {
        await rm(join(dir, 'floor.bin'), { force: true });
      },
      () => ioFloor(files, join(dir, 'floor.bin'), 0),
      async () => {
        const run = await runNode([...cli.args, ...args], dir);
        if (run.code !== 0) failed = childError(run.stderr);
        rss = Math.max(rss, run.maxRssBytes);
        return run.seconds;
      },
    );
    if (failed) {
      results.push({ name: 'analyze: vectors: FAILED', value: -1, unit: 'exit', note: failed });
      return results;
    }
    results.push(
      { name: 'analyze: vectors (3 fine-tunes, density 0.1)', value: p.toolMedian, unit: 's', note: `median of ${rounds} (${p.tool.map((x) => x.toFixed(2)).join(', ')}); ${(inBytes / 1e9).toFixed(2)} GB read at least once; ${cli.note}` },
      { name: 'analyze: I/O floor (reads only)', value: p.floorMedian, unit: 's', note: `median of ${rounds} (${p.floor.map((x) => x.toFixed(2)).join(', ')}), interleaved with the runs` },
      { name: 'analyze: time / I/O floor, vectors', value: p.bestRatio, unit: 'x', note: `median time over the fastest floor round (${p.fastestFloor.toFixed(2)} s); median of per-round ratios ${p.ratio.toFixed(2)}` },
      { name: 'analyze: peak RSS, vectors', value: rss / 1e9, unit: 'GB', note: first.rssSource },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}
