// Prewarmed merge workers (src/plan/pool.ts prewarmWorkers, src/cli/prewarm.ts): started from the raw arguments of a
// multi-threaded `merge`, taken by the next pool (same bytes as workers it spawns itself), and never keeping a process
// alive while unused.
import { spawnSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mergeWorkersFor } from '../../src/cli/prewarm.js';
import { merge } from '../../src/plan/merge.js';
import { prewarmWorkers, prewarmedWorkers } from '../../src/plan/pool.js';
import { tempDir, tinyFamily } from './helpers.js';

describe('prewarmed merge workers', () => {
  it('are asked for by a pooled merge only, with its thread count', () => {
    const cores = availableParallelism();
    expect(mergeWorkersFor(['merge', 'r.yaml', '--out', 'o'])).toBe(cores > 1 ? cores : 0);
    expect(mergeWorkersFor(['merge', 'r.yaml', 'o', '--threads', '3'])).toBe(3);
    expect(mergeWorkersFor(['merge', 'r.yaml', 'o', '--threads=4'])).toBe(4);
    expect(mergeWorkersFor(['merge', 'r.yaml', 'o', '--threads', '1'])).toBe(0);
    expect(mergeWorkersFor(['merge', 'r.yaml', 'o', '--threads', 'x'])).toBe(0);
    expect(mergeWorkersFor(['merge', 'r.yaml', '--dry-run', '--threads', '2'])).toBe(0);
    expect(mergeWorkersFor(['merge', '--help'])).toBe(0);
    expect(mergeWorkersFor(['validate', 'r.yaml', '--threads', '2'])).toBe(0);
    expect(mergeWorkersFor([])).toBe(0);
  });

  it('are taken by the next pool, which merges the same bytes as without them', async () => {
    const root = await tempDir('weightkit-prewarm-');
    await tinyFamily(root);
    const recipe = join(root, 'r.yaml');
    await writeFile(recipe, 'merge_method: ties\nbase_model: base\nmodels:\n  - {model: ft-a, parameters: {weight: 1, density: 0.5}}\n  - {model: ft-b, parameters: {weight: 0.5, density: 0.7}}\ndtype: float32\n');
    await merge(recipe, { out: join(root, 'plain'), threads: 2, pool: 'always' });
    prewarmWorkers(2);
    expect(prewarmedWorkers()).toBe(2);
    await merge(recipe, { out: join(root, 'warm'), threads: 2, pool: 'always' });
    expect(prewarmedWorkers()).toBe(0);
    const [a, b] = await Promise.all([readFile(join(root, 'plain', 'model.safetensors')), readFile(join(root, 'warm', 'model.safetensors'))]);
    expect(a.equals(b)).toBe(true);
  });

  it('one that ends before a pool takes it is not handed out', async () => {
    const [a, b] = prewarmWorkers(2);
    expect(prewarmedWorkers()).toBe(2);
    await a!.terminate();
    expect(prewarmedWorkers()).toBe(1);
    await b!.terminate();
    expect(prewarmedWorkers()).toBe(0);
  });

  it('do not keep a process alive while unused', () => {
    const pool = resolve(__dirname, '..', '..', 'src', 'plan', 'pool.ts');
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `import(${JSON.stringify(pool)}).then((p) => p.prewarmWorkers(2))`], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(0);
    expect(Date.now() - t0).toBeLessThan(20_000);
  });
});
