// Start-up help for the `merge` command line: when the arguments ask for a merge on several threads, the merge
// workers are started before the CLI loads its own modules (src/plan/pool.ts prewarmWorkers), so that their start-up
// overlaps the main thread's. A guess from the raw arguments only: a merge that turns out to need no pool (a small
// output, a linear-algebra method) leaves the workers idle, and they do not keep the process alive.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname } from 'node:path';
import { Script } from 'node:vm';
import { prewarmWorkers } from '../plan/pool.js';

/** The number of workers a `weightkit merge` with these arguments would run (0: not a pooled merge). */
export function mergeWorkersFor(args: readonly string[]): number {
  if (args[0] !== 'merge') return 0;
  let threads = Math.max(1, availableParallelism());
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--dry-run' || a === '--help' || a === '-h' || a === '--version') return 0;
    const v = a === '--threads' ? args[i + 1] : a.startsWith('--threads=') ? a.slice('--threads='.length) : undefined;
    if (v !== undefined) {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 256) return 0; // the CLI reports the bad value
      threads = n;
    }
  }
  return threads > 1 ? threads : 0;
}

/** Start the workers a `merge` with these arguments would use. */
export function prewarmFor(args: readonly string[]): void {
  const n = mergeWorkersFor(args);
  if (n > 0) prewarmWorkers(n);
}

/** The CommonJS module wrapper the bundle runs in (as Node's own). */
function bundleScript(file: string, cachedData?: Buffer): Script {
  const source = readFileSync(file, 'utf8');
  return new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, ...(cachedData ? { cachedData } : {}) });
}

function runBundle(script: Script, file: string): Record<string, unknown> {
  const module = { exports: {} as Record<string, unknown> };
  (script.runInThisContext() as (...args: unknown[]) => void).call(module.exports, module.exports, createRequire(file), module, file, dirname(file));
  return module.exports;
}

/**
 * Run the CommonJS bundle at `file` (dist/cli/main.bundle.cjs), compiled from the V8 code cache beside it
 * (`file`.cache, made by makeBundleCache at build time) when there is one V8 accepts: its exports, and whether a
 * cache was there but refused (another Node version or flags: then compiled from the source, as without one).
 */
export function loadBundle(file: string): { exports: Record<string, unknown>; cacheRejected: boolean } {
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(`${file}.cache`);
  } catch {
    cachedData = undefined;
  }
  const script = bundleScript(file, cachedData);
  return { exports: runBundle(script, file), cacheRejected: cachedData !== undefined && script.cachedDataRejected === true };
}

/**
 * The code cache of the bundle at `file` (what loadBundle reads) after its top level ran once and then `warm` with its
 * exports (e.g. a merge's dry run: the functions it compiles on the way are cached too).
 */
export async function makeBundleCache(file: string, warm?: (exports: Record<string, unknown>) => Promise<void>): Promise<Buffer> {
  const script = bundleScript(file);
  const exports = runBundle(script, file);
  if (warm) await warm(exports);
  return script.createCachedData();
}
