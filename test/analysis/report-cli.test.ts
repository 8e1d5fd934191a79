import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReport } from '../../src/analysis/report.js';
import { writeReport } from '../../src/analysis/report-write.js';
import { reportCommand } from '../../src/cli/commands/analyze-report.js';
import { main, type CommandContext } from '../../src/cli/main.js';
import { tinyFamily } from '../plan/helpers.js';
import { WeightkitError } from '../../src/errors.js';

/** The analyze group with only the report subcommand mounted (as analyze.ts mounts it), run in-process. */
async function run(...args: string[]): Promise<{ stdout: string; error?: WeightkitError }> {
  let stdout = '';
  const ctx: CommandContext = { io: { stdout: (s) => void (stdout += s), stderr: () => undefined, isTTY: false } };
  const parser = yargs(args)
    .strict()
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new Error(msg);
    })
    .command('analyze', 'analyses', (a) => reportCommand(a, ctx).demandCommand(1));
  try {
    await parser.parseAsync();
    return { stdout };
  } catch (e) {
    if (e instanceof WeightkitError) return { stdout, error: e };
    throw e;
  }
}

let dir: string;
const stats = { norm: 1, relativeChange: 0.1, kurtosis: 0, outlierRatio: 0, zeroFraction: 0 };
const g = { vectors: [stats, stats], cosine: [[1, 0.3], [0.3, 1]], signConflict: [[0, 0.2], [0.2, 0]], jaccard: [[1, 0.5], [0.5, 1]] };
const vectors = { kind: 'weightkit.analyze.vectors', base: 'b', labels: ['a', 'b'], density: 0.1, global: g, layers: [{ layer: 0, ...g }], tensors: [] };
const distance = {
  kind: 'weightkit.analyze.distance', metric: 'cosine', base: null, labels: ['a', 'b'], matrix: [[0, 2], [2, 0]],
  mds: { coords: [[-1, 0], [1, 0]], stress: 0 }, clustering: { linkage: 'average', merges: [{ left: 0, right: 1, distance: 2, size: 2 }] },
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weightkit-report-cli-'));
  await writeFile(join(dir, 'v.json'), JSON.stringify(vectors));
  await writeFile(join(dir, 'd.json'), JSON.stringify(distance));
  await writeFile(join(dir, 'bad.json'), '{"kind":');
  await writeFile(join(dir, 'other.json'), '{"kind":"spectrum"}');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('weightkit analyze report', () => {
  it('writes one HTML report from analyze --json results, byte-identical on a rerun', async () => {
    const out = join(dir, 'r.html');
    const r = await run('analyze', 'report', join(dir, 'v.json'), join(dir, 'd.json'), '--out', out, '--title', 'My <report>');
    expect(r.error).toBeUndefined();
    expect(r.stdout).toBe(`report (12 charts and tables) -> ${out}\n`);
    const html = await readFile(out, 'utf8');
    expect(html).toContain('<title>My &lt;report&gt;</title>');
    const kinds = [...html.matchAll(/data-kind="(\w+)"/g)].map((m) => m[1]);
    expect(kinds).toEqual(['table', 'heatmap', 'heatmap', 'heatmap', 'bars', 'lines', 'lines', 'lines', 'lines', 'heatmap', 'scatter', 'dendrogram']);
    const again = await run('analyze', 'report', join(dir, 'v.json'), join(dir, 'd.json'), '--out', out, '--title', 'My <report>', '--overwrite', '--json');
    expect(JSON.parse(again.stdout)).toMatchObject({ out, items: 14, charts: 12 });
    expect(await readFile(out, 'utf8')).toBe(html);
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('refuses to replace a report without --overwrite (OUT_EXISTS)', async () => {
    const out = join(dir, 'exists.html');
    await writeFile(out, 'old');
    const r = await run('analyze', 'report', join(dir, 'v.json'), '--out', out);
    expect(r.error?.code).toBe('OUT_EXISTS');
    expect(r.error?.where.file).toBe(out);
    expect(await readFile(out, 'utf8')).toBe('old');
  });

  it('names the file at fault: missing, not JSON, unknown kind', async () => {
    const out = join(dir, 'x.html');
    const missing = await run('analyze', 'report', join(dir, 'none.json'), '--out', out);
    expect(missing.error?.code).toBe('CKPT_NOT_FOUND');
    expect(missing.error?.where.file).toBe(join(dir, 'none.json'));
    const bad = await run('analyze', 'report', join(dir, 'bad.json'), '--out', out);
    expect(bad.error).toMatchObject({ code: 'USAGE', where: { file: join(dir, 'bad.json') } });
    const other = await run('analyze', 'report', join(dir, 'other.json'), '--out', out);
    expect(other.error).toMatchObject({ code: 'USAGE', where: { file: join(dir, 'other.json'), path: 'kind' } });
  });

  it('accepts a ready report {title, items}', async () => {
    await writeFile(join(dir, 'items.json'), JSON.stringify({ title: 't', items: [{ kind: 'text', paragraphs: ['hello'] }] }));
    const out = join(dir, 'items.html');
    const r = await run('analyze', 'report', join(dir, 'items.json'), '--out', out, '--quiet');
    expect(r).toEqual({ stdout: '' });
    expect(await readFile(out, 'utf8')).toContain('<p>hello</p>');
  });
});

describe('writeReport', () => {
  it('writes the rendered report (tmp + rename) and takes a bare item list', async () => {
    const out = join(dir, 'w.html');
    const items = [{ kind: 'text' as const, paragraphs: ['x'] }];
    const n = await writeReport(out, items);
    const html = await readFile(out, 'utf8');
    expect(html).toBe(renderReport({ title: 'weightkit report', items }));
    expect(n).toBe(Buffer.byteLength(html));
    await expect(writeReport(join(dir, 'no-such-folder', 'r.html'), items)).rejects.toMatchObject({ code: 'OUT_INVALID' });
    await expect(writeReport(dir, items)).rejects.toMatchObject({ code: 'OUT_EXISTS' });
  });
});

describe('analyze vectors | distance --json into analyze report', () => {
  it('renders the real JSON results of the analysis commands', async () => {
    const f = await tinyFamily(join(dir, 'zoo'));
    const json = async (...args: string[]): Promise<string> => {
      let out = '';
      const code = await main(args, { stdout: (s) => void (out += s), stderr: () => undefined, isTTY: false });
      expect(code).toBe(0);
      return out;
    };
    await writeFile(join(dir, 'real-v.json'), await json('analyze', 'vectors', '--base', f.base, f.a, f.b, f.c, '--spectra', '--json'));
    await writeFile(join(dir, 'real-d.json'), await json('analyze', 'distance', f.base, f.a, f.b, f.c, '--json'));
    const out = join(dir, 'real.html');
    const r = await run('analyze', 'report', join(dir, 'real-v.json'), join(dir, 'real-d.json'), '--out', out);
    expect(r.error).toBeUndefined();
    const html = await readFile(out, 'utf8');
    const kinds = new Set([...html.matchAll(/data-kind="(\w+)"/g)].map((m) => m[1]));
    expect([...kinds].sort()).toEqual(['bars', 'dendrogram', 'heatmap', 'lines', 'scatter', 'table']);
    expect(html).toContain('Relative change per layer');
    expect(html).toMatch(/Kruskal stress-1 \d/);
  });
});
