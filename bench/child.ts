// Shared pieces of the benchmarks that time the CLI as a child process: the I/O floor (plain reads + a plain write
// of the same bytes), how to start the CLI (built dist or tsx), wall clock and peak RSS of a child, and a Llama
// config.json for generated families.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { open, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { plainRead } from './io.js';
import type { LlamaShape } from './llama.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CHUNK = 16 * 2 ** 20;
const TIME = '/usr/bin/time';

/** Flush dirty pages so one timed section does not pay for the previous one's writeback. */
export function sync(): void {
  spawnSync('sync', { stdio: 'ignore' });
}

/**
 * The I/O floor: read every input in 16 MiB chunks, then write `outBytes` in 16 MiB chunks; seconds. The file is
 * removed after the timing, so that the pages it dirtied were paid for inside the timing exactly as a tool's output
 * (on this VM, writes slow down 5-10x once several GB are dirty: a floor that never keeps what it writes is
 * optimistic, see `pairedRuns`).
 */
export async function ioFloor(inputs: readonly string[], outFile: string, outBytes: number): Promise<number> {
  const buf = Buffer.alloc(CHUNK, 0x3c);
  const t0 = performance.now();
  for (const f of inputs) await plainRead(f);
  const fh = await open(outFile, 'w');
  try {
    for (let off = 0; off < outBytes; off += CHUNK) {
      const n = Math.min(CHUNK, outBytes - off);
      let done = 0;
      while (done < n) done += (await fh.write(buf, done, n - done, off + done)).bytesWritten;
    }
  } finally {
    await fh.close();
  }
  const s = (performance.now() - t0) / 1000;
  await rm(outFile, { force: true });
  return s;
}

/**
 * The output device's write floor: `bytes` written to a new file with O_DIRECT in 8 MiB blocks (dd; no page cache),
 * as the merge writes its output; seconds, or undefined where dd or O_DIRECT is not available. The plain floor's
 * buffered write instead leaves the device's work to writeback after its timing.
 */
export async function directWriteSeconds(file: string, bytes: number): Promise<number | undefined> {
  const t0 = performance.now();
  const r = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=8M', `count=${Math.ceil(bytes / (8 << 20))}`, 'oflag=direct'], { stdio: 'ignore' });
  const s = (performance.now() - t0) / 1000;
  await rm(file, { force: true });
  return r.status === 0 ? s : undefined;
}

/** Newest modification time of any file under `dir` (ms). */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const f of readdirSync(dir, { recursive: true, encoding: 'utf8' })) newest = Math.max(newest, statSync(join(dir, f)).mtimeMs);
  return newest;
}

/**
 * How to start the CLI: the built binary when dist/ is at least as new as src/ (building it if not), else through
 * tsx. Returns the node arguments before the CLI arguments, and a note.
 */
export async function cliCommand(dir: string): Promise<{ args: string[]; note: string }> {
  // the plain modules and the bundle bin/weightkit.js runs (scripts/bundle-cli.mjs), both as new as the sources
  const built = [join(ROOT, 'dist', 'cli', 'main.js'), join(ROOT, 'dist', 'cli', 'main.bundle.cjs')];
  const fresh = (): boolean => built.every((f) => existsSync(f) && statSync(f).mtimeMs >= newestMtime(join(ROOT, 'src')));
  if (!fresh()) {
    spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(ROOT, 'tsconfig.build.json')], { stdio: 'ignore', cwd: ROOT });
    spawnSync(process.execPath, [join(ROOT, 'scripts', 'bundle-cli.mjs')], { stdio: 'ignore', cwd: ROOT });
  }
  if (fresh()) return { args: [join(ROOT, 'bin', 'weightkit.js')], note: 'bin/weightkit.js (dist, bundled)' };
  const wrapper = join(dir, 'cli.mjs');
  await writeFile(wrapper, `import { main } from ${JSON.stringify(join(ROOT, 'src', 'cli', 'main.ts'))};\nprocess.exitCode = await main(process.argv.slice(2));\n`);
  return { args: ['--import', 'tsx', wrapper], note: 'src/cli via tsx (dist/ not buildable)' };
}

