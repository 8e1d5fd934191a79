// `weightkit vector <extract|info|combine|apply|remove|interpolate|analogy|signature>`: task, time and robustness
// vectors as stored objects. Every subcommand calls the library function of the same name in src/vectors.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { makeDirs } from '../../io/file.js';
import type { Argv } from 'yargs';
import { PlanError, UsageError } from '../../errors.js';
import { sinkKindOf } from '../../io/sink.js';
import type { DType } from '../../tensor/dtype.js';
import { applyVectorPath, applyVectors, removeVectors, type PathPoint, type VectorTerm } from '../../vectors/apply.js';
import { combineVectors } from '../../vectors/combine.js';
import { parseTerm } from '../../vectors/expression.js';
import { extractVector, VECTOR_DTYPES } from '../../vectors/extract.js';
import { VECTOR_KINDS, type VectorKind } from '../../vectors/format.js';
import { formatAlpha, parseGrid } from '../../vectors/grid.js';
import { parseQuantizeSpec } from '../../vectors/quantize.js';
import { openVector } from '../../vectors/reader.js';
import { signatureWeights } from '../../vectors/signature.js';
import { parseDTypeOption } from '../args.js';
import type { CommandContext } from '../main.js';
import { streamProgress } from '../progress.js';
import { formatBytes, formatCount, table } from '../render.js';
import { signatureCommand } from './vector-signature.js';

/** The paper's sweep grids for the time-vector analogy (Nylund et al.): α1, α2 in 0.1..0.6, α3 in 0.6..2.2. */
export const TIME_ANALOGY_GRIDS = { alpha1: '0.1:0.6:0.1', alpha2: '0.1:0.6:0.1', alpha3: '0.6:2.2:0.2' } as const;

function list(v: unknown): string[] {
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).map(String);
}

function num(v: unknown, option: string): number {
  const n = Number(v);
  if (v === undefined || v === '' || !Number.isFinite(n)) throw new UsageError('USAGE', `--${option} must be a number (got '${String(v)}')`);
  return n;
}

function progressFor(ctx: CommandContext, argv: { quiet?: unknown; json?: unknown }, title: string): ReturnType<typeof streamProgress> {
  return streamProgress(ctx.io, argv, title);
}

/** Scales for the given vectors: one per vector, one broadcast, or the default; `mean` divides by the count. */
export function resolveScales(count: number, raw: string[], compose: string | undefined, allSignatures: boolean): number[] {
  const values = raw.map((s) => num(s, 'scale'));
  if (values.length > 1 && values.length !== count) {
    throw new UsageError('USAGE', `give one --scale, or one per --vector (${count}); got ${values.length}`);
  }
  const mode = compose ?? (allSignatures && count > 1 ? 'mean' : 'sum');
  if (mode !== 'mean' && mode !== 'sum') throw new UsageError('USAGE', `--compose must be mean or sum (got '${mode}')`);
  if (values.length === count && count > 1) return mode === 'mean' ? values.map((v) => v / count) : values;
  const alpha = values[0] ?? 1;
  return mode === 'mean' ? signatureWeights(count, alpha) : new Array<number>(count).fill(alpha);
}

async function vectorTerms(paths: string[], scales: string[], compose: string | undefined): Promise<VectorTerm[]> {
  if (paths.length === 0) throw new UsageError('USAGE', 'give at least one --vector');
  let allSignatures = true;
  for (const p of paths) {
    const v = await openVector(p);
    allSignatures &&= v.meta.kind === 'signature';
    await v.close();
  }
  const s = resolveScales(paths.length, scales, compose, allSignatures);
  return paths.map((path, k) => ({ path, scale: s[k]! }));
}

/** Prepare the folder holding one output per grid point; returns the path of each point's output. */
async function pointOutputs(out: string, base: string, labels: string[], overwrite: boolean): Promise<string[]> {
  if (sinkKindOf(out) !== 'folder') throw new UsageError('USAGE', `several outputs need --out to be a folder (got ${out})`);
  // two points with one label would write one output twice: refused before anything is written
  const seen = new Set<string>();
  for (const l of labels) {
    if (seen.has(l)) throw new UsageError('USAGE', `two points would both be written to ${l} (a coefficient given twice?)`);
    seen.add(l);
  }
  try {
    const existing = await readdir(out);
    if (existing.length > 0 && !overwrite) {
      throw new PlanError('OUT_EXISTS', `output folder ${out} is not empty (pass --overwrite to replace its contents)`, { where: { file: out } });
    }
  } catch (e) {
    if ((e as { code?: string }).code !== 'ENOENT') throw e;
  }
  await makeDirs(out);
  const ext = base.endsWith('.onnx') ? '.onnx' : base.endsWith('.safetensors') ? '.safetensors' : '';
  return labels.map((l) => join(out, l + ext));
}

