// The demo experiments library on the tiny zoo: result shapes, selection by validation (best score, ties to the first
// point; negation's control floor), byte-exact signature removal, BCWI's α = 0 endpoint, the DaWin hook, and the
// output folder (emptied on open, everything written under it).

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CONTROL_FLOOR,
  createDemoContext,
  grid,
  openDemo,
  runBcwi,
  runDawin,
  runMultiTask,
  runNegation,
  runRobustness,
  runTime,
  selectBest,
  selectForgetting,
  type DemoContext,
} from '../../src/demo/experiments/index.js';

let tmp: string;
let ctx: DemoContext;

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'weightkit-demo-exp-'));
  ctx = await openDemo({ tiny: true, cacheDir: tmp });
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const inUnit = (x: number): boolean => x >= 0 && x <= 1;

describe('selection rules', () => {
  it('selectBest takes the highest feasible score, ties to the earliest point', () => {
    const p = (score: number, feasible = true) => ({ value: 0, score, feasible });
    expect(selectBest([p(0.5), p(0.7), p(0.7), p(0.1)])).toBe(1);
    expect(selectBest([p(0.9, false), p(0.2), p(0.3)])).toBe(2);
    expect(() => selectBest([p(1, false)])).toThrow();
  });

  it('selectForgetting takes the lowest forget accuracy among points meeting the control floor', () => {
    const p = (valForget: number, feasible: boolean) => ({ valForget, feasible });
    expect(selectForgetting([p(0.8, true), p(0.5, true), p(0.2, false), p(0.5, true)])).toBe(1);
  });

  it('grid has exact end points and no float drift', () => {
    expect(grid(0, 1, 0.1)).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(grid(0.5, 3, 0.25).at(-1)).toBe(3);
  });
});

describe('experiments (tiny zoo)', () => {
  it('multi-task: base, fine-tunes and one row per method, the scale picked by the best validation score', async () => {
    const r = await runMultiTask(ctx, { methods: ['task arithmetic', 'TSV-M', 'Iso-CTS', 'model stock'] });
    expect(r.tasks).toEqual(ctx.zoo.experiments.multiTask.tasks);
    expect(r.rows.map((x) => x.name)).toEqual(['base', ...r.fineTunes, 'task arithmetic', 'TSV-M', 'Iso-CTS', 'model stock']);
    for (const row of r.rows) {
      expect(row.test).toHaveLength(r.tasks.length);
      expect(row.test.every(inUnit)).toBe(true);
      expect(row.mean).toBeCloseTo(row.test.reduce((a, b) => a + b, 0) / row.test.length, 12);
    }
    expect(r.grids.map((g) => g.label)).toEqual(['task arithmetic', 'TSV-M', 'Iso-CTS']);
    for (const g of r.grids) {
      const best = Math.max(...g.points.map((p) => p.score));
      expect(g.points[g.picked]!.score).toBe(best);
      expect(g.points.findIndex((p) => p.score === best)).toBe(g.picked);
      const row = r.rows.find((x) => x.name === g.label)!;
      expect(row.valScore).toBe(best);
      expect(row.picked).toContain(g.points[g.picked]!.value.toFixed(2));
    }
  });

  it('negation: the picked λ meets the control floor and has the lowest forget accuracy among those that do', async () => {
    const r = await runNegation(ctx, { grid: [0, 0.5, 1] });
    const base = await ctx.accuracy(ctx.model('base'), r.controlTask, 'val');
    expect(r.controlFloor).toBeCloseTo(CONTROL_FLOOR * base, 12);
    expect(r.rows.map((x) => x.name)).toEqual(['base', ctx.zoo.experiments.negation.single, 'NegMerge', 'negate one', 'negate mean']);
    expect(r.grids).toHaveLength(3);
    for (const g of r.grids) {
      expect(g.points[0]!.feasible).toBe(true); // λ 0 is the base
      const picked = g.points[g.picked]!;
      expect(picked.valControl).toBeGreaterThanOrEqual(r.controlFloor);
      for (const p of g.points) if (p.valControl >= r.controlFloor) expect(p.valForget).toBeGreaterThanOrEqual(picked.valForget);
    }
    for (const row of r.rows) expect(inUnit(row.forget) && inUnit(row.control)).toBe(true);
  });

  it('time vectors: one row per middle period, α picked by validation accuracy', async () => {
    const r = await runTime(ctx, { grid: [0, 0.5, 1] });
    const periods = ctx.zoo.experiments.time.periods;
    expect(r.rows.map((x) => x.period)).toEqual(periods.slice(1, -1).map((p) => p.label));
    for (const row of r.rows) {
      expect([0, 0.5, 1]).toContain(row.alpha);
      expect(row.points.find((p) => p.value === row.alpha)!.score).toBe(Math.max(...row.points.map((p) => p.score)));
    }
    // α = 1 is base + τ_first = the first period's model (up to one rounding), so it scores like it on test
    expect(r.rows[0]!.first).toBeGreaterThanOrEqual(0);
  });

  it('robustness: removing the signature restores the clean model byte for byte', async () => {
    const r = await runRobustness(ctx);
    expect(r.restoredExactly).toBe(true);
    expect(r.selected.length).toBeGreaterThan(0);
    expect(r.rows).toHaveLength(5);
    const clean = r.rows[1]!;
    const removed = r.rows[3]!;
    expect([removed.clean, removed.corrupted]).toEqual([clean.clean, clean.corrupted]);
  });

  it('BCWI: the α grid end points are the old and new models, with no negative flips at α = 0', async () => {
    const r = await runBcwi(ctx, { grid: [0, 0.5, 1] });
    expect(r.rows.map((x) => x.alpha)).toEqual([0, 0.5, 1]);
    expect(r.rows[0]!.negativeFlips).toBe(0);
    expect(r.rows[0]!.accuracy).toBe(await ctx.accuracy(ctx.model(r.old), r.task, 'test'));
    expect(r.rows[2]!.accuracy).toBe(await ctx.accuracy(ctx.model(r.new), r.task, 'test'));
  });

  it('DaWin hook: the static baseline always, DaWin only with a runner', async () => {
    const without = await runDawin(ctx, { grid: [0, 1] });
    expect(without.dawinAvailable).toBe(false);
    expect(without.rows.every((x) => x.dawin === undefined)).toBe(true);
    const withRunner = await runDawin(ctx, { grid: [0, 1], runner: async () => ({ accuracy: 0.42 }) });
    expect(withRunner.rows.map((x) => x.dawin)).toEqual(without.rows.map(() => 0.42));
  });

  it('writes under its output folder only, and empties it when opened', async () => {
    const entries = await readdir(ctx.out);
    expect(entries).toContain('recipes');
    expect((await readdir(tmp)).sort()).toEqual(['demo-out', 'zoo-tiny']);
    const out = join(tmp, 'other-out');
    const first = await createDemoContext({ zoo: ctx.zoo, out });
    await writeFile(join(first.out, 'stale.txt'), 'x');
    const second = await createDemoContext({ zoo: ctx.zoo, out });
    expect(await readdir(second.out)).toEqual(['recipes']);
  });
});
