// `weightkit interpolate --from OLD --to NEW --alpha a | --alphas 0:1:0.1 --out OUT` (BCWI / WiSE-FT, optionally
// Fisher-weighted) and `weightkit soup M1 M2 ... --out OUT` (uniform model soup). Thin: parse, call the library,
// render; `soup --greedy --eval eval.yaml` grows a greedy soup scored through ONNX Runtime (mean task accuracy).

import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import { parseGrid } from '../../vectors/grid.js';
import { interpolateModels } from '../../vectors/interpolate.js';
import { greedySoup, uniformSoup, type GreedySoupResult, type SoupEvaluator } from '../../vectors/soup.js';
import { parseDTypeOption, parseSize } from '../args.js';
import type { CommandContext } from '../main.js';
import { streamProgress } from '../progress.js';
import { formatCount } from '../render.js';

function parseNumberOption(value: unknown, option: string): number {
  const s = String(value).trim();
  const n = Number(s);
  if (s === '' || !Number.isFinite(n)) throw new UsageError('USAGE', `--${option} expects a number (got '${s}')`);
  return n;
}

export function interpolateCommand(y: Argv, ctx: CommandContext): Argv {
  return y.command(
    'interpolate',
    'interpolate between an old and a new model: (1 - alpha)*from + alpha*to (BCWI, WiSE-FT), optionally Fisher-weighted',
    (b) =>
      b
        .option('from', { type: 'string', demandOption: true, describe: 'the old (deployed) model; also the layout donor' })
        .option('to', { type: 'string', demandOption: true, describe: 'the new model' })
        .option('alpha', { type: 'string', describe: 'one coefficient: 0 gives --from, 1 gives --to' })
        .option('alphas', { type: 'string', describe: 'a grid start:stop:step (0:1:0.1) or a list (0.2,0.5,0.8); one folder per alpha under --out' })
        .option('fisher-from', { type: 'string', describe: 'diagonal Fisher of --from (safetensors, same tensor names and shapes)' })
        .option('fisher-to', { type: 'string', describe: 'diagonal Fisher of --to' })
        .option('method', { type: 'string', choices: ['linear', 'slerp'], default: 'linear', describe: 'linear (WiSE-FT/BCWI) or slerp per tensor' })
        .option('fisher-floor', { type: 'string', describe: 'f_min: Fisher values below it count as it (default 1e-8)' })
        .option('out', { type: 'string', demandOption: true, describe: 'x.safetensors, a folder, or x.onnx (one alpha); a folder (several)' })
        .option('dtype', { type: 'string', describe: 'output float dtype bf16, f16 or f32 (default: that of --from)' })
        .option('allow-missing', { type: 'boolean', default: false, describe: 'keep tensors of --from that --to lacks unchanged' })
        .option('memory-budget', { type: 'string', describe: 'bytes of row-chunk buffers (default 256MiB)' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing output' })
        .option('json', { type: 'boolean', default: false, describe: 'print the result (and errors) as JSON' })
        .option('quiet', { type: 'boolean', default: false, describe: 'print nothing on success' })
        .example('weightkit interpolate --from old/ --to new/ --alpha 0.6 --out bcwi/', 'one interpolated model folder')
        .example('weightkit interpolate --from old/ --to new/ --alphas 0:1:0.1 --out sweep/', 'sweep/alpha-0.00 ... sweep/alpha-1.00 in one pass')
        .example('weightkit interpolate --from old/ --to new/ --alpha 0.5 --fisher-from f-old.safetensors --fisher-to f-new.safetensors --out fw/', 'Fisher-weighted'),
    async (argv) => {
      if ((argv.alpha === undefined) === (argv.alphas === undefined)) {
        throw new UsageError('USAGE', 'give exactly one of --alpha and --alphas');
      }
      const alphas = argv.alpha !== undefined ? [parseNumberOption(argv.alpha, 'alpha')] : parseGrid(String(argv.alphas), 'alphas');
      const dtype = argv.dtype === undefined ? undefined : parseDTypeOption(argv.dtype, 'dtype', ['BF16', 'F16', 'F32']);
      const fisherFloor = argv['fisher-floor'] === undefined ? undefined : parseNumberOption(argv['fisher-floor'], 'fisher-floor');
      const budgetBytes = argv['memory-budget'] === undefined ? undefined : parseSize(argv['memory-budget'], 'memory-budget');
      const { onProgress, signal, stop } = streamProgress(ctx.io, argv, 'interpolate');
      let r;
      try {
        r = await interpolateModels({
          from: String(argv.from),
          to: String(argv.to),
          alphas,
          out: String(argv.out),
          method: argv.method as 'linear' | 'slerp',
          ...(argv['fisher-from'] !== undefined ? { fisherFrom: String(argv['fisher-from']) } : {}),
          ...(argv['fisher-to'] !== undefined ? { fisherTo: String(argv['fisher-to']) } : {}),
          ...(fisherFloor !== undefined ? { fisherFloor } : {}),
          ...(dtype !== undefined ? { dtype } : {}),
          ...(budgetBytes !== undefined ? { budgetBytes } : {}),
          allowMissing: Boolean(argv['allow-missing']),
          overwrite: Boolean(argv.overwrite),
          onProgress,
          signal,
        });
      } finally {
        stop();
      }
      if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
      else if (!argv.quiet) {
        for (const w of r.warnings) ctx.io.stderr(`warning: ${w}\n`);
        const copied = r.skipped.length > 0 ? `, ${formatCount(r.skipped.length)} non-float copied from --from` : '';
        ctx.io.stdout(`interpolated ${formatCount(r.tensors)} tensors${copied}\n`);
        for (const o of r.outputs) ctx.io.stdout(`  alpha ${o.alpha} -> ${o.path}\n`);
      }
    },
  );
}

export function soupCommand(y: Argv, ctx: CommandContext): Argv {
  return y.command(
    'soup <models..>',
    'uniform model soup: the mean of models fine-tuned from the same initialisation; with --greedy --eval, the greedy ' +
      'soup (ingredients sorted by held-out score, each kept only if the score strictly increases)',
    (b) =>
      b
        .positional('models', { type: 'string', array: true, demandOption: true, describe: 'the ingredients (files or folders)' })
        .option('out', { type: 'string', demandOption: true, describe: 'x.safetensors, a folder, or x.onnx (patched from the first model)' })
        .option('dtype', { type: 'string', describe: 'output float dtype bf16, f16 or f32 (default: that of the first model)' })
        .option('memory-budget', { type: 'string', describe: 'bytes of row-chunk buffers (default 256MiB)' })
        .option('overwrite', { type: 'boolean', default: false, describe: 'replace an existing output' })
        .option('greedy', { type: 'boolean', default: false, describe: 'greedy soup: needs --eval' })
        .option('eval', { type: 'string', describe: 'eval.yaml: the score is the mean accuracy over its task datasets' })
        .option('json', { type: 'boolean', default: false, describe: 'print the result (and errors) as JSON' })
        .option('quiet', { type: 'boolean', default: false, describe: 'print nothing on success' })
        .example('weightkit soup ft-1/ ft-2/ ft-3/ --out soup/', 'average three fine-tunes')
        .example('weightkit soup ft-*/ --greedy --eval val.yaml --out soup/', 'greedy soup on held-out data'),
    async (argv) => {
      const models = (argv.models as unknown[]).map(String);
      if (models.length < 2) throw new UsageError('USAGE', `a soup needs at least two models (got ${models.length})`);
      const dtype = argv.dtype === undefined ? undefined : parseDTypeOption(argv.dtype, 'dtype', ['BF16', 'F16', 'F32']);
      const budgetBytes = argv['memory-budget'] === undefined ? undefined : parseSize(argv['memory-budget'], 'memory-budget');
      if (argv.greedy !== (argv.eval !== undefined)) throw new UsageError('USAGE', argv.greedy ? '--greedy needs --eval <eval.yaml>' : '--eval is used by --greedy only');
      if (argv.greedy) {
        await runGreedySoup(ctx, models, String(argv.eval), String(argv.out), { dtype, budgetBytes, overwrite: Boolean(argv.overwrite), json: Boolean(argv.json), quiet: Boolean(argv.quiet) });
        return;
      }
      const { onProgress, signal, stop } = streamProgress(ctx.io, argv, 'soup');
      let r;
      try {
        r = await uniformSoup({
          models,
          out: String(argv.out),
          ...(dtype !== undefined ? { dtype } : {}),
          ...(budgetBytes !== undefined ? { budgetBytes } : {}),
          overwrite: Boolean(argv.overwrite),
          onProgress,
          signal,
        });
      } finally {
        stop();
      }
      if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
      else if (!argv.quiet) ctx.io.stdout(`averaged ${formatCount(r.tensors)} tensors of ${models.length} models -> ${r.out}\n`);
    },
  );
}

async function runGreedySoup(
  ctx: CommandContext,
  models: string[],
  evalPath: string,
  out: string,
  o: { dtype: ReturnType<typeof parseDTypeOption> | undefined; budgetBytes: number | undefined; overwrite: boolean; json: boolean; quiet: boolean },
): Promise<void> {
  // the evaluation stack (ONNX Runtime, the ONNX schema) is loaded by the commands that use it
  const { loadEvalConfig, onnxScorer } = await import('../../eval/eval-config.js');
  const config = await loadEvalConfig(evalPath);
  const tasks = config.datasets.filter((d) => d.role === 'task').map((d) => d.name);
  const { signal, stop } = streamProgress(ctx.io, { quiet: true }, 'soup');
  const scorer = onnxScorer(config, { signal });
  let index = 0;
  const evaluator: SoupEvaluator = {
    async evaluate(model) {
      const s = await scorer.score(model, { index: index++, values: {} });
      return tasks.reduce((a, t) => a + s[t]!, 0) / tasks.length;
    },
  };
  let r: GreedySoupResult;
  try {
    r = await greedySoup(models, evaluator, {
      out,
      overwrite: o.overwrite,
      signal,
      ...(o.dtype !== undefined ? { dtype: o.dtype } : {}),
      ...(o.budgetBytes !== undefined ? { budgetBytes: o.budgetBytes } : {}),
    });
  } finally {
    stop();
    await scorer.close();
  }
  if (o.json) {
    ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
    return;
  }
  if (o.quiet) return;
  const pctOf = (v: number): string => `${(v * 100).toFixed(2)}%`;
  let s = 'ingredients (held-out score)\n';
  for (const i of r.individual) s += `  ${pctOf(i.score)}  ${i.model}\n`;
  s += 'greedy steps\n';
  for (const [k, st] of r.steps.entries()) {
    s += `  ${k === 0 ? 'start ' : st.accepted ? 'accept' : 'reject'} ${st.candidate}: ${pctOf(st.score)}${k > 0 ? ` (soup of ${st.members.length})` : ''}\n`;
  }
  s += `soup of ${r.members.length}/${models.length} models, held-out ${pctOf(r.score)} -> ${out}\n`;
  ctx.io.stdout(s);
}
