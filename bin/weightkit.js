#!/usr/bin/env node
// Launcher: runs the compiled CLI (built by `npm ci`/`npm run build` via the prepare script): its bundle when built
// (scripts/bundle-cli.mjs: two files to load instead of ~160 modules), else the plain dist/ modules. A multi-threaded
// `merge` gets its workers started first, so that they load while the CLI does (src/cli/prewarm.ts).
import { existsSync } from 'node:fs';

const bundled = existsSync(new URL('../dist/cli/main.bundle.mjs', import.meta.url));
const { prewarmFor } = await import(bundled ? '../dist/cli/prewarm.bundle.mjs' : '../dist/cli/prewarm.js');
prewarmFor(process.argv.slice(2));
const { main } = await import(bundled ? '../dist/cli/main.bundle.mjs' : '../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
