// Script entry for `npm start` (in src/cli, so it may print): generates the demo family under .cache/demo if
// needed, runs recipes/demo-{ties,dare-ties,slerp}.yaml through merge() into .cache/demo/out/<name>, and prints
// what each merge did, measured from the written files. Generation and analysis live in family.ts / report.ts.

import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { merge } from '../plan/merge.js';
import type { MergePlan } from '../plan/plan.js';
import type { ParamValue } from '../recipe/spec.js';
import { ensureDemoFamily, type DemoFamily } from '../demo/family.js';
import { compareWithFamily, planParamByBlock, type BlockStats } from '../demo/report.js';

/** The repository root: this file is src/cli/demo.ts (tsx) or dist/cli/demo.js (compiled). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const FAMILY_DIR = join(ROOT, '.cache', 'demo');
const RECIPES = ['demo-ties', 'demo-dare-ties', 'demo-slerp'];

const rel = (p: string): string => relative(process.cwd(), p) || '.';
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
const num = (x: number): string => x.toFixed(2);

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB`;
}

function fmtParam(v: ParamValue | undefined): string {
  if (v === undefined) return '-';
  return typeof v === 'number' ? String(Number(v.toFixed(3))) : String(v);
}

/** Parameters whose value differs between report blocks (gradients, filters), as extra table columns. */
function varyingParams(plan: MergePlan, modelNames: readonly string[]): { label: string; values: Map<string, ParamValue | undefined> }[] {
  const cols: { label: string; values: Map<string, ParamValue | undefined> }[] = [];
  const first = plan.tensors[0];
  if (!first) return cols;
  const varies = (m: Map<string, ParamValue | undefined>): boolean => new Set(m.values()).size > 1;
  for (const p of Object.keys(first.params)) {
    const v = planParamByBlock(plan, p);
    if (varies(v)) cols.push({ label: p, values: v });
  }
  for (const [k, mp] of first.modelParams.entries()) {
    for (const p of Object.keys(mp)) {
      const v = planParamByBlock(plan, p, k);
      if (varies(v)) cols.push({ label: `${p}[${modelNames[k] ?? k}]`, values: v });
    }
  }
  return cols;
}

function modelName(family: DemoFamily, path: string): string {
  const all = [family.base, ...family.fineTunes];
  return all.find((m) => resolve(m.path) === resolve(path))?.name ?? rel(path);
}

const short = (name: string): string => name.replace(/^ft-/, '');

/** One row per block: distances (as % of |B|), kept shares, and the parameters that vary; two header lines. */
function table(rows: readonly BlockStats[], extra: ReturnType<typeof varyingParams>): string[] {
  const names = rows[0]?.models.map((m) => short(m.name)) ?? [];
  const groups: { label: string; cols: string[] }[] = [
    { label: '', cols: ['block'] },
    { label: 'distance, % of |B|', cols: ['base', ...names] },
    { label: 'kept share of X-B', cols: names },
    { label: '', cols: ['=base'] },
    ...(extra.length > 0 ? [{ label: 'varying parameters', cols: extra.map((c) => c.label.replace(/\[ft-/, '[')) }] : []),
  ];
  const head = groups.flatMap((g) => g.cols);
  const body = rows.map((r) => [
    r.block,
    pct(r.moved),
    ...r.models.map((m) => pct(m.distance)),
    ...r.models.map((m) => num(m.kept)),
    pct(r.equalToBase),
    ...extra.map((c) => (r.block === 'matrices' ? '' : fmtParam(c.values.get(r.block)))),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const GAP = '  ';
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(GAP).trimEnd();
  // group labels start above the group's first column; a group is separated from the next by a wider gap
  let top = '';
  let col = 0;
  for (const g of groups) {
    const at = widths.slice(0, col).reduce((a, w) => a + w + GAP.length, 0);
    top = top.padEnd(at) + g.label;
    col += g.cols.length;
  }
  return [top.trimEnd(), line(head), ...body.map(line)];
}

async function run(): Promise<void> {
  const t0 = performance.now();
  const family = await ensureDemoFamily(FAMILY_DIR);
  const tg = (performance.now() - t0) / 1000;
  const s = family.spec.shape;
  console.log('weightkit demo: three merges of a small Llama-shaped model family\n');
  console.log(
    `family  ${rel(family.dir)}  (${family.generated ? `generated in ${tg.toFixed(2)} s` : 'cached'}; ` +
      `vocab ${s.vocab}, hidden ${s.hidden}, intermediate ${s.intermediate}, ${s.layers} layers, BF16, ${mb(family.byteLength)} in total)`,
  );
  console.log(`  base      ${family.base.description}`);
  for (const ft of family.fineTunes) console.log(`  ${ft.name.padEnd(9)} = base + a seeded task delta that ${ft.description}`);
  console.log(
    '\nPer block of the network, measured from the written files (M = merged, B = base, X = a fine-tune):\n' +
      '  distance  |M-B| and |M-X| relative to |B|: which model the merge is closest to\n' +
      '  kept      <M-B, X-B> / |X-B|^2: 1 = all of X\'s change kept, 0 = none of it\n' +
      '  =base     share of entries exactly equal to the base (what TIES/DARE trimming leaves untouched)\n' +
      '  varying   parameters that differ between blocks (gradients, filters), as the plan resolved them',
  );
  const fineTunes = family.fineTunes.map((f) => ({ name: f.name, path: f.path }));
  for (const name of RECIPES) {
    const recipe = join(ROOT, 'recipes', `${name}.yaml`);
    const out = join(FAMILY_DIR, 'out', name);
    const result = await merge(recipe, { out, overwrite: true });
    for (const plan of result.plans) {
      const inputs = plan.tensors[0]?.inputs.map((i) => modelName(family, plan.models[i.model]!.path)) ?? [];
      const base = plan.base === undefined ? undefined : modelName(family, plan.models[plan.base]!.path);
      console.log(`\n== ${name}  (${rel(recipe)})`);
      console.log(`method  ${plan.method}${plan.method.includes('dare') ? ` (seed ${plan.seed})` : ''}; base ${base ?? '-'}; models ${inputs.join(', ')}`);
      console.log(
        `wrote   ${plan.tensors.length} tensors, ${mb(result.bytesWritten)} in ${result.seconds.toFixed(2)} s -> ${rel(out)}` +
          ` (${result.files.length} files; plan's peak-memory estimate ${mb(plan.memory.peakBytes)})`,
      );
      for (const w of result.warnings) console.log(`warning ${w}`);
      const cmp = await compareWithFamily(out, family.base.path, fineTunes);
      for (const l of table([...cmp.blocks, cmp.total], varyingParams(plan, inputs))) console.log(`  ${l}`);
    }
  }
  console.log(`\ndone in ${((performance.now() - t0) / 1000).toFixed(1)} s; merged models are in ${rel(join(FAMILY_DIR, 'out'))}`);
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