function dtypeOf(v: unknown): DType | undefined {
  return v === undefined ? undefined : parseDTypeOption(v, 'dtype', VECTOR_DTYPES);
}

type PathArgv = { dtype?: unknown; force?: unknown; overwrite?: unknown; json?: unknown; quiet?: unknown };

/** Write base + Σ scales·vectors for every point (one pass), then print warnings and the outputs table. */
async function runPath(ctx: CommandContext, argv: PathArgv, title: string, base: string, vectors: string[], points: PathPoint[], columns: string[]): Promise<void> {
  const p = progressFor(ctx, argv, title);
  const r = await applyVectorPath({
    base,
    vectors,
    points,
    ...(argv.dtype !== undefined ? { dtype: dtypeOf(argv.dtype) } : {}),
    force: Boolean(argv.force),
    overwrite: Boolean(argv.overwrite),
    onProgress: p.onProgress,
    signal: p.signal,
  }).finally(() => p.stop());
  for (const w of r.warnings) ctx.io.stderr(`warning: ${w}\n`);
  if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
  else if (!argv.quiet) ctx.io.stdout(pathLines(r.outputs, columns));
}

function pathLines(outputs: Array<{ out: string; scales: number[] }>, names: string[]): string {
  return table([['  output', ...names.map((n) => `  ${n}`)], ...outputs.map((o) => [`  ${o.out}`, ...o.scales.map((s) => `  ${s}`)])]);
}