export interface ChildRun {
  seconds: number;
  /** CPU seconds in user and kernel mode, from GNU time (NaN without it) */
  userSeconds: number;
  sysSeconds: number;
  maxRssBytes: number;
  rssSource: string;
  code: number | null;
  stderr: string;
}

/**
 * Run node with `args`, timing the wall clock. Peak RSS from GNU time's `-v` report when /usr/bin/time exists,
 * else from the child itself: an `--import`ed hook writes process.resourceUsage().maxRSS (KiB) at exit.
 */
export async function runNode(args: readonly string[], dir: string): Promise<ChildRun> {
  const useTime = existsSync(TIME) && spawnSync(TIME, ['-v', 'true'], { stdio: 'ignore' }).status === 0;
  const rssFile = join(dir, 'rss.txt');
  let cmd: string;
  let argv: string[];
  if (useTime) {
    cmd = TIME;
    argv = ['-v', process.execPath, ...args];
  } else {
    const hook = join(dir, 'rss-hook.mjs');
    await writeFile(
      hook,
      `import { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(rssFile)}, String(process.resourceUsage().maxRSS)));\n`,
    );
    cmd = process.execPath;
    argv = ['--import', hook, ...args];
  }
  const t0 = performance.now();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((res, rej) => {
    const child = spawn(cmd, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => (err += d));
    child.on('error', rej);
    child.on('close', (c) => res({ code: c, stderr: err }));
  });
  const seconds = (performance.now() - t0) / 1000;
  let kib = NaN;
  let userSeconds = NaN;
  let sysSeconds = NaN;
  if (useTime) {
    const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr);
    if (m) kib = Number(m[1]);
    userSeconds = Number(/User time \(seconds\): ([\d.]+)/.exec(stderr)?.[1] ?? NaN);
    sysSeconds = Number(/System time \(seconds\): ([\d.]+)/.exec(stderr)?.[1] ?? NaN);
  } else {
    kib = Number(await readFile(rssFile, 'utf8').catch(() => 'NaN'));
  }
  return { seconds, userSeconds, sysSeconds, maxRssBytes: kib * 1024, rssSource: useTime ? '/usr/bin/time -v' : 'child process.resourceUsage().maxRSS', code, stderr };
}

/** The child's own stderr (GNU time appends its report), shortened to one line. */
export function childError(stderr: string): string {
  const own = stderr.split(/\n(?:Command exited with non-zero status|\tCommand being timed)/)[0]!;
  return own.trim().split('\n').slice(0, 4).join(' | ').slice(0, 400);
}

export function llamaConfig(s: LlamaShape): string {
  return JSON.stringify({
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    vocab_size: s.vocab,
    torch_dtype: 'bfloat16',
    tie_word_embeddings: false,
  });
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

export interface Paired {
  floor: number[];
  tool: number[];
  floorMedian: number;
  toolMedian: number;
  /** median of the per-round ratios tool / floor */
  ratio: number;
  /**
   * the tool's median over the floor's fastest round: the ratio to report. On this VM the floor's write costs what
   * the previous run left in the page cache (after a tool run that wrote with O_DIRECT the floor's write lands in
   * cold pages and takes seconds), so its fastest round is the floor; the per-round ratios swing with it.
   */
  bestRatio: number;
  fastestFloor: number;
}

/**
 * Alternate the floor and the tool `rounds` times (floor first in even rounds, tool first in odd ones), each after
 * `reset()` (remove outputs) and a sync, so both see the same page-cache state; medians and the median ratio.
 */
export async function pairedRuns(rounds: number, reset: () => Promise<void>, floor: () => Promise<number>, tool: () => Promise<number>): Promise<Paired> {
  const f: number[] = [];
  const t: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? ['floor', 'tool'] : ['tool', 'floor'];
    for (const which of order) {
      await reset();
      sync();
      if (which === 'floor') f.push(await floor());
      else t.push(await tool());
    }
  }
  await reset();
  const fastestFloor = Math.min(...f);
  return { floor: f, tool: t, floorMedian: median(f), toolMedian: median(t), ratio: median(t.map((x, i) => x / f[i]!)), bestRatio: median(t) / fastestFloor, fastestFloor };
}
