// Shared by the examples: the MNIST zoo (built on first use, ~70 s, then cached in .cache/zoo) and a fresh output
// folder per example under .cache/examples-out. WEIGHTKIT_DEMO_TINY=1 uses the tiny zoo (seconds; the tests do) and
// WEIGHTKIT_DEMO_CACHE=<dir> moves both folders.

import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ZOO_DIR, TINY_ZOO_CONFIG, ensureZoo, zooPath, type ZooManifest } from '../src/demo/zoo.js';

export interface ExampleZoo {
  zoo: ZooManifest;
  /** the shared ONNX graph: evaluate any zoo checkpoint through it */
  graph: string;
  /** weights of a zoo model by name */
  model(name: string): string;
  /** a task's dataset split */
  data(task: string, split: 'val' | 'test'): string;
  /** this example's output folder (emptied) */
  out: string;
}

export async function openExampleZoo(example: string): Promise<ExampleZoo> {
  const tiny = process.env['WEIGHTKIT_DEMO_TINY'] === '1';
  const custom = process.env['WEIGHTKIT_DEMO_CACHE'];
  const cache = resolve(custom ?? fileURLToPath(new URL('../.cache', import.meta.url)));
  const dir = tiny ? join(cache, 'zoo-tiny') : custom === undefined ? DEFAULT_ZOO_DIR : join(cache, 'zoo');
  const zoo = await ensureZoo({ dir, ...(tiny ? { config: TINY_ZOO_CONFIG } : {}), log: (l) => console.log(l) });
  const out = join(cache, 'examples-out', example);
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  return {
    zoo,
    graph: zooPath(zoo, zoo.graph),
    model: (name) => zooPath(zoo, zoo.models.find((m) => m.name === name)!.weights),
    data: (task, split) => zooPath(zoo, zoo.tasks.find((t) => t.name === task)!.datasets[split]),
    out,
  };
}

export const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