export function vectorCommands(y: Argv, ctx: CommandContext): Argv {
  return y.command('vector', 'task, time and robustness vectors: extract, combine, apply, remove, interpolate, signatures', (v) => {
    v.command(
      'extract',
      'store V = finetuned - base (every float tensor both hold) as a vector file',
      (b) =>
        b
          .option('base', { type: 'string', demandOption: true, describe: 'the base checkpoint (file, folder or .onnx)' })
          .option('finetuned', { type: 'string', demandOption: true, describe: 'the fine-tuned checkpoint' })
          .option('out', { type: 'string', demandOption: true, describe: 'the vector file (.safetensors)' })
          .option('kind', { type: 'string', choices: [...VECTOR_KINDS], default: 'task', describe: 'what the vector is' })
          .option('label', { type: 'string', describe: 'a label, e.g. the period of a time vector (2016, 2016-03)' })
          .option('dtype', { type: 'string', describe: 'storage dtype: f32 (default, exact for bf16/f16 models), bf16, f16' })
          .option('density', { type: 'number', describe: 'keep only this fraction of largest-magnitude entries per tensor (stored sparse)' })
          .option('quantize', { type: 'string', describe: 'linear[:N] or log[:N]: N-level quantisation (default N 256)' })
          .option('allow-missing', { type: 'boolean', default: false, describe: 'leave out tensors present on one side only' })
          .option('overwrite', { type: 'boolean', default: false })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false })
          .example('weightkit vector extract --base ./base --finetuned ./math --out math.safetensors', 'a task vector')
          .example('weightkit vector extract --base B --finetuned F2016 --kind time --label 2016 --out t2016.safetensors', 'a time vector'),
      async (argv) => {
        const p = progressFor(ctx, argv, 'extract');
        try {
          const r = await extractVector({
            base: String(argv.base),
            finetuned: String(argv.finetuned),
            out: String(argv.out),
            kind: argv.kind as VectorKind,
            ...(argv.label !== undefined ? { label: String(argv.label) } : {}),
            ...(argv.dtype !== undefined ? { dtype: dtypeOf(argv.dtype) } : {}),
            ...(argv.density !== undefined ? { density: num(argv.density, 'density') } : {}),
            ...(argv.quantize !== undefined ? { quantize: parseQuantizeSpec(String(argv.quantize)) } : {}),
            allowMissing: Boolean(argv['allow-missing']),
            overwrite: Boolean(argv.overwrite),
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
          else if (!argv.quiet) {
            const rows: string[][] = [
              ['vector', r.out],
              ['tensors', formatCount(r.tensors)],
              ['stored', `${formatBytes(r.storedBytes)} (${(r.denseF32Bytes / Math.max(1, r.storedBytes)).toFixed(2)}x smaller than dense f32)`],
            ];
            if (r.quantization) rows.push(['quantisation error', `relative L2 ${r.quantization.relL2.toExponential(3)}, max abs ${r.quantization.maxAbs.toExponential(3)}`]);
            if (r.skipped.length > 0) rows.push(['skipped (not float)', r.skipped.join(', ')]);
            if (r.missing.length > 0) rows.push(['left out (one side only)', r.missing.join(', ')]);
            ctx.io.stdout(table(rows));
          }
        } finally {
          p.stop();
        }
      },
    );
    v.command(
      'info <vector>',
      'what a vector file holds: kind, label, base fingerprint, sources, encodings, tensors',
      (b) => b.positional('vector', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
      async (argv) => {
        const r = await openVector(String(argv.vector));
        try {
          const tensors = r.tensors();
          const params = tensors.reduce((a, t) => a + t.numel, 0);
          const encs = Object.values(r.meta.encodings ?? {});
          const report = { path: r.path, ...r.meta, tensors: tensors.length, parameters: params, encoded: encs.length };
          if (argv.json) {
            ctx.io.stdout(JSON.stringify(report, null, 2) + '\n');
            return;
          }
          const rows: string[][] = [
            ['vector', r.path],
            ['kind', r.meta.kind + (r.meta.label !== undefined ? ` (label ${r.meta.label})` : '')],
            ['base fingerprint', r.meta.baseFingerprint],
            ['tensors', `${formatCount(tensors.length)} (${formatCount(params)} values)`],
          ];
          if (r.meta.base !== undefined) rows.push(['base', r.meta.base]);
          if (r.meta.finetuned !== undefined) rows.push(['fine-tuned', r.meta.finetuned]);
          if (r.meta.expression !== undefined) rows.push(['expression', r.meta.expression]);
          if (encs.length > 0) rows.push(['encoding', [...new Set(encs.map((e) => (e.enc === 'sparse' ? `sparse (density ${e.density})` : `${e.enc} ${e.levels} levels`)))].join(', ')]);
          if (r.meta.skipped?.length) rows.push(['skipped (kept from base)', r.meta.skipped.join(', ')]);
          ctx.io.stdout(table(rows));
        } finally {
          await r.close();
        }
      },
    );
    v.command(
      'combine [expression]',
      'a linear combination of vectors: an expression (0.5*a.safetensors + 0.5*b.safetensors - c.safetensors) or --term COEF:PATH',
      (b) =>
        b
          .positional('expression', { type: 'string', describe: "e.g. 'c.st + (b.st - a.st)'; spaces around binary minus" })
          .option('term', { type: 'string', array: true, describe: 'COEF:PATH (repeatable), instead of an expression' })
          .option('name', { type: 'string', array: true, describe: 'NAME=PATH: a name usable in the expression (repeatable)' })
          .option('out', { type: 'string', demandOption: true, describe: 'the vector file (.safetensors)' })
          .option('dtype', { type: 'string', describe: 'storage dtype: f32 (default), bf16, f16' })
          .option('kind', { type: 'string', choices: [...VECTOR_KINDS], describe: "default: the inputs' kind if they agree, else combination" })
          .option('label', { type: 'string' })
          .option('force', { type: 'boolean', default: false, describe: 'combine vectors made on different bases' })
          .option('allow-missing', { type: 'boolean', default: false, describe: 'a tensor missing from a vector counts as zero there' })
          .option('overwrite', { type: 'boolean', default: false })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false })
          .example("weightkit vector combine '0.5*math.st + 0.5*code.st' --out mc.safetensors", 'average two task vectors')
          .example('weightkit vector combine --term 1:c.st --term 1:b.st --term -1:a.st --out d.safetensors', 'an analogy c + (b - a)'),
      async (argv) => {
        const names: Record<string, string> = {};
        for (const n of list(argv.name)) {
          const at = n.indexOf('=');
          if (at <= 0) throw new UsageError('USAGE', `--name expects NAME=PATH (got '${n}')`);
          names[n.slice(0, at)] = n.slice(at + 1);
        }
        const terms = list(argv.term).map(parseTerm);
        if ((argv.expression === undefined) === (terms.length === 0)) throw new UsageError('USAGE', 'give an expression or --term COEF:PATH options (not both)');
        const p = progressFor(ctx, argv, 'combine');
        const r = await combineVectors({
          onProgress: p.onProgress,
          signal: p.signal,
          ...(argv.expression !== undefined ? { expression: String(argv.expression) } : { terms }),
          names,
          out: String(argv.out),
          ...(argv.dtype !== undefined ? { dtype: dtypeOf(argv.dtype) } : {}),
          ...(argv.kind !== undefined ? { kind: argv.kind as VectorKind } : {}),
          ...(argv.label !== undefined ? { label: String(argv.label) } : {}),
          force: Boolean(argv.force),
          allowMissing: Boolean(argv['allow-missing']),
          overwrite: Boolean(argv.overwrite),
        }).finally(() => p.stop());
        for (const w of r.warnings) ctx.io.stderr(`warning: ${w}\n`);
        if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
        else if (!argv.quiet) ctx.io.stdout(`${r.expression} -> ${r.out} (${formatCount(r.tensors)} tensors)\n`);
      },
    );
    const applyOptions = (b: Argv, modelOption: string, modelDescribe: string): Argv =>
      b
        .option(modelOption, { type: 'string', demandOption: true, describe: modelDescribe })
        .option('vector', { type: 'string', array: true, demandOption: true, describe: 'a vector file (repeatable)' })
        .option('scale', { type: 'string', array: true, describe: 'one scale for all vectors, or one per --vector (default 1)' })
        .option('compose', { type: 'string', describe: 'sum (default) or mean (scale/count each; default for several signatures)' })
        .option('out', { type: 'string', demandOption: true, describe: '.safetensors file, model folder, or .onnx when the model is ONNX' })
        .option('overwrite', { type: 'boolean', default: false })
        .option('json', { type: 'boolean', default: false })
        .option('quiet', { type: 'boolean', default: false });
    v.command(
      'apply',
      'write base + s*V (several vectors: their weighted sum), with an undo record for exact removal',
      (b) =>
        applyOptions(b, 'base', 'the model to patch')
          .option('dtype', { type: 'string', describe: 'output dtype of float tensors (default: the base\'s; exact removal needs it)' })
          .option('force', { type: 'boolean', default: false, describe: 'apply vectors made on another base' })
          .option('undo', { type: 'boolean', default: true, describe: 'write the undo record (--no-undo to skip)' })
          .example('weightkit vector apply --base ./base --vector math.st --scale 0.8 --out ./math-0.8', 'task arithmetic with one vector')
          .example('weightkit vector apply --base ./clean --vector fog.st --vector snow.st --out ./robust', 'compose two signatures (mean)'),
      async (argv) => {
        const vectors = await vectorTerms(list(argv.vector), list(argv.scale), argv.compose as string | undefined);
        const p = progressFor(ctx, argv as { quiet?: unknown; json?: unknown }, 'apply');
        try {
          const r = await applyVectors({
            base: String(argv.base),
            vectors,
            out: String(argv.out),
            ...(argv.dtype !== undefined ? { dtype: dtypeOf(argv.dtype) } : {}),
            force: Boolean(argv.force),
            undo: Boolean(argv.undo),
            overwrite: Boolean(argv.overwrite),
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          for (const w of r.warnings) ctx.io.stderr(`warning: ${w}\n`);
          if (argv.json) ctx.io.stdout(JSON.stringify({ ...r, vectors }, null, 2) + '\n');
          else if (!argv.quiet) {
            const what = vectors.map((t) => `${t.scale}*${t.path}`).join(' + ');
            const undo = r.undo ? `; undo record ${r.undo.path} (${formatCount(r.undo.entries)} corrections)` : '';
            ctx.io.stdout(`patched ${formatCount(r.patched)} of ${formatCount(r.tensors)} tensors with ${what} -> ${r.out}${undo}\n`);
          }
        } finally {
          p.stop();
        }
      },
    );
    v.command(
      'remove',
      'subtract vectors again: byte-exact when the model has the undo record of the same vectors and scales',
      (b) =>
        applyOptions(b, 'model', 'a model written by `vector apply`').option('exact', {
          type: 'boolean',
          default: false,
          describe: 'fail unless the undo record matches (default: fall back to plain subtraction with a warning)',
        }),
      async (argv) => {
        const vectors = await vectorTerms(list(argv.vector), list(argv.scale), argv.compose as string | undefined);
        const p = progressFor(ctx, argv as { quiet?: unknown; json?: unknown }, 'remove');
        const r = await removeVectors({
          model: String(argv.model),
          vectors,
          out: String(argv.out),
          exact: Boolean(argv.exact),
          overwrite: Boolean(argv.overwrite),
          onProgress: p.onProgress,
          signal: p.signal,
        }).finally(() => p.stop());
        for (const w of r.warnings) ctx.io.stderr(`warning: ${w}\n`);
        if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
        else if (!argv.quiet) ctx.io.stdout(`removed ${vectors.length} vector(s) -> ${r.out} (${r.exact ? 'byte-exact, base fingerprint verified' : 'not byte-exact'})\n`);
      },
    );
    v.command(
      'interpolate',
      'time vectors: base + a*tau_from + (1-a)*tau_to, for one alpha or a whole path (--alphas 0:1:0.1)',
      (b) =>
        b
          .option('base', { type: 'string', demandOption: true })
          .option('from', { type: 'string', demandOption: true, describe: 'vector of the start period' })
          .option('to', { type: 'string', demandOption: true, describe: 'vector of the end period' })
          .option('alpha', { type: 'number', describe: 'one coefficient' })
          .option('alphas', { type: 'string', describe: 'a grid: start:stop:step or a comma list (one output each, one pass)' })
          .option('out', { type: 'string', demandOption: true, describe: 'the model (one alpha) or a folder of alpha-X outputs' })
          .option('dtype', { type: 'string' })
          .option('force', { type: 'boolean', default: false })
          .option('overwrite', { type: 'boolean', default: false })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false })
          .example('weightkit vector interpolate --base B --from t2012.st --to t2016.st --alphas 0:1:0.1 --out path/', 'the whole path'),
      async (argv) => {
        if ((argv.alpha === undefined) === (argv.alphas === undefined)) throw new UsageError('USAGE', 'give --alpha or --alphas (one of them)');
        const alphas = argv.alpha !== undefined ? [num(argv.alpha, 'alpha')] : parseGrid(String(argv.alphas), 'alphas');
        const base = String(argv.base);
        const outs = argv.alpha !== undefined ? [String(argv.out)] : await pointOutputs(String(argv.out), base, alphas.map(formatAlpha), Boolean(argv.overwrite));
        const points = alphas.map((a, k) => ({ out: outs[k]!, scales: [a, 1 - a] }));
        await runPath(ctx, argv, 'interpolate', base, [String(argv.from), String(argv.to)], points, ['alpha*from', '(1-alpha)*to']);
      },
    );
    v.command(
      'analogy',
      'time-vector analogy for a future period: base + a3*task(y0) + (a2*lm(y) - a1*lm(y0)); grids default to the paper\'s',
      (b) =>
        b
          .option('base', { type: 'string', demandOption: true })
          .option('task', { type: 'string', demandOption: true, describe: 'task vector at the start period y0' })
          .option('lm-target', { type: 'string', demandOption: true, describe: 'unlabelled-text (LM) vector of the target period y' })
          .option('lm-start', { type: 'string', demandOption: true, describe: 'LM vector of the start period y0' })
          .option('alpha1', { type: 'string', default: TIME_ANALOGY_GRIDS.alpha1, describe: 'coefficient(s) of -lm(y0)' })
          .option('alpha2', { type: 'string', default: TIME_ANALOGY_GRIDS.alpha2, describe: 'coefficient(s) of lm(y)' })
          .option('alpha3', { type: 'string', default: TIME_ANALOGY_GRIDS.alpha3, describe: 'coefficient(s) of task(y0)' })
          .option('out', { type: 'string', demandOption: true, describe: 'the model (one point) or a folder of outputs' })
          .option('dtype', { type: 'string' })
          .option('force', { type: 'boolean', default: false })
          .option('overwrite', { type: 'boolean', default: false })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false }),
      async (argv) => {
        const a1 = parseGrid(String(argv.alpha1), 'alpha1');
        const a2 = parseGrid(String(argv.alpha2), 'alpha2');
        const a3 = parseGrid(String(argv.alpha3), 'alpha3');
        const combos: Array<[number, number, number]> = [];
        for (const x of a1) for (const y of a2) for (const z of a3) combos.push([x, y, z]);
        const base = String(argv.base);
        const labels = combos.map(([x, y, z]) => `${formatAlpha(x).replace('alpha', 'a1')}_${formatAlpha(y).replace('alpha', 'a2')}_${formatAlpha(z).replace('alpha', 'a3')}`);
        const outs = combos.length === 1 ? [String(argv.out)] : await pointOutputs(String(argv.out), base, labels, Boolean(argv.overwrite));
        const points = combos.map(([x, y, z], k) => ({ out: outs[k]!, scales: [z, y, -x] }));
        const vectors = [String(argv.task), String(argv['lm-target']), String(argv['lm-start'])];
        await runPath(ctx, argv, 'analogy', base, vectors, points, ['a3 (task)', 'a2 (lm y)', '-a1 (lm y0)']);
      },
    );
    signatureCommand(v, ctx);
    return v.demandCommand(1, 'name a vector subcommand (see weightkit vector --help)');
  });
}
