// Merge benchmark: a ~1B-parameter Llama-shaped bf16 family (base + 3 fine-tunes) in the OS temp dir; `weightkit
// merge` with ties (density 0.5) run as a child process (wall clock, peak RSS) against the I/O floor measured in the
// same run (plain 16 MiB-chunk reads of all inputs + a write of one output, warm cache); plus a 7B-shaped dry run on
// sparse files (headers real, data holes) for the plan's memory estimate. Targets: ratio <= 1.5, RSS < 1.5 GB.

import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { openCheckpointPath } from '../src/io/open.js';
import { planSafetensors } from '../src/io/safetensors/writer.js';
import { buildPlan } from '../src/plan/merge.js';
import { childError, cliCommand, ioFloor, llamaConfig, runNode, sync } from './child.js';
import { plainRead, writeLlamaFile } from './io.js';
import { LLAMA_1B, LLAMA_7B, llamaDecls, type LlamaShape } from './llama.js';
import type { BenchResult } from './types.js';

const MODELS = ['base', 'ft-1', 'ft-2', 'ft-3'] as const;

export interface MergeBenchOptions {
  /** shape of the executed merge (default LLAMA_1B) */
  shape?: LlamaShape;
  /** shape of the dry run on sparse files (default LLAMA_7B; null skips it) */
  dryRunShape?: LlamaShape | null;
  /** TIES density (default 0.5) */
  density?: number;
  /** --threads for the child (default: two runs, --threads 1 and the CLI's default) */
  threads?: number;
  /** I/O floor repetitions; the fastest counts (default 3) */
  floorRounds?: number;
}

function recipeText(method: string, density: number): string {
  return [
    `merge_method: ${method}`,
    'base_model: ./base',
    'models:',
    ...MODELS.slice(1).flatMap((m) => [`  - model: ./${m}`, '    parameters:', '      weight: 1.0', `      density: ${density}`]),
    'parameters:',
    '  normalize: true',
    'dtype: bfloat16',
    '',
  ].join('\n');
}


/** A valid safetensors file of `shape` whose data area is a hole: real header, ftruncate to the full size. */
async function writeSparseLlama(path: string, shape: LlamaShape): Promise<number> {
  const layout = planSafetensors(llamaDecls(shape, 'BF16'), { metadata: { format: 'pt', generator: 'weightkit-bench-sparse' } }, path);
  const fh = await open(path, 'w');
  try {
    await fh.write(layout.headerBytes, 0, layout.headerBytes.length, 0);
    await fh.truncate(layout.fileByteLength);
  } finally {
    await fh.close();
  }
  return layout.fileByteLength;
}

async function dirBytes(dir: string): Promise<number> {
  let n = 0;
  for (const f of await readdir(dir)) if (f.endsWith('.safetensors')) n += (await stat(join(dir, f))).size;
  return n;
}

