#!/usr/bin/env node
// Launcher: runs the compiled CLI (built by `npm ci`/`npm run build` via the prepare script). A multi-threaded `merge`
// gets its workers started first, so that they load while the CLI does (src/cli/prewarm.ts).
import { prewarmFor } from '../dist/cli/prewarm.js';

prewarmFor(process.argv.slice(2));
const { main } = await import('../dist/cli/main.js');
process.exitCode = await main(process.argv.slice(2));
