// Start-up help for the `merge` command line: when the arguments ask for a merge on several threads, the merge
// workers are started before the CLI loads its own modules (src/plan/pool.ts prewarmWorkers), so that their start-up
// overlaps the main thread's. A guess from the raw arguments only: a merge that turns out to need no pool (a small
// output, a linear-algebra method) leaves the workers idle, and they do not keep the process alive.
import { availableParallelism } from 'node:os';
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