export async function benchMerge(opts: MergeBenchOptions = {}): Promise<BenchResult[]> {
  const shape = opts.shape ?? LLAMA_1B;
  const density = opts.density ?? 0.5;
  const rounds = opts.floorRounds ?? 3;
  const results: BenchResult[] = [];
  const dir = await mkdtemp(join(tmpdir(), 'weightkit-bench-merge-'));
  try {
    // the family: base + 3 fine-tunes (base + a small dense seeded delta), as HF-like folders
    const tg = performance.now();
    const inputs: string[] = [];
    let modelBytes = 0;
    for (const [i, m] of MODELS.entries()) {
      await mkdir(join(dir, m));
      await writeFile(join(dir, m, 'config.json'), llamaConfig(shape));
      const file = join(dir, m, 'model.safetensors');
      await writeLlamaFile(file, shape, 1, i === 0 ? 0 : 100 + i, i === 0 ? 0 : 0.002);
      inputs.push(file);
      modelBytes = (await stat(file)).size;
    }
    const genS = (performance.now() - tg) / 1000;
    const params = llamaDecls(shape).reduce((a, d) => a + d.shape.reduce((x, y) => x * y, 1), 0);
    results.push({ name: 'merge: family (base + 3 fine-tunes)', value: (4 * modelBytes) / 1e9, unit: 'GB', note: `${(params / 1e9).toFixed(2)} G params each, bf16, generated in ${genS.toFixed(1)} s` });
    const recipe = join(dir, 'ties.yaml');
    await writeFile(recipe, recipeText('ties', density));

    // (a) the I/O floor, warm cache
    for (const f of inputs) await plainRead(f);
    const floors: number[] = [];
    for (let r = 0; r < rounds; r++) {
      sync();
      floors.push(await ioFloor(inputs, join(dir, 'floor.bin'), modelBytes));
    }
    const floor = Math.min(...floors);
    const moved = 5 * modelBytes;
    results.push({ name: 'merge: I/O floor (read 4 + write 1, warm)', value: moved / 1e9 / floor, unit: 'GB/s', note: `${floor.toFixed(2)} s (rounds: ${floors.map((x) => x.toFixed(2)).join(', ')})` });

    // (b) weightkit merge as a child process: one thread, then the CLI's default (one per core)
    const cli = await cliCommand(dir);
    const out = join(dir, 'out');
    const cores = availableParallelism();
    const threadRuns: (number | undefined)[] = opts.threads !== undefined ? [opts.threads] : cores > 1 ? [1, undefined] : [undefined];
    for (const threads of threadRuns) {
      const label = threads === undefined ? `default (${cores} threads)` : `--threads ${threads}`;
      const [plan] = await buildPlan(recipe, { out, ...(threads ? { threads } : {}) });
      const estimate = plan!.memory.peakBytes / 1e9;
      const cliArgs = [...cli.args, 'merge', recipe, '--out', out, '--quiet', '--overwrite', ...(threads ? ['--threads', String(threads)] : [])];
      await rm(out, { recursive: true, force: true });
      sync();
      const run = await runNode(cliArgs, dir);
      if (run.code !== 0) {
        results.push({ name: `merge: ties, ${label}: FAILED`, value: run.code ?? -1, unit: 'exit', note: childError(run.stderr) });
        continue;
      }
      const outBytes = await dirBytes(out);
      const r = await openCheckpointPath(out);
      const tensors = r.tensors().length;
      await r.close();
      results.push(
        { name: `merge: ties d=${density}, ${label}`, value: moved / 1e9 / run.seconds, unit: 'GB/s', note: `${run.seconds.toFixed(2)} s wall (child), ${tensors} tensors, ${(outBytes / 1e9).toFixed(2)} GB out; ${cli.note}` },
        { name: `merge: time / I/O floor, ${label}`, value: run.seconds / floor, unit: 'x', note: 'target <= 1.5' },
        { name: `merge: peak RSS, ${label}`, value: run.maxRssBytes / 1e9, unit: 'GB', note: `target < 1.5 GB; plan estimate ${estimate.toFixed(2)} GB (${run.rssSource})` },
      );
    }
    // a one-pass method for comparison: task_arithmetic at the default thread count
    const taRecipe = join(dir, 'ta.yaml');
    await writeFile(taRecipe, recipeText('task_arithmetic', 1));
    await rm(out, { recursive: true, force: true });
    sync();
    const ta = await runNode([...cli.args, 'merge', taRecipe, '--out', out, '--quiet', '--overwrite'], dir);
    if (ta.code === 0) {
      results.push(
        { name: `merge: task_arithmetic, default (${cores} threads)`, value: moved / 1e9 / ta.seconds, unit: 'GB/s', note: `${ta.seconds.toFixed(2)} s wall (child)` },
        { name: 'merge: time / I/O floor, task_arithmetic', value: ta.seconds / floor, unit: 'x', note: 'one pass over the inputs' },
      );
    } else results.push({ name: 'merge: task_arithmetic: FAILED', value: ta.code ?? -1, unit: 'exit', note: childError(ta.stderr) });
    await rm(out, { recursive: true, force: true });
    for (const m of MODELS) await rm(join(dir, m), { recursive: true, force: true });

    // (c) dry run of a 7B-shaped family: sparse files, no tensor data read
    const big = opts.dryRunShape === undefined ? LLAMA_7B : opts.dryRunShape;
    if (big) {
      let apparent = 0;
      for (const m of MODELS) {
        await mkdir(join(dir, m), { recursive: true });
        await writeFile(join(dir, m, 'config.json'), llamaConfig(big));
        apparent += await writeSparseLlama(join(dir, m, 'model.safetensors'), big);
      }
      const t0 = performance.now();
      const plans = await buildPlan(recipe, { out: join(dir, 'out-7b') });
      const planS = (performance.now() - t0) / 1000;
      const plan = plans.at(-1)!;
      const bigParams = llamaDecls(big).reduce((a, d) => a + d.shape.reduce((x, y) => x * y, 1), 0);
      results.push(
        { name: 'merge: 7B dry run, plan time', value: planS * 1000, unit: 'ms', note: `${plan.tensors.length} tensors, ${(bigParams / 1e9).toFixed(2)} G params, 4 sparse files of ${(apparent / 4 / 1e9).toFixed(1)} GB` },
        {
          name: 'merge: 7B dry run, peak memory estimate',
          value: plan.memory.peakBytes / 1e9,
          unit: 'GB',
          note: `budget ${(plan.memory.budgetBytes / 1e9).toFixed(2)} GB, ${plan.memory.threads} thread(s), ${plan.memory.chunkElements} elements/chunk, ${plan.memory.chunkedTensors} tensors chunked`,
        },
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return results;
}
