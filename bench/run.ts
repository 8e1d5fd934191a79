// `npm run bench [-- name ...]`: runs the benchmarks (all, or the named ones) and prints each result next to
// the baseline it was measured against in the same run. Big data lives in the OS temp dir and is deleted.

import { benchConvert } from './convert.js';
import { benchIo } from './io.js';
import { benchKnots } from './knots.js';
import { benchAnalyze } from './analyze.js';
import { benchEval } from './eval.js';
import { benchLinalg } from './linalg.js';
import { benchMerge } from './merge.js';
import { benchSvd } from './svd.js';
import { benchVectors } from './vectors.js';
import type { BenchResult } from './types.js';

const BENCHES: Record<string, () => Promise<BenchResult[]>> = {
  convert: () => benchConvert({ elements: 64 * 2 ** 20 }),
  io: () => benchIo(),
  merge: () => benchMerge(),
  vectors: () => benchVectors(),
  linalg: () => benchLinalg(),
  eval: () => benchEval(),
  svd: () => benchSvd(),
  knots: () => benchKnots(),
  analyze: () => benchAnalyze(),
};

async function run(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const names = wanted.length > 0 ? wanted : Object.keys(BENCHES);
  for (const n of names) {
    if (!BENCHES[n]) {
      console.error(`unknown benchmark '${n}' (have: ${Object.keys(BENCHES).join(', ')})`);
      process.exitCode = 2;
      return;
    }
  }
  for (const n of names) {
    console.log(`\n== ${n}`);
    const t0 = performance.now();
    const results = await BENCHES[n]!();
    for (const r of results) {
      const v = Math.abs(r.value) >= 100 ? r.value.toFixed(0) : r.value !== 0 && Math.abs(r.value) < 0.01 ? r.value.toExponential(2) : r.value.toFixed(3);
      console.log(`${r.name.padEnd(48)} ${v.padStart(10)} ${r.unit.padEnd(8)} ${r.note ?? ''}`.trimEnd());
    }
    console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  }
}

await run();
