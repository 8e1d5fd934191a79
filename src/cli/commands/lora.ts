// `weightkit lora <extract|to-vector|info>`: LoRA adapters out of and into weightkit. Each subcommand calls the
// library function in src/vectors/lora*.ts; extract gets the ONNX Runtime matmul backend for its large SVDs.

import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import type { DType } from '../../tensor/dtype.js';
import type { MatMulBackend } from '../../tensor/linalg/index.js';
import { VECTOR_DTYPES } from '../../vectors/extract.js';
import { extractLora } from '../../vectors/lora-extract.js';
import { loraToVector, openLoraAdapter } from '../../vectors/lora.js';
import { parseDTypeOption } from '../args.js';
import type { CommandContext } from '../main.js';
import { streamProgress } from '../progress.js';
import { formatCount, table } from '../render.js';

function dtypeOf(v: unknown): DType | undefined {
  return v === undefined ? undefined : parseDTypeOption(v, 'dtype', VECTOR_DTYPES);
}

/** The ORT backend for big products (loaded lazily: `lora info` and `to-vector` never load onnxruntime). */
async function ortBackend(): Promise<{ backend: MatMulBackend; dispose: () => Promise<void> }> {
  const { createOrtMatMul } = await import('../../eval/ort-matmul.js');
  const b = await createOrtMatMul();
  return { backend: b, dispose: () => b.dispose() };
}

