// Worker-thread side of the merge pool: opens its own readers, runs whole plan tensors (runTensor) and writes the
// encoded bytes straight into the output's temporary shard files at the offsets the main thread gives it.
// Holds no state beyond reused buffers, open readers and file handles.

import { open, type FileHandle } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { isWeightkitError } from '../errors.js';
import { openCheckpointPath } from '../io/open.js';
import type { CheckpointReader } from '../io/types.js';
import { getMethod } from '../merge/registry.js';
import { Scratch, runTensor, type TensorSink } from './execute.js';
import type { PlanTensor } from './plan.js';

export interface WorkerInit {
  type: 'init';
  models: { id: number; path: string }[];
  method: string;
  seed: number;
  budgetBytes: number;
  modelStats?: unknown;
}

export interface WorkerTask {
  type: 'tensor';
  index: number;
  tensor: PlanTensor;
  /** absolute position of the tensor's first byte in its (temporary) shard file */
  file: string;
  offset: number;
}

export type WorkerRequest = WorkerInit | WorkerTask | { type: 'close' };

export type WorkerReply =
  | { type: 'done'; index: number; bytes: number }
  | { type: 'error'; index: number; error: { name: string; code?: string; message: string; where?: object } }
  | { type: 'closed' };

const port = parentPort;
if (port) {
  let init: WorkerInit | undefined;
  const readers = new Map<number, CheckpointReader>();
  const files = new Map<string, FileHandle>();
  const scratch = new Scratch();

  const reader = async (id: number): Promise<CheckpointReader> => {
    let r = readers.get(id);
    if (!r) {
      const m = init!.models.find((x) => x.id === id)!;
      r = await openCheckpointPath(m.path);
      readers.set(id, r);
    }
    return r;
  };

  const fileHandle = async (path: string): Promise<FileHandle> => {
    let fh = files.get(path);
    if (!fh) {
      fh = await open(path, 'r+');
      files.set(path, fh);
    }
    return fh;
  };

  const run = async (task: WorkerTask): Promise<number> => {
    const t = task.tensor;
    const ids = [...(t.base ? [t.base.model] : []), ...t.inputs.map((i) => i.model)];
    const map = new Map<number, CheckpointReader>();
    for (const id of ids) map.set(id, await reader(id));
    const fh = await fileHandle(task.file);
    const sink: TensorSink = {
      async writeRange(_name, byteOffset, bytes) {
        let done = 0;
        while (done < bytes.byteLength) {
          const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, task.offset + byteOffset + done);
          if (bytesWritten <= 0) throw new Error(`short write to ${task.file}`);
          done += bytesWritten;
        }
      },
    };
    return runTensor(
      {
        method: getMethod(init!.method),
        readers: map,
        sink,
        seed: init!.seed,
        budgetBytes: init!.budgetBytes,
        scratch,
        ...(init!.modelStats !== undefined ? { modelStats: init!.modelStats } : {}),
      },
      t,
    );
  };

  // tasks run one at a time, in arrival order
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (msg: WorkerRequest) => {
    queue = queue.then(async () => {
      if (msg.type === 'init') {
        init = msg;
        return;
      }
      if (msg.type === 'close') {
        for (const r of readers.values()) await r.close().catch(() => undefined);
        for (const f of files.values()) await f.close().catch(() => undefined);
        port.postMessage({ type: 'closed' } satisfies WorkerReply);
        return;
      }
      try {
        const bytes = await run(msg);
        port.postMessage({ type: 'done', index: msg.index, bytes } satisfies WorkerReply);
      } catch (e) {
        const err = isWeightkitError(e)
          ? { name: e.name, code: e.code, message: e.message, where: e.where }
          : { name: 'Error', message: e instanceof Error ? e.message : String(e) };
        port.postMessage({ type: 'error', index: msg.index, error: err } satisfies WorkerReply);
      }
    });
  });
}
