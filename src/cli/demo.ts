// Script entry for `npm start` (in src/cli, so it may print): builds or loads the MNIST model zoo, runs the demo
// experiments of src/demo/experiments (every merged or patched model evaluated through ONNX Runtime), and prints one
// table per experiment, at most 100 columns wide. Scales are picked on validation splits, accuracies are on test.
// Environment: WEIGHTKIT_DEMO_TINY=1 uses the tiny zoo (seconds; for tests), WEIGHTKIT_DEMO_CACHE=<dir> moves the
// zoo and the outputs (default .cache; outputs in <cache>/demo-out, replaced on every run).

import { relative } from 'node:path';
import {
  CONTROL_FLOOR,
  DAWIN_COMPONENTS,
  dawinRunner,
  openDemo,
  runBcwi,
  runDawin,
  runMultiTask,
  runNegation,
  runReport,
  runRobustness,
  runTime,
  type DemoContext,
} from '../demo/experiments/index.js';

const pct = (x: number): string => (Number.isNaN(x) ? '-' : (x * 100).toFixed(1));
/** A path relative to the working directory when it is inside it, else as is. */
const rel = (p: string): string => (p.startsWith(`${process.cwd()}/`) ? relative(process.cwd(), p) : p);

type Cell = string;
interface Column {
  header: string;
  /** left-aligned (text) or right-aligned (numbers, the default) */
  left?: boolean;
}

/** An aligned table: two spaces between columns, a dashed rule under the header. */
function table(columns: readonly Column[], rows: readonly Cell[][]): string[] {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly Cell[]): string =>
    cells
      .map((c, i) => (columns[i]!.left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.header)), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

/** Words of `text` in lines of at most `width` characters. */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const w of text.split(' ')) {
    if (cur !== '' && cur.length + 1 + w.length > width) {
      out.push(cur);
      cur = w;
    } else cur = cur === '' ? w : `${cur} ${w}`;
  }
  if (cur !== '') out.push(cur);
  return out;
}

const WIDTH = 100;

function heading(n: number, title: string, notes: readonly string[]): void {
  console.log(`\n${n}. ${title}`);
  for (const l of wrap(notes.join(' '), WIDTH - 3)) console.log(`   ${l}`);
  console.log('');
}

function print(lines: readonly string[]): void {
  for (const l of lines) console.log(`   ${l}`);
}

async function multiTask(ctx: DemoContext): Promise<void> {
  const r = await runMultiTask(ctx);
  const cos = r.cosines.flatMap((row, i) => row.slice(i + 1).map((c, k) => `${r.tasks[i]}/${r.tasks[i + k + 1]} ${c.toFixed(3)}`));
  heading(1, `Multi-task merging of ${r.fineTunes.join(', ')}`, [
    `test accuracy (%) per task; norm = mean of accuracy / the task's own fine-tune's accuracy.`,
    `Scale picked on validation (best mean normalised accuracy); task-vector cosines: ${cos.join(', ')}`,
  ]);
  print(
    table(
      [{ header: 'model', left: true }, { header: 'picked', left: true }, ...r.tasks.map((t) => ({ header: t })), { header: 'mean' }, { header: 'norm' }, { header: 'fixed settings', left: true }],
      r.rows.map((row) => [row.name, row.picked, ...row.test.map(pct), pct(row.mean), pct(row.normalized), row.settings]),
    ),
  );
}

async function negation(ctx: DemoContext): Promise<void> {
  const r = await runNegation(ctx);
  heading(2, `Forgetting '${r.forgetTask}' by negation (control task '${r.controlTask}')`, [
    `λ picked on validation: lowest forget accuracy with control >= ${CONTROL_FLOOR * 100}% of the base's`,
    `(control floor ${pct(r.controlFloor)}%); test accuracy (%) below.`,
    ...(r.rows.some((row) => row.atGridEdge) ? ['* the largest λ of the grid: the control floor did not bind.'] : []),
  ]);
  print(
    table(
      [{ header: 'model', left: true }, { header: 'subtracts', left: true }, { header: 'λ' }, { header: 'forget' }, { header: 'control' }, { header: 'val forget' }, { header: 'val control' }],
      r.rows.map((row) => [
        row.name,
        row.detail,
        row.lambda === undefined ? '' : `${row.lambda.toFixed(2)}${row.atGridEdge ? '*' : ''}`,
        pct(row.forget),
        pct(row.control),
        row.valForget === undefined ? '' : pct(row.valForget),
        row.valControl === undefined ? '' : pct(row.valControl),
      ]),
    ),
  );
}

async function time(ctx: DemoContext): Promise<void> {
  const r = await runTime(ctx);
  heading(3, `Time vectors: interpolating the ${r.first} and ${r.last} time vectors for the periods between`, [
    `model = base + α·τ_${r.first} + (1 − α)·τ_${r.last}, α picked per period on its validation split; test accuracy (%).`,
    `'own' is the model fine-tuned on that period (a ceiling the method does not have).`,
  ]);
  print(
    table(
      [{ header: 'period', left: true }, { header: 'rotation' }, { header: 'base' }, { header: r.first }, { header: r.last }, { header: 'α' }, { header: 'interpolated' }, { header: 'own' }],
      r.rows.map((row) => [row.period, `${row.degrees}°`, pct(row.base), pct(row.first), pct(row.last), row.alpha.toFixed(1), pct(row.interpolated), pct(row.own)]),
    ),
  );
}

