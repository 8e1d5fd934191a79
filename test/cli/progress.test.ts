// Progress of multi-document merges: each stage's own tensor count and its stage label, on a terminal and in plain lines.

import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createProgress } from '../../src/cli/progress.js';
import { runCli } from '../helpers/cli.js';
import { tempDir, tinyFamily } from '../plan/helpers.js';
import { writeFile } from 'node:fs/promises';

describe('progress', () => {
  it('a terminal bar takes the next stage\'s total and label', () => {
    let text = '';
    const stream = new Writable({
      write(chunk: Buffer, _enc, done) {
        text += chunk.toString();
        done();
      },
    });
    const p = createProgress({ stdout: () => undefined, stderr: () => undefined, isTTY: true }, { quiet: false, title: 'merge', stream });
    p.update({ done: 12, total: 12, bytesDone: 10, bytesTotal: 10, elapsedMs: 100, label: 'stage 1/2' });
    p.update({ done: 3, total: 6, bytesDone: 5, bytesTotal: 10, elapsedMs: 200, label: 'stage 2/2' });
    p.stop();
    expect(text).toContain('merge (stage 2/2)');
    expect(text).toContain('3/6 tensors');
    expect(text).not.toContain('/12 tensors | 5 B');
  });

  it('plain lines name the stage of a multi-document merge', async () => {
    const root = await tempDir('weightkit-progress-');
    await tinyFamily(root);
    const r = join(root, 'multi.yaml');
    await writeFile(r, 'name: soup\nmerge_method: linear\nmodels:\n  - {model: ft-a, parameters: {weight: 1}}\n  - {model: ft-b, parameters: {weight: 1}}\n---\nmerge_method: task_arithmetic\nbase_model: base\nmodels:\n  - {model: soup, parameters: {weight: 2}}\n');
    const run = await runCli('merge', r, '--out', join(root, 'out'));
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/merge \(stage 1\/2\): 12\/12 tensors/);
    expect(run.stderr).toMatch(/merge \(stage 2\/2\): 12\/12 tensors/);
  });
});
