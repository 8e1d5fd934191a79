// The demo experiments on the MNIST zoo, as a library: open the zoo and an output folder (openDemo), then run any of
// the experiments; each returns plain data (the CLI in src/cli/demo.ts renders it). Prints nothing; must not import
// src/cli.

import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_ZOO_DIR, TINY_ZOO_CONFIG, ensureZoo } from '../zoo.js';
import { createDemoContext, type DemoContext } from './context.js';

export * from './context.js';
export * from './multi-task.js';
export * from './negation.js';
export * from './time.js';
export * from './robustness.js';
export * from './bcwi.js';
export * from './dawin.js';
export * from './report.js';

/** The repository's `.cache` folder. */
export const DEFAULT_CACHE_DIR = resolve(fileURLToPath(new URL('../../../.cache', import.meta.url)));

export interface OpenDemoOptions {
  /** Use the tiny zoo config (tests): built in about a second, numbers meaningless. */
  tiny?: boolean;
  /**
   * Cache folder: the zoo goes to `<cache>/zoo` (`<cache>/zoo-tiny` when tiny) and outputs to `<cache>/demo-out`.
   * Default: the repository's `.cache` (the zoo at DEFAULT_ZOO_DIR).
   */
  cacheDir?: string;
  threads?: number;
  log?: (line: string) => void;
}

/** Build or load the zoo and open a context writing under `<cache>/demo-out` (emptied first). */
export async function openDemo(options: OpenDemoOptions = {}): Promise<DemoContext> {
  const cache = resolve(options.cacheDir ?? DEFAULT_CACHE_DIR);
  // the tiny zoo lives in its own folder: ensureZoo prunes other versions in the folder it builds in
  const zooDir = options.tiny ? join(cache, 'zoo-tiny') : options.cacheDir === undefined ? DEFAULT_ZOO_DIR : join(cache, 'zoo');
  const zoo = await ensureZoo({ dir: zooDir, ...(options.tiny ? { config: TINY_ZOO_CONFIG } : {}), ...(options.log ? { log: options.log } : {}) });
  return createDemoContext({ zoo, out: join(cache, 'demo-out'), ...(options.threads === undefined ? {} : { threads: options.threads }) });
}
