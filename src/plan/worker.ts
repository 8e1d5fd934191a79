// Worker-thread side of the merge pool: opens its own readers, runs whole plan tensors (runTensor) and writes the
// encoded bytes straight into the output's temporary shard files at the offsets the main thread gives it.
// Holds no state beyond reused buffers, open readers and file handles.

import { open, type FileHandle } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import { isWeightkitError } from '../errors.js';
import { DirectWriter } from '../io/direct.js';
import { openCheckpointPath } from '../io/open.js';
import type { WrittenEdge } from '../io/safetensors/writer.js';
import type { CheckpointReader, KnownHeader } from '../io/types.js';
import { getMethod } from '../merge/registry.js';
import { laneScratch, runTensor, type Scratch, type TensorSink } from './execute.js';
import type { PlanTensor } from './plan.js';
import { openVectorModel } from './vector-model.js';

export interface WorkerInit {
  type: 'init';
  /**
   * `vectorBase`: the model is that model + the vector file at `path` (a recipe's `vector:` entry); `known`: the
   * headers of its safetensors files as the main thread validated them (opened without parsing while they match)
   */
  models: { id: number; path: string; ref?: string; vectorBase?: number; known?: readonly KnownHeader[] }[];
  method: string;
  seed: number;
  budgetBytes: number;
  /** the largest output range of the plan's tensors under budgetBytes (each lane's output slot is sized for it at once, see laneScratch) */
  outputElements?: number;
  modelStats?: unknown;
  /** false: write through the page cache only (the output is read again at once: an intermediate stage) */
  directWrites?: boolean;
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
  /** `edges`: the parts of 4 KiB blocks the tensor shares with its neighbours, for the main thread's writer to write */
  | { type: 'done'; index: number; bytes: number; edges?: WrittenEdge[]; warnings?: string[] }
  | { type: 'error'; index: number; error: { name: string; code?: string; message: string; where?: object } }
  | { type: 'closed' };

const port = parentPort;
if (port) {
  let init: WorkerInit | undefined;

  // opened once and shared by concurrent tasks (the promise is cached so two tasks never open the same file twice)
  const readers = new Map<number, Promise<CheckpointReader>>();
  const files = new Map<string, Promise<FileHandle>>();
  const reader = (id: number): Promise<CheckpointReader> => {
    let r = readers.get(id);
    if (!r) {
      const m = init!.models.find((x) => x.id === id)!;
      // the plan already checked the vector's base fingerprint
      const known = m.known ? { known: new Map(m.known.map((h) => [h.file, h])) } : {};
      r = m.vectorBase === undefined ? openCheckpointPath(m.path, known) : reader(m.vectorBase).then((base) => openVectorModel(base, m.path, { force: true }));
      readers.set(id, r);
    }
    return r;
  };

  // direct (page-cache-bypassing) handles on the same files, where the file system allows (src/io/direct.ts)
  const directs = new Map<string, Promise<DirectWriter | undefined>>();
  const direct = (path: string): Promise<DirectWriter | undefined> => {
    let d = directs.get(path);
    if (!d) {
      d = init?.directWrites === false ? Promise.resolve(undefined) : DirectWriter.open(path);
      directs.set(path, d);
    }
    return d;
  };

  const fileHandle = (path: string): Promise<FileHandle> => {
    let fh = files.get(path);
    if (!fh) {
      fh = open(path, 'r+');
      files.set(path, fh);
    }
    return fh;
  };

  const run = async (task: WorkerTask, scratch: Scratch, edges: WrittenEdge[], warnings: string[]): Promise<number> => {
    const t = task.tensor;
    const ids = [...(t.base ? [t.base.model] : []), ...t.inputs.map((i) => i.model)];
    const map = new Map<number, CheckpointReader>();
    const opened = await Promise.all(ids.map(reader));
    ids.forEach((id, i) => map.set(id, opened[i]!));
    const fh = await fileHandle(task.file);
    const dw = await direct(task.file);
    const sink: TensorSink = {
      position: (_name, byteOffset) => task.offset + byteOffset,
      async writeRange(_name, byteOffset, bytes) {
        if (dw !== undefined) {
          // the blocks shared with the neighbours go back to the main thread (see BlockAssembler)
          await dw.write(fh, bytes, task.offset + byteOffset, (position, part) => edges.push({ position, bytes: part }));
          return;
        }
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
        warn: (m) => warnings.push(m),
        modelRef: (id) => init!.models.find((x) => x.id === id)?.ref ?? String(id),
        ...(init!.modelStats !== undefined ? { modelStats: init!.modelStats } : {}),
      },
      t,
    );
  };

  // up to LANES tasks run at once (the main thread sends that many): some wait on I/O while another computes
  const running = new Set<Promise<void>>();
  const freeScratch: Scratch[] = [];
  port.on('message', (msg: WorkerRequest) => {
    if (msg.type === 'init') {
      init = msg;
      // every model opened at once, before the first task asks (a failure is reported by the tasks that use it)
      for (const m of msg.models) reader(m.id).catch(() => undefined);
      return;
    }
    if (msg.type === 'close') {
      void (async () => {
        while (running.size > 0) await Promise.allSettled([...running]);
        for (const r of readers.values()) await r.then((x) => x.close()).catch(() => undefined);
        for (const f of files.values()) await f.then((x) => x.close()).catch(() => undefined);
        for (const d of directs.values()) await d.then((x) => x?.close()).catch(() => undefined);
        port.postMessage({ type: 'closed' } satisfies WorkerReply);
      })();
      return;
    }
    const task = (async () => {
      const scratch = freeScratch.pop() ?? laneScratch(init!.outputElements ?? 0);
      try {
        const edges: WrittenEdge[] = [];
        const warnings: string[] = [];
        const bytes = await run(msg, scratch, edges, warnings);
        port.postMessage({ type: 'done', index: msg.index, bytes, ...(edges.length > 0 ? { edges } : {}), ...(warnings.length > 0 ? { warnings } : {}) } satisfies WorkerReply);
      } catch (e) {
        const err = isWeightkitError(e)
          ? { name: e.name, code: e.code, message: e.message, where: e.where }
          : { name: 'Error', message: e instanceof Error ? e.message : String(e) };
        port.postMessage({ type: 'error', index: msg.index, error: err } satisfies WorkerReply);
      } finally {
        freeScratch.push(scratch);
      }
    })();
    running.add(task);
    void task.finally(() => running.delete(task));
  });
}