export function loraCommands(y: Argv, ctx: CommandContext): Argv {
  return y.command('lora', 'LoRA adapters: extract one from a fine-tune, turn one into a task vector, describe one', (l) => {
    l.command(
      'extract',
      'a PEFT LoRA adapter approximating finetuned - base (truncated SVD of every 2-D weight delta)',
      (b) =>
        b
          .option('base', { type: 'string', demandOption: true, describe: 'the base checkpoint' })
          .option('finetuned', { type: 'string', demandOption: true, describe: 'the fine-tuned checkpoint' })
          .option('out', { type: 'string', demandOption: true, describe: 'the adapter folder to write' })
          .option('rank', { type: 'number', alias: 'max-rank', default: 128, describe: 'largest rank kept per module (mergekit\'s --max-rank)' })
          .option('sv-epsilon', { type: 'number', default: 0, describe: 'drop singular values below this fraction of the module\'s largest (ranks then differ: rank_pattern)' })
          .option('dtype', { type: 'string', describe: 'factor dtype: f32 (default), bf16, f16' })
          .option('embed-lora', { type: 'boolean', default: false, describe: 'input embeddings as lora_embedding_A/B instead of full weights in modules_to_save' })
          .option('save-module', { type: 'string', array: true, describe: 'a module saved at full weight (modules_to_save); repeatable' })
          .option('include', { type: 'string', array: true, alias: ['i', 'include-regex'], describe: 'extract only modules whose name matches this regular expression (searched, as Python re.search); repeatable' })
          .option('exclude', { type: 'string', array: true, alias: ['e', 'exclude-regex'], describe: 'leave out modules whose name matches this regular expression; repeatable' })
          .option('distribute-scale', { type: 'boolean', default: true, describe: 'B = U·√S and A = √S·Vᵀ; --no-distribute-scale: B = U, A = S·Vᵀ' })
          .option('skip-undecomposable', { type: 'boolean', default: false, describe: 'leave out changed modules a LoRA cannot hold (norms) instead of saving them whole in modules_to_save' })
          .option('svd', { type: 'string', choices: ['auto', 'exact', 'randomized'], default: 'auto', describe: 'exact Jacobi SVD, randomized (Halko), or auto by size' })
          .option('backend', { type: 'string', choices: ['ort', 'js'], default: 'ort', describe: 'where large products run' })
          .option('base-name', { type: 'string', describe: 'base_model_name_or_path for the config (default: --base)' })
          .option('overwrite', { type: 'boolean', default: false })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false })
          .example('weightkit lora extract --base ./base --finetuned ./chat --out ./chat-lora --rank 64', 'a rank-64 adapter'),
      async (argv) => {
        const rank = Number(argv.rank);
        const eps = Number(argv['sv-epsilon']);
        if (!Number.isSafeInteger(rank) || rank < 1) throw new UsageError('USAGE', `--rank must be a positive integer (got '${String(argv.rank)}')`);
        if (!Number.isFinite(eps)) throw new UsageError('USAGE', `--sv-epsilon must be a number (got '${String(argv['sv-epsilon'])}')`);
        const be = argv.backend === 'js' ? undefined : await ortBackend();
        const p = streamProgress(ctx.io, argv, 'lora extract');
        const t0 = performance.now();
        try {
          const r = await extractLora({
            base: String(argv.base),
            finetuned: String(argv.finetuned),
            out: String(argv.out),
            rank,
            svEpsilon: eps,
            ...(argv.dtype !== undefined ? { dtype: dtypeOf(argv.dtype) } : {}),
            embedLora: Boolean(argv['embed-lora']),
            saveModules: ((argv['save-module'] as string[] | undefined) ?? []).map(String),
            include: ((argv.include as string[] | undefined) ?? []).map(String),
            exclude: ((argv.exclude as string[] | undefined) ?? []).map(String),
            distributeScale: argv['distribute-scale'] !== false,
            skipUndecomposable: Boolean(argv['skip-undecomposable']),
            svd: argv.svd as 'auto' | 'exact' | 'randomized',
            ...(be ? { backend: be.backend } : {}),
            ...(argv['base-name'] !== undefined ? { baseModelName: String(argv['base-name']) } : {}),
            overwrite: Boolean(argv.overwrite),
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          const seconds = (performance.now() - t0) / 1000;
          if (argv.json) {
            ctx.io.stdout(JSON.stringify({ ...r, seconds }, null, 2) + '\n');
            return;
          }
          if (argv.quiet) return;
          const shown = r.modules.filter((m) => m.kind !== 'zero');
          const rows: string[][] = [['  tensor', 'kind', 'shape', 'rank', 'rel. error']];
          for (const m of shown) rows.push([`  ${m.tensor}`, m.kind, `[${m.shape.join(', ')}]`, String(m.rank), m.relError.toExponential(3)]);
          ctx.io.stdout(table([['adapter', r.out], ['r (lora_alpha)', String(r.r)], ['modules', `${formatCount(shown.length)} changed, ${formatCount(r.modules.length - shown.length)} unchanged`], ['total rel. error', r.totalRelError.toExponential(3)], ['time', `${seconds.toFixed(2)} s`]]));
          ctx.io.stdout(table(rows, [false, false, false, true, true]));
          const dropped = r.modules.filter((m) => m.kind === 'dropped');
          if (dropped.length > 0) ctx.io.stdout(`note: ${dropped.length} changed tensor(s) a LoRA cannot hold were left out (use --save-module to keep them whole)\n`);
          const excluded = r.modules.filter((m) => m.kind === 'excluded' && m.relError > 0);
          if (excluded.length > 0) ctx.io.stdout(`note: ${excluded.length} changed tensor(s) were left out by --include/--exclude\n`);
        } finally {
          p.stop();
          await be?.dispose();
        }
      },
    );
    l.command(
      'to-vector',
      'store an adapter\'s weight change (scale·B·A per module) as a task vector on its base',
      (b) =>
        b
          .option('adapter', { type: 'string', demandOption: true, describe: 'the PEFT adapter folder' })
          .option('base', { type: 'string', demandOption: true, describe: 'the base checkpoint the adapter belongs to' })
          .option('out', { type: 'string', demandOption: true, describe: 'the vector file (.safetensors)' })
          .option('dtype', { type: 'string', describe: 'storage dtype: f32 (default), bf16, f16' })
          .option('label', { type: 'string' })
          .option('overwrite', { type: 'boolean', default: false })
          .option('json', { type: 'boolean', default: false })
          .option('quiet', { type: 'boolean', default: false }),
      async (argv) => {
        const p = streamProgress(ctx.io, argv, 'lora to-vector');
        try {
          const r = await loraToVector({
            adapter: String(argv.adapter),
            base: String(argv.base),
            out: String(argv.out),
            ...(argv.dtype !== undefined ? { dtype: dtypeOf(argv.dtype) } : {}),
            ...(argv.label !== undefined ? { label: String(argv.label) } : {}),
            overwrite: Boolean(argv.overwrite),
            onProgress: p.onProgress,
            signal: p.signal,
          });
          p.stop();
          if (argv.json) ctx.io.stdout(JSON.stringify(r, null, 2) + '\n');
          else if (!argv.quiet) {
            ctx.io.stdout(table([['vector', r.out], ['tensors', formatCount(r.tensors)], ['LoRA modules', formatCount(r.loraModules)], ['full tensors', formatCount(r.fullTensors)], ['base fingerprint', r.fingerprint]]));
          }
        } finally {
          p.stop();
        }
      },
    );
    l.command(
      'info <adapter>',
      'what a PEFT LoRA adapter holds: config, modules, ranks, scales',
      (b) => b.positional('adapter', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
      async (argv) => {
        const a = await openLoraAdapter(String(argv.adapter));
        try {
          const params = a.reader.tensors().reduce((s, t) => s + t.numel, 0);
          const ranks = new Map<number, number>();
          for (const m of a.modules) ranks.set(m.rank, (ranks.get(m.rank) ?? 0) + 1);
          const c = a.config;
          const report = {
            path: a.dir,
            r: c.r,
            loraAlpha: c.loraAlpha,
            useRslora: c.useRslora,
            fanInFanOut: c.fanInFanOut,
            targetModules: c.targetModules,
            modulesToSave: c.modulesToSave,
            ...(c.baseModelNameOrPath !== undefined ? { baseModelNameOrPath: c.baseModelNameOrPath } : {}),
            parameters: params,
            modules: a.modules.map((m) => ({ module: m.module, target: m.target, kind: m.kind, rank: m.rank, alpha: m.alpha, scale: m.scale, shape: m.shape })),
            full: a.full.map((f) => f.target),
          };
          if (argv.json) {
            ctx.io.stdout(JSON.stringify(report, null, 2) + '\n');
            return;
          }
          const rows: string[][] = [
            ['adapter', a.dir],
            ['r / lora_alpha', `${c.r} / ${c.loraAlpha}${c.useRslora ? ' (rsLoRA)' : ''}`],
            ['LoRA modules', `${formatCount(a.modules.length)} (ranks ${[...ranks].sort((x, y) => x[0] - y[0]).map(([r, k]) => `${r}×${k}`).join(', ')})`],
            ['full tensors', formatCount(a.full.length)],
            ['parameters', formatCount(params)],
            ['target_modules', typeof c.targetModules === 'string' ? c.targetModules : c.targetModules.join(', ')],
          ];
          if (c.baseModelNameOrPath !== undefined) rows.push(['base model', c.baseModelNameOrPath]);
          ctx.io.stdout(table(rows));
        } finally {
          await a.close();
        }
      },
    );
    return l.demandCommand(1, 'name a lora subcommand: extract, to-vector, info');
  });
}
