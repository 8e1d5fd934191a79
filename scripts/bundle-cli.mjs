// Bundles the command line, the merge worker and the worker prewarming into one file each (dist/cli/main.bundle.cjs and
// worker.bundle.cjs with their V8 code caches, *.cache; prewarm.bundle.mjs; worker.entry.mjs starts a worker) for
// bin/weightkit.js: Node's module loader then reads two files instead of ~160 (the CLI's start 0.13-0.15 s -> ~0.06 s,
// measured). Run by `npm run build` and the prepare script after tsc; the
// unbundled dist/ stays for the library API. Usage: node scripts/bundle-cli.mjs [outdir] (default dist/cli). The output
// folder must sit two levels below the package root: the native addon is found at ../../native/build from there.

import { build } from 'esbuild';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

// yargs' help layout measures strings with string-width, whose copies (three versions here) each build an
// Intl.Segmenter and one a /^\p{RGI_Emoji}$/v at module load: ~18 ms of every command's start (measured: the
// segmenter 7-11 ms, the regular expression 10 ms), though only help text and errors are ever measured. Bundled, they
// are built on first use instead. A copy whose text differs is bundled as it is.
const LAZY = [
  ['const segmenter = new Intl.Segmenter();', 'let segmenterMade; const segmenter = { segment: (s) => (segmenterMade ??= new Intl.Segmenter()).segment(s) };'],
  ['const rgiEmojiRegex = /^\\p{RGI_Emoji}$/v;', 'let rgiEmojiMade; const rgiEmojiRegex = { test: (s) => (rgiEmojiMade ??= /^\\p{RGI_Emoji}$/v).test(s) };'],
];
const lazyStringWidth = {
  name: 'lazy-string-width',
  setup(b) {
    b.onLoad({ filter: /[\\/]string-width[\\/]index\.js$/ }, async (args) => {
      let contents = await readFile(args.path, 'utf8');
      for (const [from, to] of LAZY) contents = contents.replace(from, () => to);
      return { contents, loader: 'js' };
    });
  },
};
const outdir = resolve(process.argv[2] ?? join(root, 'dist', 'cli'));

const common = {
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  // loaded where used (evaluation, the demo): kept as packages
  external: ['onnxruntime-node', '@tensorflow/*'],
  plugins: [lazyStringWidth],
  logLevel: 'warning',
};
// the prewarming: an ES module (it loads the others)
await build({
  ...common,
  entryPoints: { 'prewarm.bundle': join(root, 'src', 'cli', 'prewarm.ts') },
  outExtension: { '.js': '.mjs' },
  format: 'esm',
  // CommonJS dependencies bundled into an ES module still call require()
  banner: { js: "import { createRequire as weightkitRequire } from 'node:module'; const require = weightkitRequire(import.meta.url);" },
});
// the command line and the merge worker: CommonJS scripts, so that they can be compiled from a V8 code cache
// (loadBundle in src/cli/prewarm.ts; Node 20 has none for ES modules): import.meta.url is the bundle's own URL, and the
// packages they load on demand (onnxruntime-node) are required
await build({
  ...common,
  entryPoints: { 'main.bundle': join(root, 'src', 'cli', 'main.ts'), 'worker.bundle': join(root, 'src', 'plan', 'worker.ts') },
  outExtension: { '.js': '.cjs' },
  format: 'cjs',
  define: { 'import.meta.url': 'weightkitImportMetaUrl' },
  banner: { js: "var weightkitImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  supported: { 'dynamic-import': false },
});
// its code cache: compiled and run once here (the module's top level only defines), then a merge's dry run on a tiny
// generated family (recipe, models and plan: the functions every merge compiles before its first tensor), then V8's
// cache of everything compiled so far. A start-up compiles the 1.7 MB bundle in ~9 ms from it instead of ~25 ms, and
// the dry run takes 31 ms instead of 42 ms (measured). A cache V8 rejects (another Node, other flags) only costs that.
const mainFile = join(outdir, 'main.bundle.cjs');
// the ES module bundles of older builds
for (const old of ['main.bundle.mjs', 'worker.bundle.mjs']) rmSync(join(outdir, old), { force: true });
const { makeBundleCache } = await import(pathToFileURL(join(outdir, 'prewarm.bundle.mjs')).href);
let cache;
let family;
try {
  family = mkdtempSync(join(tmpdir(), 'weightkit-bundle-'));
  const recipe = await writeTinyFamily(family);
  const quiet = { stdout: () => undefined, stderr: () => undefined, isTTY: false };
  cache = await makeBundleCache(mainFile, async ({ main }) => {
    const code = await main(['merge', recipe, '--out', join(family, 'out'), '--dry-run'], quiet);
    if (code !== 0) throw new Error(`exit ${code}`);
  });
} catch (e) {
  // no temporary folder, say: the top level's cache only
  console.warn(`bundle-cli: no warm-up for the code cache (${e instanceof Error ? e.message : String(e)})`);
  cache = await makeBundleCache(mainFile);
} finally {
  if (family !== undefined) rmSync(family, { recursive: true, force: true });
}
writeFileSync(`${mainFile}.cache.tmp`, cache);
renameSync(`${mainFile}.cache.tmp`, `${mainFile}.cache`);

// the worker's: its top level (outside a worker thread it only defines); a Worker starts from the small ES module
// entry, which runs the bundle from it (src/plan/pool.ts)
const workerFile = join(outdir, 'worker.bundle.cjs');
writeFileSync(`${workerFile}.cache.tmp`, await makeBundleCache(workerFile));
renameSync(`${workerFile}.cache.tmp`, `${workerFile}.cache`);
writeFileSync(
  join(outdir, 'worker.entry.mjs'),
  "import { fileURLToPath } from 'node:url';\nimport { loadBundle } from './prewarm.bundle.mjs';\n\nloadBundle(fileURLToPath(new URL('./worker.bundle.cjs', import.meta.url)));\n",
);

/** A base and two fine-tunes of two small BF16 tensors (zeros; the compiled writer of dist/) and a ties recipe. */
async function writeTinyFamily(dir) {
  const { writeSafetensors } = await import(pathToFileURL(join(root, 'dist', 'io', 'safetensors', 'writer.js')).href);
  const { makeTensor } = await import(pathToFileURL(join(root, 'dist', 'tensor', 'tensor.js')).href);
  const tensors = { 'model.layers.0.mlp.up_proj.weight': makeTensor('BF16', [8, 16]), 'model.norm.weight': makeTensor('BF16', [16]) };
  for (const m of ['base', 'a', 'b']) {
    mkdirSync(join(dir, m));
    await writeSafetensors(join(dir, m, 'model.safetensors'), tensors);
  }
  const recipe = join(dir, 'ties.yaml');
  writeFileSync(recipe, 'merge_method: ties\nbase_model: ./base\nmodels:\n  - {model: ./a, parameters: {weight: 1, density: 0.5}}\n  - {model: ./b, parameters: {weight: 1, density: 0.5}}\ndtype: bfloat16\n');
  return recipe;
}
