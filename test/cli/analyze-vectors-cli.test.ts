import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { tempDir, tinyFamily } from '../plan/helpers.js';

const run = runCli;

const width = (s: string): number => Math.max(...s.split('\n').map((l) => [...l].length));

let dir: string;
let fam: { base: string; a: string; b: string; c: string };
beforeAll(async () => {
  dir = await tempDir('weightkit-analyze-vectors-cli-');
  fam = await tinyFamily(join(dir, 'fam'));
  await writeFile(join(dir, 'ties.yaml'), `merge_method: ties\nbase_model: ${fam.base}\nmodels:\n  - model: ${fam.a}\n    parameters: {weight: 1.0, density: 0.3}\n  - model: ${fam.b}\n    parameters: {weight: 1.0, density: 0.5}\n`);
});

describe('weightkit analyze vectors', () => {
  it('per-layer tables within 100 columns; --per-tensor; --json; --csv', async () => {
    const r = await run('analyze', 'vectors', '--base', fam.base, fam.a, fam.b, fam.c, '--density', '0.2');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^layer\s+vector\s+norm\s+rel\.chg/m);
    expect(r.stdout).toMatch(/^layer 1\s+ft-a\s/m);
    expect(r.stdout).toMatch(/^layer\s+pair\s+cosine\s+sign-conflict\s+jaccard@0\.2/m);
    expect(r.stdout).toMatch(/ft-a~ft-b/);
    expect(width(r.stdout)).toBeLessThanOrEqual(100);
    const t = await run('analyze', 'vectors', '--base', fam.base, fam.a, fam.b, '--per-tensor', '--spectra');
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/model\.layers\.0\.mlp\.up_proj\.weight/);
    expect(t.stdout).toMatch(/eff\.rank/);
    expect(width(t.stdout)).toBeLessThanOrEqual(100);
    const csv = join(dir, 'v.csv');
    const j = await run('analyze', 'vectors', '--base', fam.base, fam.a, fam.b, '--json', '--csv', csv, '--labels', 'A,B');
    expect(j.code, j.stderr).toBe(0);
    const rep = JSON.parse(j.stdout);
    expect(rep).toMatchObject({ kind: 'weightkit.analyze.vectors', mode: 'base', labels: ['A', 'B'], density: 0.1 });
    const lines = (await readFile(csv, 'utf8')).trim().split('\n');
    expect(lines[0]).toBe('scope,name,a,b,metric,value');
    expect(lines).toContain(`global,all,A,B,cosine,${rep.global.cosine[0][1]}`);
  });

  it('--report writes a self-contained HTML report for vectors, distance and merge', async () => {
    const cases: string[][] = [
      ['analyze', 'vectors', '--base', fam.base, fam.a, fam.b],
      ['analyze', 'distance', fam.base, fam.a, fam.b],
      ['analyze', 'merge', join(dir, 'ties.yaml')],
    ];
    for (const [i, args] of cases.entries()) {
      const out = join(dir, `r${i}.html`);
      const r = await run(...args, '--report', out);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain(`report: ${out}`);
      const html = await readFile(out, 'utf8');
      expect(html).toMatch(/^<!DOCTYPE html>/i);
      expect(html).toContain('<svg');
      expect(html).not.toMatch(/<script/i);
    }
  });

  it('--vectors mode says there is no relative change', async () => {
    const r = await run('analyze', 'vectors', '--vectors', fam.a, fam.b);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/note: no base model/);
  });

  it('bad input: typed errors, exit 2', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['analyze', 'vectors', '--base', fam.base, fam.a, '--density', '0'], /USAGE/],
      [['analyze', 'vectors', '--base', fam.base, fam.a, '--density', 'x'], /USAGE/],
      [['analyze', 'vectors', fam.a], /USAGE/],
      [['analyze', 'vectors'], /USAGE/],
      [['analyze', 'vectors', '--base', fam.base, fam.a, '--labels', 'a,b'], /USAGE/],
      [['analyze', 'vectors', '--base', fam.base, join(dir, 'nope')], /CKPT_NOT_FOUND/],
      [['analyze', 'distance', fam.a], /USAGE/],
    ];
    for (const [args, code] of cases) {
      const r = await run(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(code);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });
});

describe('weightkit analyze distance / merge', () => {
  it('distance: matrix, MDS stress and clustering; --json', async () => {
    const r = await run('analyze', 'distance', fam.a, fam.b, fam.c, '--base', fam.base, '--metric', 'l2');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/l2 distances between 3 task vectors/);
    expect(r.stdout).toMatch(/200 values in 12 tensors/);
    expect(r.stdout).toMatch(/MDS \(classical, 2-D\), stress 0\.0000/);
    expect(r.stdout).toMatch(/^#2\s/m);
    expect(width(r.stdout)).toBeLessThanOrEqual(100);
    const j = JSON.parse((await run('analyze', 'distance', fam.a, fam.b, '--json')).stdout);
    expect(j).toMatchObject({ kind: 'weightkit.analyze.distance', metric: 'cosine' });
  });

  it('merge: per-layer kept fractions of a TIES recipe; --per-tensor; --json', async () => {
    const r = await run('analyze', 'merge', join(dir, 'ties.yaml'));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^layer\s+numel\s+changed\s+kept:ft-a\s+rescale:ft-a\s+kept:ft-b/m);
    expect(r.stdout).toMatch(/^total\s/m);
    const t = await run('analyze', 'merge', join(dir, 'ties.yaml'), '--per-tensor');
    expect(t.stdout).toMatch(/density=0\.3\/0\.5/);
    expect(width(t.stdout)).toBeLessThanOrEqual(100);
    const j = JSON.parse((await run('analyze', 'merge', join(dir, 'ties.yaml'), '--json')).stdout);
    expect(j).toMatchObject({ kind: 'weightkit.analyze.merge', method: 'ties', reports: true });
  });
});
