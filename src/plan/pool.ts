// A small worker-thread pool for merges: each worker runs whole tensors (so results never depend on the thread
// count) and writes into the output's temporary shard files; the main thread hands out tensors largest-first and
// collects completions. Errors come back as typed WeightkitErrors.

import { Worker } from 'node:worker_threads';
import { EvalError, FormatError, IoError, PlanError, RecipeError, UsageError, WeightkitError, type ErrorCode, type Where } from '../errors.js';
import type { WrittenEdge } from '../io/safetensors/writer.js';
import type { PlanTensor } from './plan.js';
import type { WorkerInit, WorkerReply, WorkerTask } from './worker.js';

const CLASSES: Record<string, new (code: ErrorCode, message: string, o?: { where?: Where }) => WeightkitError> = {
  FormatError,
  RecipeError,
  PlanError,
  EvalError,
  UsageError,
  IoError,
  WeightkitError,
};

/**
 * Workers started ahead of a pool (prewarmWorkers), taken first by the next pool. Kept on the global object: the CLI
 * starts them from the unbundled dist/ before its bundled copy of this module (scripts/bundle-cli.mjs) is loaded.
 */
const prewarmed: Worker[] = ((globalThis as Record<symbol, unknown>)[Symbol.for('weightkit.prewarmedWorkers')] ??= []) as Worker[];

/**
 * Start n merge workers now, before any pool needs them: their module loading (~0.1 s each) then overlaps the
 * caller's own start-up and planning. They do not keep the process alive while unused (unref), and a pool that takes
 * one gets it exactly as if it had spawned it. The CLI calls this for `merge` before loading its own modules. Returns
 * the workers started by this call.
 */
export function prewarmWorkers(n: number): Worker[] {
  const started: Worker[] = [];
  for (let i = prewarmed.length; i < n; i++) {
    const w = spawnNew();
    w.unref();
    // a worker that fails to start or ends before a pool takes it is dropped here; runPool spawns a fresh one instead
    const drop = (): void => {
      const k = prewarmed.indexOf(w);
      if (k >= 0) prewarmed.splice(k, 1);
    };
    w.once('error', drop);
    w.once('exit', drop);
    prewarmed.push(w);
    started.push(w);
  }
  return started;
}

/** Workers started by prewarmWorkers and not yet taken by a pool (tests). */
export function prewarmedWorkers(): number {
  return prewarmed.length;
}

function spawn(): Worker {
  const w = prewarmed.shift();
  if (w === undefined) return spawnNew();
  w.ref();
  return w;
}

function spawnNew(): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // running from TypeScript sources (tests, tsx): load the worker through tsx's ESM loader
    const url = new URL('./worker.ts', here).href;
    return new Worker(`import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(url)}); })`, { eval: true });
  }
  // the bundled CLI (dist/cli/main.bundle.cjs, prewarm.bundle.mjs) runs the bundled worker beside it, through its
  // entry (which compiles worker.bundle.cjs from its code cache, see scripts/bundle-cli.mjs)
  return new Worker(new URL(/\.bundle\.[cm]js$/.test(here) ? './worker.entry.mjs' : './worker.js', here));
}

/**
 * Tensors in flight per worker (and on the calling thread without workers): while some wait on reads or writes,
 * another computes. With two, the workers of a 1.1B-parameter ties merge (--threads 2) waited 13-21% of the time,
 * with three 4-5% (event-loop utilisation; wall 7.1-8.6 -> 6.0-7.0 s, machine busy).
 */
export const LANES = 3;

export interface PoolJob {
  index: number;
  tensor: PlanTensor;
  file: string;
  offset: number;
}

/** Run jobs on `threads` workers; `onDone` is called on the main thread as each finishes. */
export async function runPool(
  init: Omit<WorkerInit, 'type'>,
  jobs: readonly PoolJob[],
  threads: number,
  /** `edges`: bytes of the tensor the worker left to the main thread's writer (see WorkerReply); `warnings`: the method's */
  onDone: (job: PoolJob, bytes: number, edges: readonly WrittenEdge[], warnings: readonly string[]) => void,
  signal?: AbortSignal,
): Promise<void> {
  const queue = [...jobs].sort((a, b) => b.tensor.byteLength - a.tensor.byteLength || a.index - b.index);
  const workers = Array.from({ length: Math.min(threads, Math.max(1, queue.length)) }, spawn);
  let failure: WeightkitError | Error | undefined;
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const inflight = new Map<number, PoolJob>();
            let closing = false;
            const fill = (): void => {
              while (!closing && inflight.size < LANES) {
                const job = failure || signal?.aborted ? undefined : queue.shift();
                if (!job) break;
                inflight.set(job.index, job);
                w.postMessage({ type: 'tensor', index: job.index, tensor: job.tensor, file: job.file, offset: job.offset } satisfies WorkerTask);
              }
              if (!closing && inflight.size === 0) {
                closing = true;
                w.postMessage({ type: 'close' });
              }
            };
            w.on('message', (m: WorkerReply) => {
              if (m.type === 'done') {
                const job = inflight.get(m.index)!;
                inflight.delete(m.index);
                try {
                  onDone(job, m.bytes, m.edges ?? [], m.warnings ?? []);
                } catch (e) {
                  failure ??= e as Error;
                }
                fill();
              } else if (m.type === 'error') {
                inflight.delete(m.index);
                const Cls = CLASSES[m.error.name] ?? WeightkitError;
                failure ??= m.error.code
                  ? new Cls(m.error.code as ErrorCode, m.error.message, { where: (m.error.where ?? {}) as Where })
                  : new Error(m.error.message);
                fill();
              } else if (m.type === 'closed') resolve();
            });
            w.on('error', (e) => {
              failure ??= e;
              resolve();
            });
            w.on('exit', () => resolve());
            w.postMessage({ type: 'init', ...init } satisfies WorkerInit);
            fill();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  if (failure) throw failure;
}
