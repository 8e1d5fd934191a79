// What the CLI prints stays bounded and inert: recipe files have a size limit, a recipe's problems are printed up
// to a limit (all counted), long lines are shown around the column, and text from checkpoints or recipes never
// reaches the terminal as a control sequence.

import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { processIo } from '../../src/cli/main.js';
import { MAX_SHOWN_PROBLEMS, terminalSafe } from '../../src/cli/render.js';
import { MAX_RECIPE_BYTES } from '../../src/recipe/load.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../plan/helpers.js';

describe('bounded and inert CLI output', () => {
  it('a recipe above the size limit is refused before parsing; a FIFO or folder is not read', async () => {
    const dir = await tempDir('weightkit-bounded-');
    const big = join(dir, 'big.yaml');
    await writeFile(big, `merge_method: linear\n# ${'x'.repeat(MAX_RECIPE_BYTES)}\n`);
    const r = await runCli('validate', big);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error[RECIPE_TOO_LARGE]');
    const d = await runCli('validate', dir);
    expect(d.code).toBe(2);
    expect(d.stderr).toContain('is not a regular file');
  });

  it(`prints the first ${MAX_SHOWN_PROBLEMS} problems and counts all; a long line is cut around the column`, async () => {
    const dir = await tempDir('weightkit-bounded-');
    const many = join(dir, 'many.yaml');
    await writeFile(many, Array.from({ length: 120 }, (_, i) => `merge_method: linear\nbogus${i}: 1\n`).join('---\nname: s\n'));
    const r = await runCli('validate', many);
    expect(r.code).toBe(2);
    expect((r.stderr.match(/^error\[/gm) ?? []).length).toBe(MAX_SHOWN_PROBLEMS);
    expect(r.stderr).toMatch(/\d+ problems in .* \(the first 50 shown\)/);
    const long = join(dir, 'long.yaml');
    await writeFile(long, `merge_method: linear\nmodels: [${'[1], '.repeat(5000)}{model: 3}]\n`);
    const l = await runCli('validate', long);
    expect(l.code).toBe(2);
    for (const line of l.stderr.split('\n')) expect(line.length).toBeLessThan(400);
  });

  it('control characters and direction overrides are escaped; newlines and tabs stay', () => {
    expect(terminalSafe('k\u001b]0;TITLE\u0007 v\u001b[2J\ttab\nnext \u202egnp.exe \u0085')).toBe('k\\u001b]0;TITLE\\u0007 v\\u001b[2J\ttab\nnext \\u202egnp.exe \\u0085');
    // the binary's streams print through it
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    processIo.stderr('x\u001b[2Jy\n');
    expect(spy).toHaveBeenCalledWith('x\\u001b[2Jy\n');
    spy.mockRestore();
    // JSON stays valid and equal
    const json = JSON.stringify({ name: 'a\u001b[31mb\u0085c\u202e' });
    expect(JSON.parse(terminalSafe(json))).toEqual(JSON.parse(json));
  });
});