async function robustness(ctx: DemoContext): Promise<void> {
  const r = await runRobustness(ctx);
  heading(4, 'Robust weight signature: patch a clean model, then remove the patch', [
    `signature = the robust fine-tune's change orthogonal to the clean one's, kept for ${r.selected.join(', ')}`,
    `(auto: the shallowest units holding half the relative change); removal ${r.restoredExactly ? 'restored every byte' : 'was NOT byte-exact'}` +
      ` (undo record: ${r.undoEntries} elements). Test accuracy (%).`,
  ]);
  print(
    table(
      [{ header: 'model', left: true }, { header: r.cleanTask }, { header: r.corruptedTask }, { header: 'what', left: true }],
      r.rows.map((row) => [row.name, pct(row.clean), pct(row.corrupted), row.detail]),
    ),
  );
}

async function bcwi(ctx: DemoContext): Promise<void> {
  const r = await runBcwi(ctx);
  heading(5, `Backward-compatible update: (1 − α)·${r.old} + α·${r.new}`, [
    `test on '${r.task}' (${r.count} examples); negative flips = examples ${r.old} got right and the update gets wrong.`,
  ]);
  print(
    table(
      [{ header: 'α' }, { header: 'model', left: true }, { header: 'accuracy' }, { header: 'NFR %' }, { header: 'neg. flips' }, { header: 'pos. flips' }],
      r.rows.map((row) => [
        row.alpha.toFixed(1),
        row.alpha === 0 ? r.old : row.alpha === 1 ? r.new : '',
        pct(row.accuracy),
        (row.negativeFlipRate * 100).toFixed(2),
        String(row.negativeFlips),
        String(row.positiveFlips),
      ]),
    ),
  );
}

async function dawin(ctx: DemoContext): Promise<void> {
  const r = await runDawin(ctx, { runner: dawinRunner });
  heading(6, `DaWin vs the best static interpolation between ${r.zeroShot} and each fine-tune`, [
    `static: (1 − α)·${r.zeroShot} + α·fine-tune, α picked on validation; DaWin: a per-sample α from the two`,
    `models' prediction entropies, grouped into ${DAWIN_COMPONENTS} Beta components (their α listed); test accuracy (%).`,
  ]);
  print(
    table(
      [{ header: 'task', left: true }, { header: r.zeroShot }, { header: 'fine-tune' }, { header: 'α' }, { header: 'static' }, { header: 'DaWin' }, { header: 'DaWin α', left: true }],
      r.rows.map((row) => [row.task, pct(row.zeroShot), pct(row.fineTunedAccuracy), row.staticAlpha.toFixed(1), pct(row.staticAccuracy), row.dawin === undefined ? '-' : pct(row.dawin), row.dawinDetail ?? '']),
    ),
  );
}

async function run(): Promise<void> {
  const t0 = performance.now();
  const tiny = process.env['WEIGHTKIT_DEMO_TINY'] === '1';
  const cacheDir = process.env['WEIGHTKIT_DEMO_CACHE'];
  console.log(`weightkit demo: merging, negating, interpolating and patching MNIST classifiers${tiny ? ' (tiny zoo)' : ''}`);
  const ctx = await openDemo({ tiny, ...(cacheDir ? { cacheDir } : {}), log: (l) => console.log(l.replaceAll(`${process.cwd()}/`, '')) });
  const zoo = ctx.zoo;
  const tz = (performance.now() - t0) / 1000;
  console.log(`zoo     ${rel(zoo.root!)}`);
  console.log(
    `        ${zoo.models.length} MLPs ${zoo.architecture.sizes.join('-')}, ${zoo.tasks.length} tasks` +
      ` (${zoo.build?.cached ? 'cached' : `built in ${tz.toFixed(1)} s`})`,
  );
  console.log(`outputs ${rel(ctx.out)} (replaced on every run)`);
  console.log('every model is evaluated through ONNX Runtime');
  if (tiny) console.log('tiny zoo: a smoke test, the numbers mean nothing');
  const experiments = [multiTask, negation, time, robustness, bcwi, dawin];
  for (const e of experiments) await e(ctx);
  const rep = await runReport(ctx);
  console.log(`\nanalysis report: ${rel(rep.path)} (task-vector cosines, sign conflicts, per-layer change, a map of all ${zoo.models.length} models; open it in a browser)`);
  const s = (performance.now() - t0) / 1000;
  console.log(`\ndone in ${s.toFixed(1)} s (${ctx.counts.merges} merges, ${ctx.counts.evaluations} evaluations)`);
}

try {
  await run();
} catch (e) {
  const err = e as Error & { code?: string; problems?: readonly Error[] };
  console.error(`demo failed: ${err.code ? `[${err.code}] ` : ''}${err.message}`);
  for (const p of err.problems ?? []) console.error(`  ${p.message}`);
  if (process.env['WEIGHTKIT_DEBUG'] && err.stack) console.error(err.stack);
  process.exitCode = 1;
}
