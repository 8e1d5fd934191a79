// Merge benchmark: a ~1B-parameter Llama-shaped bf16 family (base + 3 fine-tunes) in the OS temp dir; `weightkit
// merge` with ties (density 0.5) run as a child process (wall clock, peak RSS) against the I/O floor measured in the
// same run (plain 16 MiB-chunk reads of all inputs + a write of one output, warm cache, in rounds interleaved with the
// runs; the tool's median against the floor's fastest round, since the floor's write cost here depends on the page
// cache the previous run left; and the ties runs against the fastest floor round of the whole run, the strictest
// reading); plus a 7B-shaped dry run on sparse files (headers real, data holes) for the plan's
// memory estimate. Targets: ratio <= 1.5, RSS < 1.5 GB.

import { mkdir, mkdtemp, open, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { planSafetensors } from '../src/io/safetensors/writer.js';
import { buildPlan } from '../src/plan/merge.js';
import { childError, cliCommand, directWriteSeconds, ioFloor, llamaConfig, median, pairedRuns, runNode, sync } from './child.js';
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

    // (a) the I/O floor, warm cache: measured in rounds interleaved with each configuration's runs (below), since
    // this VM's write speed depends on how many dirty pages are pending; plus a standalone best-of-rounds figure
    for (const f of inputs) await plainRead(f);
    const moved = 5 * modelBytes;
    const floorFile = join(dir, 'floor.bin');
    const out = join(dir, 'out');
    const reset = async (): Promise<void> => {
      await rm(floorFile, { force: true });
      await rm(out, { recursive: true, force: true });
    };
    const floorRun = (): Promise<number> => ioFloor(inputs, floorFile, modelBytes);

    // (b) weightkit merge as a child process: one thread, then the CLI's default (one per core); then
    // task_arithmetic (one pass over the inputs) and dare_ties (a norms pass, draws) for comparison
    const cli = await cliCommand(dir);
    const cores = availableParallelism();
    const taRecipe = join(dir, 'ta.yaml');
    await writeFile(taRecipe, recipeText('task_arithmetic', 1));
    const dareRecipe = join(dir, 'dare.yaml');
    await writeFile(dareRecipe, recipeText('dare_ties', density));
    const threadRuns: (number | undefined)[] = opts.threads !== undefined ? [opts.threads] : cores > 1 ? [1, undefined] : [undefined];
    const configs = [
      ...threadRuns.map((threads) => ({ method: 'ties', recipe, threads })),
      { method: 'task_arithmetic', recipe: taRecipe, threads: undefined as number | undefined },
      { method: 'dare_ties', recipe: dareRecipe, threads: undefined as number | undefined },
    ];
    // every floor round of the run: the fastest is the best estimate of what this machine's plain I/O can do (the
    // slower rounds pay for page-cache allocation that this VM's host hands out at varying cost)
    const allFloors: number[] = [];
    const medians: { label: string; method: string; seconds: number }[] = [];
    for (const c of configs) {
      const label = `${c.method}${c.method !== 'task_arithmetic' ? ` d=${density}` : ''}, ${c.threads === undefined ? `default (${cores} threads)` : `--threads ${c.threads}`}`;
      const [plan] = await buildPlan(c.recipe, { out, ...(c.threads ? { threads: c.threads } : {}) });
      const estimate = plan!.memory.peakBytes / 1e9;
      const cliArgs = [...cli.args, 'merge', c.recipe, '--out', out, '--quiet', '--overwrite', ...(c.threads ? ['--threads', String(c.threads)] : [])];
      let failed = '';
      let rss = 0;
      let rssSource = '';
      // CPU seconds of each run (tool: user + sys from GNU time; floor: this process's own), to separate the work
      // done from this VM's page-cost swings, which move both wall clocks
      const toolCpu: { user: number; sys: number }[] = [];
      const floorCpu: number[] = [];
      const p = await pairedRuns(
        rounds,
        reset,
        async () => {
          const c0 = process.cpuUsage();
          const s = await floorRun();
          const c = process.cpuUsage(c0);
          floorCpu.push((c.user + c.system) / 1e6);
          return s;
        },
        async () => {
          const run = await runNode(cliArgs, dir);
          if (run.code !== 0) failed = childError(run.stderr);
          rss = Math.max(rss, run.maxRssBytes);
          rssSource = run.rssSource;
          toolCpu.push({ user: run.userSeconds, sys: run.sysSeconds });
          return run.seconds;
        },
      );
      if (failed) {
        results.push({ name: `merge: ${label}: FAILED`, value: -1, unit: 'exit', note: failed });
        continue;
      }
      allFloors.push(...p.floor);
      medians.push({ label, method: c.method, seconds: p.toolMedian });
      results.push(
        { name: `merge: ${label}`, value: p.toolMedian, unit: 's', note: `median of ${rounds} (${p.tool.map((x) => x.toFixed(2)).join(', ')}), ${(moved / 1e9 / p.toolMedian).toFixed(2)} GB/s moved; ${cli.note}` },
        { name: `merge: I/O floor (read 4 + write 1), with ${label}`, value: p.floorMedian, unit: 's', note: `median of ${rounds} (${p.floor.map((x) => x.toFixed(2)).join(', ')}), interleaved` },
        // the floor is its fastest round (see Paired.bestRatio); the median of per-round ratios is shown beside it
        {
          name: `merge: time / I/O floor, ${label}`,
          value: p.bestRatio,
          unit: 'x',
          note: `${c.method === 'ties' ? 'target <= 1.5; ' : c.method === 'dare_ties' ? 'a norms pass and a merge pass; ' : 'one pass over the inputs; '}median time over the fastest floor round (${p.fastestFloor.toFixed(2)} s); median of per-round ratios ${p.ratio.toFixed(2)}`,
        },
        { name: `merge: peak RSS, ${label}`, value: rss / 1e9, unit: 'GB', note: `target < 1.5 GB; plan estimate ${estimate.toFixed(2)} GB (${rssSource})` },
      );
      const cpu = toolCpu.map((c) => c.user + c.sys);
      if (cpu.every(Number.isFinite)) {
        const mid = toolCpu[cpu.indexOf(median(cpu))] ?? toolCpu[0]!;
        results.push({
          name: `merge: CPU seconds, ${label}`,
          value: median(cpu),
          unit: 's',
          note: `median of ${rounds} (user ${mid.user.toFixed(2)} + sys ${mid.sys.toFixed(2)}); floor CPU ${median(floorCpu).toFixed(2)} s (${floorCpu.map((x) => x.toFixed(2)).join(', ')})`,
        });
      }
    }
    if (allFloors.length > 0) {
      const fastest = Math.min(...allFloors);
      for (const m of medians.filter((x) => x.method === 'ties')) {
        results.push({
          name: `merge: time / fastest I/O floor round of the run, ${m.label}`,
          value: m.seconds / fastest,
          unit: 'x',
          note: `target <= 1.5; ${m.seconds.toFixed(2)} s over ${fastest.toFixed(2)} s, the fastest of all ${allFloors.length} floor rounds (${allFloors.map((x) => x.toFixed(2)).join(', ')})`,
        });
      }
    }
    // the device's direct-write floor for the output's bytes (the merge writes O_DIRECT: it pays the device inside
    // its timing, which the plain floor's buffered write does not)
    const device: number[] = [];
    for (let r = 0; r < rounds; r++) {
      await reset();
      sync();
      const s = await directWriteSeconds(floorFile, modelBytes);
      if (s !== undefined) device.push(s);
    }
    if (device.length > 0) {
      const d = median(device);
      results.push({ name: 'merge: device write floor (the output, O_DIRECT)', value: d, unit: 's', note: `median of ${device.length} (${device.map((x) => x.toFixed(2)).join(', ')}), dd with 8 MiB blocks: ${(modelBytes / 1e9 / d).toFixed(2)} GB/s` });
      for (const m of medians.filter((x) => x.method === 'ties')) {
        results.push({ name: `merge: time / device write floor, ${m.label}`, value: m.seconds / d, unit: 'x', note: `${m.seconds.toFixed(2)} s over ${d.toFixed(2)} s: the merge also reads 8.8 GB and computes, overlapped with its writes` });
      }
    }
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
