#!/usr/bin/env node
// Launcher: runs the compiled CLI (built by `npm ci`/`npm run build` via the prepare script): its bundle when built
// (scripts/bundle-cli.mjs: two files to load instead of ~160 modules, the larger compiled from a V8 code cache), else
// the plain dist/ modules. A multi-threaded `merge` gets its workers started first, so that they load while the CLI
// does (src/cli/prewarm.ts).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bundle = fileURLToPath(new URL('../dist/cli/main.bundle.cjs', import.meta.url));
const bundled = existsSync(bundle);
const { prewarmFor, loadBundle } = await import(bundled ? '../dist/cli/prewarm.bundle.mjs' : '../dist/cli/prewarm.js');
prewarmFor(process.argv.slice(2));
const { main } = bundled ? loadBundle(bundle).exports : await import('../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
