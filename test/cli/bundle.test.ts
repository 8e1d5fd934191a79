// The bundled command line (scripts/bundle-cli.mjs: main, worker and prewarm bundles, run by bin/weightkit.js): it
// prints the same help as the modules it is built from, and a multi-threaded merge through it (prewarmed bundled
// workers, the native addon found from the bundle's folder) writes the same bytes as the library on one thread.
// The bundles are built into .cache/ (two levels below the package root, as dist/cli) and removed afterwards.
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { merge } from '../../src/plan/merge.js';
import { loadNativeKernels } from '../../src/plan/native.js';
import { SeededRandom } from '../../src/tensor/rng.js';
import { WEIGHTKIT_VERSION } from '../../src/version.js';
import { tempDir, writeModel } from '../plan/helpers.js';

const ROOT = resolve(__dirname, '..', '..');
// two levels below the package root, as dist/cli: the bundles find native/build from there
const OUT = join(ROOT, '.cache', `bundle-test-${process.pid}`);

/** Run the bundled CLI the way bin/weightkit.js does (prewarm bundle first, then main), in a child process. */
function runBundled(args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(OUT, 'run.mjs'), ...args], { cwd, env, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('bundled CLI', () => {
  beforeAll(async () => {
    await rm(OUT, { recursive: true, force: true });
    await mkdir(OUT, { recursive: true });
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bundle-cli.mjs'), OUT], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    // bin/weightkit.js's two steps, on the bundles just built
    const url = (f: string): string => JSON.stringify(pathToFileURL(join(OUT, f)).href);
    await writeFile(
      join(OUT, 'run.mjs'),
      `const a = process.argv.slice(2);\nconst p = await import(${url('prewarm.bundle.mjs')});\np.prewarmFor(a);\nconst { exports, cacheRejected } = p.loadBundle(${JSON.stringify(join(OUT, 'main.bundle.cjs'))});\n` +
        "if (process.env.WK_CACHE_CHECK) process.stderr.write('cache rejected ' + cacheRejected + '\\n');\nprocess.exitCode = await exports.main(a);\n" +
        // how many prewarmed workers no pool took (the main bundle's pool must see the prewarm bundle's)
        "process.stderr.write('prewarmed left ' + (globalThis[Symbol.for('weightkit.prewarmedWorkers')]?.length ?? 'none') + '\\n');\n",
    );
    return () => rm(OUT, { recursive: true, force: true });
  });

  it('prints the version and the same help as the modules', async () => {
    const v = runBundled(['--version'], ROOT);
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe(WEIGHTKIT_VERSION);
    let help = '';
    await main(['--help'], { stdout: (s) => void (help += s), stderr: () => undefined, isTTY: false });
    const h = runBundled(['--help'], ROOT);
    expect(h.status).toBe(0);
    expect(h.stdout).toBe(help);
    const bad = runBundled(['merj'], ROOT);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('Did you mean merge?');
  });

  it("builds string-width's segmenters and emoji expression on first use, not at load (yargs loads them on every start)", async () => {
    const src = await readFile(join(OUT, 'main.bundle.cjs'), 'utf8');
    expect(src).not.toMatch(/^var \w+ = new Intl\.Segmenter\(/m);
    expect(src).not.toMatch(/^var \w+ = new RegExp\("\^\\\\p\{RGI_Emoji\}/m);
    expect(src).toMatch(/\?\?= new Intl\.Segmenter\(\)/);
    // in a process: none built by the import, some by help text (and its layout is the modules' own, above)
    const probe = join(OUT, 'probe.mjs');
    await writeFile(
      probe,
      'let n = 0;\nconst S = Intl.Segmenter;\nIntl.Segmenter = class extends S { constructor(...a) { super(...a); n++; } };\n' +
        `const { loadBundle } = await import(${JSON.stringify(pathToFileURL(join(OUT, 'prewarm.bundle.mjs')).href)});\n` +
        `const { main } = loadBundle(${JSON.stringify(join(OUT, 'main.bundle.cjs'))}).exports;\n` +
        "const atLoad = n;\nawait main(['--help'], { stdout: () => undefined, stderr: () => undefined, isTTY: false });\nprocess.stdout.write(`${atLoad} ${n}`);\n",
    );
    const r = spawnSync(process.execPath, [probe], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const [atLoad, afterHelp] = r.stdout.split(' ').map(Number);
    expect(atLoad).toBe(0);
    expect(afterHelp).toBeGreaterThan(0);
  });

  it('merges through prewarmed bundled workers: the same bytes as the library on one thread', async () => {
    const root = await tempDir('weightkit-bundle-');
    // BF16 (the native kernels' format) and over 32 MB of output, so that the CLI runs the worker pool
    const shapes = { 'model.layers.0.mlp.up_proj.weight': [4096, 2100], 'model.layers.0.mlp.down_proj.weight': [2100, 4096] };
    for (const [i, m] of ['base', 'a', 'b'].entries()) {
      const r = new SeededRandom(30 + i);
      const v = new Map(Object.entries(shapes).map(([k, s]) => [k, Float32Array.from({ length: s[0]! * s[1]! }, () => r.normal())]));
      await writeModel(join(root, m), v, { dtype: 'BF16', shapes, config: false, tokenizer: false });
    }
    const recipe = join(root, 'r.yaml');
    await writeFile(recipe, 'merge_method: ties\nbase_model: base\nmodels:\n  - {model: a, parameters: {weight: 1, density: 0.5}}\n  - {model: b, parameters: {weight: 0.5, density: 0.7}}\ndtype: bfloat16\n');
    // the bundle finds the native addon as dist/ does (where it is built here)
    const plan = runBundled(['merge', recipe, '--out', join(root, 'cli'), '--dry-run'], root);
    expect(plan.status, plan.stderr).toBe(0);
    if (loadNativeKernels() !== undefined) expect(plan.stdout).toContain('native AVX-512');
    const r = runBundled(['merge', recipe, '--out', join(root, 'cli'), '--threads', '2', '--quiet'], root);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain('prewarmed left 0');
    await merge(recipe, { out: join(root, 'lib'), threads: 1 });
    const [a, b] = await Promise.all([readFile(join(root, 'cli', 'model.safetensors')), readFile(join(root, 'lib', 'model.safetensors'))]);
    expect(a.equals(b)).toBe(true);
  });

  it('the command line and the worker compile from their code caches; a damaged one is refused and only costs the compile', async () => {
    const env = { ...process.env, WK_CACHE_CHECK: '1' };
    const ok = runBundled(['--version'], ROOT, env);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toContain('cache rejected false');
    // the worker's too (outside a worker thread its bundle only defines); the workers start from its entry
    const probe = join(OUT, 'probe-worker.mjs');
    await writeFile(
      probe,
      `const { loadBundle } = await import(${JSON.stringify(pathToFileURL(join(OUT, 'prewarm.bundle.mjs')).href)});\n` +
        `process.stdout.write(String(loadBundle(${JSON.stringify(join(OUT, 'worker.bundle.cjs'))}).cacheRejected));\n`,
    );
    const w = spawnSync(process.execPath, [probe], { encoding: 'utf8', timeout: 60_000 });
    expect(w.status, w.stderr).toBe(0);
    expect(w.stdout).toBe('false');
    expect(await readFile(join(OUT, 'worker.entry.mjs'), 'utf8')).toContain('worker.bundle.cjs');
    const cache = join(OUT, 'main.bundle.cjs.cache');
    const good = await readFile(cache);
    try {
      await writeFile(cache, Buffer.alloc(good.length, 7));
      const bad = runBundled(['--version'], ROOT, env);
      expect(bad.status, bad.stderr).toBe(0);
      expect(bad.stdout.trim()).toBe(WEIGHTKIT_VERSION);
      expect(bad.stderr).toContain('cache rejected true');
    } finally {
      await writeFile(cache, good);
    }
  });
});
