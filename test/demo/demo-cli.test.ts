// `npm start` end to end on the tiny zoo (WEIGHTKIT_DEMO_TINY=1, zoo and outputs in a temp folder): exit status 0,
// every experiment's heading and table header printed, no line wider than 100 columns, the total time at the end.

import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'weightkit-demo-cli-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('npm start (tiny zoo)', () => {
  it('runs every experiment and prints its table', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', join(REPO, 'src/cli/demo.ts')], {
      cwd: REPO,
      env: { ...process.env, WEIGHTKIT_DEMO_TINY: '1', WEIGHTKIT_DEMO_CACHE: tmp },
      timeout: 90_000,
    });
    for (const h of ['1. Multi-task merging', '2. Forgetting', '3. Time vectors', '4. Robust weight signature', '5. Backward-compatible', '6. DaWin']) {
      expect(stdout).toContain(h);
    }
    expect(stdout).toMatch(/model\s+picked\s+rotated\s+inverted\s+mirrored\s+mean\s+norm/);
    expect(stdout).toMatch(/model\s+subtracts\s+λ\s+forget\s+control/);
    expect(stdout).toMatch(/period\s+rotation\s+base\s+p0\s+p4\s+α\s+interpolated\s+own/);
    expect(stdout).toMatch(/removal\s+restored\s+every\s+byte/);
    expect(stdout).toMatch(/α\s+model\s+accuracy\s+NFR %/);
    expect(stdout).toMatch(/\ndone in \d+\.\d s/);
    expect(stdout).toMatch(/analysis report: .*demo-out\/report\.html/);
    const html = await readFile(join(tmp, 'demo-out', 'report.html'), 'utf8');
    expect(html).toContain('<svg');
    // lines naming the temp folder hold a long absolute path; everything else fits 100 columns
    for (const line of stdout.split('\n')) if (!line.includes(tmp)) expect(line.length, line).toBeLessThanOrEqual(100);
    expect((await readdir(tmp)).sort()).toEqual(['demo-out', 'zoo-tiny']);
  }, 120_000);
});
