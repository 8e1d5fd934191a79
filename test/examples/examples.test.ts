// Every script in examples/ runs to the end on the tiny zoo (WEIGHTKIT_DEMO_TINY=1, zoo and outputs in a temp
// folder), imported in-process, and prints its result lines.

import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
const SCRIPTS = (await readdir(EXAMPLES)).filter((f) => /^\d\d-.*\.ts$/.test(f)).sort();

/** A line each script must print (its conclusion). */
const EXPECT: Record<string, RegExp> = {
  '01-task-arithmetic.ts': /ties: λ=[\d.]+ picked on validation, mean test accuracy/,
  '02-negation.ts': /negmerge: (λ=[\d.]+ picked on validation|no λ keeps)/,
  '03-time-vectors.ts': /p2 \(30°\): .* interpolated α=/,
  '04-robust-signature.ts': /removal restored the clean model byte for byte: true/,
  '05-bcwi.ts': /α=1\.00 {2}accuracy/,
};

let tmp: string;
const saved = { tiny: process.env['WEIGHTKIT_DEMO_TINY'], cache: process.env['WEIGHTKIT_DEMO_CACHE'] };
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'weightkit-examples-'));
  process.env['WEIGHTKIT_DEMO_TINY'] = '1';
  process.env['WEIGHTKIT_DEMO_CACHE'] = tmp;
});
afterAll(async () => {
  for (const [k, v] of [['WEIGHTKIT_DEMO_TINY', saved.tiny], ['WEIGHTKIT_DEMO_CACHE', saved.cache]] as const) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await rm(tmp, { recursive: true, force: true });
});

describe('examples (tiny zoo)', () => {
  it('has a check for every numbered script', () => {
    expect(SCRIPTS).toEqual(Object.keys(EXPECT));
  });

  it.each(SCRIPTS)('%s runs and prints its result', async (script) => {
    const lines: string[] = [];
    const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
      lines.push(args.join(' '));
    });
    try {
      await import(join(EXAMPLES, script));
    } finally {
      spy.mockRestore();
    }
    expect(lines.join('\n')).toMatch(EXPECT[script]!);
    // outputs stay in the cache folder: the zoo and this example's folder
    expect((await readdir(tmp)).sort()).toEqual(['examples-out', 'zoo-tiny']);
  });
});
